//! A seeded, deterministic cluster simulator over the real node state machine.
//!
//! [`Simulation`] drives N [`Node`]s (replication protocol plus membership service) with a packet
//! simulator (delays, loss, duplication, reordering, minority partitions, one-way cuts, flapping
//! links), per-node clocks whose rates drift within the bound the configuration covers, and
//! crashes followed by restarts. Views, leases, removals and joins come from the membership
//! protocol itself. Closed-loop clients issue reads, writes, deletes and CAS on a small hot key
//! set.
//!
//! Each run has a **safety phase** (faults on; the invariants of [`crate::invariants`] plus the
//! membership ones after every event) and a **liveness phase** (faults healed: the cluster must
//! converge to one view whose members are exactly the live nodes, then every live node must
//! read, commit a write to and read again every key in bounded simulated time). The client
//! history of both phases is checked with [`crate::history`]; the first reads of the liveness
//! phase make that check fail if an acknowledged write was lost. A failure names its seed and
//! the command that replays it.
//!
//! The durability mode is `replica.durability` ([`SimConfig::with_durability`]). With `async`
//! and `sync` each node has a simulated store: `Persist` actions become durable after a random
//! delay in group commits reported with `handle_persisted`, a crash loses what is not durable,
//! and a crashed node comes back with [`Node::recover`]. Under `sync` the run also crashes
//! every node at once (possibly twice in a row) and checks that the cluster comes back with
//! every acknowledged write.
//!
//! ```
//! use hermes_core::sim::{SimConfig, Simulation};
//!
//! let report = Simulation::new(SimConfig::from_seed(42)).run().unwrap();
//! assert!(report.ops > 0);
//! ```

mod config;
mod faults;
mod report;
mod store;
mod workload;

pub use config::{OpMix, SimConfig};
pub use report::{FailureKind, SimFailure, SimReport};

use crate::action::Action;
use crate::config::Config;
use crate::durability::Durability;
use crate::invariants::{self, CommitLog};
use crate::membership::DurableMembership;
use crate::message::Message;
use crate::node::Node;
use crate::op::{OpResult, Outcome, RequestId};
use crate::replica::Replica;
use crate::rng::SeededRng;
use crate::types::{Epoch, Instant, Key, NodeId, Ts};
use crate::view::View;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use store::SimStore;
use workload::Workload;

/// More events than this in one run is a livelock.
const STEPS_MAX: u64 = 3_000_000;

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
        restart_after: Option<Duration>,
    },
    ForceCrash {
        node: usize,
        restart_after: Option<Duration>,
    },
    Restart {
        node: usize,
    },
    /// Every node crashes at once; each restarts after its own delay.
    CrashAll {
        restart_after: Vec<Duration>,
    },
    /// The store of `node` (in its life `life`) makes queued records durable.
    GroupCommit {
        node: usize,
        life: u64,
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
    CheckConvergence,
}

/// One simulated node and its clock.
struct SimNode {
    node: Option<Node>,
    /// The membership state last saved durably.
    saved: Option<DurableMembership>,
    /// Clock-rate error in parts per million (positive: the clock runs fast).
    drift_ppm: i64,
    /// The local deadline a timer event is scheduled for.
    timer: Option<Instant>,
    /// Timestamps last seen per key, to check that they never decrease.
    last_ts: BTreeMap<Key, Ts>,
    /// The node's store (`async` and `sync` durability); it survives crashes.
    store: SimStore,
    /// Counts the node's crashes, so that a store's group commit scheduled by one life of the
    /// process never reports to the next.
    life: u64,
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
    rng: SeededRng,
    now: Instant,
    seq: u64,
    events: BTreeMap<(Instant, u64), Event>,
    nodes: Vec<SimNode>,
    cut: BTreeSet<(usize, usize)>,
    faults_on: bool,
    liveness_started: bool,
    /// A node that crashes during its next RMW broadcast, and when it restarts.
    crash_armed: Option<(usize, Option<Duration>)>,
    /// Every view installed anywhere, by epoch.
    views: BTreeMap<Epoch, View>,
    /// When each crash happened and whether a write committed after it yet.
    crash_times: Vec<Instant>,
    /// When each rejoin started (restart), by node.
    rejoin_started: BTreeMap<usize, Instant>,
    workload: Workload,
    commits: CommitLog,
    report: SimReport,
}

impl Simulation {
    /// A simulation of `config`; nothing runs until [`run`](Self::run).
    pub fn new(config: SimConfig) -> Self {
        let mut rng = SeededRng::new(config.seed);
        let ids: Vec<NodeId> = (1..=config.nodes).map(NodeId).collect();
        let view = View::new(Epoch(1), ids.iter().copied());
        let drift = config.clock_drift_ppm;
        let nodes = ids
            .iter()
            .map(|id| {
                let node_config = Config {
                    node_id: *id,
                    ..config.replica.clone()
                };
                #[allow(unused_mut)]
                let mut node = Node::new(node_config, view.clone(), Instant::ZERO)
                    .expect("the simulator builds valid configurations");
                #[cfg(feature = "planted-bugs")]
                if let Some(bug) = config.planted_bug {
                    node.plant_bug(bug);
                }
                SimNode {
                    node: Some(node),
                    saved: None,
                    drift_ppm: rng.between(0, 2 * drift) as i64 - drift as i64,
                    timer: None,
                    last_ts: BTreeMap::new(),
                    store: SimStore::default(),
                    life: 0,
                }
            })
            .collect();
        let workload = Workload::new(&config);
        let report = SimReport {
            seed: config.seed,
            nodes: config.nodes,
            ..SimReport::default()
        };
        let mut views = BTreeMap::new();
        views.insert(Epoch(1), view);
        Simulation {
            config,
            rng,
            now: Instant::ZERO,
            seq: 0,
            events: BTreeMap::new(),
            nodes,
            cut: BTreeSet::new(),
            faults_on: true,
            liveness_started: false,
            crash_armed: None,
            views,
            crash_times: Vec::new(),
            rejoin_started: BTreeMap::new(),
            workload,
            commits: CommitLog::default(),
            report,
        }
    }

    /// Runs the safety phase, then the liveness phase, then checks the history.
    pub fn run(mut self) -> Result<SimReport, SimFailure> {
        let faults_end = self.schedule_faults();
        self.workload.keep_going_until(faults_end);
        for node in 0..self.nodes.len() {
            self.drain(node)?;
        }
        for client in 0..self.workload.clients() {
            let at = self.now + Duration::from_micros(self.rng.below(1_000));
            self.push(at, Event::ClientIssue { client });
        }
        let limit = Instant::from_millis(self.config.time_limit_ms);
        while let Some(((at, _), event)) = self.events.pop_first() {
            if at > limit {
                let progress = format!(
                    "{}; {}",
                    self.workload.describe_progress(),
                    self.describe_nodes()
                );
                return Err(self.failure(
                    FailureKind::Liveness,
                    format!("not done after {limit} simulated: {progress}"),
                ));
            }
            self.now = at;
            self.report.steps += 1;
            if self.report.steps > STEPS_MAX {
                return Err(self.failure(
                    FailureKind::Liveness,
                    format!("more than {STEPS_MAX} events (a livelock?) at {at}: {event:?}"),
                ));
            }
            self.step(event)?;
            if self.workload.finished() {
                break;
            }
        }
        if !self.workload.finished() {
            let progress = self.workload.describe_progress();
            return Err(self.failure(
                FailureKind::Liveness,
                format!("the cluster went quiet: {progress}"),
            ));
        }
        self.finish()
    }

    fn finish(mut self) -> Result<SimReport, SimFailure> {
        self.report.sim_time = self.now;
        for sim_node in &self.nodes {
            if let Some(node) = &sim_node.node {
                self.report.replays += node.replica().stats().replays;
                self.report.retransmits += node.replica().stats().retransmits;
            }
        }
        self.report.view_changes = self.views.len() as u64 - 1;
        let history = self.workload.history();
        self.report.history_ops = history.len() as u64;
        if let Err(error) = history.check() {
            return Err(self.failure(FailureKind::Linearizability, error.to_string()));
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
            durability: self.config.replica.durability,
        }
    }

    fn push(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.config.trace {
            eprintln!("[{}] {}", self.now, what());
        }
    }

    fn step(&mut self, event: Event) -> Result<(), SimFailure> {
        if !matches!(
            event,
            Event::Deliver { .. }
                | Event::Timer { .. }
                | Event::ClientIssue { .. }
                | Event::CheckConvergence
                | Event::GroupCommit { .. }
        ) {
            self.trace(|| format!("{event:?}"));
        }
        let touched = match event {
            Event::Deliver { from, to, msg } => {
                let local = self.local_now(to);
                let Some(node) = self.nodes[to].node.as_mut() else {
                    return Ok(());
                };
                node.handle_message(local, NodeId(from as u32 + 1), msg);
                Some(to)
            }
            Event::Timer { node, local } => {
                if self.nodes[node].timer != Some(local) {
                    return Ok(()); // superseded
                }
                self.nodes[node].timer = None;
                let now_local = self.local_now(node);
                let Some(sim_node) = self.nodes[node].node.as_mut() else {
                    return Ok(());
                };
                sim_node.handle_timeout(now_local);
                Some(node)
            }
            Event::ClientIssue { client } => {
                let node = self.workload.node_of(client);
                let local = self.local_now(node);
                if self.nodes[node].node.is_none() {
                    return Ok(());
                }
                let Some((id, op)) = self.workload.next_op(client, self.now, &mut self.rng) else {
                    return Ok(());
                };
                if let Some(sim_node) = self.nodes[node].node.as_mut() {
                    sim_node.handle_request(local, id, op);
                }
                Some(node)
            }
            Event::Crash {
                node,
                restart_after,
            } => {
                if self.config.crash_mid_broadcast && self.crash_armed.is_none() {
                    self.crash_armed = Some((node, restart_after));
                    let at = self.now + Duration::from_millis(50);
                    self.push(
                        at,
                        Event::ForceCrash {
                            node,
                            restart_after,
                        },
                    );
                } else {
                    self.crash(node, restart_after);
                }
                None
            }
            Event::ForceCrash {
                node,
                restart_after,
            } => {
                if self.crash_armed.map(|(n, _)| n) == Some(node) {
                    self.crash(node, restart_after);
                }
                None
            }
            Event::Restart { node } => {
                self.restart(node);
                Some(node)
            }
            Event::CrashAll { restart_after } => {
                self.report.total_crashes += 1;
                self.crash_armed = None;
                for (node, delay) in restart_after.into_iter().enumerate() {
                    self.crash_now(node, Some(delay));
                }
                None
            }
            Event::GroupCommit { node, life } => {
                self.on_group_commit(node, life)?;
                None
            }
            Event::Cut { from, to } => {
                if self.faults_on {
                    self.cut.insert((from, to));
                }
                None
            }
            Event::Heal { from, to } => {
                self.cut.remove(&(from, to));
                None
            }
            Event::EndSafetyPhase => {
                self.cut.clear();
                self.config.loss = 0.0;
                self.config.duplicate = 0.0;
                self.push(self.now, Event::CheckConvergence);
                None
            }
            Event::CheckConvergence => {
                if self.converged() {
                    self.start_liveness_phase();
                } else {
                    let at = self.now + Duration::from_millis(10);
                    self.push(at, Event::CheckConvergence);
                }
                None
            }
        };
        if let Some(node) = touched {
            self.drain(node)?;
        }
        if self.workload.safety_done(self.now) && self.faults_on {
            self.faults_on = false;
            self.push(self.now, Event::EndSafetyPhase);
        }
        self.check_invariants()
    }

    fn local_now(&self, node: usize) -> Instant {
        self.nodes[node].local_time(self.now)
    }

    fn crash(&mut self, node: usize, restart_after: Option<Duration>) {
        if self.crash_armed.map(|(n, _)| n) == Some(node) {
            self.crash_armed = None;
        }
        // With `memory` durability a view's data lives only in its members: keep the cluster
        // recoverable by never crashing a member whose loss leaves less than a majority of the
        // latest view's members up and caught up.
        let latest = self.views.values().next_back().cloned().unwrap_or_default();
        let id = NodeId(node as u32 + 1);
        let healthy_others = latest
            .members
            .iter()
            .filter(|m| **m != id)
            .filter(|m| {
                self.nodes[m.0 as usize - 1]
                    .node
                    .as_ref()
                    .is_some_and(|n| !n.is_rejoining())
            })
            .count();
        if latest.is_member(id) && healthy_others < latest.majority() {
            self.trace(|| format!("n{} spared: the cluster could not recover", node + 1));
            return;
        }
        self.crash_now(node, restart_after);
    }

    /// Crashes `node` (its store keeps only what is durable) and schedules its restart.
    fn crash_now(&mut self, node: usize, restart_after: Option<Duration>) {
        if self.nodes[node].node.take().is_none() {
            return;
        }
        self.nodes[node].store.crash();
        self.nodes[node].life += 1;
        self.nodes[node].timer = None;
        self.crash_times.push(self.now);
        self.workload.node_crashed(node);
        if let Some(delay) = restart_after {
            self.push(self.now + delay, Event::Restart { node });
        }
    }

    fn restart(&mut self, node: usize) {
        if self.nodes[node].node.is_some() {
            return;
        }
        let Some(saved) = self.nodes[node].saved.clone() else {
            return;
        };
        let config = Config {
            node_id: NodeId(node as u32 + 1),
            ..self.config.replica.clone()
        };
        let local = self.local_now(node);
        let restarted = match config.durability {
            Durability::Memory => Node::restart(config, saved, local),
            Durability::Async | Durability::Sync => {
                let records = self.nodes[node].store.records();
                Node::recover(config, saved, records, local)
            }
        };
        #[allow(unused_mut)]
        let mut restarted = restarted.expect("the simulator builds valid configurations");
        #[cfg(feature = "planted-bugs")]
        if let Some(bug) = self.config.planted_bug {
            restarted.plant_bug(bug);
        }
        self.nodes[node].node = Some(restarted);
        self.nodes[node].last_ts.clear();
        self.rejoin_started.insert(node, self.now);
        self.report.restarts += 1;
        self.workload.node_restarted(node);
        let clients = self.workload.clients_of(node);
        for client in clients {
            let at = self.now + Duration::from_millis(1);
            self.push(at, Event::ClientIssue { client });
        }
    }

    /// The live nodes: not crashed.
    fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].node.is_some())
            .collect()
    }

    /// Whether every live node installed the same view and its members are exactly the live
    /// nodes.
    fn converged(&self) -> bool {
        let live = self.live();
        let mut views = live
            .iter()
            .filter_map(|i| self.nodes[*i].node.as_ref())
            .map(|n| n.membership().view());
        let Some(first) = views.next() else {
            return false;
        };
        let members: BTreeSet<NodeId> = live.iter().map(|i| NodeId(*i as u32 + 1)).collect();
        views.all(|v| v == first)
            && first.members == members
            && first.shadows.is_empty()
            && live
                .iter()
                .filter_map(|i| self.nodes[*i].node.as_ref())
                .all(|n| !n.is_rejoining())
    }

    /// Each node's view and state, for failure reports.
    fn describe_nodes(&self) -> String {
        let local: Vec<Instant> = (0..self.nodes.len()).map(|i| self.local_now(i)).collect();
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match &n.node {
                None => format!("n{} down", i + 1),
                Some(node) => {
                    let view = node.membership().view();
                    let unsettled: Vec<String> = node
                        .replica()
                        .keys()
                        .filter(|(_, e)| e.state != crate::KeyState::Valid || !e.waiting.is_empty())
                        .map(|(k, e)| {
                            format!(
                                "{}:{:?}@{} pending {:?} waiting {} known_max {} deadline {:?}",
                                String::from_utf8_lossy(k),
                                e.state,
                                e.ts,
                                e.pending.as_ref().map(|p| (p.ts, p.acks.len(), p.epoch.0)),
                                e.waiting.len(),
                                e.known_max,
                                e.deadline
                            )
                        })
                        .collect();
                    format!(
                        "n{}: e{} members {:?} shadows {:?}{}{} {:?}",
                        i + 1,
                        view.epoch.0,
                        view.members.iter().map(|m| m.0).collect::<Vec<_>>(),
                        view.shadows.iter().map(|m| m.0).collect::<Vec<_>>(),
                        if node.is_rejoining() {
                            " rejoining"
                        } else {
                            ""
                        },
                        if node.may_serve(local[i]) {
                            " serving"
                        } else {
                            ""
                        },
                        unsettled
                    )
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
            + &format!(
                "; cut links {:?}",
                self.cut
                    .iter()
                    .map(|(a, b)| (a + 1, b + 1))
                    .collect::<Vec<_>>()
            )
    }

    fn start_liveness_phase(&mut self) {
        if self.liveness_started {
            return;
        }
        self.liveness_started = true;
        self.report.convergence_time = self.now;
        let live = self.live();
        self.workload.start_liveness_phase(live);
        for client in 0..self.workload.clients() {
            self.push(self.now, Event::ClientIssue { client });
        }
    }

    /// Carries out the actions of `node` and re-arms its timer.
    fn drain(&mut self, node: usize) -> Result<(), SimFailure> {
        let mut actions = Vec::new();
        let next_timer = match self.nodes[node].node.as_mut() {
            Some(sim_node) => {
                while let Some(action) = sim_node.poll_action() {
                    actions.push(action);
                }
                sim_node.poll_timeout()
            }
            None => None,
        };
        let mut cut_short = false;
        for action in actions {
            match action {
                Action::Send { to, msg } => {
                    let rmw_inv = matches!(&msg, Message::Inv(inv) if inv.is_rmw);
                    if self.crash_armed.map(|(n, _)| n) == Some(node) && rmw_inv {
                        cut_short = true;
                    }
                    if cut_short && self.rng.chance(0.5) {
                        continue; // this copy of the broadcast never leaves the node
                    }
                    self.transmit(node, to.0 as usize - 1, msg);
                }
                Action::Reply { id, result } => self.on_reply(node, id, result)?,
                Action::Persist { records, token } => self.on_persist(node, records, token),
                Action::SaveMembership(state) => self.nodes[node].saved = Some(state),
                Action::ViewInstalled(view) => self.on_view_installed(node, view)?,
                Action::JoinRefused(reason) => {
                    return Err(self.failure(
                        FailureKind::Liveness,
                        format!("node {} was refused to join: {reason}", node + 1),
                    ));
                }
            }
        }
        if cut_short {
            let restart_after = self.crash_armed.and_then(|(_, r)| r);
            self.crash(node, restart_after);
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

    fn on_view_installed(&mut self, node: usize, view: View) -> Result<(), SimFailure> {
        self.trace(|| {
            format!(
                "n{} installs e{} members {:?} shadows {:?} inc {:?}",
                node + 1,
                view.epoch.0,
                view.members,
                view.shadows,
                view.incarnations
            )
        });
        if let Some(other) = self.views.get(&view.epoch) {
            if *other != view {
                let detail = format!(
                    "two views for epoch {}: {other:?} and {view:?} (installed by node {})",
                    view.epoch.0,
                    node + 1
                );
                return Err(self.failure(FailureKind::Invariant, detail));
            }
        } else {
            self.views.insert(view.epoch, view.clone());
        }
        let id = NodeId(node as u32 + 1);
        if view.is_member(id) {
            if let Some(started) = self.rejoin_started.remove(&node) {
                self.report
                    .join_times_us
                    .push(self.now.saturating_since(started).as_micros() as u64);
            }
        }
        Ok(())
    }

    fn transmit(&mut self, from: usize, to: usize, msg: Message) {
        self.report.messages += 1;
        let lost = self.cut.contains(&(from, to)) || self.rng.chance(self.config.loss);
        if lost || self.nodes[to].node.is_none() {
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
        if let Ok(Outcome::Value(value)) = &result {
            self.trace(|| format!("n{} read -> {value:?} (request {})", node + 1, id.0));
            self.check_read_was_allowed(node)?;
        } else {
            self.trace(|| format!("n{} answers request {}: {result:?}", node + 1, id.0));
        }
        if let Ok(Outcome::Written { .. }) = &result {
            for crash in std::mem::take(&mut self.crash_times) {
                self.report
                    .recovery_times_us
                    .push(self.now.saturating_since(crash).as_micros() as u64);
            }
        }
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
        if self.workload.wants_more(client, self.now) && self.nodes[node].node.is_some() {
            let think = Duration::from_micros(self.rng.below(self.config.think_us_max + 1));
            self.push(self.now + think, Event::ClientIssue { client });
        }
        Ok(())
    }

    /// A read was answered: the node must hold a lease by its own clock, be a member of its
    /// view (not a shadow) and not be rejoining.
    fn check_read_was_allowed(&self, node: usize) -> Result<(), SimFailure> {
        let local = self.local_now(node);
        let Some(sim_node) = self.nodes[node].node.as_ref() else {
            return Ok(());
        };
        let id = NodeId(node as u32 + 1);
        let view = sim_node.membership().view();
        let problem = if sim_node.is_rejoining() {
            Some("while rejoining".to_string())
        } else if !view.is_member(id) {
            Some(format!("while not a member of its view {}", view.epoch.0))
        } else if local >= sim_node.membership().lease_until() {
            Some(format!(
                "at {local} by its clock, after its lease expired at {}",
                sim_node.membership().lease_until()
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(self.failure(
                FailureKind::Invariant,
                format!("node {} served a read {problem}", node + 1),
            )),
            None => Ok(()),
        }
    }

    fn check_invariants(&mut self) -> Result<(), SimFailure> {
        for sim_node in &mut self.nodes {
            let Some(node) = &sim_node.node else {
                continue;
            };
            if node.is_rejoining() {
                // Its state was discarded (removal or restart); it starts over from here.
                sim_node.last_ts.clear();
                continue;
            }
            for (key, entry) in node.replica().keys() {
                let last = sim_node.last_ts.entry(key.clone()).or_insert(Ts::ZERO);
                if entry.ts < *last {
                    let detail = format!(
                        "key {key:?}: {} went from {} back to {}",
                        node.id(),
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
                        durability: self.config.replica.durability,
                    });
                }
                *last = entry.ts;
            }
        }
        let latest = self.views.values().next_back().cloned().unwrap_or_default();
        let in_latest: Vec<Option<&Replica>> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let id = NodeId(i as u32 + 1);
                // Shadows copy state and serve nothing; they are checked once promoted.
                n.node
                    .as_ref()
                    .filter(|node| {
                        latest.is_member(id)
                            && node.membership().view().is_member(id)
                            && !node.is_rejoining()
                    })
                    .map(Node::replica)
            })
            .collect();
        invariants::check_all(&in_latest)
            .map_err(|detail| self.failure(FailureKind::Invariant, detail))
    }
}
