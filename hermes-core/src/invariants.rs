//! Cluster-wide safety invariants, checked by the simulator after every step.
//!
//! Each function checks one property over the replicas that are alive and in the latest view
//! (`None` entries are crashed or removed nodes) and returns a readable description of the first
//! violation. They follow the inductive invariant of the Hermes specification (digest §5.2).

use crate::replica::{KeyState, Replica};
use crate::types::{Key, NodeId, Ts, Value};
use std::collections::BTreeMap;

/// Valid replicas agree: all live replicas that hold a key Valid hold the same timestamp
/// (`HConsistent`).
pub fn valid_replicas_agree(replicas: &[Option<&Replica>]) -> Result<(), String> {
    let mut valid: BTreeMap<&Key, (NodeId, Ts)> = BTreeMap::new();
    for replica in replicas.iter().flatten() {
        for (key, entry) in replica.keys() {
            if entry.state != KeyState::Valid {
                continue;
            }
            match valid.get(key) {
                Some((other, ts)) if *ts != entry.ts => {
                    return Err(format!(
                        "key {key:?}: {other} is Valid at {ts} but {} is Valid at {}",
                        replica.id(),
                        entry.ts
                    ));
                }
                Some(_) => {}
                None => {
                    valid.insert(key, (replica.id(), entry.ts));
                }
            }
        }
    }
    Ok(())
}

/// One value per timestamp: two replicas holding the same timestamp for a key hold the same value.
pub fn one_value_per_timestamp(replicas: &[Option<&Replica>]) -> Result<(), String> {
    let mut seen: BTreeMap<(&Key, Ts), (NodeId, &Option<Value>)> = BTreeMap::new();
    for replica in replicas.iter().flatten() {
        for (key, entry) in replica.keys() {
            match seen.get(&(key, entry.ts)) {
                Some((other, value)) if **value != entry.value => {
                    return Err(format!(
                        "key {key:?} at {}: {other} holds {value:?} but {} holds {:?}",
                        entry.ts,
                        replica.id(),
                        entry.value
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert((key, entry.ts), (replica.id(), &entry.value));
                }
            }
        }
    }
    Ok(())
}

/// ACK sets hold only replicas of the holder's current view (true only because of the ACK reset
/// on view change).
pub fn acks_within_view(replicas: &[Option<&Replica>]) -> Result<(), String> {
    for replica in replicas.iter().flatten() {
        for (key, entry) in replica.keys() {
            let Some(pending) = &entry.pending else {
                continue;
            };
            if let Some(stranger) = pending.acks.iter().find(|n| !replica.view().contains(**n)) {
                return Err(format!(
                    "key {key:?}: {} counts an ACK from {stranger}, outside its view {}",
                    replica.id(),
                    replica.view().epoch
                ));
            }
        }
    }
    Ok(())
}

/// Ownership of timestamps: a replica in Write holds its own pending timestamp; in Replay it holds
/// the replayed timestamp; in Invalid or Trans it never holds a timestamp it created; a pending
/// update exists exactly in Write, Replay and Trans, and in Trans below the held timestamp.
pub fn states_hold_consistent_timestamps(replicas: &[Option<&Replica>]) -> Result<(), String> {
    for replica in replicas.iter().flatten() {
        let me = replica.id();
        let own = |ts: Ts| ts.created_by(me, replica.incarnation());
        for (key, entry) in replica.keys() {
            let pending_ts = entry.pending.as_ref().map(|p| p.ts);
            let ok = match entry.state {
                KeyState::Valid => pending_ts.is_none(),
                KeyState::Invalid => pending_ts.is_none() && !own(entry.ts),
                KeyState::Write => own(entry.ts) && pending_ts == Some(entry.ts),
                KeyState::Replay => pending_ts == Some(entry.ts),
                KeyState::Trans => pending_ts.is_some_and(|p| p < entry.ts) && !own(entry.ts),
            };
            if !ok {
                return Err(format!(
                    "key {key:?}: {me} is {:?} at {} with pending {pending_ts:?}",
                    entry.state, entry.ts
                ));
            }
        }
    }
    Ok(())
}

/// A replica that has ACKed an update holds at least its timestamp: for `j` in `i`'s ACK set while
/// `i` is in Write or Replay, `ts_j >= ts_i` (checked for live `j` in the same epoch).
pub fn ackers_hold_at_least(replicas: &[Option<&Replica>]) -> Result<(), String> {
    let by_id: BTreeMap<NodeId, &Replica> =
        replicas.iter().flatten().map(|r| (r.id(), *r)).collect();
    for replica in by_id.values() {
        for (key, entry) in replica.keys() {
            let Some(pending) = &entry.pending else {
                continue;
            };
            if !matches!(entry.state, KeyState::Write | KeyState::Replay) {
                continue;
            }
            for acker in &pending.acks {
                let Some(other) = by_id.get(acker) else {
                    continue;
                };
                let held = other.key(key).map_or(Ts::ZERO, |e| e.ts);
                if held < pending.ts {
                    return Err(format!(
                        "key {key:?}: {} counts {acker}'s ACK for {} but {acker} holds {held}",
                        replica.id(),
                        pending.ts
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Runs every per-step invariant.
pub fn check_all(replicas: &[Option<&Replica>]) -> Result<(), String> {
    valid_replicas_agree(replicas)?;
    one_value_per_timestamp(replicas)?;
    acks_within_view(replicas)?;
    states_hold_consistent_timestamps(replicas)?;
    ackers_hold_at_least(replicas)?;
    Ok(())
}

/// Tracks committed updates reported to clients and checks the RMW semantics of the protocol
/// (`HRSemanticsRMW`): no two committed RMWs share a version (no lost update), and no committed
/// RMW has the version of a committed write or the one just below it.
#[derive(Clone, Debug, Default)]
pub struct CommitLog {
    rmws: BTreeMap<(Key, u64), Ts>,
    writes: BTreeMap<(Key, u64), Ts>,
}

impl CommitLog {
    /// Records a committed write (or delete) of `key` at `ts`.
    pub fn write_committed(&mut self, key: &Key, ts: Ts) -> Result<(), String> {
        for version in [ts.version, ts.version.saturating_sub(1)] {
            if let Some(rmw) = self.rmws.get(&(key.clone(), version)) {
                return Err(format!(
                    "key {key:?}: committed write {ts} conflicts with committed RMW {rmw}"
                ));
            }
        }
        self.writes.insert((key.clone(), ts.version), ts);
        Ok(())
    }

    /// Records a committed RMW of `key` at `ts`.
    pub fn rmw_committed(&mut self, key: &Key, ts: Ts) -> Result<(), String> {
        if let Some(other) = self.rmws.get(&(key.clone(), ts.version)) {
            if *other != ts {
                return Err(format!(
                    "key {key:?}: committed RMWs {other} and {ts} share a version (lost update)"
                ));
            }
        }
        for version in [ts.version, ts.version + 1] {
            if let Some(write) = self.writes.get(&(key.clone(), version)) {
                return Err(format!(
                    "key {key:?}: committed RMW {ts} conflicts with committed write {write}"
                ));
            }
        }
        self.rmws.insert((key.clone(), ts.version), ts);
        Ok(())
    }
}
