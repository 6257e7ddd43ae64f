//! Tests of the linearizability checker `hermes_core::history`.

use bytes::Bytes;
use hermes_core::history::{CheckError, History, HistoryOp, HistoryRet, OpId};

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn write(value: &str) -> HistoryOp {
    HistoryOp::Write(b(value))
}

fn read(value: Option<&str>) -> HistoryRet {
    HistoryRet::Read(value.map(b))
}

fn cas(expected: Option<&str>, new: &str) -> HistoryOp {
    HistoryOp::Cas {
        expected: expected.map(b),
        new: b(new),
    }
}

/// Records a completed operation on key "k".
fn op(h: &mut History, client: u64, op: HistoryOp, ret: HistoryRet, from: u64, to: u64) -> OpId {
    let id = h.invoke(client, b("k"), op, from);
    h.complete(id, ret, to);
    id
}

fn assert_violation(h: &History) -> hermes_core::history::Violation {
    match h.check() {
        Err(CheckError::NotLinearizable(violation)) => violation,
        other => panic!("expected a violation, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Required rejections.

#[test]
fn rejects_stale_read_after_completed_write() {
    let mut h = History::new();
    op(&mut h, 1, write("v1"), HistoryRet::Ok, 0, 10);
    let stale = op(&mut h, 2, HistoryOp::Read, read(None), 20, 30);
    let violation = assert_violation(&h);
    assert_eq!(violation.key, b("k"));
    assert_eq!(violation.op, stale);
    let text = violation.to_string();
    assert!(text.contains("key \"k\""), "{text}");
    assert!(text.contains("read"), "{text}");

    // The same with an older value instead of absent.
    let mut h = History::new();
    op(&mut h, 1, write("v0"), HistoryRet::Ok, 0, 10);
    op(&mut h, 1, write("v1"), HistoryRet::Ok, 20, 30);
    op(&mut h, 2, HistoryOp::Read, read(Some("v0")), 40, 50);
    assert_violation(&h);
}

#[test]
fn rejects_two_swaps_from_the_same_value() {
    let mut h = History::new();
    op(&mut h, 1, write("v0"), HistoryRet::Ok, 0, 10);
    op(&mut h, 2, cas(Some("v0"), "a"), HistoryRet::Swapped, 20, 40);
    op(&mut h, 3, cas(Some("v0"), "b"), HistoryRet::Swapped, 25, 45);
    assert_violation(&h);

    // From absent, without any write.
    let mut h = History::new();
    op(&mut h, 2, cas(None, "a"), HistoryRet::Swapped, 0, 40);
    op(&mut h, 3, cas(None, "b"), HistoryRet::Swapped, 5, 45);
    assert_violation(&h);
}

#[test]
fn rejects_read_of_failed_write() {
    let mut h = History::new();
    let w = h.invoke(1, b("k"), write("v1"), 0);
    op(&mut h, 2, HistoryOp::Read, read(Some("v1")), 5, 15);
    h.fail(w);
    assert_violation(&h);
}

// ---------------------------------------------------------------------------------------------
// Other rejections.

#[test]
fn rejects_value_never_written() {
    let mut h = History::new();
    op(&mut h, 1, HistoryOp::Read, read(Some("ghost")), 0, 10);
    assert_violation(&h);
}

#[test]
fn rejects_reads_going_back_in_time() {
    // Two concurrent writes; one reader sees v2 then v1: v1 would have to be linearized after v2
    // (for the second read) and before it (for the first).
    let mut h = History::new();
    op(&mut h, 1, write("v1"), HistoryRet::Ok, 0, 100);
    op(&mut h, 2, write("v2"), HistoryRet::Ok, 0, 100);
    op(&mut h, 3, HistoryOp::Read, read(Some("v1")), 10, 20);
    op(&mut h, 3, HistoryOp::Read, read(Some("v2")), 30, 40);
    op(&mut h, 3, HistoryOp::Read, read(Some("v1")), 50, 60);
    assert_violation(&h);
}

#[test]
fn rejects_unknown_write_applied_twice() {
    // An unknown-outcome write takes effect at most once.
    let mut h = History::new();
    h.invoke(1, b("k"), write("x"), 0);
    op(&mut h, 2, HistoryOp::Read, read(Some("x")), 10, 20);
    op(&mut h, 2, write("y"), HistoryRet::Ok, 30, 40);
    op(&mut h, 2, HistoryOp::Read, read(Some("x")), 50, 60);
    assert_violation(&h);
}

#[test]
fn identical_unknown_writes_each_take_effect_at_most_once() {
    let history = |reads: u64| {
        let mut h = History::new();
        for client in 0..3 {
            h.invoke(client, b("k"), write("a"), client);
        }
        for i in 0..reads {
            op(
                &mut h,
                9,
                HistoryOp::Read,
                read(Some("a")),
                100 * i + 10,
                100 * i + 20,
            );
            op(
                &mut h,
                9,
                write("b"),
                HistoryRet::Ok,
                100 * i + 30,
                100 * i + 40,
            );
            op(
                &mut h,
                9,
                HistoryOp::Read,
                read(Some("b")),
                100 * i + 50,
                100 * i + 60,
            );
        }
        h
    };
    assert_eq!(history(3).check(), Ok(()));
    assert_violation(&history(4));
}

#[test]
fn rejects_unknown_write_observed_before_invocation() {
    let mut h = History::new();
    op(&mut h, 2, HistoryOp::Read, read(Some("x")), 0, 10);
    h.invoke(1, b("k"), write("x"), 20);
    assert_violation(&h);
}

#[test]
fn rejects_failed_compare_when_state_was_expected() {
    let mut h = History::new();
    op(&mut h, 1, write("v0"), HistoryRet::Ok, 0, 10);
    op(
        &mut h,
        2,
        cas(Some("v0"), "v1"),
        HistoryRet::CasFailed,
        20,
        30,
    );
    assert_violation(&h);
}

#[test]
fn rejects_read_after_delete() {
    let mut h = History::new();
    op(&mut h, 1, write("v0"), HistoryRet::Ok, 0, 10);
    op(&mut h, 1, HistoryOp::Delete, HistoryRet::Ok, 20, 30);
    op(&mut h, 2, HistoryOp::Read, read(Some("v0")), 40, 50);
    assert_violation(&h);
}

#[test]
fn equal_times_are_ordered_by_recording_order() {
    // The write's completion is recorded before the read's invocation at the same time: the
    // write precedes the read.
    let mut h = History::new();
    let w = h.invoke(1, b("k"), write("v1"), 0);
    h.complete(w, HistoryRet::Ok, 5);
    let r = h.invoke(2, b("k"), HistoryOp::Read, 5);
    h.complete(r, read(None), 9);
    assert_violation(&h);

    // Recorded the other way round, they overlap.
    let mut h = History::new();
    let w = h.invoke(1, b("k"), write("v1"), 0);
    let r = h.invoke(2, b("k"), HistoryOp::Read, 5);
    h.complete(w, HistoryRet::Ok, 5);
    h.complete(r, read(None), 9);
    assert_eq!(h.check(), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// Acceptances.

#[test]
fn accepts_empty_and_trivial_histories() {
    assert_eq!(History::new().check(), Ok(()));
    let mut h = History::new();
    op(&mut h, 1, HistoryOp::Read, read(None), 0, 10);
    op(&mut h, 1, write("v1"), HistoryRet::Ok, 20, 30);
    op(&mut h, 1, HistoryOp::Read, read(Some("v1")), 40, 50);
    assert_eq!(h.len(), 3);
    assert!(!h.is_empty());
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn accepts_concurrent_read_seeing_either_value() {
    for seen in [None, Some("v1")] {
        let mut h = History::new();
        op(&mut h, 1, write("v1"), HistoryRet::Ok, 0, 20);
        op(&mut h, 2, HistoryOp::Read, read(seen), 10, 30);
        assert_eq!(h.check(), Ok(()), "read {seen:?}");
    }
    // Two reads inside one write may see old then new, but not new then old.
    let mut h = History::new();
    op(&mut h, 1, write("v1"), HistoryRet::Ok, 0, 100);
    op(&mut h, 2, HistoryOp::Read, read(None), 10, 20);
    op(&mut h, 2, HistoryOp::Read, read(Some("v1")), 30, 40);
    assert_eq!(h.check(), Ok(()));
    let mut h = History::new();
    op(&mut h, 1, write("v1"), HistoryRet::Ok, 0, 100);
    op(&mut h, 2, HistoryOp::Read, read(Some("v1")), 10, 20);
    op(&mut h, 2, HistoryOp::Read, read(None), 30, 40);
    assert_violation(&h);
}

#[test]
fn accepts_unknown_write_observed_later() {
    let mut h = History::new();
    h.invoke(1, b("k"), write("x"), 0);
    op(&mut h, 2, HistoryOp::Read, read(None), 10, 20);
    op(&mut h, 2, write("y"), HistoryRet::Ok, 30, 40);
    op(&mut h, 2, HistoryOp::Read, read(Some("y")), 50, 60);
    // Took effect long after its client gave up.
    op(&mut h, 2, HistoryOp::Read, read(Some("x")), 1_000, 1_010);
    op(&mut h, 3, HistoryOp::Read, read(Some("x")), 2_000, 2_010);
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn accepts_unknown_write_never_observed() {
    let mut h = History::new();
    op(&mut h, 1, write("v0"), HistoryRet::Ok, 0, 10);
    h.invoke(1, b("k"), write("lost"), 20);
    h.invoke(3, b("k"), HistoryOp::Delete, 25);
    op(&mut h, 2, HistoryOp::Read, read(Some("v0")), 30, 40);
    op(
        &mut h,
        2,
        cas(Some("v0"), "v1"),
        HistoryRet::Swapped,
        50,
        60,
    );
    op(&mut h, 2, HistoryOp::Read, read(Some("v1")), 70, 80);
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn accepts_unknown_swap_either_way() {
    for seen in ["v0", "v1"] {
        let mut h = History::new();
        op(&mut h, 1, write("v0"), HistoryRet::Ok, 0, 10);
        h.invoke(2, b("k"), cas(Some("v0"), "v1"), 20);
        op(&mut h, 3, HistoryOp::Read, read(Some(seen)), 30, 40);
        assert_eq!(h.check(), Ok(()), "read {seen}");
    }
}

#[test]
fn ignores_reads_with_unknown_outcome_and_failed_ops() {
    let mut h = History::new();
    h.invoke(1, b("k"), HistoryOp::Read, 0);
    let f = h.invoke(2, b("k"), write("never"), 0);
    h.fail(f);
    let r = h.invoke(3, b("k"), HistoryOp::Read, 0);
    h.fail(r);
    op(&mut h, 4, HistoryOp::Read, read(None), 10, 20);
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn accepts_delete_then_read_absent() {
    let mut h = History::new();
    op(&mut h, 1, write("v0"), HistoryRet::Ok, 0, 10);
    op(&mut h, 1, HistoryOp::Delete, HistoryRet::Ok, 20, 30);
    op(&mut h, 2, HistoryOp::Read, read(None), 40, 50);
    op(&mut h, 2, cas(None, "v1"), HistoryRet::Swapped, 60, 70);
    op(&mut h, 2, HistoryOp::Read, read(Some("v1")), 80, 90);
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn accepts_failed_compare_consistent_with_state() {
    let mut h = History::new();
    op(&mut h, 1, write("v0"), HistoryRet::Ok, 0, 10);
    op(
        &mut h,
        2,
        cas(Some("other"), "v1"),
        HistoryRet::CasFailed,
        20,
        30,
    );
    op(&mut h, 2, cas(None, "v1"), HistoryRet::CasFailed, 40, 50);
    op(&mut h, 3, HistoryOp::Read, read(Some("v0")), 60, 70);
    assert_eq!(h.check(), Ok(()));

    // A failed compare concurrent with a swap away from the expected value.
    let mut h = History::new();
    op(&mut h, 1, write("v0"), HistoryRet::Ok, 0, 10);
    op(
        &mut h,
        2,
        cas(Some("v0"), "v1"),
        HistoryRet::Swapped,
        20,
        40,
    );
    op(
        &mut h,
        3,
        cas(Some("v0"), "v2"),
        HistoryRet::CasFailed,
        30,
        50,
    );
    assert_eq!(h.check(), Ok(()));

    // An unknown write explains a failed compare.
    let mut h = History::new();
    op(&mut h, 1, write("v0"), HistoryRet::Ok, 0, 10);
    h.invoke(9, b("k"), write("z"), 15);
    op(
        &mut h,
        2,
        cas(Some("v0"), "v1"),
        HistoryRet::CasFailed,
        20,
        30,
    );
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn checks_keys_independently() {
    let mut h = History::new();
    for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
        let t = i as u64;
        let w = h.invoke(1, b(key), write(key), t);
        let r = h.invoke(2, b(key), HistoryOp::Read, 100 + t);
        h.complete(w, HistoryRet::Ok, 200 + t);
        h.complete(r, HistoryRet::Read(Some(b(key))), 300 + t);
        let r = h.invoke(2, b(key), HistoryOp::Read, 400 + t);
        h.complete(r, HistoryRet::Read(Some(b(key))), 500 + t);
    }
    assert_eq!(h.check(), Ok(()));

    // Reading another key's value on "b" is a violation of "b" only.
    let r = h.invoke(3, b("b"), HistoryOp::Read, 600);
    h.complete(r, HistoryRet::Read(Some(b("a"))), 610);
    let violation = assert_violation(&h);
    assert_eq!(violation.key, b("b"));
    assert_eq!(violation.op, r);
}

// ---------------------------------------------------------------------------------------------
// Errors other than violations.

#[test]
fn reports_recording_mistakes() {
    let mut h = History::new();
    let w = h.invoke(1, b("k"), write("v"), 10);
    h.complete(w, HistoryRet::Swapped, 20);
    assert!(matches!(h.check(), Err(CheckError::Malformed(_))));

    let mut h = History::new();
    let w = h.invoke(1, b("k"), write("v"), 10);
    h.complete(w, HistoryRet::Ok, 5);
    assert!(matches!(h.check(), Err(CheckError::Malformed(_))));

    let mut h = History::new();
    let w = h.invoke(1, b("k"), write("v"), 10);
    h.complete(w, HistoryRet::Ok, 20);
    h.fail(w);
    let error = h.check().unwrap_err();
    assert!(matches!(error, CheckError::Malformed(_)));
    assert!(error.to_string().contains("#0"), "{error}");

    let mut other = History::new();
    other.fail(w);
    assert!(matches!(other.check(), Err(CheckError::Malformed(_))));
}

#[test]
fn step_limit_makes_the_check_inconclusive() {
    // Many concurrent writes and a read that needs a particular order: not decidable in 50 steps.
    let mut h = History::new();
    for client in 0..12 {
        op(
            &mut h,
            client,
            write(&format!("v{client}")),
            HistoryRet::Ok,
            client,
            1_000 + client,
        );
    }
    op(&mut h, 99, HistoryOp::Read, read(Some("v0")), 2_000, 2_010);
    let error = h.check_with_limit(50).unwrap_err();
    match &error {
        CheckError::Inconclusive { key, steps } => {
            assert_eq!(key, &b("k"));
            assert!(*steps >= 50);
        }
        other => panic!("expected an inconclusive check, got {other:?}"),
    }
    assert!(error.to_string().contains("undecided"), "{error}");
    assert_eq!(h.check(), Ok(()));
}

#[test]
fn violation_reports_are_readable() {
    // A stale read, found from real-time order alone.
    let mut h = History::new();
    for i in 0..40u64 {
        op(
            &mut h,
            i % 3,
            write(&format!("v{i}")),
            HistoryRet::Ok,
            i * 10,
            i * 10 + 5,
        );
    }
    let bad = op(&mut h, 7, HistoryOp::Read, read(Some("v3")), 1_000, 1_010);
    let violation = assert_violation(&h);
    assert_eq!(violation.op, bad);
    let text = violation.to_string();
    assert!(
        text.starts_with("key \"k\" is not linearizable: "),
        "{text}"
    );
    assert!(
        text.contains("#40 (client 7 read -> \"v3\" [1000, 1010])"),
        "{text}"
    );
    assert!(
        text.contains("only #3 (client 0 write \"v3\" -> ok [30, 35])"),
        "{text}"
    );
    assert!(
        text.contains("\n  #39 client 0 write \"v39\" -> ok [390, 395]"),
        "{text}"
    );
    assert!(text.lines().count() < 30, "{text}");

    // Found by the search: the prefix it reached is shown.
    let mut h = History::new();
    op(&mut h, 1, write("v1"), HistoryRet::Ok, 0, 100);
    op(&mut h, 2, write("v2"), HistoryRet::Ok, 0, 100);
    op(&mut h, 3, HistoryOp::Read, read(Some("v1")), 10, 20);
    op(&mut h, 3, HistoryOp::Read, read(Some("v2")), 30, 40);
    let bad = op(&mut h, 3, HistoryOp::Read, read(Some("v1")), 50, 60);
    let violation = assert_violation(&h);
    assert_eq!(violation.op, bad);
    assert_eq!(violation.prefix.len(), 3);
    let text = violation.to_string();
    assert!(text.contains("the register then holds \"v2\""), "{text}");
    assert!(
        text.contains("Prefix:\n  #0 client 1 write \"v1\""),
        "{text}"
    );

    // Values that are not printable text are shown in hex, long ones cut short.
    let mut h = History::new();
    let w = h.invoke(
        1,
        Bytes::from_static(b"\x00\xff"),
        HistoryOp::Write(Bytes::from(vec![b'x'; 100])),
        0,
    );
    h.complete(w, HistoryRet::Ok, 1);
    let r = h.invoke(1, Bytes::from_static(b"\x00\xff"), HistoryOp::Read, 2);
    h.complete(r, HistoryRet::Read(None), 3);
    let text = h.check().unwrap_err().to_string();
    assert!(text.starts_with("key 0x00ff is not linearizable"), "{text}");
    assert!(
        text.contains(&format!("write \"{}\"…", "x".repeat(32))),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// JSON lines.

#[test]
fn loads_json_lines() {
    let input = r#"
{"process":3,"type":"invoke","f":"write","key":"k7","value":"v123"}
{"process":4,"type":"invoke","f":"read","key":"k7","value":null}
{"process":3,"type":"ok","f":"write","key":"k7","value":"v123"}
{"process":4,"type":"ok","f":"read","key":"k7","value":null}
{"process":5,"type":"invoke","f":"cas","key":"k7","value":["v123","v124"]}
{"process":5,"type":"ok","f":"cas","key":"k7","value":["v123","v124"]}
{"process":6,"type":"invoke","f":"cas","key":"k7","value":["v123","v125"]}
{"process":6,"type":"fail","f":"cas","key":"k7","value":["v123","v125"]}
{"process":3,"type":"invoke","f":"write","key":"k7","value":"lost"}
{"process":3,"type":"fail","f":"write","key":"k7","value":"lost"}
{"process":7,"type":"invoke","f":"write","key":"k8","value":"maybe"}
{"process":7,"type":"info","f":"write","key":"k8","value":"maybe"}
{"process":8,"type":"invoke","f":"delete","key":"k7"}
{"process":8,"type":"ok","f":"delete","key":"k7"}
{"process":4,"type":"invoke","f":"read","key":"k7","value":null}
{"process":4,"type":"ok","f":"read","key":"k7","value":null}
{"process":4,"type":"invoke","f":"read","key":"k8","value":null,"time":12.5}
{"process":4,"type":"ok","f":"read","key":"k8","value":"maybe","index":17}
{"process":9,"type":"invoke","f":"write","key":"k8","value":"in flight"}
"#;
    let h = History::from_jsonl(input).unwrap();
    assert_eq!(h.len(), 10);
    assert_eq!(h.check(), Ok(()));

    // A read of the failed write is caught.
    let bad = format!(
        "{input}{}\n{}\n",
        r#"{"process":10,"type":"invoke","f":"read","key":"k7","value":null}"#,
        r#"{"process":10,"type":"ok","f":"read","key":"k7","value":"lost"}"#
    );
    let violation = match History::from_jsonl(&bad).unwrap().check() {
        Err(CheckError::NotLinearizable(violation)) => violation,
        other => panic!("expected a violation, got {other:?}"),
    };
    assert_eq!(violation.key, b("k7"));
}

#[test]
fn json_lines_errors_name_the_line() {
    let input = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\"}\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"key\":\"k\",\"value\":[\"a\"]\n";
    let error = History::from_jsonl(input).unwrap_err();
    assert_eq!(error.line, 2);
    assert!(error.to_string().starts_with("line 2:"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Randomized tests.

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A recording event, replayed into a [`History`] in order.
#[derive(Clone, Debug)]
enum Event {
    Invoke {
        client: u64,
        key: Bytes,
        op: HistoryOp,
    },
    /// Completes the op invoked by the `n`-th `Invoke` event.
    Complete {
        op: usize,
        ret: HistoryRet,
    },
    Fail {
        op: usize,
    },
}

fn replay(events: &[Event]) -> History {
    let mut h = History::new();
    let mut ids = Vec::new();
    for (time, event) in events.iter().enumerate() {
        let time = time as u64;
        match event {
            Event::Invoke { client, key, op } => {
                ids.push(h.invoke(*client, key.clone(), op.clone(), time))
            }
            Event::Complete { op, ret } => h.complete(ids[*op], ret.clone(), time),
            Event::Fail { op } => h.fail(ids[*op]),
        }
    }
    h
}

/// Applies `op` to the register `state`; returns its result.
fn apply(state: &mut Option<Bytes>, op: &HistoryOp) -> HistoryRet {
    match op {
        HistoryOp::Read => HistoryRet::Read(state.clone()),
        HistoryOp::Write(value) => {
            *state = Some(value.clone());
            HistoryRet::Ok
        }
        HistoryOp::Delete => {
            *state = None;
            HistoryRet::Ok
        }
        HistoryOp::Cas { expected, new } => {
            if state == expected {
                *state = Some(new.clone());
                HistoryRet::Swapped
            } else {
                HistoryRet::CasFailed
            }
        }
    }
}

/// Parameters of a generated history.
struct Shape {
    ops: usize,
    keys: usize,
    clients: usize,
    /// Percent of operations whose reply is lost (outcome unknown).
    unknown: u64,
    /// Percent of operations that fail without taking effect.
    failed: u64,
}

/// Generates a linearizable history by running a sequential register per key: every operation
/// takes effect at one instant between its invocation and its completion (or, for an unknown
/// outcome, at any later instant or never).
fn generate(rng: &mut Rng, shape: &Shape) -> Vec<Event> {
    #[derive(Clone)]
    enum Client {
        Idle,
        /// The op (event index of its invocation), and its result once it took effect.
        Busy(usize, Option<HistoryRet>),
    }
    let keys: Vec<Bytes> = (0..shape.keys).map(|k| b(&format!("key{k}"))).collect();
    let mut states: Vec<Option<Bytes>> = vec![None; shape.keys];
    let mut written: Vec<Vec<Option<Bytes>>> = vec![vec![None]; shape.keys];
    let mut clients = vec![Client::Idle; shape.clients];
    // Invocations: (key index, op).
    let mut invoked: Vec<(usize, HistoryOp)> = Vec::new();
    // Unknown-outcome ops that have not taken effect yet.
    let mut orphans: Vec<usize> = Vec::new();
    let mut events = Vec::new();
    let mut value = 0u64;
    while invoked.len() < shape.ops || clients.iter().any(|c| matches!(c, Client::Busy(..))) {
        if !orphans.is_empty() && rng.chance(3) {
            let o = orphans.swap_remove(rng.below(orphans.len() as u64) as usize);
            let (k, op) = &invoked[o];
            apply(&mut states[*k], op);
            continue;
        }
        let c = rng.below(shape.clients as u64) as usize;
        match clients[c].clone() {
            Client::Idle if invoked.len() < shape.ops => {
                let k = rng.below(shape.keys as u64) as usize;
                value += 1;
                let fresh = b(&format!("v{value}"));
                let op = match rng.below(10) {
                    0..=3 => HistoryOp::Read,
                    4..=6 => HistoryOp::Write(fresh),
                    7 => HistoryOp::Delete,
                    _ => {
                        let expected = if rng.chance(60) {
                            states[k].clone()
                        } else {
                            let seen = &written[k];
                            seen[rng.below(seen.len() as u64) as usize].clone()
                        };
                        HistoryOp::Cas {
                            expected,
                            new: fresh,
                        }
                    }
                };
                if let HistoryOp::Write(v) | HistoryOp::Cas { new: v, .. } = &op {
                    written[k].push(Some(v.clone()));
                }
                events.push(Event::Invoke {
                    client: c as u64,
                    key: keys[k].clone(),
                    op: op.clone(),
                });
                clients[c] = Client::Busy(invoked.len(), None);
                invoked.push((k, op));
            }
            Client::Idle => {}
            Client::Busy(o, None) => {
                if rng.chance(shape.failed) {
                    events.push(Event::Fail { op: o });
                    clients[c] = Client::Idle;
                } else if rng.chance(shape.unknown) {
                    orphans.push(o);
                    clients[c] = Client::Idle;
                } else {
                    let (k, op) = &invoked[o];
                    let ret = apply(&mut states[*k], op);
                    clients[c] = Client::Busy(o, Some(ret));
                }
            }
            Client::Busy(o, Some(ret)) => {
                if !rng.chance(shape.unknown) {
                    events.push(Event::Complete { op: o, ret });
                }
                clients[c] = Client::Idle;
            }
        }
    }
    events
}

#[test]
fn accepts_generated_histories_and_rejects_mutated_reads() {
    let mut rng = Rng(7);
    let mut mutated = 0;
    for round in 0..300 {
        let shape = Shape {
            ops: 20 + (round % 60),
            keys: 1 + round % 3,
            clients: 2 + round % 6,
            unknown: [0, 5, 15][round % 3] as u64,
            failed: [0, 5][round % 2] as u64,
        };
        let mut events = generate(&mut rng, &shape);
        let h = replay(&events);
        if let Err(error) = h.check() {
            panic!("round {round}: generated history rejected: {error}\n{events:#?}");
        }

        let reads: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                matches!(
                    e,
                    Event::Complete {
                        ret: HistoryRet::Read(_),
                        ..
                    }
                )
            })
            .map(|(i, _)| i)
            .collect();
        if reads.is_empty() {
            continue;
        }
        let i = reads[rng.below(reads.len() as u64) as usize];
        if let Event::Complete { ret, .. } = &mut events[i] {
            *ret = HistoryRet::Read(Some(b("never-written")));
        }
        match replay(&events).check() {
            Err(CheckError::NotLinearizable(_)) => mutated += 1,
            other => panic!("round {round}: mutated history gave {other:?}"),
        }
    }
    assert!(mutated > 250, "only {mutated} mutated histories");
}

/// A small operation with explicit times, for the brute-force comparison.
#[derive(Clone, Debug)]
struct Small {
    op: HistoryOp,
    call: u64,
    /// `None`: unknown outcome.
    ret: Option<(HistoryRet, u64)>,
}

/// Decides linearizability of one key's ops by trying every order and every subset of the
/// unknown-outcome updates.
fn brute_force(ops: &[Small]) -> bool {
    let maybe: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].ret.is_none() && ops[i].op != HistoryOp::Read)
        .collect();
    let known: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret.is_some()).collect();
    let precedes = |a: usize, b: usize| match &ops[a].ret {
        Some((_, at)) => *at < ops[b].call,
        None => false,
    };
    fn extend(
        ops: &[Small],
        chosen: &[usize],
        used: &mut Vec<bool>,
        state: Option<Bytes>,
        precedes: &dyn Fn(usize, usize) -> bool,
    ) -> bool {
        if used.iter().all(|u| *u) {
            return true;
        }
        for (slot, &i) in chosen.iter().enumerate() {
            if used[slot] {
                continue;
            }
            // Every unused op that precedes `i` must come first.
            if chosen
                .iter()
                .enumerate()
                .any(|(s, &j)| !used[s] && j != i && precedes(j, i))
            {
                continue;
            }
            let mut next = state.clone();
            let ret = apply(&mut next, &ops[i].op);
            let fits = match &ops[i].ret {
                Some((expected, _)) => *expected == ret,
                None => true,
            };
            if fits {
                used[slot] = true;
                if extend(ops, chosen, used, next, precedes) {
                    return true;
                }
                used[slot] = false;
            }
        }
        false
    }
    (0..1u32 << maybe.len()).any(|mask| {
        let mut chosen = known.clone();
        chosen.extend(
            maybe
                .iter()
                .enumerate()
                .filter(|(bit, _)| mask & (1 << bit) != 0)
                .map(|(_, &i)| i),
        );
        let mut used = vec![false; chosen.len()];
        extend(ops, &chosen, &mut used, None, &precedes)
    })
}

#[test]
fn agrees_with_brute_force_on_small_random_histories() {
    let mut rng = Rng(42);
    let pool = [None, Some("a"), Some("b"), Some("c")];
    let pick = |rng: &mut Rng| pool[rng.below(pool.len() as u64) as usize];
    let (mut accepted, mut rejected) = (0, 0);
    for round in 0..4_000 {
        let n = 1 + rng.below(7) as usize;
        // Distinct times: a random order of the 2n endpoints, each call before its return.
        let mut ops = Vec::new();
        let mut times: Vec<u64> = (0..2 * n as u64).collect();
        for i in (1..times.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            times.swap(i, j);
        }
        for i in 0..n {
            let (t0, t1) = (times[2 * i], times[2 * i + 1]);
            let (call, done) = (t0.min(t1), t0.max(t1));
            let (op, ret) = match rng.below(4) {
                0 => (HistoryOp::Read, HistoryRet::Read(pick(&mut rng).map(b))),
                1 => match pick(&mut rng) {
                    Some(v) => (write(v), HistoryRet::Ok),
                    None => (HistoryOp::Delete, HistoryRet::Ok),
                },
                _ => {
                    let expected = pick(&mut rng);
                    let new = pick(&mut rng).unwrap_or("a");
                    let ret = if rng.chance(50) {
                        HistoryRet::Swapped
                    } else {
                        HistoryRet::CasFailed
                    };
                    (cas(expected, new), ret)
                }
            };
            let outcome = rng.below(10);
            if outcome == 0 {
                continue; // failed: not part of the check
            }
            let ret = (outcome > 2).then_some((ret, done));
            ops.push(Small { op, call, ret });
        }
        // Record in time order.
        let mut events: Vec<(u64, usize, bool)> = Vec::new();
        for (i, o) in ops.iter().enumerate() {
            events.push((o.call, i, true));
            if let Some((_, at)) = &o.ret {
                events.push((*at, i, false));
            }
        }
        events.sort();
        let mut h = History::new();
        let mut ids = vec![None; ops.len()];
        for (time, i, is_call) in events {
            if is_call {
                ids[i] = Some(h.invoke(1 + i as u64, b("k"), ops[i].op.clone(), time));
            } else if let (Some(id), Some((ret, _))) = (ids[i], &ops[i].ret) {
                h.complete(id, ret.clone(), time);
            }
        }
        let expected = brute_force(&ops);
        let verdict = match h.check() {
            Ok(()) => true,
            Err(CheckError::NotLinearizable(_)) => false,
            Err(other) => panic!("round {round}: {other}"),
        };
        assert_eq!(verdict, expected, "round {round}: {ops:#?}");
        if expected {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(
        accepted > 500 && rejected > 500,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[test]
fn checks_many_simulator_sized_histories() {
    let mut rng = Rng(2024);
    for round in 0..200 {
        let shape = Shape {
            ops: 300,
            keys: 5,
            clients: 8,
            unknown: 3,
            failed: 3,
        };
        let events = generate(&mut rng, &shape);
        if let Err(error) = replay(&events).check() {
            panic!("round {round}: {error}");
        }
    }
}
