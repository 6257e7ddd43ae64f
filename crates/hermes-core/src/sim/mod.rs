//! A seeded, deterministic cluster simulator over the real replica state machine.
//!
//! [`Simulation`] drives N [`Replica`]s with a packet simulator (delays, loss, duplication,
//! reordering, symmetric and one-way link cuts), per-replica clocks whose rates drift within a
//! bound, crashes and isolations followed by a view change that a membership oracle installs
//! (standing in for the membership service), and closed-loop clients issuing reads, writes,
//! deletes and CAS on a small hot key set. After every event it checks the invariants of
//! [`crate::invariants`]; at the end it checks the client history with [`crate::history`]. A
//! liveness phase follows the faulty one: faults heal and every remaining member must commit a
//! write and serve a read of every key in bounded simulated time.
//!
//! ```
//! use hermes_core::sim::{SimConfig, Simulation};
//!
//! let report = Simulation::new(SimConfig::from_seed(42)).run().unwrap();
//! assert!(report.ops > 0);
//! ```

mod config;
mod report;
mod rng;
mod workload;

pub use config::{OpMix, SimConfig};
pub use report::{FailureKind, SimFailure, SimReport};
pub use rng::SimRng;

use crate::action::Action;
use crate::config::Config;
use crate::invariants::{self, CommitLog};
use crate::message::Message;
use crate::op::{OpResult, RequestId};
use crate::replica::Replica;
use crate::types::{Instant, Key, NodeId, Ts};
use crate::view::View;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use workload::Workload;

/// Something that happens at a simulated instant.
#[derive(Clone, Debug)]
enum Event {
    Deliver {
        from: usize,
        to: usize,
        msg: Message,
    },
    Timer {
        node: usize,
        local: Instant,
    },
    ClientIssue {
        client: usize,
    },
    Crash {
        node: usize,
    },
    /// A crash armed to strike mid-broadcast fires now if it has not yet.
    ForceCrash {
        node: usize,
    },
    Isolate {
        node: usize,
    },
    InstallView {
        node: usize,
        view: View,
    },
    Cut {
        from: usize,
        to: usize,
    },
    Heal {
        from: usize,
        to: usize,
    },
    EndSafetyPhase,
}

/// One simulated replica and its clock.
struct SimNode {
    replica: Option<Replica>,
    /// Clock-rate error in parts per million (positive: the clock runs fast).
    drift_ppm: i64,
    /// The local deadline a timer event is scheduled for.
    timer: Option<Instant>,
    /// Crashed or isolated, and removed from the view by the oracle.
    removed: bool,
    /// Timestamps last seen per key, to check that they never decrease.
    last_ts: BTreeMap<Key, Ts>,
}

impl SimNode {
    fn local_time(&self, now: Instant) -> Instant {
        let rate = 1_000_000i128 + i128::from(self.drift_ppm);
        let micros = i128::from(now.as_micros()) * rate / 1_000_000;
        Instant::from_micros(micros.clamp(0, i128::from(u64::MAX)) as u64)
    }

    fn sim_time(&self, local: Instant) -> Instant {
        let rate = 1_000_000i128 + i128::from(self.drift_ppm);
        let micros = (i128::from(local.as_micros()) * 1_000_000 + rate - 1) / rate;
        Instant::from_micros(micros.clamp(0, i128::from(u64::MAX)) as u64)
    }
}

/// A deterministic simulated cluster; see the module docs.
pub struct Simulation {
    config: SimConfig,
    rng: SimRng,
    now: Instant,
    seq: u64,
    events: BTreeMap<(Instant, u64), Event>,
    nodes: Vec<SimNode>,
    view: View,
    cut: BTreeSet<(usize, usize)>,
    faults_on: bool,
    /// A node that crashes during its next RMW broadcast.
    crash_armed: Option<usize>,
    workload: Workload,
    commits: CommitLog,
    report: SimReport,
}

impl Simulation {
    /// A simulation of `config`; nothing runs until [`run`](Self::run).
    pub fn new(config: SimConfig) -> Self {
        let mut rng = SimRng::new(config.seed);
        let ids: Vec<NodeId> = (1..=config.nodes).map(NodeId).collect();
        let view = View::new(crate::Epoch(1), ids.iter().copied());
        let nodes = ids
            .iter()
            .map(|id| {
                let replica_config = Config {
                    node_id: *id,
                    ..config.replica.clone()
                };
                #[allow(unused_mut)]
                let mut replica = Replica::new(replica_config, view.clone())
                    .expect("the simulator builds valid configurations");
                #[cfg(feature = "planted-bugs")]
                if let Some(bug) = config.planted_bug {
                    replica.plant_bug(bug);
                }
                replica.set_serving(Instant::ZERO, true);
                let drift = config.clock_drift_ppm as i64;
                SimNode {
                    replica: Some(replica),
                    drift_ppm: rng.between(0, 2 * drift as u64) as i64 - drift,
                    timer: None,
                    removed: false,
                    last_ts: BTreeMap::new(),
                }
            })
            .collect();
        let workload = Workload::new(&config);
        let report = SimReport {
            seed: config.seed,
            nodes: config.nodes,
            ..SimReport::default()
        };
        Simulation {
            config,
            rng,
            now: Instant::ZERO,
            seq: 0,
            events: BTreeMap::new(),
            nodes,
            view,
            cut: BTreeSet::new(),
            faults_on: true,
            crash_armed: None,
            workload,
            commits: CommitLog::default(),
            report,
        }
    }

    /// Runs the safety phase, then the liveness phase, then checks the history.
    pub fn run(mut self) -> Result<SimReport, SimFailure> {
        self.schedule_faults();
        for client in 0..self.workload.clients() {
            let at = self.now + Duration::from_micros(self.rng.below(1_000));
            self.push(at, Event::ClientIssue { client });
        }
        let limit = Instant::from_millis(self.config.time_limit_ms);
        while let Some(((at, _), event)) = self.events.pop_first() {
            if at > limit {
                return Err(self.failure(
                    FailureKind::Liveness,
                    format!(
                        "not done after {} simulated: {}",
                        limit,
                        self.workload.describe_progress()
                    ),
                ));
            }
            self.now = at;
            self.report.steps += 1;
            self.step(event)?;
            if self.workload.finished() {
                break;
            }
        }
        if !self.workload.finished() {
            return Err(self.failure(
                FailureKind::Liveness,
                format!(
                    "the cluster went quiet: {}",
                    self.workload.describe_progress()
                ),
            ));
        }
        self.finish()
    }

    fn finish(mut self) -> Result<SimReport, SimFailure> {
        self.report.sim_time = self.now;
        for node in self.nodes.iter().filter_map(|n| n.replica.as_ref()) {
            self.report.replays += node.stats().replays;
            self.report.retransmits += node.stats().retransmits;
        }
        let history = self.workload.history();
        self.report.history_ops = history.len() as u64;
        if let Err(violation) = history.check() {
            return Err(self.failure(FailureKind::Linearizability, violation.to_string()));
        }
        self.workload.count_into(&mut self.report);
        Ok(self.report)
    }

    fn failure(&self, kind: FailureKind, detail: String) -> SimFailure {
        SimFailure {
            seed: self.config.seed,
            step: self.report.steps,
            sim_time: self.now,
            kind,
            detail,
            planted: self.config.planted_bug.is_some(),
        }
    }

    fn push(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    /// Schedules removals and link cuts over the expected length of the safety phase.
    fn schedule_faults(&mut self) {
        let horizon_us = self.workload.expected_duration_us(&self.config);
        let mut candidates: Vec<usize> = (0..self.nodes.len()).collect();
        for round in 0..self.config.removals {
            let chosen = self.config.first_victim.filter(|_| round == 0);
            let pick =
                match chosen.and_then(|id| candidates.iter().position(|c| *c + 1 == id as usize)) {
                    Some(position) => position,
                    None => self.rng.below(candidates.len() as u64) as usize,
                };
            let node = candidates.swap_remove(pick);
            let at = Instant::from_micros(self.rng.below(horizon_us));
            let event = if self.rng.chance(0.5) {
                Event::Crash { node }
            } else {
                Event::Isolate { node }
            };
            self.push(at, event);
        }
        if self.config.partitions {
            let n = self.nodes.len() as u64;
            for _ in 0..self.rng.between(1, 6) {
                let from = self.rng.below(n) as usize;
                let to = (from + 1 + self.rng.below(n - 1) as usize) % n as usize;
                let at = Instant::from_micros(self.rng.below(horizon_us));
                let length = Duration::from_micros(self.rng.between(1_000, 50_000));
                self.push(at, Event::Cut { from, to });
                self.push(at + length, Event::Heal { from, to });
                if self.rng.chance(0.5) {
                    self.push(at, Event::Cut { from: to, to: from });
                    self.push(at + length, Event::Heal { from: to, to: from });
                }
            }
        }
    }

    fn step(&mut self, event: Event) -> Result<(), SimFailure> {
        let touched = match event {
            Event::Deliver { from, to, msg } => {
                let local = self.local_now(to);
                let Some(replica) = self.live_replica(to) else {
                    return Ok(());
                };
                replica.handle_message(local, NodeId(from as u32 + 1), msg);
                Some(to)
            }
            Event::Timer { node, local } => {
                if self.nodes[node].timer != Some(local) {
                    return Ok(()); // superseded
                }
                self.nodes[node].timer = None;
                let now_local = self.local_now(node);
                let Some(replica) = self.live_replica(node) else {
                    return Ok(());
                };
                replica.handle_timeout(now_local);
                Some(node)
            }
            Event::ClientIssue { client } => {
                let node = self.workload.node_of(client);
                let local = self.local_now(node);
                if self.nodes[node].replica.is_none() {
                    self.workload.abandon(client);
                    return Ok(());
                }
                let Some((id, op)) = self.workload.next_op(client, self.now, &mut self.rng) else {
                    return Ok(());
                };
                if let Some(replica) = self.nodes[node].replica.as_mut() {
                    replica.handle_request(local, id, op);
                }
                Some(node)
            }
            Event::Crash { node } => {
                if self.config.crash_mid_broadcast && self.crash_armed.is_none() {
                    self.crash_armed = Some(node);
                    self.push(
                        self.now + Duration::from_millis(50),
                        Event::ForceCrash { node },
                    );
                } else {
                    self.crash(node);
                }
                None
            }
            Event::ForceCrash { node } => {
                if self.crash_armed == Some(node) {
                    self.crash(node);
                }
                None
            }
            Event::Isolate { node } => {
                for other in 0..self.nodes.len() {
                    self.cut.insert((node, other));
                    self.cut.insert((other, node));
                }
                let local = self.local_now(node);
                if let Some(replica) = self.nodes[node].replica.as_mut() {
                    // Its lease runs out before the others install a view without it.
                    replica.set_serving(local, false);
                }
                self.remove_from_view(node);
                Some(node)
            }
            Event::InstallView { node, view } => {
                let local = self.local_now(node);
                let Some(replica) = self.live_replica(node) else {
                    return Ok(());
                };
                replica.install_view(local, view);
                Some(node)
            }
            Event::Cut { from, to } => {
                if self.faults_on {
                    self.cut.insert((from, to));
                }
                None
            }
            Event::Heal { from, to } => {
                if !self.nodes[from].removed && !self.nodes[to].removed {
                    self.cut.remove(&(from, to));
                }
                None
            }
            Event::EndSafetyPhase => {
                self.heal_everything();
                self.workload.start_liveness_phase(self.live_members());
                for client in 0..self.workload.clients() {
                    self.push(self.now, Event::ClientIssue { client });
                }
                None
            }
        };
        if let Some(node) = touched {
            self.drain(node)?;
        }
        if self.workload.safety_done() && self.faults_on {
            self.faults_on = false;
            let settle = Duration::from_millis(self.config.replica.request_timeout_ms);
            self.push(self.now + settle, Event::EndSafetyPhase);
        }
        self.check_invariants()
    }

    fn crash(&mut self, node: usize) {
        if self.crash_armed == Some(node) {
            self.crash_armed = None;
        }
        if self.nodes[node].replica.take().is_none() {
            return;
        }
        self.workload.node_crashed(node);
        self.remove_from_view(node);
    }

    fn live_replica(&mut self, node: usize) -> Option<&mut Replica> {
        self.nodes[node].replica.as_mut()
    }

    fn local_now(&self, node: usize) -> Instant {
        self.nodes[node].local_time(self.now)
    }

    fn live_members(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| !self.nodes[*i].removed && self.nodes[*i].replica.is_some())
            .collect()
    }

    /// The membership oracle: a view without `node`, installed on every remaining replica after
    /// a detection delay, each at its own time.
    fn remove_from_view(&mut self, node: usize) {
        self.nodes[node].removed = true;
        let mut view = self.view.clone();
        view.epoch = crate::Epoch(view.epoch.0 + 1);
        view.members.remove(&NodeId(node as u32 + 1));
        self.view = view.clone();
        self.report.view_changes += 1;
        let detect_max_us = self.config.view_change_delay_ms_max.max(1) * 1_000;
        let detect = Duration::from_micros(self.rng.between(detect_max_us / 30, detect_max_us));
        for other in self.live_members() {
            let spread = Duration::from_micros(self.rng.below(10_000));
            let at = self.now + detect + spread;
            self.push(
                at,
                Event::InstallView {
                    node: other,
                    view: view.clone(),
                },
            );
        }
    }

    fn heal_everything(&mut self) {
        let removed: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].removed)
            .collect();
        self.cut
            .retain(|(a, b)| removed.contains(a) || removed.contains(b));
        self.config.loss = 0.0;
        self.config.duplicate = 0.0;
    }

    /// Carries out the actions of `node` and re-arms its timer.
    fn drain(&mut self, node: usize) -> Result<(), SimFailure> {
        let mut actions = Vec::new();
        let next_timer = match self.nodes[node].replica.as_mut() {
            Some(replica) => {
                while let Some(action) = replica.poll_action() {
                    actions.push(action);
                }
                replica.poll_timeout()
            }
            None => None,
        };
        let mut cut_short = false;
        for action in actions {
            match action {
                Action::Send { to, msg } => {
                    let rmw_inv = matches!(&msg, Message::Inv(inv) if inv.is_rmw);
                    if self.crash_armed == Some(node) && rmw_inv {
                        cut_short = true;
                    }
                    if cut_short && self.rng.chance(0.5) {
                        continue; // this copy of the broadcast never leaves the node
                    }
                    self.transmit(node, to.0 as usize - 1, msg);
                }
                Action::Reply { id, result } => self.on_reply(node, id, result)?,
            }
        }
        if cut_short {
            self.crash(node);
            return Ok(());
        }
        if next_timer != self.nodes[node].timer {
            self.nodes[node].timer = next_timer;
            if let Some(local) = next_timer {
                let at = self.nodes[node].sim_time(local).max(self.now);
                self.push(at, Event::Timer { node, local });
            }
        }
        Ok(())
    }

    fn transmit(&mut self, from: usize, to: usize, msg: Message) {
        self.report.messages += 1;
        let lost = self.cut.contains(&(from, to)) || self.rng.chance(self.config.loss);
        if lost || self.nodes[to].replica.is_none() {
            self.report.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            self.report.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + self.delay();
            self.push(
                at,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn delay(&mut self) -> Duration {
        let mut extra = self.rng.below(2 * self.config.delay_mean_us + 1);
        if self.rng.chance(0.02) {
            extra *= 10; // a long tail reorders messages
        }
        Duration::from_micros(self.config.delay_min_us + extra)
    }

    fn on_reply(&mut self, node: usize, id: RequestId, result: OpResult) -> Result<(), SimFailure> {
        let Some(completion) = self.workload.complete(id, &result, self.now) else {
            return Ok(());
        };
        if let Some(detail) = completion.liveness_failure {
            return Err(self.failure(FailureKind::Liveness, detail));
        }
        if let Some((key, ts, is_rmw)) = completion.commit {
            let check = if is_rmw {
                self.commits.rmw_committed(&key, ts)
            } else {
                self.commits.write_committed(&key, ts)
            };
            if let Err(detail) = check {
                return Err(self.failure(FailureKind::Invariant, detail));
            }
        }
        let client = completion.client;
        if self.workload.wants_more(client) && self.nodes[node].replica.is_some() {
            let think = Duration::from_micros(self.rng.below(300));
            self.push(self.now + think, Event::ClientIssue { client });
        }
        Ok(())
    }

    fn check_invariants(&mut self) -> Result<(), SimFailure> {
        for node in &mut self.nodes {
            let Some(replica) = &node.replica else {
                continue;
            };
            for (key, entry) in replica.keys() {
                let last = node.last_ts.entry(key.clone()).or_insert(Ts::ZERO);
                if entry.ts < *last {
                    let detail = format!(
                        "key {key:?}: {} went from {} back to {}",
                        replica.id(),
                        last,
                        entry.ts
                    );
                    return Err(SimFailure {
                        seed: self.config.seed,
                        step: self.report.steps,
                        sim_time: self.now,
                        kind: FailureKind::Invariant,
                        detail,
                        planted: self.config.planted_bug.is_some(),
                    });
                }
                *last = entry.ts;
            }
        }
        let members: Vec<Option<&Replica>> = self
            .nodes
            .iter()
            .map(|n| if n.removed { None } else { n.replica.as_ref() })
            .collect();
        invariants::check_all(&members)
            .map_err(|detail| self.failure(FailureKind::Invariant, detail))
    }
}
