//! Unit tests of the reductions, the precheck and the search against an exhaustive checker.

use super::model::KeyOps;
use super::search::{search, Search};
use super::{History, HistoryOp, HistoryRet};
use bytes::Bytes;

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
}

/// An operation with explicit distinct times; `ret: None` is an unknown outcome.
#[derive(Clone, Debug)]
struct Small {
    op: HistoryOp,
    call: u64,
    ret: Option<(HistoryRet, u64)>,
}

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

/// Tries every subset of the unknown-outcome updates and every order that respects real time.
fn brute_force(ops: &[Small]) -> bool {
    fn extend(ops: &[Small], chosen: &[usize], used: &mut [bool], state: Option<Bytes>) -> bool {
        if used.iter().all(|u| *u) {
            return true;
        }
        for slot in 0..chosen.len() {
            let i = chosen[slot];
            let blocked = (0..chosen.len()).any(|s| {
                !used[s]
                    && s != slot
                    && ops[chosen[s]]
                        .ret
                        .as_ref()
                        .is_some_and(|(_, at)| *at < ops[i].call)
            });
            if used[slot] || blocked {
                continue;
            }
            let mut next = state.clone();
            let ret = apply(&mut next, &ops[i].op);
            if ops[i]
                .ret
                .as_ref()
                .is_none_or(|(expected, _)| *expected == ret)
            {
                used[slot] = true;
                if extend(ops, chosen, used, next) {
                    return true;
                }
                used[slot] = false;
            }
        }
        false
    }
    let known: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret.is_some()).collect();
    let maybe: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].ret.is_none() && ops[i].op != HistoryOp::Read)
        .collect();
    (0..1u32 << maybe.len()).any(|mask| {
        let mut chosen = known.clone();
        chosen.extend(
            (0..maybe.len())
                .filter(|b| mask & (1 << b) != 0)
                .map(|b| maybe[b]),
        );
        extend(ops, &chosen, &mut vec![false; chosen.len()], None)
    })
}

/// A random small history over one key with values from a small pool (so that values and whole
/// operations repeat), random intervals and results, and many unknown outcomes.
fn random_small(rng: &mut Rng, n: usize) -> Vec<Small> {
    let pool = [None, Some("a"), Some("b"), Some("c")];
    let pick = |rng: &mut Rng| pool[rng.below(4) as usize].map(Bytes::from_static_str);
    let mut times: Vec<u64> = (0..2 * n as u64).collect();
    for i in (1..times.len()).rev() {
        times.swap(i, rng.below(i as u64 + 1) as usize);
    }
    (0..n)
        .map(|i| {
            let (a, b) = (times[2 * i], times[2 * i + 1]);
            let (op, ret) = match rng.below(5) {
                0 => (HistoryOp::Read, HistoryRet::Read(pick(rng))),
                1 | 2 => match pick(rng) {
                    Some(v) => (HistoryOp::Write(v), HistoryRet::Ok),
                    None => (HistoryOp::Delete, HistoryRet::Ok),
                },
                _ => {
                    let expected = pick(rng);
                    let new = pick(rng).unwrap_or_else(|| Bytes::from_static(b"a"));
                    let ret = if rng.below(2) == 0 {
                        HistoryRet::Swapped
                    } else {
                        HistoryRet::CasFailed
                    };
                    (HistoryOp::Cas { expected, new }, ret)
                }
            };
            let ret = (rng.below(3) != 0).then_some((ret, a.max(b)));
            Small {
                op,
                call: a.min(b),
                ret,
            }
        })
        .collect()
}

trait FromStaticStr {
    fn from_static_str(text: &'static str) -> Bytes;
}

impl FromStaticStr for Bytes {
    fn from_static_str(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }
}

fn record(ops: &[Small]) -> History {
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
            ids[i] = Some(h.invoke(i as u64, Bytes::from_static(b"k"), ops[i].op.clone(), time));
        } else if let (Some(id), Some((ret, _))) = (ids[i], &ops[i].ret) {
            h.complete(id, ret.clone(), time);
        }
    }
    h
}

fn linearizable(ops: &KeyOps<'_>) -> bool {
    match search(ops, u64::MAX) {
        Search::Linearizable => true,
        Search::Stuck(_) => false,
        Search::Inconclusive { .. } => unreachable!("no step limit"),
    }
}

/// The search alone, with each reduction, and the precheck all agree with the exhaustive check.
#[test]
fn search_reductions_and_precheck_agree_with_brute_force() {
    let mut rng = Rng(1);
    let (mut yes, mut no, mut prechecked) = (0, 0, 0);
    for round in 0..6_000 {
        let n = 1 + rng.below(8) as usize;
        let ops = random_small(&mut rng, n);
        let expected = brute_force(&ops);
        let h = record(&ops);
        let indices: Vec<usize> = (0..h.records.len()).collect();

        let mut key_ops = KeyOps::build(&h.records, &indices);
        assert_eq!(
            linearizable(&key_ops),
            expected,
            "plain, round {round}: {ops:#?}"
        );
        key_ops.merge_unnamed();
        assert_eq!(
            linearizable(&key_ops),
            expected,
            "merged, round {round}: {ops:#?}"
        );
        key_ops.drop_unobservable();
        assert_eq!(
            linearizable(&key_ops),
            expected,
            "dropped, round {round}: {ops:#?}"
        );
        if key_ops.precheck().is_some() {
            assert!(!expected, "precheck, round {round}: {ops:#?}");
            prechecked += 1;
        }
        assert_eq!(
            h.check().is_ok(),
            expected,
            "check, round {round}: {ops:#?}"
        );
        if expected {
            yes += 1;
        } else {
            no += 1;
        }
    }
    assert!(yes > 1_000 && no > 1_000, "{yes} linearizable, {no} not");
    assert!(
        prechecked > 100 && prechecked < no,
        "{prechecked} prechecked of {no}"
    );
}

/// Larger random histories (too large for the exhaustive check): the full pipeline and the bare
/// search agree, and a precheck verdict is always confirmed by the search.
#[test]
fn pipeline_agrees_with_bare_search() {
    let mut rng = Rng(2);
    for round in 0..300 {
        let n = 10 + rng.below(30) as usize;
        let ops = random_small(&mut rng, n);
        let h = record(&ops);
        let indices: Vec<usize> = (0..h.records.len()).collect();
        let bare = match search(&KeyOps::build(&h.records, &indices), 2_000_000) {
            Search::Linearizable => true,
            Search::Stuck(_) => false,
            Search::Inconclusive { .. } => continue,
        };
        let mut key_ops = KeyOps::build(&h.records, &indices);
        key_ops.merge_unnamed();
        key_ops.drop_unobservable();
        if key_ops.precheck().is_some() {
            assert!(!bare, "precheck, round {round}: {ops:#?}");
        }
        assert_eq!(linearizable(&key_ops), bare, "round {round}: {ops:#?}");
    }
}

/// A history whose records break the invariants `complete` keeps (as a deserialized one could)
/// is reported as malformed, not checked.
#[test]
fn rejects_records_that_complete_would_not_store() {
    let mut h = History::new();
    let id = h.invoke(1, Bytes::from_static(b"k"), HistoryOp::Read, 5);
    h.complete(id, HistoryRet::Read(None), 6);
    assert_eq!(h.check(), Ok(()));

    let mut bad = h.clone();
    if let super::Outcome::Completed { ret, .. } = &mut bad.records[0].outcome {
        *ret = HistoryRet::Swapped;
    }
    assert!(matches!(bad.check(), Err(super::CheckError::Malformed(_))));

    let mut bad = h.clone();
    if let super::Outcome::Completed { at, .. } = &mut bad.records[0].outcome {
        at.time = 4;
    }
    assert!(matches!(bad.check(), Err(super::CheckError::Malformed(_))));
}
