//! Each simulated node's durable store (`async` and `sync` durability): `Persist` actions queue
//! up, a simulated group commit makes a prefix of the queue durable after a random delay and
//! reports it with `handle_persisted`, and a crash loses whatever was not durable yet.

use super::{Event, SimFailure, Simulation};
use crate::durability::PersistToken;
use crate::types::{Key, Record};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// What one node has written: the durable records, and the batches not durable yet.
#[derive(Default)]
pub(super) struct SimStore {
    /// The latest durable record of every key.
    durable: BTreeMap<Key, Record>,
    /// `Persist` batches handed to the store and not durable yet, in order.
    queued: VecDeque<(PersistToken, Vec<(Key, Record)>)>,
    /// Whether a group commit is scheduled.
    commit_scheduled: bool,
}

impl SimStore {
    /// Every durable record, in key order (what a restarted node recovers).
    pub fn records(&self) -> Vec<(Key, Record)> {
        self.durable
            .iter()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }

    /// The process died: everything not durable is gone.
    pub fn crash(&mut self) {
        self.queued.clear();
        self.commit_scheduled = false;
    }
}

impl Simulation {
    /// A node emitted `Persist`: queue it and make sure a group commit is coming.
    pub(super) fn on_persist(
        &mut self,
        node: usize,
        records: Vec<(Key, Record)>,
        token: PersistToken,
    ) {
        let store = &mut self.nodes[node].store;
        store.queued.push_back((token, records));
        if !store.commit_scheduled {
            store.commit_scheduled = true;
            let life = self.nodes[node].life;
            let delay = Duration::from_micros(self.rng.below(self.config.persist_delay_us_max + 1));
            self.push(self.now + delay, Event::GroupCommit { node, life });
        }
    }

    /// A group commit: makes the queued batches durable (usually all, sometimes only the first
    /// few, as a commit that closed its group early) and tells the node.
    pub(super) fn on_group_commit(&mut self, node: usize, life: u64) -> Result<(), SimFailure> {
        if self.nodes[node].life != life || self.nodes[node].node.is_none() {
            return Ok(()); // the process that queued them crashed
        }
        let queued = self.nodes[node].store.queued.len();
        let count = if self.rng.chance(0.3) {
            1 + self.rng.below(queued as u64) as usize
        } else {
            queued
        };
        let store = &mut self.nodes[node].store;
        store.commit_scheduled = false;
        let mut last = None;
        for (token, records) in store.queued.drain(..count.min(queued)) {
            for (key, record) in records {
                store.durable.insert(key, record);
            }
            last = Some(token);
        }
        let more = !store.queued.is_empty();
        if let Some(token) = last {
            let local = self.local_now(node);
            if let Some(sim_node) = self.nodes[node].node.as_mut() {
                sim_node.handle_persisted(local, token);
            }
        }
        if more {
            self.nodes[node].store.commit_scheduled = true;
            let delay = Duration::from_micros(self.rng.below(self.config.persist_delay_us_max + 1));
            self.push(self.now + delay, Event::GroupCommit { node, life });
        }
        self.drain(node)
    }
}
