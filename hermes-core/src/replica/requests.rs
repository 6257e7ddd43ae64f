//! Client requests: validation, admission bounds, running, stalling and resuming.

use super::{KeyEntry, KeyState, PendingRequest, ReplayCause, Replica, UpdateKind};
use crate::op::{Op, Outcome, RequestError, RequestId};
use crate::timer::Timer;
use crate::types::{Instant, Key};

impl Replica {
    /// Handles a client request. Its answer arrives as an [`crate::Action::Reply`], at once or
    /// when the key allows (a stalled request waits at most `request_timeout_ms`).
    pub fn handle_request(&mut self, now: Instant, id: RequestId, op: Op) {
        if let Err(reason) = self.check_op(&op) {
            self.stats.invalid_arguments += 1;
            self.actions.push_back(crate::Action::Reply {
                id,
                result: Err(RequestError::InvalidArgument(reason)),
            });
            return;
        }
        if self.requests.contains_key(&id) {
            self.stats.invalid_arguments += 1;
            self.actions.push_back(crate::Action::Reply {
                id,
                result: Err(RequestError::InvalidArgument(format!(
                    "request id {} is already in flight",
                    id.0
                ))),
            });
            return;
        }
        if let Op::Read { key } = &op {
            if let Some(value) = self.read_local(key) {
                self.stats.reads += 1;
                self.actions.push_back(crate::Action::Reply {
                    id,
                    result: Ok(Outcome::Value(value)),
                });
                return;
            }
        }
        if let Err(reason) = self.check_bounds(op.key()) {
            self.stats.overloaded += 1;
            self.actions.push_back(crate::Action::Reply {
                id,
                result: Err(RequestError::Overloaded(reason)),
            });
            return;
        }
        let key = op.key().clone();
        let deadline = now + self.config.request_timeout();
        self.requests.insert(
            id,
            PendingRequest {
                op,
                deadline,
                coordinating: false,
            },
        );
        self.timers
            .reschedule(Timer::Request(id), None, Some(deadline));
        let entry = self
            .keys
            .entry(key.clone())
            .or_insert_with(KeyEntry::absent);
        entry.waiting.push_back(id);
        self.run_waiting(now, &key);
        if self.requests.get(&id).is_some_and(|r| !r.coordinating) {
            self.stats.stalls += 1;
        }
        self.end_input(now);
    }

    fn check_op(&self, op: &Op) -> Result<(), String> {
        let key = op.key();
        if key.is_empty() {
            return Err("the key is empty".into());
        }
        if key.len() > self.config.key_bytes_max {
            return Err(format!(
                "the key is {} bytes, over key_bytes_max ({})",
                key.len(),
                self.config.key_bytes_max
            ));
        }
        let values = match op {
            Op::Read { .. } | Op::Delete { .. } => [None, None],
            Op::Write { value, .. } => [Some(value), None],
            Op::Cas { expected, new, .. } => [Some(new), expected.as_ref()],
        };
        for value in values.into_iter().flatten() {
            if value.len() > self.config.value_bytes_max {
                return Err(format!(
                    "the value is {} bytes, over value_bytes_max ({})",
                    value.len(),
                    self.config.value_bytes_max
                ));
            }
        }
        Ok(())
    }

    fn check_bounds(&self, key: &Key) -> Result<(), String> {
        if self.requests.len() >= self.config.requests_max {
            return Err(format!(
                "{} requests pending, the limit requests_max",
                self.requests.len()
            ));
        }
        let on_key = self.keys.get(key).map_or(0, KeyEntry::request_count);
        if on_key >= self.config.requests_per_key_max {
            return Err(format!(
                "{on_key} requests pending on this key, the limit requests_per_key_max"
            ));
        }
        Ok(())
    }

    /// Runs the stalled requests of `key` in arrival order until one has to wait.
    pub(super) fn run_waiting(&mut self, now: Instant, key: &Key) {
        loop {
            let Some(entry) = self.keys.get_mut(key) else {
                return;
            };
            let Some(id) = entry.waiting.pop_front() else {
                break;
            };
            if !self.on_request(now, key, id) {
                if let Some(entry) = self.keys.get_mut(key) {
                    entry.waiting.push_front(id);
                }
                self.on_stall(now, key);
                break;
            }
        }
        match self.keys.get(key) {
            Some(entry) if !entry.waiting.is_empty() => {
                self.stalled.insert(key.clone());
            }
            Some(entry) => {
                if entry.is_pristine() {
                    self.keys.remove(key);
                }
                self.stalled.remove(key);
            }
            None => {
                self.stalled.remove(key);
            }
        }
    }

    /// Runs request `id` on `key` if the key's state allows; returns whether it ran (answered or
    /// started an update) rather than having to wait. One arm per request kind and key state;
    /// a request that waits is buffered (Ab) and woken by whatever changes the key
    /// ([`on_stall`](Self::on_stall) makes sure something will).
    fn on_request(&mut self, now: Instant, key: &Key, id: RequestId) -> bool {
        let (Some(request), Some(entry)) = (self.requests.get(&id), self.keys.get(key)) else {
            return true; // answered already (timed out): nothing left to run
        };
        let serving = self.is_serving();
        let member = self.view.is_member(self.id());
        match (&request.op, entry.state) {
            // V × Read: done-R, while this replica may serve.
            (Op::Read { .. }, KeyState::Valid) if serving => {
                let value = entry.value.clone();
                self.stats.reads += 1;
                self.answer(id, Ok(Outcome::Value(value)));
            }
            // The planted bug `ReadInInvalid` serves I × Read from the adopted, uncommitted value.
            (Op::Read { .. }, KeyState::Invalid)
                if serving && self.has_bug(super::PlantedBug::ReadInInvalid) =>
            {
                let value = entry.value.clone();
                self.stats.reads += 1;
                self.answer(id, Ok(Outcome::Value(value)));
            }
            // I × Read: Ab (with a failed coordinator or after the message-loss timeout, the
            // replay starts from `on_stall`). Trans, W, R × Read: Ab. V × Read while not
            // serving: Ab.
            (Op::Read { .. }, _) => return false,
            // V × Write: Aw, →W, !INV (a member only).
            (Op::Write { value, .. }, KeyState::Valid) if member => {
                let value = Some(value.clone());
                self.begin_update(now, key, id, UpdateKind::Write, value);
            }
            (Op::Delete { .. }, KeyState::Valid) if member => {
                self.begin_update(now, key, id, UpdateKind::Write, None);
            }
            // I × Write: left out on purpose, the write waits until the key is Valid (see the
            // module docs). Trans, W, R × Write: Ab.
            (Op::Write { .. } | Op::Delete { .. }, _) => return false,
            // V × CAS (§2): compare with the committed value; an RMW starts only once no
            // concurrent update based on an older version may still land above the key's
            // timestamp.
            (Op::Cas { expected, new, .. }, KeyState::Valid) if serving => {
                if entry.value != *expected {
                    self.stats.cas_failed += 1;
                    self.answer(id, Err(RequestError::CasFailed));
                } else if entry.known_max > entry.ts {
                    return false;
                } else {
                    let value = Some(new.clone());
                    self.begin_update(now, key, id, UpdateKind::Rmw, value);
                }
            }
            // Any other state × CAS: waits like a read.
            (Op::Cas { .. }, _) => return false,
        }
        true
    }

    /// The front request of `key` must wait: make sure something will wake it.
    fn on_stall(&mut self, now: Instant, key: &Key) {
        let Some(entry) = self.keys.get(key) else {
            return;
        };
        if entry.state != KeyState::Invalid || entry.pending.is_some() {
            return; // a pending update has its own deadline and completion
        }
        if self.start_replay(now, key, ReplayCause::WriterLeft) {
            return;
        }
        self.arm_replay(now, key);
    }

    /// Arms the replay of an Invalid key that a request (or a lost RMW awaiting its answer) waits
    /// on, one message-loss timeout from now, unless a deadline is armed already.
    pub(super) fn arm_replay(&mut self, now: Instant, key: &Key) {
        let Some(entry) = self.keys.get(key) else {
            return;
        };
        let waited_on = !entry.waiting.is_empty() || entry.aborted_rmw.is_some();
        if entry.state == KeyState::Invalid
            && entry.pending.is_none()
            && entry.deadline.is_none()
            && waited_on
            && self.view.is_member(self.id())
        {
            let deadline = now + self.config.message_loss_timeout();
            self.set_key_deadline(key, Some(deadline));
        }
    }

    /// Answers request `id` with a timeout, detaching it from whatever it waits on.
    pub(super) fn time_out(&mut self, id: RequestId) {
        let Some(request) = self.requests.get(&id) else {
            return;
        };
        let key = request.op.key().clone();
        let outcome_unknown = request.coordinating;
        if let Some(entry) = self.keys.get_mut(&key) {
            entry.waiting.retain(|w| *w != id);
            if let Some(pending) = entry.pending.as_mut() {
                if pending.client == Some(id) {
                    pending.client = None;
                }
            }
            if entry.aborted_rmw == Some(id) {
                entry.aborted_rmw = None;
            }
        }
        self.stats.timeouts += 1;
        self.answer(id, Err(RequestError::Timeout { outcome_unknown }));
        self.mark_resume(&key);
    }
}
