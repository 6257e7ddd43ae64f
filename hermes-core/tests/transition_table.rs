//! The per-key transition table of Hermes (protocol digest §1.8), one test per cell, then the RMW
//! rules (§2), ACK matching, message filters, bad input and timeouts.
//!
//! Every test drives replica 1 of the view `{1, 2, 3}` on the key `k` and compares the complete
//! list of actions each input produces, then the resulting key state. Table rows are reached with
//! the state builders below. The cells marked × (W × INV ts=local, W × VAL ts=local) have no table
//! test; both are in fact reachable when another replica replays this replica's pending write
//! after its message-loss timeout, and that behaviour is tested after the table.
//!
//! Timestamps used throughout:
//! - `W`  = 2.1: replica 1's write of `"w"` on an absent key (version + 2);
//! - `A`  = 4.2: node 2's write of `"a"`, the update the Invalid/Trans/Replay rows hold;
//! - `LO` = 2.3: node 3's write of `"c"`, lower than `A` (a concurrent write that lost);
//! - `HI` = 6.3: node 3's write of `"d"`, higher than everything else.
//!
//! "Follower failed" is a view change that removes the replica whose ACK is missing: the pending
//! ACK set is cleared, the INV is re-broadcast in the new epoch, and completion comes through the
//! ACK column.

mod support;

use hermes_core::replica::UpdateKind;
use hermes_core::{
    Ack, Action, Config, Epoch, Instant, Inv, KeyState, NodeId, Op, RequestError, RequestId, Ts,
    Val,
};
use support::replica::*;

use KeyState::{Invalid, Replay, Trans, Valid, Write};

const W: Ts = Ts::new(2, NodeId(1));
const A: Ts = Ts::new(4, NodeId(2));
const LO: Ts = Ts::new(2, NodeId(3));
const HI: Ts = Ts::new(6, NodeId(3));

// ----- the rows: builders for each key state --------------------------------------------------

/// A builder that brings a fresh replica into one row of the table.
type Setup = fn() -> TestReplica;

/// V: the key was never written (Valid, absent, at `Ts::ZERO`).
fn valid_fresh() -> TestReplica {
    TestReplica::new()
}

/// V: replica 1 committed its write `W` = `"w"` (request 1, answered).
fn valid_committed() -> TestReplica {
    let mut n = TestReplica::new();
    n.request(1, write("w"));
    n.acks_from_peers(W);
    assert_eq!(n.snap(), snap(Valid, W, "w", 1));
    n
}

/// V: the key is Valid at node 2's update `A` = `"a"` (its INV and VAL arrived).
fn valid_at_a() -> TestReplica {
    let mut n = invalid();
    let val = n.val(A, A);
    n.recv(2, val);
    assert_eq!(n.snap(), snap(Valid, A, "a", 2));
    n
}

/// Both ways of reaching V, with the value a read returns.
const VALIDS: [(&str, Setup, Option<&str>); 2] = [
    ("fresh", valid_fresh, None),
    ("committed", valid_committed, Some("w")),
];

/// I: the key adopted node 2's INV `A` = `"a"` and waits for its VAL.
fn invalid() -> TestReplica {
    let mut n = TestReplica::new();
    let inv = n.inv(A, "a");
    n.recv(2, inv);
    assert_eq!(n.snap(), snap(Invalid, A, "a", 2));
    n
}

/// W: replica 1 coordinates client request 1, a write of `"w"` at `W`; its INVs are out.
fn write_pending() -> TestReplica {
    let mut n = TestReplica::new();
    n.request(1, write("w"));
    assert_eq!(n.snap(), snap(Write, W, "w", 1).pending(W));
    n
}

/// Trans: W, then node 2's higher INV `A` = `"a"` superseded the pending write.
fn trans() -> TestReplica {
    let mut n = write_pending();
    let inv = n.inv(A, "a");
    n.recv(2, inv);
    assert_eq!(n.snap(), snap(Trans, A, "a", 2).pending(W));
    n
}

/// R: I, then read 1 waited a message-loss timeout and replays `A` (view `{1, 2, 3}`, epoch 1).
fn replay_after_mlt() -> TestReplica {
    let mut n = invalid();
    n.request(1, read());
    n.fire_timeout();
    assert_eq!(n.snap(), snap(Replay, A, "a", 1).pending(A));
    n
}

/// R: I with read 1 waiting, then node 2 (the last writer) left: replays `A` (view `{1, 3}`,
/// epoch 2).
fn replay_after_view_change() -> TestReplica {
    let mut n = invalid();
    n.request(1, read());
    n.install(2, &[1, 3]);
    assert_eq!(n.snap(), snap(Replay, A, "a", 1).pending(A));
    n
}

/// Both ways of reaching R; in both, read 1 waits for the replay.
const REPLAYS: [(&str, Setup); 2] = [
    ("after the message-loss timeout", replay_after_mlt),
    ("after the last writer left", replay_after_view_change),
];

// ----- row V ----------------------------------------------------------------------------------

#[test]
fn valid_x_read_is_served_locally() {
    for (name, setup, expected) in VALIDS {
        let mut n = setup();
        let before = n.entry().cloned();
        assert_eq!(
            n.request(2, read()),
            vec![reply(2, value(expected))],
            "{name}"
        );
        assert_eq!(n.entry().cloned(), before, "{name}");
    }
}

#[test]
fn valid_x_write_takes_version_plus_two_moves_to_write_and_broadcasts_inv() {
    for (name, setup, new_ts) in [
        ("fresh", valid_fresh as Setup, ts(2, 1)),
        ("committed", valid_committed, ts(4, 1)),
    ] {
        let mut n = setup();
        let inv = n.inv(new_ts, "x");
        assert_eq!(n.request(2, write("x")), n.to_peers(inv), "{name}");
        assert_eq!(
            n.snap(),
            snap(Write, new_ts, "x", 1).pending(new_ts),
            "{name}"
        );
        let pending = n.key().pending.clone().unwrap();
        assert_eq!(pending.kind, UpdateKind::Write, "{name}");
        assert_eq!(pending.client, Some(RequestId(2)), "{name}");
        assert!(pending.acks.is_empty(), "{name}");
        assert_eq!(pending.epoch, Epoch(1), "{name}");
    }
}

#[test]
fn valid_x_inv_equal_acks_and_adopts_sender_as_last_writer() {
    let mut n = valid_committed();
    let (inv, ack) = (n.inv(W, "w"), n.ack(W, W));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    assert_eq!(n.snap(), snap(Valid, W, "w", 3));
}

#[test]
fn valid_x_inv_higher_adopts_and_acks() {
    for (name, setup, _) in VALIDS {
        let mut n = setup();
        let (inv, ack) = (n.inv(A, "a"), n.ack(A, A));
        assert_eq!(n.recv(2, inv), vec![send(2, ack)], "{name}");
        assert_eq!(n.snap(), snap(Invalid, A, "a", 2), "{name}");
        assert_eq!(
            n.key().deadline,
            None,
            "{name}: nothing waits, nothing to replay"
        );
    }
}

#[test]
fn valid_x_inv_lower_acks_with_the_held_ts_and_keeps_state() {
    let mut n = valid_at_a();
    let (inv, ack) = (n.inv(LO, "c"), n.ack(LO, A));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    assert_eq!(n.snap(), snap(Valid, A, "a", 2));
}

#[test]
fn valid_x_ack_changes_nothing() {
    let mut n = valid_committed();
    let before = n.key().clone();
    let ack = n.ack(W, W);
    assert_eq!(n.recv(2, ack), vec![]);
    assert_eq!(n.key(), &before);
}

#[test]
fn valid_x_val_changes_nothing() {
    let mut n = valid_committed();
    let before = n.key().clone();
    let val = n.val(W, HI);
    assert_eq!(n.recv(2, val), vec![]);
    assert_eq!(n.key(), &before);
}

#[test]
fn valid_x_follower_failed_changes_nothing() {
    let mut n = valid_committed();
    assert_eq!(n.install(2, &[1, 2]), vec![]);
    assert_eq!(n.snap(), snap(Valid, W, "w", 1));
}

// ----- row I ----------------------------------------------------------------------------------

#[test]
fn invalid_x_read_waits_while_the_coordinator_is_alive() {
    let mut n = invalid();
    assert_eq!(n.request(2, read()), vec![]);
    assert_eq!(n.snap(), snap(Invalid, A, "a", 2));
    assert_eq!(n.waiting(), vec![2]);
    let mlt = n.r.config().message_loss_timeout();
    assert_eq!(
        n.key().deadline,
        Some(n.now + mlt),
        "the read arms the replay"
    );

    let val = n.val(A, A);
    assert_eq!(n.recv(2, val), vec![reply(2, value(Some("a")))]);
    assert_eq!(n.snap(), snap(Valid, A, "a", 2));
    assert_eq!(n.key().deadline, None);
}

#[test]
fn invalid_x_read_with_a_failed_coordinator_replays() {
    let mut n = invalid();
    assert_eq!(n.request(2, read()), vec![]);

    let actions = n.install(2, &[1, 3]);
    let inv = n.inv(A, "a");
    assert_eq!(inv.epoch, Epoch(2));
    assert_eq!(actions, vec![send(3, inv)]);
    assert_eq!(n.snap(), snap(Replay, A, "a", 1).pending(A));
    assert_eq!(n.key().pending.as_ref().unwrap().kind, UpdateKind::Replay);
    assert_eq!(n.waiting(), vec![2]);
    assert_eq!(n.r.stats().replays, 1);

    let (ack, val) = (n.ack(A, A), n.val(A, A));
    assert_eq!(
        n.recv(3, ack),
        vec![send(3, val), reply(2, value(Some("a")))]
    );
    assert_eq!(n.snap(), snap(Valid, A, "a", 1));
}

#[test]
fn invalid_x_read_past_the_message_loss_timeout_replays_with_the_original_ts() {
    let mut n = invalid();
    assert_eq!(n.request(2, read()), vec![]);
    let mlt = n.r.config().message_loss_timeout();
    assert_eq!(n.r.poll_timeout(), Some(n.now + mlt));

    let actions = n.fire_timeout();
    assert_eq!(actions, n.to_peers(n.inv(A, "a")));
    assert_eq!(n.snap(), snap(Replay, A, "a", 1).pending(A));
    assert_eq!(n.r.stats().replays, 1);
}

/// The [PA] cell allows a write from Invalid as an optimisation; without it the write waits for
/// the key to become Valid (digest §1.6 precondition), then starts above the validated ts.
#[test]
fn invalid_x_write_waits_for_valid_then_starts() {
    let mut n = invalid();
    assert_eq!(n.request(2, write("x")), vec![]);
    assert_eq!(n.snap(), snap(Invalid, A, "a", 2));
    assert_eq!(n.waiting(), vec![2]);

    let val = n.val(A, A);
    let actions = n.recv(2, val);
    assert_eq!(actions, n.to_peers(n.inv(ts(6, 1), "x")));
    assert_eq!(n.snap(), snap(Write, ts(6, 1), "x", 1).pending(ts(6, 1)));
}

#[test]
fn invalid_x_inv_equal_acks_and_adopts_sender_as_last_writer() {
    let mut n = invalid();
    let (inv, ack) = (n.inv(A, "a"), n.ack(A, A));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    assert_eq!(n.snap(), snap(Invalid, A, "a", 3));
}

#[test]
fn invalid_x_inv_higher_adopts_and_acks() {
    let mut n = invalid();
    let (inv, ack) = (n.inv(HI, "d"), n.ack(HI, HI));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    assert_eq!(n.snap(), snap(Invalid, HI, "d", 3));
}

#[test]
fn invalid_x_inv_lower_acks_with_the_held_ts_and_keeps_state() {
    let mut n = invalid();
    let (inv, ack) = (n.inv(LO, "c"), n.ack(LO, A));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    assert_eq!(n.snap(), snap(Invalid, A, "a", 2));
}

#[test]
fn invalid_x_ack_changes_nothing() {
    let mut n = invalid();
    let before = n.key().clone();
    let ack = n.ack(A, A);
    assert_eq!(n.recv(3, ack), vec![]);
    assert_eq!(n.key(), &before);
}

#[test]
fn invalid_x_val_equal_validates() {
    let mut n = invalid();
    let val = n.val(A, A);
    assert_eq!(n.recv(2, val), vec![]);
    assert_eq!(n.snap(), snap(Valid, A, "a", 2));
    assert_eq!(n.key().known_max, A);
}

#[test]
fn invalid_x_follower_failed_changes_nothing() {
    let mut n = invalid();
    assert_eq!(n.install(2, &[1, 2]), vec![]);
    assert_eq!(n.snap(), snap(Invalid, A, "a", 2));
}

// ----- row Trans ------------------------------------------------------------------------------

#[test]
fn trans_x_read_waits_until_the_higher_update_is_valid() {
    let mut n = trans();
    assert_eq!(n.request(2, read()), vec![]);
    assert_eq!(n.snap(), snap(Trans, A, "a", 2).pending(W));
    assert_eq!(n.waiting(), vec![2]);

    let val = n.val(A, A);
    assert_eq!(
        n.recv(2, val),
        vec![reply(1, written(W)), reply(2, value(Some("a")))]
    );
    assert_eq!(n.snap(), snap(Valid, A, "a", 2));
}

#[test]
fn trans_x_write_waits_until_the_key_is_valid() {
    let mut n = trans();
    assert_eq!(n.request(2, write("x")), vec![]);
    assert_eq!(n.snap(), snap(Trans, A, "a", 2).pending(W));
    assert_eq!(n.waiting(), vec![2]);

    let val = n.val(A, A);
    let mut expected = vec![reply(1, written(W))];
    expected.extend(n.to_peers(n.inv(ts(6, 1), "x")));
    assert_eq!(n.recv(2, val), expected);
    assert_eq!(n.snap(), snap(Write, ts(6, 1), "x", 1).pending(ts(6, 1)));
}

#[test]
fn trans_x_read_after_the_own_write_completes_replays_the_higher_update_after_mlt() {
    let mut n = trans();
    assert_eq!(n.request(2, read()), vec![]);
    assert_eq!(n.acks_from_peers(W), vec![reply(1, written(W))]);
    assert_eq!(n.snap(), snap(Invalid, A, "a", 2));

    // The VAL of A is lost: the waiting read replays it.
    let mlt = n.r.config().message_loss_timeout();
    assert_eq!(n.r.poll_timeout(), Some(n.now + mlt));
    assert_eq!(n.fire_timeout(), n.to_peers(n.inv(A, "a")));
    let mut expected = n.to_peers(n.val(A, A));
    expected.push(reply(2, value(Some("a"))));
    assert_eq!(n.acks_from_peers(A), expected);
    assert_eq!(n.snap(), snap(Valid, A, "a", 1));
}

#[test]
fn trans_x_inv_equal_acks_and_adopts_sender_as_last_writer() {
    let mut n = trans();
    let (inv, ack) = (n.inv(A, "a"), n.ack(A, A));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    assert_eq!(n.snap(), snap(Trans, A, "a", 3).pending(W));
}

#[test]
fn trans_x_inv_higher_adopts_and_acks() {
    let mut n = trans();
    let (inv, ack) = (n.inv(HI, "d"), n.ack(HI, HI));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    assert_eq!(n.snap(), snap(Trans, HI, "d", 3).pending(W));
}

#[test]
fn trans_x_inv_lower_acks_with_the_held_ts_and_keeps_state() {
    let mut n = trans();
    let (inv, ack) = (n.inv(LO, "c"), n.ack(LO, A));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    assert_eq!(n.snap(), snap(Trans, A, "a", 2).pending(W));
}

#[test]
fn trans_x_last_ack_completes_the_write_and_goes_invalid_without_val() {
    let mut n = trans();
    let ack2 = n.ack(W, A); // node 2 holds its own higher write
    assert_eq!(n.recv(2, ack2), vec![]);
    assert_eq!(n.acks(), vec![2]);
    let ack3 = n.ack(W, W);
    assert_eq!(n.recv(3, ack3), vec![reply(1, written(W))]);
    assert_eq!(n.snap(), snap(Invalid, A, "a", 2));
    assert_eq!(n.key().aborted_rmw, None);
}

#[test]
fn trans_x_val_of_the_higher_ts_completes_the_write_and_validates() {
    let mut n = trans();
    let val = n.val(A, A);
    assert_eq!(n.recv(2, val), vec![reply(1, written(W))]);
    assert_eq!(n.snap(), snap(Valid, A, "a", 2));
}

#[test]
fn trans_x_follower_failed_rebroadcasts_and_completes_through_acks() {
    let mut n = trans();
    let old_ack = n.ack(W, A);
    assert_eq!(n.recv(2, old_ack.clone()), vec![]);

    let actions = n.install(2, &[1, 2]);
    assert_eq!(actions, vec![send(2, n.inv(W, "w"))]);
    assert_eq!(n.snap(), snap(Trans, A, "a", 2).pending(W));
    assert_eq!(
        n.acks(),
        Vec::<u32>::new(),
        "the view change clears the ACKs"
    );
    assert_eq!(n.key().pending.as_ref().unwrap().epoch, Epoch(2));

    assert_eq!(
        n.recv(2, old_ack),
        vec![],
        "an ACK of epoch 1 no longer counts"
    );
    let ack = n.ack(W, A);
    assert_eq!(n.recv(2, ack), vec![reply(1, written(W))]);
    assert_eq!(n.snap(), snap(Invalid, A, "a", 2));
}

// ----- row W ----------------------------------------------------------------------------------

#[test]
fn write_x_read_waits_for_the_write_to_commit() {
    let mut n = write_pending();
    assert_eq!(n.request(2, read()), vec![]);
    assert_eq!(n.snap(), snap(Write, W, "w", 1).pending(W));
    assert_eq!(n.waiting(), vec![2]);

    let mut expected = n.to_peers(n.val(W, W));
    expected.extend([reply(1, written(W)), reply(2, value(Some("w")))]);
    assert_eq!(n.acks_from_peers(W), expected);
}

#[test]
fn write_x_write_waits_for_the_pending_write() {
    let mut n = write_pending();
    assert_eq!(n.request(2, write("x")), vec![]);
    assert_eq!(n.waiting(), vec![2]);

    let mut expected = n.to_peers(n.val(W, W));
    expected.push(reply(1, written(W)));
    expected.extend(n.to_peers(n.inv(ts(4, 1), "x")));
    assert_eq!(n.acks_from_peers(W), expected);
    assert_eq!(n.snap(), snap(Write, ts(4, 1), "x", 1).pending(ts(4, 1)));
}

#[test]
fn write_x_inv_higher_moves_to_trans_and_acks() {
    let mut n = write_pending();
    let (inv, ack) = (n.inv(A, "a"), n.ack(A, A));
    assert_eq!(n.recv(2, inv), vec![send(2, ack)]);
    assert_eq!(n.snap(), snap(Trans, A, "a", 2).pending(W));
    let pending = n.key().pending.clone().unwrap();
    assert_eq!(pending.value, Some(bytes("w")), "the own value is kept");
    assert_eq!(pending.client, Some(RequestId(1)));
}

#[test]
fn write_x_inv_lower_acks_with_the_held_ts_and_keeps_state() {
    let mut n = valid_at_a();
    let mine = ts(6, 1);
    n.request(1, write("w"));
    assert_eq!(n.snap(), snap(Write, mine, "w", 1).pending(mine));

    let (inv, ack) = (n.inv(LO, "c"), n.ack(LO, mine));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    assert_eq!(n.snap(), snap(Write, mine, "w", 1).pending(mine));
}

#[test]
fn write_x_last_ack_commits_validates_and_answers() {
    let mut n = write_pending();
    let ack = n.ack(W, W);
    assert_eq!(n.recv(2, ack), vec![]);
    assert_eq!(n.acks(), vec![2]);
    assert_eq!(n.snap(), snap(Write, W, "w", 1).pending(W));

    let mut expected = n.to_peers(n.val(W, W));
    expected.push(reply(1, written(W)));
    let ack = n.ack(W, W);
    assert_eq!(n.recv(3, ack), expected);
    assert_eq!(n.snap(), snap(Valid, W, "w", 1));
    assert_eq!(n.key().known_max, W);
    assert_eq!(n.key().deadline, None);
}

#[test]
fn write_x_follower_failed_rebroadcasts_and_completes_through_acks() {
    let mut n = write_pending();
    let old_ack = n.ack(W, W);
    assert_eq!(n.recv(2, old_ack.clone()), vec![]);

    let actions = n.install(2, &[1, 2]);
    assert_eq!(actions, vec![send(2, n.inv(W, "w"))]);
    assert_eq!(n.snap(), snap(Write, W, "w", 1).pending(W));
    assert_eq!(
        n.acks(),
        Vec::<u32>::new(),
        "the view change clears the ACKs"
    );

    assert_eq!(
        n.recv(2, old_ack),
        vec![],
        "an ACK of epoch 1 no longer counts"
    );
    let ack = n.ack(W, W);
    let expected = vec![send(2, n.val(W, W)), reply(1, written(W))];
    assert_eq!(n.recv(2, ack), expected);
    assert_eq!(n.snap(), snap(Valid, W, "w", 1));
}

// ----- row R ----------------------------------------------------------------------------------

#[test]
fn replay_x_read_waits() {
    for (name, setup) in REPLAYS {
        let mut n = setup();
        assert_eq!(n.request(2, read()), vec![], "{name}");
        assert_eq!(n.waiting(), vec![1, 2], "{name}");
        assert_eq!(n.snap(), snap(Replay, A, "a", 1).pending(A), "{name}");
    }
}

#[test]
fn replay_x_write_waits() {
    for (name, setup) in REPLAYS {
        let mut n = setup();
        assert_eq!(n.request(2, write("x")), vec![], "{name}");
        assert_eq!(n.waiting(), vec![1, 2], "{name}");
        assert_eq!(n.snap(), snap(Replay, A, "a", 1).pending(A), "{name}");
    }
}

#[test]
fn replay_x_inv_equal_acks_and_adopts_sender_as_last_writer() {
    for (name, setup) in REPLAYS {
        let mut n = setup();
        let (inv, ack) = (n.inv(A, "a"), n.ack(A, A));
        assert_eq!(n.recv(3, inv), vec![send(3, ack)], "{name}");
        assert_eq!(n.snap(), snap(Replay, A, "a", 3).pending(A), "{name}");
    }
}

#[test]
fn replay_x_inv_higher_moves_to_trans_and_acks() {
    for (name, setup) in REPLAYS {
        let mut n = setup();
        let (inv, ack) = (n.inv(HI, "d"), n.ack(HI, HI));
        assert_eq!(n.recv(3, inv), vec![send(3, ack)], "{name}");
        assert_eq!(n.snap(), snap(Trans, HI, "d", 3).pending(A), "{name}");

        // Pitfall 10: the superseded replay completes to Invalid, never Valid at the old ts.
        assert_eq!(n.acks_from_peers(A), vec![], "{name}");
        assert_eq!(n.snap(), snap(Invalid, HI, "d", 3), "{name}");
        assert_eq!(n.waiting(), vec![1], "{name}");

        let val = n.val(HI, HI);
        assert_eq!(n.recv(3, val), vec![reply(1, value(Some("d")))], "{name}");
        assert_eq!(n.snap(), snap(Valid, HI, "d", 3), "{name}");
    }
}

#[test]
fn replay_x_inv_lower_acks_with_the_held_ts_and_keeps_state() {
    for (name, setup) in REPLAYS {
        let mut n = setup();
        let (inv, ack) = (n.inv(LO, "c"), n.ack(LO, A));
        assert_eq!(n.recv(3, inv), vec![send(3, ack)], "{name}");
        assert_eq!(n.snap(), snap(Replay, A, "a", 1).pending(A), "{name}");
    }
}

#[test]
fn replay_x_last_ack_validates_and_resumes_the_read() {
    for (name, setup) in REPLAYS {
        let mut n = setup();
        let mut expected = n.to_peers(n.val(A, A));
        expected.push(reply(1, value(Some("a"))));
        assert_eq!(n.acks_from_peers(A), expected, "{name}");
        assert_eq!(n.snap(), snap(Valid, A, "a", 1), "{name}");
        assert_eq!(n.r.pending_requests(), 0, "{name}");
    }
}

#[test]
fn replay_x_val_validates_and_resumes_the_read() {
    for (name, setup) in REPLAYS {
        let mut n = setup();
        let val = n.val(A, A);
        assert_eq!(n.recv(3, val), vec![reply(1, value(Some("a")))], "{name}");
        assert_eq!(n.snap(), snap(Valid, A, "a", 1), "{name}");
    }
}

#[test]
fn replay_x_follower_failed_rebroadcasts_and_completes_through_acks() {
    let mut n = replay_after_mlt();
    let old_ack = n.ack(A, A);
    assert_eq!(n.recv(2, old_ack), vec![]);

    let actions = n.install(2, &[1, 2]);
    assert_eq!(actions, vec![send(2, n.inv(A, "a"))]);
    assert_eq!(n.snap(), snap(Replay, A, "a", 1).pending(A));
    assert_eq!(
        n.acks(),
        Vec::<u32>::new(),
        "the view change clears the ACKs"
    );

    let ack = n.ack(A, A);
    let expected = vec![send(2, n.val(A, A)), reply(1, value(Some("a")))];
    assert_eq!(n.recv(2, ack), expected);
    assert_eq!(n.snap(), snap(Valid, A, "a", 1));
}

// ----- superseded and replayed updates beyond the table --------------------------------------

#[test]
fn trans_from_replay_x_val_of_the_higher_ts_validates_and_resumes_the_read() {
    for (name, setup) in REPLAYS {
        let mut n = setup();
        let inv = n.inv(HI, "d");
        n.recv(3, inv);
        let val = n.val(HI, HI);
        assert_eq!(n.recv(3, val), vec![reply(1, value(Some("d")))], "{name}");
        assert_eq!(n.snap(), snap(Valid, HI, "d", 3), "{name}");
        assert_eq!(
            n.acks_from_peers(A),
            vec![],
            "{name}: late ACKs of the replay"
        );
        assert_eq!(n.snap(), snap(Valid, HI, "d", 3), "{name}");
    }
}

#[test]
fn replay_of_an_rmw_x_inv_higher_drops_the_replay_and_goes_invalid() {
    let rmw = ts(1, 2);
    let mut n = TestReplica::new();
    let inv = n.rmw_inv(rmw, "r");
    n.recv(2, inv);
    n.request(1, read());
    let actions = n.fire_timeout();
    assert_eq!(
        actions,
        n.to_peers(n.rmw_inv(rmw, "r")),
        "the replay keeps the RMW flag"
    );
    assert_eq!(n.snap(), snap(Replay, rmw, "r", 1).pending(rmw));

    let (inv, ack) = (n.inv(HI, "d"), n.ack(HI, HI));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    assert_eq!(n.snap(), snap(Invalid, HI, "d", 3));
    assert_eq!(n.key().aborted_rmw, None, "no client RMW was pending here");
    assert_eq!(n.waiting(), vec![1]);
}

/// Marked × in the table, but reachable: node 2 replays replica 1's write after its
/// message-loss timeout while replica 1 still waits for an ACK.
#[test]
fn write_x_inv_equal_from_a_replayer_is_acked_and_keeps_the_write() {
    let mut n = write_pending();
    let (inv, ack) = (n.inv(W, "w"), n.ack(W, W));
    assert_eq!(n.recv(2, inv), vec![send(2, ack)]);
    assert_eq!(n.snap(), snap(Write, W, "w", 1).pending(W));
}

/// Marked × in the table, but reachable: node 2's replay of replica 1's write committed first.
#[test]
fn write_x_val_equal_from_a_replayer_completes_the_write() {
    let mut n = write_pending();
    let val = n.val(W, W);
    assert_eq!(n.recv(2, val), vec![reply(1, written(W))]);
    assert_eq!(n.snap(), snap(Valid, W, "w", 1));
    assert_eq!(n.acks_from_peers(W), vec![], "late ACKs change nothing");
}

// ----- view changes beyond the table ----------------------------------------------------------

#[test]
fn view_change_replays_an_invalid_key_whose_last_writer_left_at_once() {
    let mut n = invalid();
    let actions = n.install(2, &[1, 3]);
    assert_eq!(actions, vec![send(3, n.inv(A, "a"))]);
    assert_eq!(n.snap(), snap(Replay, A, "a", 1).pending(A));

    let ack = n.ack(A, A);
    assert_eq!(n.recv(3, ack), vec![send(3, n.val(A, A))]);
    assert_eq!(n.snap(), snap(Valid, A, "a", 1));
}

#[test]
fn view_leaving_a_single_node_completes_a_pending_write_at_once() {
    let mut n = write_pending();
    assert_eq!(n.install(2, &[1]), vec![reply(1, written(W))]);
    assert_eq!(n.snap(), snap(Valid, W, "w", 1));
}

#[test]
fn view_leaving_a_single_node_completes_a_replay_at_once() {
    let mut n = replay_after_view_change();
    assert_eq!(n.install(3, &[1]), vec![reply(1, value(Some("a")))]);
    assert_eq!(n.snap(), snap(Valid, A, "a", 1));
}

#[test]
fn view_leaving_a_single_node_completes_trans_then_replays_the_departed_higher_update() {
    let mut n = trans();
    assert_eq!(n.install(2, &[1]), vec![reply(1, written(W))]);
    assert_eq!(n.snap(), snap(Valid, A, "a", 1));
}

#[test]
fn trans_whose_higher_writer_left_replays_the_higher_update_after_completing() {
    let mut n = trans();
    let actions = n.install(2, &[1, 3]);
    assert_eq!(actions, vec![send(3, n.inv(W, "w"))]);
    assert_eq!(n.snap(), snap(Trans, A, "a", 2).pending(W));

    let ack = n.ack(W, A);
    let expected = vec![reply(1, written(W)), send(3, n.inv(A, "a"))];
    assert_eq!(n.recv(3, ack), expected);
    assert_eq!(n.snap(), snap(Replay, A, "a", 1).pending(A));

    let ack = n.ack(A, A);
    assert_eq!(n.recv(3, ack), vec![send(3, n.val(A, A))]);
    assert_eq!(n.snap(), snap(Valid, A, "a", 1));
}

#[test]
fn view_change_rebroadcasts_a_pending_rmw_and_never_counts_its_old_acks() {
    let mut n = TestReplica::new();
    let mine = ts(1, 1);
    n.request(1, cas(None, "x"));
    let old_ack = n.ack(mine, mine);
    assert_eq!(n.recv(2, old_ack.clone()), vec![]);

    let actions = n.install(2, &[1, 2]);
    assert_eq!(actions, vec![send(2, n.rmw_inv(mine, "x"))]);
    assert_eq!(n.acks(), Vec::<u32>::new());
    assert_eq!(n.recv(2, old_ack), vec![]);

    let ack = n.ack(mine, mine);
    let expected = vec![send(2, n.val(mine, mine)), reply(1, swapped(mine))];
    assert_eq!(n.recv(2, ack), expected);
    assert_eq!(n.snap(), snap(Valid, mine, "x", 1));
}

// ----- RMWs (§2) ------------------------------------------------------------------------------

#[test]
fn rmw_takes_version_plus_one_where_a_write_takes_plus_two() {
    let cases = [
        (
            "cas on absent",
            valid_fresh as Setup,
            cas(None, "x"),
            ts(1, 1),
        ),
        ("write on absent", valid_fresh, write("x"), ts(2, 1)),
        ("cas on 2.1", valid_committed, cas(Some("w"), "x"), ts(3, 1)),
        ("write on 2.1", valid_committed, write("x"), ts(4, 1)),
    ];
    for (name, setup, op, new_ts) in cases {
        let mut n = setup();
        let is_rmw = matches!(op, Op::Cas { .. });
        let inv = Inv {
            is_rmw,
            ..n.inv(new_ts, "x")
        };
        assert_eq!(n.request(2, op), n.to_peers(inv), "{name}");
        assert_eq!(
            n.snap(),
            snap(Write, new_ts, "x", 1).pending(new_ts),
            "{name}"
        );
        assert_eq!(n.key().is_rmw, is_rmw, "{name}");
    }
}

#[test]
fn delete_is_a_tombstone_write_with_version_plus_two() {
    let mut n = valid_committed();
    let mine = ts(4, 1);
    let tombstone = Inv {
        value: None,
        ..n.inv(mine, "")
    };
    assert_eq!(
        n.request(2, Op::Delete { key: bytes("k") }),
        n.to_peers(tombstone)
    );
    assert_eq!(n.key().value, None);
    let mut expected = n.to_peers(n.val(mine, mine));
    expected.push(reply(2, written(mine)));
    assert_eq!(n.acks_from_peers(mine), expected);
    assert_eq!(n.request(3, read()), vec![reply(3, value(None))]);
}

#[test]
fn rmw_cas_with_expected_none_on_an_absent_key_commits() {
    let mut n = TestReplica::new();
    let mine = ts(1, 1);
    assert_eq!(
        n.request(1, cas(None, "x")),
        n.to_peers(n.rmw_inv(mine, "x"))
    );
    assert_eq!(n.key().pending.as_ref().unwrap().kind, UpdateKind::Rmw);

    let mut expected = n.to_peers(n.val(mine, mine));
    expected.push(reply(1, swapped(mine)));
    assert_eq!(n.acks_from_peers(mine), expected);
    assert_eq!(n.snap(), snap(Valid, mine, "x", 1));
    assert_eq!(n.r.stats().rmws, 1);
}

#[test]
fn rmw_cas_with_a_different_expected_value_fails_without_messages() {
    let cases = [
        ("absent, expected a value", valid_fresh as Setup, Some("w")),
        ("holds w, expected another", valid_committed, Some("other")),
        ("holds w, expected absent", valid_committed, None),
    ];
    for (name, setup, expected) in cases {
        let mut n = setup();
        let before = n.entry().cloned();
        assert_eq!(
            n.request(2, cas(expected, "x")),
            vec![reply(2, Err(RequestError::CasFailed))],
            "{name}"
        );
        assert_eq!(n.entry().cloned(), before, "{name}");
        assert_eq!(n.r.stats().cas_failed, 1, "{name}");
        assert_eq!(n.r.pending_requests(), 0, "{name}");
    }
}

#[test]
fn rmw_coordinator_aborts_on_a_higher_inv_and_answers_aborted_once_valid_higher() {
    let mine = ts(1, 1);
    for (name, higher_is_rmw, higher) in [("write", false, ts(2, 2)), ("rmw", true, ts(1, 2))] {
        let mut n = TestReplica::new();
        n.request(1, cas(None, "x"));
        let early_ack = n.ack(mine, mine);
        assert_eq!(n.recv(3, early_ack), vec![], "{name}");

        let inv = Inv {
            is_rmw: higher_is_rmw,
            ..n.inv(higher, "y")
        };
        let ack = n.ack(higher, higher);
        assert_eq!(n.recv(2, inv), vec![send(2, ack)], "{name}: no answer yet");
        assert_eq!(n.snap(), snap(Invalid, higher, "y", 2), "{name}");
        assert_eq!(n.key().aborted_rmw, Some(RequestId(1)), "{name}");

        let late_ack = n.ack(mine, mine);
        assert_eq!(
            n.recv(2, late_ack),
            vec![],
            "{name}: the aborted RMW counts nothing"
        );

        let val = n.val(higher, higher);
        assert_eq!(
            n.recv(2, val),
            vec![reply(1, Err(RequestError::Aborted))],
            "{name}"
        );
        assert_eq!(n.snap(), snap(Valid, higher, "y", 2), "{name}");
        assert_eq!(n.key().aborted_rmw, None, "{name}");
        assert_eq!(n.r.stats().rmw_aborts, 1, "{name}");
    }
}

#[test]
fn rmw_coordinator_does_not_ack_a_replay_of_its_own_pending_rmw() {
    let mut n = TestReplica::new();
    let mine = ts(1, 1);
    n.request(1, cas(None, "x"));
    let replay = n.rmw_inv(mine, "x");
    assert_eq!(n.recv(3, replay), vec![]);
    assert_eq!(n.snap(), snap(Write, mine, "x", 1).pending(mine));
    assert_eq!(n.acks(), Vec::<u32>::new());
}

#[test]
fn follower_answers_a_lower_rmw_inv_with_an_abort_inv_of_its_local_state() {
    /// I, at node 2's RMW 3.2 = "r".
    fn invalid_at_an_rmw() -> TestReplica {
        let mut n = TestReplica::new();
        let inv = n.rmw_inv(ts(3, 2), "r");
        n.recv(2, inv);
        n
    }
    let cases = [
        ("valid", valid_at_a as Setup, A, "a", false),
        ("invalid", invalid, A, "a", false),
        ("invalid at an rmw", invalid_at_an_rmw, ts(3, 2), "r", true),
        ("write", write_pending, W, "w", false),
        ("trans", trans, A, "a", false),
    ];
    for (name, setup, held, held_value, held_is_rmw) in cases {
        let mut n = setup();
        let before = n.key().clone();
        let lower = n.rmw_inv(ts(1, 3), "z");
        let abort = Inv {
            is_rmw: held_is_rmw,
            ..n.inv(held, held_value)
        };
        assert_eq!(n.recv(3, lower), vec![send(3, abort)], "{name}");
        assert_eq!(n.key(), &before, "{name}");
    }
}

#[test]
fn follower_acks_an_equal_ts_rmw_inv() {
    let rmw = ts(1, 2);
    let mut n = TestReplica::new();
    let (inv, ack) = (n.rmw_inv(rmw, "r"), n.ack(rmw, rmw));
    assert_eq!(n.recv(2, inv.clone()), vec![send(2, ack.clone())]);
    assert_eq!(n.recv(3, inv.clone()), vec![send(3, ack.clone())]);
    assert_eq!(n.snap(), snap(Invalid, rmw, "r", 3));

    let val = n.val(rmw, rmw);
    n.recv(2, val);
    assert_eq!(n.recv(2, inv), vec![send(2, ack)]);
    assert_eq!(n.snap(), snap(Valid, rmw, "r", 2));
}

#[test]
fn rmw_coordinator_aborted_by_an_abort_inv() {
    let mut n = TestReplica::new();
    n.request(1, cas(None, "x"));
    // Node 2 already holds 2.2 and answers the RMW-INV with its local state.
    let abort = n.inv(ts(2, 2), "y");
    let ack = n.ack(ts(2, 2), ts(2, 2));
    assert_eq!(n.recv(2, abort), vec![send(2, ack)]);
    assert_eq!(n.snap(), snap(Invalid, ts(2, 2), "y", 2));
    assert_eq!(n.key().aborted_rmw, Some(RequestId(1)));
}

#[test]
fn rmw_abort_is_answered_once_the_departed_winner_is_replayed() {
    let winner = ts(2, 2);
    let mut n = TestReplica::new();
    n.request(1, cas(None, "x"));
    let inv = n.inv(winner, "y");
    n.recv(2, inv);

    let actions = n.install(2, &[1, 3]);
    assert_eq!(actions, vec![send(3, n.inv(winner, "y"))]);
    let ack = n.ack(winner, winner);
    let expected = vec![
        send(3, n.val(winner, winner)),
        reply(1, Err(RequestError::Aborted)),
    ];
    assert_eq!(n.recv(3, ack), expected);
    assert_eq!(n.snap(), snap(Valid, winner, "y", 1));
}

/// An aborted RMW waits for the key to become Valid above it, like a read waits on an Invalid
/// key; if the winner's VAL is lost, the message-loss timeout replays the winner (digest §3.3)
/// so that the client learns `Aborted`.
#[test]
fn rmw_abort_with_a_lost_val_replays_the_winner_after_the_message_loss_timeout() {
    let winner = ts(2, 2);
    let mut n = TestReplica::new();
    n.request(1, cas(None, "x"));
    let inv = n.inv(winner, "y");
    n.recv(2, inv);
    assert_eq!(n.key().aborted_rmw, Some(RequestId(1)));

    // The VAL of 2.2 is lost.
    let mlt = n.r.config().message_loss_timeout();
    assert_eq!(n.r.poll_timeout(), Some(n.now + mlt));
    let actions = n.fire_timeout();
    assert_eq!(actions, n.to_peers(n.inv(winner, "y")));
    let mut expected = n.to_peers(n.val(winner, winner));
    expected.push(reply(1, Err(RequestError::Aborted)));
    assert_eq!(n.acks_from_peers(winner), expected);
}

#[test]
fn cas_waits_while_known_max_is_above_the_valid_ts_then_starts() {
    let mut n = invalid();
    let val = n.val(A, HI); // some replica already held HI when it ACKed A
    n.recv(2, val);
    assert_eq!(n.snap(), snap(Valid, A, "a", 2));
    assert_eq!(n.key().known_max, HI);

    assert_eq!(n.request(1, cas(Some("a"), "x")), vec![]);
    assert_eq!(n.waiting(), vec![1]);
    assert_eq!(
        n.request(2, read()),
        vec![],
        "requests queue behind the CAS"
    );

    // Node 3's write of the same value lands at HI; once it is Valid the CAS starts above it.
    let (inv, ack) = (n.inv(HI, "a"), n.ack(HI, HI));
    assert_eq!(n.recv(3, inv), vec![send(3, ack)]);
    let val = n.val(HI, HI);
    let mine = ts(7, 1);
    let actions = n.recv(3, val);
    assert_eq!(actions, n.to_peers(n.rmw_inv(mine, "x")));
    assert_eq!(n.snap(), snap(Write, mine, "x", 1).pending(mine));
    assert_eq!(n.waiting(), vec![2]);
}

#[test]
fn cas_waits_while_known_max_is_above_the_valid_ts_then_fails_on_the_newer_value() {
    let mut n = invalid();
    let val = n.val(A, HI);
    n.recv(2, val);
    assert_eq!(n.request(1, cas(Some("a"), "x")), vec![]);

    let inv = n.inv(HI, "d");
    n.recv(3, inv);
    let val = n.val(HI, HI);
    assert_eq!(n.recv(3, val), vec![reply(1, Err(RequestError::CasFailed))]);
    assert_eq!(n.snap(), snap(Valid, HI, "d", 3));
}

#[test]
fn val_carries_the_highest_ts_held_over_the_counted_acks() {
    let mut n = write_pending();
    let newer = ts(4, 3);
    let (ack2, ack3) = (n.ack(W, W), n.ack(W, newer));
    assert_eq!(n.recv(2, ack2), vec![]);
    let mut expected = n.to_peers(n.val(W, newer));
    expected.push(reply(1, written(W)));
    assert_eq!(n.recv(3, ack3), expected);
    assert_eq!(n.key().known_max, newer);

    assert_eq!(
        n.request(2, cas(Some("w"), "x")),
        vec![],
        "an RMW waits for 4.3"
    );
}

// ----- ACK matching ---------------------------------------------------------------------------

#[test]
fn ack_for_an_older_write_of_the_same_key_by_the_same_node_is_not_counted() {
    let mut n = valid_committed();
    let mine = ts(4, 1);
    n.request(2, write("x"));
    for p in [2, 3] {
        let stale = n.ack(W, W);
        assert_eq!(n.recv(p, stale), vec![], "stale ACK from {p}");
    }
    assert_eq!(n.acks(), Vec::<u32>::new());
    assert_eq!(n.snap(), snap(Write, mine, "x", 1).pending(mine));

    let mut expected = n.to_peers(n.val(mine, mine));
    expected.push(reply(2, written(mine)));
    assert_eq!(n.acks_from_peers(mine), expected);
}

#[test]
fn ack_of_another_epoch_is_not_counted() {
    let mut n = write_pending();
    let future = Ack {
        epoch: Epoch(2),
        ..n.ack(W, W)
    };
    let past = Ack {
        epoch: Epoch(0),
        ..n.ack(W, W)
    };
    assert_eq!(n.recv(2, future), vec![]);
    assert_eq!(n.recv(3, past), vec![]);
    assert_eq!(n.acks(), Vec::<u32>::new());
    assert_eq!(n.r.stats().dropped_wrong_epoch, 2);
    assert_eq!(n.snap(), snap(Write, W, "w", 1).pending(W));
}

#[test]
fn duplicate_ack_changes_nothing() {
    let mut n = write_pending();
    let ack = n.ack(W, W);
    assert_eq!(n.recv(2, ack.clone()), vec![]);
    assert_eq!(n.recv(2, ack.clone()), vec![]);
    assert_eq!(n.acks(), vec![2]);
    assert_eq!(n.snap(), snap(Write, W, "w", 1).pending(W));

    let mut expected = n.to_peers(n.val(W, W));
    expected.push(reply(1, written(W)));
    assert_eq!(n.recv(3, ack.clone()), expected);
    assert_eq!(n.recv(3, ack), vec![], "a late duplicate after commit");
    assert_eq!(n.snap(), snap(Valid, W, "w", 1));
}

// ----- message filters ------------------------------------------------------------------------

#[test]
fn inv_of_another_epoch_is_dropped() {
    let mut n = TestReplica::new();
    for (i, epoch) in [Epoch(0), Epoch(2)].into_iter().enumerate() {
        let inv = Inv {
            epoch,
            ..n.inv(A, "a")
        };
        assert_eq!(n.recv(2, inv), vec![], "{epoch}");
        assert!(n.entry().is_none(), "{epoch}");
        assert_eq!(n.r.stats().dropped_wrong_epoch, i as u64 + 1);
    }
}

#[test]
fn val_validates_whatever_its_epoch() {
    let mut n = invalid();
    let val = Val {
        epoch: Epoch(7),
        ..n.val(A, A)
    };
    assert_eq!(n.recv(2, val), vec![]);
    assert_eq!(n.snap(), snap(Valid, A, "a", 2));
    assert_eq!(n.r.stats().dropped_wrong_epoch, 0);
}

#[test]
fn val_validates_only_on_exact_ts_equality() {
    let mut n = invalid();
    for other in [ts(2, 2), ts(4, 1), ts(4, 3), HI] {
        let val = n.val(other, other);
        assert_eq!(n.recv(2, val), vec![], "VAL {other}");
        assert_eq!(n.snap(), snap(Invalid, A, "a", 2), "VAL {other}");
    }
    let val = n.val(A, A);
    assert_eq!(n.recv(2, val), vec![]);
    assert_eq!(n.snap(), snap(Valid, A, "a", 2));
}

#[test]
fn messages_from_outside_the_view_are_dropped() {
    let mut n = TestReplica::new();
    let inv = n.inv(A, "a");
    assert_eq!(n.recv(4, inv.clone()), vec![]);
    assert_eq!(n.recv(1, inv), vec![], "from itself");
    assert!(n.entry().is_none());
    assert_eq!(n.r.stats().dropped_unknown_sender, 2);

    let mut n = write_pending();
    let ack = n.ack(W, W);
    assert_eq!(n.recv(4, ack), vec![]);
    assert_eq!(n.acks(), Vec::<u32>::new());

    n.install(2, &[1, 2]);
    let ack = n.ack(W, W);
    assert_eq!(n.recv(3, ack), vec![], "node 3 left the view");
    assert_eq!(n.acks(), Vec::<u32>::new());
    assert_eq!(n.r.stats().dropped_unknown_sender, 2);
}

// ----- bad input and bounds -------------------------------------------------------------------

/// The single action is an `InvalidArgument` answer to `id`; returns its message.
fn invalid_argument(actions: Vec<Action>, id: u64) -> String {
    match actions.as_slice() {
        [Action::Reply {
            id: got,
            result: Err(RequestError::InvalidArgument(msg)),
        }] if got.0 == id => msg.clone(),
        other => panic!("expected InvalidArgument for request {id}, got {other:?}"),
    }
}

/// The single action is an `Overloaded` answer to `id`; returns its message.
fn overloaded(actions: Vec<Action>, id: u64) -> String {
    match actions.as_slice() {
        [Action::Reply {
            id: got,
            result: Err(RequestError::Overloaded(msg)),
        }] if got.0 == id => msg.clone(),
        other => panic!("expected Overloaded for request {id}, got {other:?}"),
    }
}

#[test]
fn empty_key_is_an_invalid_argument() {
    let mut n = TestReplica::new();
    let msg = invalid_argument(n.request(1, write_to("", "v")), 1);
    assert!(msg.contains("empty"), "{msg}");
    assert_eq!(n.r.keys().count(), 0);
    assert_eq!(n.r.pending_requests(), 0);
    assert_eq!(n.r.stats().invalid_arguments, 1);
}

#[test]
fn key_over_key_bytes_max_is_an_invalid_argument() {
    let mut n = TestReplica::new();
    let long = "k".repeat(n.r.config().key_bytes_max + 1);
    let msg = invalid_argument(n.request(1, write_to(&long, "v")), 1);
    assert!(msg.contains("key_bytes_max"), "{msg}");

    let at_limit = "k".repeat(n.r.config().key_bytes_max);
    assert_eq!(n.request(2, write_to(&at_limit, "v")).len(), 2, "INVs");
}

#[test]
fn value_over_value_bytes_max_is_an_invalid_argument() {
    let config = Config {
        value_bytes_max: 4,
        ..Config::for_node(ME)
    };
    let mut n = TestReplica::with_config(config);
    let cases = [
        ("write", write("12345")),
        ("cas new", cas(None, "12345")),
        ("cas expected", cas(Some("12345"), "1")),
    ];
    for (id, (name, op)) in (1..).zip(cases) {
        let msg = invalid_argument(n.request(id, op), id);
        assert!(msg.contains("value_bytes_max"), "{name}: {msg}");
    }
    assert_eq!(n.r.keys().count(), 0);
    assert_eq!(n.r.pending_requests(), 0);
    assert_eq!(n.request(4, write("1234")).len(), 2, "INVs");
}

#[test]
fn request_id_already_in_flight_is_an_invalid_argument() {
    let mut n = write_pending();
    let msg = invalid_argument(n.request(1, read()), 1);
    assert!(msg.contains("already in flight"), "{msg}");
    assert_eq!(n.snap(), snap(Write, W, "w", 1).pending(W));
    assert_eq!(n.waiting(), Vec::<u64>::new());

    let mut expected = n.to_peers(n.val(W, W));
    expected.push(reply(1, written(W)));
    assert_eq!(
        n.acks_from_peers(W),
        expected,
        "the first request is intact"
    );
}

#[test]
fn requests_past_the_bounds_are_overloaded() {
    let config = Config {
        requests_per_key_max: 2,
        requests_max: 3,
        ..Config::for_node(ME)
    };
    let mut n = TestReplica::with_config(config);
    assert_eq!(n.request(1, write("a")).len(), 2, "INVs");
    assert_eq!(n.request(2, write("b")), vec![], "waits behind 1");
    let msg = overloaded(n.request(3, write("c")), 3);
    assert!(msg.contains("requests_per_key_max"), "{msg}");
    assert_eq!(n.waiting(), vec![2]);

    assert_eq!(n.request(4, write_to("j", "d")).len(), 2, "INVs");
    let msg = overloaded(n.request(5, write_to("m", "e")), 5);
    assert!(
        msg.contains("requests_max") && !msg.contains("per_key"),
        "{msg}"
    );
    assert!(n.r.key(b"m").is_none());
    assert_eq!(n.r.pending_requests(), 3);
    assert_eq!(n.r.stats().overloaded, 2);
}

// ----- serving and timeouts -------------------------------------------------------------------

#[test]
fn reads_are_served_only_while_serving() {
    let mut n = valid_committed();
    n.r.set_serving(n.now, false);
    assert_eq!(n.request(2, read()), vec![]);
    assert_eq!(n.waiting(), vec![2]);
    n.r.set_serving(n.now, true);
    assert_eq!(drain(&mut n.r), vec![reply(2, value(Some("w")))]);
}

#[test]
fn request_timeout_answers_a_waiting_read_with_a_known_outcome() {
    // The message-loss timeout must stay below the request timeout.
    let config = Config {
        request_timeout_ms: 50,
        message_loss_timeout_ms: 40,
        ..Config::for_node(ME)
    };
    let mut n = TestReplica::with_config(config);
    let inv = n.inv(A, "a");
    n.recv(2, inv);
    assert_eq!(n.request(1, read()), vec![]);

    // At the message-loss timeout the waiting read replays the write it found Invalid.
    let replay = n.fire_timeout();
    assert_eq!(n.now, Instant::from_millis(40));
    assert_eq!(replay.len(), 2, "{replay:?}");
    assert!(replay.iter().all(|action| matches!(
        action,
        Action::Send { msg: hermes_core::Message::Inv(inv), .. } if inv.ts == A
    )));

    // No ACK arrives: the read is answered at the request timeout with a known outcome.
    let timeout = Err(RequestError::Timeout {
        outcome_unknown: false,
    });
    assert_eq!(n.fire_timeout(), vec![reply(1, timeout)]);
    assert_eq!(n.now, Instant::from_millis(50));
    assert_eq!(n.waiting(), Vec::<u64>::new());
    assert_eq!(n.r.pending_requests(), 0);
    assert_eq!(n.r.stats().timeouts, 1);
}

#[test]
fn request_timeout_answers_a_started_write_with_an_unknown_outcome_and_a_waiting_one_known() {
    let config = Config {
        request_timeout_ms: 250,
        ..Config::for_node(ME)
    };
    let mut n = TestReplica::with_config(config);
    n.request(1, write("w"));
    assert_eq!(n.request(2, write("x")), vec![], "waits behind request 1");
    let inv = n.inv(W, "w");
    assert_eq!(n.fire_timeout(), n.to_peers(inv.clone()), "100 ms");
    assert_eq!(n.fire_timeout(), n.to_peers(inv.clone()), "200 ms");

    let started = Err(RequestError::Timeout {
        outcome_unknown: true,
    });
    let never_started = Err(RequestError::Timeout {
        outcome_unknown: false,
    });
    assert_eq!(
        n.fire_timeout(),
        vec![reply(1, started), reply(2, never_started)],
        "250 ms"
    );
    assert_eq!(n.snap(), snap(Write, W, "w", 1).pending(W));
    assert_eq!(n.key().pending.as_ref().unwrap().client, None);

    // The write itself goes on: it keeps retransmitting and commits without a reply.
    assert_eq!(n.fire_timeout(), n.to_peers(inv), "300 ms");
    assert_eq!(n.acks_from_peers(W), n.to_peers(n.val(W, W)));
    assert_eq!(n.snap(), snap(Valid, W, "w", 1));
}

#[test]
fn message_loss_timeout_retransmits_the_inv_only_to_replicas_that_have_not_acked() {
    let mut n = write_pending();
    let ack = n.ack(W, W);
    n.recv(2, ack);
    let mlt = n.r.config().message_loss_timeout();
    assert_eq!(n.r.poll_timeout(), Some(n.now + mlt));

    let inv = n.inv(W, "w");
    assert_eq!(n.fire_timeout(), vec![send(3, inv.clone())]);
    assert_eq!(n.r.stats().retransmits, 1);
    assert_eq!(n.r.poll_timeout(), Some(n.now + mlt), "re-armed");
    assert_eq!(n.fire_timeout(), vec![send(3, inv)]);
    assert_eq!(n.acks(), vec![2], "a timeout never gives up on an ACK");
}

#[test]
fn message_loss_timeout_in_trans_retransmits_the_own_lower_inv() {
    let mut n = trans();
    let inv = n.inv(W, "w");
    assert_eq!(n.fire_timeout(), n.to_peers(inv));
    assert_eq!(n.snap(), snap(Trans, A, "a", 2).pending(W));
}
