//! Durability in the replica: which inputs emit `Persist`, and what waits for `handle_persisted`
//! in each mode (`memory`, `async`, `sync`).
//!
//! Like the transition-table tests, every test drives replica 1 of the view `{1, 2, 3}` on the
//! key `k` and compares the complete list of actions each input produces. Under `sync` the rule
//! is: an ACK for timestamp `ts` leaves only once a record of the key at `ts` or higher is
//! durable, and an update commits (VAL, client answer) only once its own record is durable.
//!
//! Timestamps used throughout:
//! - `W`  = 2.1: replica 1's write of `"w"` on an absent key;
//! - `A`  = 4.2: node 2's write of `"a"`;
//! - `LO` = 2.3: node 3's write of `"c"`, lower than `A`;
//! - `HI` = 6.3: node 3's write of `"d"`, higher than everything else.

mod support;

use hermes_core::membership::TransferEntry;
use hermes_core::{Action, Config, Durability, Key, KeyState, NodeId, PersistToken, Record, Ts};
use support::replica::*;

const W: Ts = Ts::new(2, NodeId(1));
const A: Ts = Ts::new(4, NodeId(2));
const LO: Ts = Ts::new(2, NodeId(3));
const HI: Ts = Ts::new(6, NodeId(3));

/// Replica 1 of `{1, 2, 3}` under `mode`.
fn node(mode: Durability) -> TestReplica {
    TestReplica::with_config(Config {
        durability: mode,
        ..Config::for_node(ME)
    })
}

/// Reports every `Persist` up to `token` durable; returns the actions that follow.
fn persisted(n: &mut TestReplica, token: u64) -> Vec<Action> {
    n.r.handle_persisted(n.now, PersistToken(token));
    drain(&mut n.r)
}

/// A `Persist` of the records `(key, ts, value)` with `token`.
fn persist(token: u64, records: &[(&str, Ts, Option<&str>)]) -> Action {
    Action::Persist {
        records: records
            .iter()
            .map(|(key, ts, value)| {
                let record = Record {
                    ts: *ts,
                    value: value.map(bytes),
                };
                (bytes(key), record)
            })
            .collect(),
        token: PersistToken(token),
    }
}

// ----- memory ---------------------------------------------------------------------------------

#[test]
fn memory_emits_no_persist_and_waits_for_nothing() {
    let mut n = node(Durability::Memory);
    let (inv, ack) = (n.inv(A, "a"), n.ack(A, A));
    assert_eq!(n.recv(2, inv), vec![send(2, ack)]);

    let mut n = node(Durability::Memory);
    assert_eq!(n.request(1, write("w")), n.to_peers(n.inv(W, "w")));
    let mut expected = n.to_peers(n.val(W, W));
    expected.push(reply(1, written(W)));
    assert_eq!(n.acks_from_peers(W), expected);
    assert_eq!(persisted(&mut n, 1), vec![], "a stray report is harmless");
    assert_eq!(n.r.stats().persists, 0);
}

// ----- async ----------------------------------------------------------------------------------

#[test]
fn async_follower_persists_the_adopted_record_and_acks_at_once() {
    let mut n = node(Durability::Async);
    let (inv, ack) = (n.inv(A, "a"), n.ack(A, A));
    assert_eq!(
        n.recv(2, inv),
        vec![send(2, ack), persist(1, &[("k", A, Some("a"))])]
    );
    assert_eq!(persisted(&mut n, 1), vec![]);
}

#[test]
fn async_coordinator_persists_its_record_and_commits_without_waiting() {
    let mut n = node(Durability::Async);
    let mut expected = n.to_peers(n.inv(W, "w"));
    expected.push(persist(1, &[("k", W, Some("w"))]));
    assert_eq!(n.request(1, write("w")), expected);

    let mut expected = n.to_peers(n.val(W, W));
    expected.push(reply(1, written(W)));
    assert_eq!(n.acks_from_peers(W), expected);
    assert_eq!(persisted(&mut n, 1), vec![]);
}

#[test]
fn async_a_duplicate_inv_persists_nothing() {
    let mut n = node(Durability::Async);
    let inv = n.inv(A, "a");
    n.recv(2, inv.clone());
    assert_eq!(n.recv(2, inv), vec![send(2, n.ack(A, A))]);
}

// ----- sync, follower -------------------------------------------------------------------------

#[test]
fn sync_follower_acks_an_inv_only_once_its_record_is_durable() {
    let mut n = node(Durability::Sync);
    let inv = n.inv(A, "a");
    assert_eq!(n.recv(2, inv), vec![persist(1, &[("k", A, Some("a"))])]);
    assert_eq!(n.snap(), snap(KeyState::Invalid, A, "a", 2));
    assert_eq!(persisted(&mut n, 1), vec![send(2, n.ack(A, A))]);
    assert_eq!(n.r.stats().acks_after_persist, 1);
}

#[test]
fn sync_a_duplicate_inv_of_a_durable_record_is_acked_at_once() {
    let mut n = node(Durability::Sync);
    let inv = n.inv(A, "a");
    n.recv(2, inv.clone());
    persisted(&mut n, 1);
    assert_eq!(n.recv(3, inv), vec![send(3, n.ack(A, A))]);
}

#[test]
fn sync_a_duplicate_inv_before_the_record_is_durable_gets_one_ack() {
    let mut n = node(Durability::Sync);
    let inv = n.inv(A, "a");
    n.recv(2, inv.clone());
    assert_eq!(n.recv(2, inv), vec![]);
    assert_eq!(persisted(&mut n, 1), vec![send(2, n.ack(A, A))]);
}

#[test]
fn sync_a_newer_inv_does_not_cancel_the_ack_owed_for_the_older_one() {
    let mut n = node(Durability::Sync);
    let inv = n.inv(A, "a");
    n.recv(2, inv);
    let inv = n.inv(HI, "d");
    assert_eq!(n.recv(3, inv), vec![persist(2, &[("k", HI, Some("d"))])]);
    // The record at A is durable: A's ACK may go, HI's may not.
    assert_eq!(persisted(&mut n, 1), vec![send(2, n.ack(A, A))]);
    assert_eq!(persisted(&mut n, 2), vec![send(3, n.ack(HI, HI))]);
}

#[test]
fn sync_a_group_commit_releases_every_ack_it_covers_in_timestamp_order() {
    let mut n = node(Durability::Sync);
    let inv = n.inv(A, "a");
    n.recv(2, inv);
    let inv = n.inv(HI, "d");
    n.recv(3, inv);
    assert_eq!(
        persisted(&mut n, 2),
        vec![send(2, n.ack(A, A)), send(3, n.ack(HI, HI))]
    );
}

#[test]
fn sync_a_lower_write_inv_waits_for_a_durable_record_at_least_as_high() {
    let mut n = node(Durability::Sync);
    let inv = n.inv(A, "a");
    n.recv(2, inv);
    let inv = n.inv(LO, "c");
    assert_eq!(n.recv(3, inv), vec![], "nothing durable vouches for LO yet");
    assert_eq!(
        persisted(&mut n, 1),
        vec![send(3, n.ack(LO, A)), send(2, n.ack(A, A))]
    );
}

#[test]
fn sync_a_lower_rmw_inv_is_answered_with_the_held_state_at_once() {
    let mut n = node(Durability::Sync);
    let inv = n.inv(A, "a");
    n.recv(2, inv);
    let rmw = n.rmw_inv(LO, "c");
    // The abort-INV vouches for nothing committed: it does not wait.
    assert_eq!(n.recv(3, rmw), vec![send(3, n.inv(A, "a"))]);
}

#[test]
fn sync_a_view_change_drops_the_acks_owed_in_the_old_epoch() {
    let mut n = node(Durability::Sync);
    let inv = n.inv(A, "a");
    n.recv(2, inv);
    assert_eq!(n.install(2, &[1, 2, 3]), vec![]);
    assert_eq!(
        persisted(&mut n, 1),
        vec![],
        "nobody counts an ACK of epoch 1"
    );
    // The coordinator re-sends its INV in epoch 2; the record is durable, so it is ACKed at once.
    let inv = n.inv(A, "a");
    assert_eq!(n.recv(2, inv), vec![send(2, n.ack(A, A))]);
}

#[test]
fn sync_an_old_token_changes_nothing_and_a_future_one_counts_as_the_last_emitted() {
    let mut n = node(Durability::Sync);
    let inv = n.inv(A, "a");
    n.recv(2, inv);
    assert_eq!(persisted(&mut n, 0), vec![]);
    assert_eq!(persisted(&mut n, 7), vec![send(2, n.ack(A, A))]);
    assert_eq!(n.r.durable_token(), PersistToken(1));
    // The next record gets the next token and is not durable yet.
    let inv = n.inv(HI, "d");
    assert_eq!(n.recv(3, inv), vec![persist(2, &[("k", HI, Some("d"))])]);
    assert_eq!(persisted(&mut n, 1), vec![]);
    assert_eq!(persisted(&mut n, 2), vec![send(3, n.ack(HI, HI))]);
}

// ----- sync, coordinator ----------------------------------------------------------------------

#[test]
fn sync_coordinator_commits_only_once_its_own_record_is_durable() {
    let mut n = node(Durability::Sync);
    let mut expected = n.to_peers(n.inv(W, "w"));
    expected.push(persist(1, &[("k", W, Some("w"))]));
    assert_eq!(n.request(1, write("w")), expected);
    assert_eq!(
        n.acks_from_peers(W),
        vec![],
        "every ACK is in, the record is not durable"
    );
    assert_eq!(n.acks(), vec![2, 3]);
    assert_eq!(n.snap(), snap(KeyState::Write, W, "w", 1).pending(W));

    let mut expected = n.to_peers(n.val(W, W));
    expected.push(reply(1, written(W)));
    assert_eq!(persisted(&mut n, 1), expected);
    assert_eq!(n.snap(), snap(KeyState::Valid, W, "w", 1));
}

#[test]
fn sync_coordinator_whose_record_is_durable_first_commits_on_the_last_ack() {
    let mut n = node(Durability::Sync);
    n.request(1, write("w"));
    assert_eq!(persisted(&mut n, 1), vec![]);
    let mut expected = n.to_peers(n.val(W, W));
    expected.push(reply(1, written(W)));
    assert_eq!(n.acks_from_peers(W), expected);
}

#[test]
fn sync_cas_swaps_only_once_its_record_is_durable() {
    let mut n = node(Durability::Sync);
    let rmw = ts(1, 1);
    let mut expected = n.to_peers(n.rmw_inv(rmw, "x"));
    expected.push(persist(1, &[("k", rmw, Some("x"))]));
    assert_eq!(n.request(1, cas(None, "x")), expected);
    assert_eq!(n.acks_from_peers(rmw), vec![]);
    let mut expected = n.to_peers(n.val(rmw, rmw));
    expected.push(reply(1, swapped(rmw)));
    assert_eq!(persisted(&mut n, 1), expected);
}

#[test]
fn sync_superseded_write_completes_once_durable_while_the_higher_ack_still_waits() {
    let mut n = node(Durability::Sync);
    n.request(1, write("w"));
    let inv = n.inv(A, "a");
    assert_eq!(n.recv(2, inv), vec![persist(2, &[("k", A, Some("a"))])]);
    assert_eq!(n.snap(), snap(KeyState::Trans, A, "a", 2).pending(W));
    let ack = n.ack(W, A);
    n.recv(2, ack);
    let ack = n.ack(W, W);
    assert_eq!(n.recv(3, ack), vec![]);
    // W's own record is durable: the superseded write completes; A is not durable yet.
    assert_eq!(persisted(&mut n, 1), vec![reply(1, written(W))]);
    assert_eq!(n.snap(), snap(KeyState::Invalid, A, "a", 2));
    assert_eq!(persisted(&mut n, 2), vec![send(2, n.ack(A, A))]);
}

#[test]
fn sync_a_view_change_while_the_record_is_not_durable_needs_new_acks_and_the_record() {
    let mut n = node(Durability::Sync);
    n.request(1, write("w"));
    n.acks_from_peers(W);
    let actions = n.install(2, &[1, 2, 3]);
    assert_eq!(actions, n.to_peers(n.inv(W, "w")), "re-sent in epoch 2");
    assert_eq!(
        persisted(&mut n, 1),
        vec![],
        "the ACKs of epoch 1 no longer count"
    );
    let mut expected = n.to_peers(n.val(W, W));
    expected.push(reply(1, written(W)));
    assert_eq!(n.acks_from_peers(W), expected);
}

#[test]
fn sync_a_replay_commits_only_once_the_replayed_record_is_durable() {
    let mut n = node(Durability::Sync);
    let inv = n.inv(A, "a");
    n.recv(2, inv);
    n.request(2, read());
    // Node 2 leaves: replica 1 replays A, whose record is not durable yet.
    let actions = n.install(2, &[1, 3]);
    assert_eq!(actions, vec![send(3, n.inv(A, "a"))]);
    let ack = n.ack(A, A);
    assert_eq!(n.recv(3, ack), vec![]);
    assert_eq!(
        persisted(&mut n, 1),
        vec![send(3, n.val(A, A)), reply(2, value(Some("a")))]
    );
}

// ----- batching and recovery ------------------------------------------------------------------

#[test]
fn one_input_emits_one_persist_and_tokens_rise() {
    let mut n = node(Durability::Sync);
    let entry = |key: &str, ts: Ts, value: &str| TransferEntry {
        key: bytes(key),
        ts,
        value: Some(bytes(value)),
        valid: true,
        is_rmw: false,
        last_writer: NodeId(2),
    };
    n.r.install_transferred(n.now, vec![entry("a", A, "1"), entry("b", HI, "2")]);
    assert_eq!(
        drain(&mut n.r),
        vec![persist(1, &[("a", A, Some("1")), ("b", HI, Some("2"))])]
    );
    assert_eq!(n.r.last_persist_token(), PersistToken(1));
    let inv = n.inv(A, "a");
    assert_eq!(n.recv(2, inv), vec![persist(2, &[("k", A, Some("a"))])]);
    assert_eq!(n.r.last_persist_token(), PersistToken(2));
}

#[test]
fn recovered_records_are_invalid_and_not_persisted_again() {
    let mut n = node(Durability::Sync);
    let records = vec![
        (
            Key::from_static(b"k"),
            Record {
                ts: A,
                value: Some(bytes("a")),
            },
        ),
        (
            Key::from_static(b"gone"),
            Record {
                ts: Ts::ZERO,
                value: None,
            },
        ),
    ];
    n.r.load_recovered(records);
    assert_eq!(drain(&mut n.r), vec![]);
    assert_eq!(n.snap(), snap(KeyState::Invalid, A, "a", 2));
    assert!(n.r.key(b"gone").is_none());
    assert_eq!(
        n.request(1, read()),
        vec![],
        "a recovered record is not served"
    );
    assert_eq!(n.waiting(), vec![1]);
    // It is durable already: a duplicate INV is ACKed at once.
    let inv = n.inv(A, "a");
    assert_eq!(n.recv(2, inv), vec![send(2, n.ack(A, A))]);
    // Nobody validates it: after the message-loss timeout the waiting read replays it, and
    // the replay commits at once (the record needs no new Persist). The store keeps no RMW
    // flag, so the replay is flagged as an RMW: a higher record elsewhere would win.
    assert_eq!(n.fire_timeout(), n.to_peers(n.rmw_inv(A, "a")));
    let mut expected = n.to_peers(n.val(A, A));
    expected.push(reply(1, value(Some("a"))));
    assert_eq!(n.acks_from_peers(A), expected);
}

#[test]
fn a_recovered_record_is_replayed_as_an_rmw_and_gives_way_to_a_higher_one() {
    let mut n = node(Durability::Sync);
    let record = Record {
        ts: A,
        value: Some(bytes("a")),
    };
    n.r.load_recovered(vec![(Key::from_static(b"k"), record)]);
    n.r.replay_invalid_keys(n.now);
    assert_eq!(drain(&mut n.r), n.to_peers(n.rmw_inv(A, "a")));
    assert_eq!(n.snap(), snap(KeyState::Replay, A, "a", 1).pending(A));
    // Node 3 holds a higher record and answers with it, as it answers any lower RMW-INV: the
    // replay stops (a write replay would go on to commit below it).
    let higher = n.inv(HI, "d");
    assert_eq!(n.recv(3, higher), vec![persist(1, &[("k", HI, Some("d"))])]);
    assert_eq!(n.snap(), snap(KeyState::Invalid, HI, "d", 3));
    let late = n.ack(A, A);
    assert_eq!(
        n.recv(2, late),
        vec![],
        "a late ACK of the given-up replay counts for nothing"
    );
    assert_eq!(persisted(&mut n, 1), vec![send(3, n.ack(HI, HI))]);
}
