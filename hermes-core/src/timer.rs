//! Deadlines as data: every deadline of the core is a [`Timer`], kept in a [`TimerTable`].
//!
//! The [`crate::Replica`] keeps its per-request and per-key timers in one table, the
//! [`crate::Membership`] its heartbeat, lease, promise and proposal timers in another, and the
//! [`crate::Node`] its join and state-transfer retries in a third; each state machine's
//! `poll_timeout` is its table's earliest deadline, and [`crate::Node::poll_timeout`] the earliest
//! of the three. `handle_timeout` pops the timers that are due and handles each in one `match`.
//!
//! A timer is armed at most once: arming it again moves it. A single-instance timer remembers
//! its deadline in the table. A per-key or per-request timer is armed and moved through
//! `TimerTable::reschedule` by a caller that keeps its deadline beside the state it is about
//! ([`crate::replica::KeyEntry::deadline`], a pending request's deadline), so that arming one on
//! the write path costs one ordered-set insertion and disarming it one removal, as before.

use crate::op::RequestId;
use crate::types::{Instant, Key};
use std::collections::BTreeSet;

/// A deadline of the core. Due timers are handled in the order of this enum (then of the key
/// or request), whatever their deadlines.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Per request: the request has waited `request_timeout_ms`; it is answered with a timeout.
    Request(RequestId),
    /// Per key: the message-loss timeout. With a pending update it retransmits the INV to the
    /// replicas that have not ACKed; on an Invalid key that requests wait on it replays the
    /// update the key holds.
    Key(Key),
    /// Membership: the lease runs out (the node stops serving on time).
    LeaseExpiry,
    /// Membership: a frozen epoch (a promise made, no view decided) has waited long enough; the
    /// node proposes a view itself.
    FrozenCheck,
    /// Membership: send the next heartbeat round (liveness, lease requests).
    Heartbeat,
    /// Membership: every lease granted before a promise has run out; send the queued promises.
    PromiseRelease,
    /// Membership: a proposal got no decision in time; give it up and back off.
    ProposalTimeout,
    /// Membership: the back-off of a proposer is over; propose if a view change is wanted.
    ProposeTurn,
    /// Node: ask the view's replicas again to (re)join.
    JoinRetry,
    /// Node: a state transfer heard nothing from its donor; ask the next donor, or repeat the
    /// report that the copy is complete.
    TransferRetry,
}

/// How many single-instance timers there are (every variant without a key or request).
const SINGLE_COUNT: usize = 8;

impl Timer {
    /// The slot of a single-instance timer, `None` for per-key and per-request ones.
    fn slot(&self) -> Option<usize> {
        match self {
            Timer::Request(_) | Timer::Key(_) => None,
            Timer::LeaseExpiry => Some(0),
            Timer::FrozenCheck => Some(1),
            Timer::Heartbeat => Some(2),
            Timer::PromiseRelease => Some(3),
            Timer::ProposalTimeout => Some(4),
            Timer::ProposeTurn => Some(5),
            Timer::JoinRetry => Some(6),
            Timer::TransferRetry => Some(7),
        }
    }
}

/// The armed timers of one state machine, ordered by deadline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TimerTable {
    /// The deadline of each armed single-instance timer, by [`Timer::slot`].
    single: [Option<Instant>; SINGLE_COUNT],
    /// Every armed timer with its deadline, earliest first.
    queue: BTreeSet<(Instant, Timer)>,
}

impl TimerTable {
    /// The earliest deadline, if any timer is armed.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// The deadline of a single-instance timer, if armed (`None` for per-key and per-request
    /// timers, whose owners keep their deadlines).
    pub fn get(&self, timer: &Timer) -> Option<Instant> {
        timer.slot().and_then(|slot| self.single[slot])
    }

    /// Arms a single-instance timer at `at`, moving it if it was armed.
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        let Some(slot) = timer.slot() else {
            debug_assert!(false, "{timer:?} is armed through reschedule");
            return;
        };
        if let Some(old) = self.single[slot].replace(at) {
            self.queue.remove(&(old, timer.clone()));
        }
        self.queue.insert((at, timer));
    }

    /// Disarms a single-instance timer (nothing if it is not armed).
    pub(crate) fn stop(&mut self, timer: Timer) {
        let Some(slot) = timer.slot() else {
            return;
        };
        if let Some(old) = self.single[slot].take() {
            self.queue.remove(&(old, timer));
        }
    }

    /// Moves a per-key or per-request timer from `armed` (its deadline so far, `None` if it was
    /// not armed) to `at` (`None` disarms it).
    pub(crate) fn reschedule(&mut self, timer: Timer, armed: Option<Instant>, at: Option<Instant>) {
        debug_assert!(timer.slot().is_none(), "{timer:?} is armed through set");
        match (armed, at) {
            (Some(old), Some(new)) if old == new => {}
            (old, new) => {
                if let Some(old) = old {
                    self.queue.remove(&(old, timer.clone()));
                }
                if let Some(new) = new {
                    self.queue.insert((new, timer));
                }
            }
        }
    }

    /// Disarms every timer due at `now` and returns them in the order they are handled (the
    /// order of [`Timer`]). A timer armed again while they are handled fires at the next call
    /// at the earliest.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Vec<Timer> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.queue.first() {
            if *at > now {
                break;
            }
            let Some((_, timer)) = self.queue.pop_first() else {
                break;
            };
            if let Some(slot) = timer.slot() {
                self.single[slot] = None;
            }
            due.push(timer);
        }
        due.sort_unstable();
        due
    }

    /// Disarms every timer.
    pub(crate) fn clear(&mut self) {
        self.single = [None; SINGLE_COUNT];
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_once_in_enum_order_and_move_when_armed_again() {
        let mut table = TimerTable::default();
        let at = Instant::from_millis;
        table.set(Timer::Heartbeat, at(5));
        table.set(Timer::Heartbeat, at(3));
        table.reschedule(Timer::Key("k".into()), None, Some(at(4)));
        table.reschedule(Timer::Request(RequestId(1)), None, Some(at(9)));
        table.reschedule(Timer::Request(RequestId(1)), Some(at(9)), Some(at(2)));
        assert_eq!(table.next_timeout(), Some(at(2)));
        assert_eq!(table.get(&Timer::Heartbeat), Some(at(3)));
        assert_eq!(table.pop_expired(at(1)), vec![]);
        assert_eq!(
            table.pop_expired(at(4)),
            vec![
                Timer::Request(RequestId(1)),
                Timer::Key("k".into()),
                Timer::Heartbeat
            ]
        );
        assert_eq!(table.get(&Timer::Heartbeat), None);
        assert_eq!(table.next_timeout(), None);
        table.set(Timer::ProposeTurn, at(7));
        table.stop(Timer::ProposeTurn);
        assert_eq!(table.next_timeout(), None);
    }
}
