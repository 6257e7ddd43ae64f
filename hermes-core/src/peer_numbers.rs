//! The numbers a peer sends, and the range each may take.
//!
//! Every timestamp, epoch, ballot round and incarnation in a message comes from another process
//! and is checked before any arithmetic touches it. A message carrying a number out of range is
//! dropped whole and counted ([`crate::Stats::dropped_peer_numbers`], summed over the replica
//! and the membership service by [`crate::Node::stats`]); it never panics (debug) or wraps
//! (release). The core's own arithmetic on these numbers is checked too: it refuses to create a
//! number past its limit rather than wrap.
//!
//! The rules:
//! - **Timestamps** (INV, ACK `ts` and `held`, VAL `ts` and `highest`, state-transfer entries):
//!   the version is at most [`Ts::VERSION_MAX`], which leaves room for the `+ 2` of a write
//!   above it. A coordinator never creates a version past it: a key at the limit can no longer
//!   be written ([`crate::RequestError::InvalidArgument`]).
//! - **Views** (Decided, a view in Accept, the accepted view in a Promise): the epoch has a
//!   successor (it is below `u64::MAX`, so the next view change can be numbered) and every
//!   incarnation is at most [`INCARNATION_MAX`]. A decided view may be any distance ahead of the
//!   receiver's: a node that missed view changes jumps to it. A view inside an Accept or a
//!   Promise must be of that message's epoch.
//! - **Paxos messages** (Prepare, Promise, Reject, Accept, Accepted) are about one epoch: the one
//!   after the proposer's installed view. The receiver acts only on those about its own next
//!   epoch. One about an earlier epoch comes from a laggard and is answered with the receiver's
//!   view, as before. One about a later epoch is dropped and counted: the receiver never proposed
//!   it (Promise, Reject, Accepted), or it lags behind the sender (Prepare, Accept) and must
//!   first install the decided views in between, so it asks the sender for its view
//!   (ViewRequest) and jumps only to a decided one. The ballot round is below `u64::MAX`, since
//!   a proposer picks its next round one above every round it has seen.
//! - **Incarnations** (Join, views) are at most [`INCARNATION_MAX`]: timestamps carry 32 bits of
//!   them, and a larger one would make a restarted node reuse timestamps of an earlier life.
//! - Heartbeats may carry any epoch and round: the epoch is only compared (a later one makes the
//!   receiver ask for the sender's view) and the round only echoed. INV and ACK epochs are only
//!   compared with the receiver's (another epoch is dropped as `dropped_wrong_epoch`), VAL's is
//!   informational; state-transfer and CaughtUp epochs are only compared.

use crate::membership::{Ballot, MembershipMessage, TransferEntry};
use crate::message::Message;
use crate::types::{Epoch, Ts};
use crate::view::View;

/// The highest incarnation a node may have: timestamps carry 32 bits of it.
pub const INCARNATION_MAX: u64 = u32::MAX as u64;

/// What to do with a membership message after its numbers are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every number is in range: handle the message.
    Admit,
    /// Drop the message and count it.
    Drop,
    /// Drop the message, count it, and ask the sender for its view (the receiver lags).
    DropAndAskView,
}

/// Whether a timestamp from a peer is in range.
pub(crate) fn ts_ok(ts: Ts) -> bool {
    ts.version <= Ts::VERSION_MAX
}

/// Whether the numbers of a replication message (INV, ACK, VAL) are in range.
pub(crate) fn replication_ok(msg: &Message) -> bool {
    match msg {
        Message::Inv(inv) => ts_ok(inv.ts),
        Message::Ack(ack) => ts_ok(ack.ts) && ts_ok(ack.held),
        Message::Val(val) => ts_ok(val.ts) && ts_ok(val.highest),
        Message::Membership(_) => true,
    }
}

/// Whether a view from a peer is in range: its epoch has a successor and its incarnations fit.
pub(crate) fn view_ok(view: &View) -> bool {
    view.epoch.next().is_some() && view.incarnations.values().all(|i| *i <= INCARNATION_MAX)
}

/// Whether a state-transfer chunk's timestamps are in range.
pub(crate) fn entries_ok(entries: &[TransferEntry]) -> bool {
    entries.iter().all(|e| ts_ok(e.ts))
}

fn ballot_ok(ballot: Ballot) -> bool {
    ballot.round < u64::MAX
}

/// Checks the numbers of a membership message received by a node whose installed epoch is
/// `installed` (see the module docs for the rules).
pub(crate) fn check_membership(msg: &MembershipMessage, installed: Epoch) -> Verdict {
    // The epoch the receiver decides next; at the last epoch there is none, and every Paxos
    // message is beyond it.
    let beyond_next = |epoch: Epoch| installed.next().is_none_or(|next| epoch > next);
    let admit = |ok: bool| if ok { Verdict::Admit } else { Verdict::Drop };
    match msg {
        MembershipMessage::Prepare { epoch, ballot } => {
            if !ballot_ok(*ballot) {
                Verdict::Drop
            } else if beyond_next(*epoch) {
                Verdict::DropAndAskView
            } else {
                Verdict::Admit
            }
        }
        MembershipMessage::Accept {
            epoch,
            ballot,
            view,
        } => {
            if !ballot_ok(*ballot) || view.epoch != *epoch || !view_ok(view) {
                Verdict::Drop
            } else if beyond_next(*epoch) {
                Verdict::DropAndAskView
            } else {
                Verdict::Admit
            }
        }
        MembershipMessage::Promise {
            epoch,
            ballot,
            accepted,
        } => admit(
            ballot_ok(*ballot)
                && !beyond_next(*epoch)
                && accepted.as_ref().is_none_or(|(accepted_ballot, view)| {
                    ballot_ok(*accepted_ballot) && view.epoch == *epoch && view_ok(view)
                }),
        ),
        MembershipMessage::Reject { epoch, promised } => {
            admit(ballot_ok(*promised) && !beyond_next(*epoch))
        }
        MembershipMessage::Accepted { epoch, ballot } => {
            admit(ballot_ok(*ballot) && !beyond_next(*epoch))
        }
        MembershipMessage::Decided { view } => admit(view_ok(view)),
        MembershipMessage::Join { incarnation, .. } => admit(*incarnation <= INCARNATION_MAX),
        MembershipMessage::TransferChunk { entries, .. } => admit(entries_ok(entries)),
        MembershipMessage::Heartbeat { .. }
        | MembershipMessage::HeartbeatAck { .. }
        | MembershipMessage::ViewRequest
        | MembershipMessage::JoinRefused { .. }
        | MembershipMessage::TransferRequest { .. }
        | MembershipMessage::Leave
        | MembershipMessage::CaughtUp { .. } => Verdict::Admit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;

    fn ballot(round: u64) -> Ballot {
        Ballot {
            round,
            node: NodeId(2),
        }
    }

    #[test]
    fn paxos_messages_are_admitted_only_up_to_the_next_epoch() {
        let prepare = |epoch| MembershipMessage::Prepare {
            epoch: Epoch(epoch),
            ballot: ballot(1),
        };
        assert_eq!(check_membership(&prepare(2), Epoch(1)), Verdict::Admit);
        assert_eq!(check_membership(&prepare(1), Epoch(1)), Verdict::Admit);
        assert_eq!(
            check_membership(&prepare(3), Epoch(1)),
            Verdict::DropAndAskView
        );
        assert_eq!(
            check_membership(&prepare(u64::MAX), Epoch(u64::MAX)),
            Verdict::DropAndAskView
        );
        let accepted = MembershipMessage::Accepted {
            epoch: Epoch(u64::MAX),
            ballot: ballot(1),
        };
        assert_eq!(check_membership(&accepted, Epoch(1)), Verdict::Drop);
        let overflowing_round = MembershipMessage::Reject {
            epoch: Epoch(2),
            promised: ballot(u64::MAX),
        };
        assert_eq!(
            check_membership(&overflowing_round, Epoch(1)),
            Verdict::Drop
        );
    }

    #[test]
    fn a_decided_view_may_jump_ahead_but_not_to_the_last_epoch() {
        let decided = |epoch| MembershipMessage::Decided {
            view: View::new(Epoch(epoch), [NodeId(1)]),
        };
        assert_eq!(check_membership(&decided(1_000), Epoch(1)), Verdict::Admit);
        assert_eq!(
            check_membership(&decided(u64::MAX - 1), Epoch(1)),
            Verdict::Admit
        );
        assert_eq!(
            check_membership(&decided(u64::MAX), Epoch(1)),
            Verdict::Drop
        );
        let mut view = View::new(Epoch(2), [NodeId(1)]);
        view.incarnations.insert(NodeId(1), INCARNATION_MAX + 1);
        assert_eq!(
            check_membership(&MembershipMessage::Decided { view }, Epoch(1)),
            Verdict::Drop
        );
    }

    #[test]
    fn an_accepted_view_must_be_of_its_message_epoch() {
        let accept = MembershipMessage::Accept {
            epoch: Epoch(2),
            ballot: ballot(1),
            view: View::new(Epoch(7), [NodeId(1)]),
        };
        assert_eq!(check_membership(&accept, Epoch(1)), Verdict::Drop);
    }
}
