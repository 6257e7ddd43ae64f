//! Closed-loop simulated clients and the history they record.

use super::config::SimConfig;
use super::report::SimReport;
use crate::history::{History, HistoryOp, HistoryRet, OpId};
use crate::op::{Op, OpResult, Outcome, RequestError, RequestId};
use crate::rng::SeededRng;
use crate::types::{Instant, Key, Ts, Value};
use std::collections::{BTreeMap, VecDeque};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Safety,
    Liveness,
}

struct Client {
    node: usize,
    inflight: Option<RequestId>,
    last_seen: BTreeMap<Key, Option<Value>>,
    counter: u64,
    abandoned: bool,
    liveness_plan: VecDeque<Op>,
}

struct InFlight {
    client: usize,
    history: OpId,
    op: Op,
    liveness: bool,
}

/// What a completed request means for the simulator.
pub(super) struct Completion {
    /// The client that can issue its next operation.
    pub client: usize,
    /// A committed update: key, timestamp, and whether it was an RMW.
    pub commit: Option<(Key, Ts, bool)>,
    /// A liveness-phase request that failed.
    pub liveness_failure: Option<String>,
}

/// The clients of a run, the operations they issue and the history they record.
pub(super) struct Workload {
    clients: Vec<Client>,
    keys: Vec<Key>,
    ops_budget: u32,
    mix: super::config::OpMix,
    issued: u32,
    next_request: u64,
    inflight: BTreeMap<RequestId, InFlight>,
    history: History,
    phase: Phase,
    until: Instant,
    counts: SimReport,
}

impl Workload {
    pub fn new(config: &SimConfig) -> Self {
        let clients = (0..config.nodes as usize)
            .flat_map(|node| (0..config.clients_per_node).map(move |_| node))
            .map(|node| Client {
                node,
                inflight: None,
                last_seen: BTreeMap::new(),
                counter: 0,
                abandoned: false,
                liveness_plan: VecDeque::new(),
            })
            .collect();
        Workload {
            clients,
            keys: (0..config.keys)
                .map(|k| Key::from(format!("k{k}")))
                .collect(),
            ops_budget: config.ops,
            mix: config.mix,
            issued: 0,
            next_request: 1,
            inflight: BTreeMap::new(),
            history: History::new(),
            phase: Phase::Safety,
            until: Instant::ZERO,
            counts: SimReport::default(),
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// The clients attached to `node`.
    pub fn clients_of(&self, node: usize) -> Vec<usize> {
        (0..self.clients.len())
            .filter(|c| self.clients[*c].node == node)
            .collect()
    }

    /// A crashed node restarted: its clients issue operations again.
    pub fn node_restarted(&mut self, node: usize) {
        for client in self.clients.iter_mut().filter(|c| c.node == node) {
            client.abandoned = false;
        }
    }

    /// The safety phase runs at least until `until`, even when the operation budget is spent.
    pub fn keep_going_until(&mut self, until: Instant) {
        self.until = until;
    }

    pub fn node_of(&self, client: usize) -> usize {
        self.clients[client].node
    }

    /// A replica crashed: its clients stop, and their requests in flight stay open in the history
    /// (their outcome is unknown).
    pub fn node_crashed(&mut self, node: usize) {
        for (index, client) in self.clients.iter_mut().enumerate() {
            if client.node != node {
                continue;
            }
            client.abandoned = true;
            if let Some(id) = client.inflight.take() {
                if let Some(flight) = self.inflight.remove(&id) {
                    debug_assert_eq!(flight.client, index);
                    self.counts.unknown += 1;
                }
            }
        }
    }

    pub fn next_op(
        &mut self,
        client: usize,
        now: Instant,
        rng: &mut SeededRng,
    ) -> Option<(RequestId, Op)> {
        if self.clients[client].abandoned || self.clients[client].inflight.is_some() {
            return None;
        }
        let (op, liveness) = match self.phase {
            Phase::Safety => {
                if self.issued >= self.ops_budget && now >= self.until {
                    return None;
                }
                self.issued += 1;
                (self.random_op(client, rng), false)
            }
            Phase::Liveness => (self.clients[client].liveness_plan.pop_front()?, true),
        };
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let history = self.history.invoke(
            client as u64,
            op.key().clone(),
            history_op(&op),
            now.as_micros(),
        );
        self.inflight.insert(
            id,
            InFlight {
                client,
                history,
                op: op.clone(),
                liveness,
            },
        );
        self.clients[client].inflight = Some(id);
        self.counts.ops += 1;
        Some((id, op))
    }

    fn random_op(&mut self, client: usize, rng: &mut SeededRng) -> Op {
        let key = rng.pick(&self.keys).cloned().unwrap_or_default();
        let state = &mut self.clients[client];
        state.counter += 1;
        let fresh = Value::from(format!("c{client}.{}", state.counter));
        let roll = rng.below(100);
        let (read, write, delete) = (
            u64::from(self.mix.read),
            u64::from(self.mix.write),
            u64::from(self.mix.delete),
        );
        match roll {
            r if r < read => Op::Read { key },
            r if r < read + write => Op::Write { key, value: fresh },
            r if r < read + write + delete => Op::Delete { key },
            _ => {
                let expected = if rng.chance(0.7) {
                    state.last_seen.get(&key).cloned().flatten()
                } else {
                    None
                };
                Op::Cas {
                    key,
                    expected,
                    new: fresh,
                }
            }
        }
    }

    pub fn complete(
        &mut self,
        id: RequestId,
        result: &OpResult,
        now: Instant,
    ) -> Option<Completion> {
        let flight = self.inflight.remove(&id)?;
        let client = flight.client;
        self.clients[client].inflight = None;
        let time = now.as_micros();
        let key = flight.op.key().clone();
        let mut commit = None;
        match result {
            Ok(Outcome::Value(value)) => {
                self.counts.reads += 1;
                self.history
                    .complete(flight.history, HistoryRet::Read(value.clone()), time);
                self.clients[client].last_seen.insert(key, value.clone());
            }
            Ok(Outcome::Written { ts }) => {
                self.counts.writes += 1;
                self.history.complete(flight.history, HistoryRet::Ok, time);
                let written = match &flight.op {
                    Op::Write { value, .. } => Some(value.clone()),
                    _ => None,
                };
                self.clients[client].last_seen.insert(key.clone(), written);
                commit = Some((key, *ts, false));
            }
            Ok(Outcome::Swapped { ts }) => {
                self.counts.cas_swapped += 1;
                self.history
                    .complete(flight.history, HistoryRet::Swapped, time);
                if let Op::Cas { new, .. } = &flight.op {
                    self.clients[client]
                        .last_seen
                        .insert(key.clone(), Some(new.clone()));
                }
                commit = Some((key, *ts, true));
            }
            Err(RequestError::CasFailed) => {
                self.counts.cas_failed += 1;
                self.history
                    .complete(flight.history, HistoryRet::CasFailed, time);
            }
            Err(RequestError::Aborted) => {
                self.counts.aborted += 1;
                self.history.fail(flight.history);
            }
            Err(RequestError::Timeout {
                outcome_unknown: true,
            }) => {
                self.counts.unknown += 1;
            }
            Err(_) => {
                self.counts.failed += 1;
                self.history.fail(flight.history);
            }
        }
        let liveness_failure = match result {
            Err(error) if flight.liveness => Some(format!(
                "liveness request {:?} on node {} failed: {error}",
                flight.op,
                self.clients[client].node + 1
            )),
            _ => None,
        };
        Some(Completion {
            client,
            commit,
            liveness_failure,
        })
    }

    pub fn wants_more(&self, client: usize, now: Instant) -> bool {
        let state = &self.clients[client];
        !state.abandoned
            && match self.phase {
                Phase::Safety => self.issued < self.ops_budget || now < self.until,
                Phase::Liveness => !state.liveness_plan.is_empty(),
            }
    }

    /// The safety phase is over: every operation was issued and answered (or lost with its node).
    pub fn safety_done(&self, now: Instant) -> bool {
        self.phase == Phase::Safety
            && self.issued >= self.ops_budget
            && now >= self.until
            && self.inflight.is_empty()
    }

    /// Gives one client of each live member a read, a write and a read of every key. The first
    /// read checks that every acknowledged write survived the faults (crashes of every node
    /// included): the history check fails if it returns an older value.
    pub fn start_liveness_phase(&mut self, members: Vec<usize>) {
        self.phase = Phase::Liveness;
        for node in members {
            let Some(index) = self
                .clients
                .iter()
                .position(|c| c.node == node && !c.abandoned)
            else {
                continue;
            };
            for key in self.keys.clone() {
                let value = Value::from(format!(
                    "live.{}.{}",
                    node + 1,
                    String::from_utf8_lossy(&key)
                ));
                let plan = &mut self.clients[index].liveness_plan;
                plan.push_back(Op::Read { key: key.clone() });
                plan.push_back(Op::Write {
                    key: key.clone(),
                    value,
                });
                plan.push_back(Op::Read { key });
            }
        }
    }

    pub fn finished(&self) -> bool {
        self.phase == Phase::Liveness
            && self.inflight.is_empty()
            && self
                .clients
                .iter()
                .all(|c| c.liveness_plan.is_empty() || c.abandoned)
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn describe_progress(&self) -> String {
        format!(
            "phase {:?}, {} of {} ops issued, {} in flight",
            self.phase,
            self.issued,
            self.ops_budget,
            self.inflight.len()
        )
    }

    pub fn count_into(&self, report: &mut SimReport) {
        report.ops = self.counts.ops;
        report.reads = self.counts.reads;
        report.writes = self.counts.writes;
        report.cas_swapped = self.counts.cas_swapped;
        report.cas_failed = self.counts.cas_failed;
        report.aborted = self.counts.aborted;
        report.unknown = self.counts.unknown;
        report.failed = self.counts.failed;
    }
}

fn history_op(op: &Op) -> HistoryOp {
    match op {
        Op::Read { .. } => HistoryOp::Read,
        Op::Write { value, .. } => HistoryOp::Write(value.clone()),
        Op::Delete { .. } => HistoryOp::Delete,
        Op::Cas { expected, new, .. } => HistoryOp::Cas {
            expected: expected.clone(),
            new: new.clone(),
        },
    }
}
