//! The register model of one key: its operations over interned states, and the reductions and
//! checks that need no search.

use super::{HistoryOp, HistoryRet, OpId, Outcome, Record, Stamp};
use std::collections::HashMap;

/// A register state: 0 is `None`, any other number an interned value.
pub(super) type State = u32;

/// The absent state.
pub(super) const ABSENT: State = 0;

/// A completed operation, over interned states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Known {
    Read(State),
    Write(State),
    Swapped { expected: State, new: State },
    CasFailed { expected: State },
}

impl Known {
    /// The state after the operation, if `state` allows its result.
    pub(super) fn step(self, state: State) -> Option<State> {
        match self {
            Known::Read(seen) => (seen == state).then_some(state),
            Known::Write(value) => Some(value),
            Known::Swapped { expected, new } => (expected == state).then_some(new),
            Known::CasFailed { expected } => (expected != state).then_some(state),
        }
    }
}

/// An update with an unknown outcome, over interned states. Taking effect is optional.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Maybe {
    Write(State),
    Cas { expected: State, new: State },
}

impl Maybe {
    /// The state after the operation took effect in `state`; `None` when taking effect there
    /// would change nothing (a compare that fails), which is the same as not taking effect.
    pub(super) fn step(self, state: State) -> Option<State> {
        match self {
            Maybe::Write(value) => Some(value),
            Maybe::Cas { expected, new } => (expected == state).then_some(new),
        }
    }

    /// The state the operation installs when it takes effect.
    pub(super) fn installs(self) -> State {
        match self {
            Maybe::Write(value) | Maybe::Cas { new: value, .. } => value,
        }
    }
}

/// A completed operation of the key with its interval.
#[derive(Clone, Copy, Debug)]
pub(super) struct KnownOp {
    pub(super) record: usize,
    pub(super) op: Known,
    pub(super) call: Stamp,
    pub(super) ret: Stamp,
}

/// An update of the key with an unknown outcome: invoked, never returned.
#[derive(Clone, Copy, Debug)]
pub(super) struct MaybeOp {
    pub(super) record: usize,
    pub(super) op: Maybe,
    pub(super) call: Stamp,
}

/// The operations of one key, over interned states, ready for the search.
pub(super) struct KeyOps<'a> {
    pub(super) known: Vec<KnownOp>,
    pub(super) maybe: Vec<MaybeOp>,
    /// The interned values; `values[s - 1]` is state `s`.
    pub(super) values: Vec<&'a [u8]>,
    /// The state standing for every value that no operation names (see [`KeyOps::merge_unnamed`]).
    pub(super) unnamed: Option<State>,
}

impl<'a> KeyOps<'a> {
    /// Collects and interns the operations `ops` (indices into `records`) of one key.
    pub(super) fn build(records: &'a [Record], ops: &[usize]) -> Self {
        let mut ids: HashMap<&'a [u8], State> = HashMap::new();
        let mut values: Vec<&'a [u8]> = Vec::new();
        let mut intern = |value: Option<&'a [u8]>| -> State {
            match value {
                None => ABSENT,
                Some(bytes) => *ids.entry(bytes).or_insert_with(|| {
                    values.push(bytes);
                    State::try_from(values.len()).unwrap_or(State::MAX)
                }),
            }
        };
        let mut known = Vec::new();
        let mut maybe = Vec::new();
        for &record in ops {
            let Some(r) = records.get(record) else {
                continue;
            };
            match &r.outcome {
                Outcome::Failed => {}
                Outcome::Unknown => {
                    let op = match &r.op {
                        HistoryOp::Read => continue,
                        HistoryOp::Write(value) => Maybe::Write(intern(Some(value))),
                        HistoryOp::Delete => Maybe::Write(ABSENT),
                        HistoryOp::Cas { expected, new } => Maybe::Cas {
                            expected: intern(expected.as_deref()),
                            new: intern(Some(new)),
                        },
                    };
                    maybe.push(MaybeOp {
                        record,
                        op,
                        call: r.invoked,
                    });
                }
                Outcome::Completed { ret, at } => {
                    let op = match (&r.op, ret) {
                        (HistoryOp::Read, HistoryRet::Read(seen)) => {
                            Known::Read(intern(seen.as_deref()))
                        }
                        (HistoryOp::Write(value), HistoryRet::Ok) => {
                            Known::Write(intern(Some(value)))
                        }
                        (HistoryOp::Delete, HistoryRet::Ok) => Known::Write(ABSENT),
                        (HistoryOp::Cas { expected, new }, HistoryRet::Swapped) => Known::Swapped {
                            expected: intern(expected.as_deref()),
                            new: intern(Some(new)),
                        },
                        (HistoryOp::Cas { expected, .. }, HistoryRet::CasFailed) => {
                            Known::CasFailed {
                                expected: intern(expected.as_deref()),
                            }
                        }
                        // `History::check_with_limit` rejects results that do not fit.
                        _ => continue,
                    };
                    known.push(KnownOp {
                        record,
                        op,
                        call: r.invoked,
                        ret: *at,
                    });
                }
            }
        }
        maybe.sort_by_key(|m| m.call);
        KeyOps {
            known,
            maybe,
            values,
            unnamed: None,
        }
    }

    /// Maps every value that no operation names (no read returned it, no swap or failed compare
    /// expected it) to one state.
    ///
    /// Every step of the model compares the state only with values that operations name, so
    /// states that are never named behave identically: renaming them to one does not change
    /// which orders are linearizations. It lets the cache merge configurations that differ only in
    /// such values, and makes unknown-outcome writes of them interchangeable (see
    /// [`search`](super::search::search)).
    pub(super) fn merge_unnamed(&mut self) {
        let mut named = vec![false; self.values.len() + 1];
        named[ABSENT as usize] = true;
        for k in &self.known {
            match k.op {
                Known::Read(s)
                | Known::Swapped { expected: s, .. }
                | Known::CasFailed { expected: s } => named[s as usize] = true,
                Known::Write(_) => {}
            }
        }
        for m in &self.maybe {
            if let Maybe::Cas { expected, .. } = m.op {
                named[expected as usize] = true;
            }
        }
        let Some(unnamed) = named.iter().position(|n| !n) else {
            return;
        };
        let unnamed = State::try_from(unnamed).unwrap_or(ABSENT);
        let rename = |s: &mut State| {
            if !named[*s as usize] {
                *s = unnamed;
            }
        };
        for k in &mut self.known {
            match &mut k.op {
                Known::Write(s) | Known::Swapped { new: s, .. } => rename(s),
                Known::Read(_) | Known::CasFailed { .. } => {}
            }
        }
        for m in &mut self.maybe {
            match &mut m.op {
                Maybe::Write(s) | Maybe::Cas { new: s, .. } => rename(s),
            }
        }
        self.unnamed = Some(unnamed);
    }

    /// Removes unknown-outcome updates whose effect no operation could observe.
    ///
    /// Take a linearization in which such an update `u` (installing `v`) took effect, and drop
    /// `u` from it. Only the operations between `u` and the next update see a different state:
    /// the state before `u` instead of `v`. Writes and deletes do not look at the state; a read of
    /// `v`, a swap expecting `v` (completed or not) or a failed compare expecting something other
    /// than `v` could; nothing else can tell the two states apart. So if no such operation exists,
    /// the linearization without `u` is valid too. Removing an unknown swap can make another
    /// update unobservable, hence the loop.
    pub(super) fn drop_unobservable(&mut self) {
        if self.maybe.is_empty() {
            return;
        }
        let states = self.values.len() + 1;
        // Distinct expected states of failed compares: none, one, or several.
        let mut failed_compare: Option<Option<State>> = None;
        let mut observed = vec![false; states];
        for k in &self.known {
            match k.op {
                Known::Read(seen) => observed[seen as usize] = true,
                Known::Swapped { expected, .. } => observed[expected as usize] = true,
                Known::CasFailed { expected } => {
                    failed_compare = match failed_compare {
                        None => Some(Some(expected)),
                        Some(Some(other)) if other == expected => Some(Some(expected)),
                        Some(_) => Some(None),
                    }
                }
                Known::Write(_) => {}
            }
        }
        loop {
            let mut seen = observed.clone();
            for m in &self.maybe {
                if let Maybe::Cas { expected, .. } = m.op {
                    seen[expected as usize] = true;
                }
            }
            let before = self.maybe.len();
            self.maybe.retain(|m| {
                let value = m.op.installs();
                let failed_compare_may_see = match failed_compare {
                    None => false,
                    Some(Some(expected)) => expected != value,
                    Some(None) => true,
                };
                seen[value as usize] || failed_compare_may_see
            });
            if self.maybe.len() == before {
                break;
            }
        }
    }
}

/// What an operation asks of the register and does to it, for the search's
/// bookkeeping of which states pending operations need and can install.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Roles {
    /// A completed op that needs this state (a read's value, a swap's expected value).
    pub(super) needs: Option<State>,
    /// An update that installs this state.
    pub(super) installs: Option<State>,
    /// A failed compare that needs any state but this one.
    pub(super) refuses: Option<State>,
    /// An unknown-outcome swap that can take effect in this state only.
    pub(super) may_use: Option<State>,
}

impl Known {
    pub(super) fn roles(self) -> Roles {
        match self {
            Known::Read(seen) => Roles {
                needs: Some(seen),
                ..Roles::default()
            },
            Known::Write(value) => Roles {
                installs: Some(value),
                ..Roles::default()
            },
            Known::Swapped { expected, new } => Roles {
                needs: Some(expected),
                installs: Some(new),
                ..Roles::default()
            },
            Known::CasFailed { expected } => Roles {
                refuses: Some(expected),
                ..Roles::default()
            },
        }
    }
}

impl Maybe {
    pub(super) fn roles(self) -> Roles {
        match self {
            Maybe::Write(value) => Roles {
                installs: Some(value),
                ..Roles::default()
            },
            Maybe::Cas { expected, new } => Roles {
                installs: Some(new),
                may_use: Some(expected),
                ..Roles::default()
            },
        }
    }
}

/// An operation placed in a linearization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placed {
    /// `known[i]`.
    Known(usize),
    /// `maybe[j]`, which took effect.
    Maybe(usize),
}

impl Placed {
    pub(super) fn id(self, ops: &KeyOps<'_>) -> OpId {
        match self {
            Placed::Known(i) => OpId(ops.known[i].record),
            Placed::Maybe(j) => OpId(ops.maybe[j].record),
        }
    }
}

/// Why the ops of a key have no linearization: a completed op that cannot be linearized after a
/// prefix (the deepest point a failed search reached; empty when found without searching).
#[derive(Clone, Debug)]
pub(super) struct Stuck {
    /// The linearized prefix.
    pub(super) prefix: Vec<Placed>,
    /// The state after it (for [`Why::NeverInstalled`] and [`Why::Overwritten`], the state the op
    /// needs).
    pub(super) state: State,
    /// The completed op (an index into [`KeyOps::known`]).
    pub(super) op: usize,
    /// Why it cannot.
    pub(super) why: Why,
    /// The number of completed operations in the prefix.
    pub(super) known_placed: usize,
}

/// Why an operation cannot be linearized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    /// After the prefix, its completion was reached: every order of the remaining candidates
    /// failed.
    Deadline,
    /// After the prefix, it needs the register to hold this state, which it does not, and no
    /// remaining update installs.
    Unreachable(State),
    /// It needs this state, and no update installing it was invoked before it completed.
    NeverInstalled(State),
    /// It needs this state, which only `producer` installs (`None`: only the initial state is
    /// absent); but completed op `by` followed `producer` in real time, preceded the op, and
    /// installs another state.
    Overwritten {
        state: State,
        producer: Option<usize>,
        by: usize,
    },
}

impl KeyOps<'_> {
    /// Looks for a completed op that real-time order alone keeps from the state it needs (a
    /// read's value, a swap's expected value), without searching:
    ///
    /// - no update installing that state was invoked before the op completed; or
    /// - a single update installs that state (or none does and it is the initial absent state),
    ///   and a completed update installing another state was invoked after that one completed
    ///   and completed before the op was invoked: the state is gone for good by then.
    ///
    /// Reports the one that completed first.
    pub(super) fn precheck(&self) -> Option<Stuck> {
        // Per state: the earliest invocation of an update installing it, and the number of such
        // updates with the completed one if there is exactly one. The initial absent state
        // counts as installed at the start of time by no op.
        #[derive(Clone, Copy)]
        enum Producers {
            None,
            Initial,
            One(Option<usize>),
            Many,
        }
        let states = self.values.len() + 1;
        let mut earliest: Vec<Option<Stamp>> = vec![None; states];
        let mut producers = vec![Producers::None; states];
        earliest[ABSENT as usize] = Some(Stamp { time: 0, seq: 0 });
        producers[ABSENT as usize] = Producers::Initial;
        let mut add = |state: State, call: Stamp, known: Option<usize>| {
            let s = state as usize;
            earliest[s] = Some(earliest[s].map_or(call, |e| e.min(call)));
            producers[s] = match producers[s] {
                Producers::None => Producers::One(known),
                _ => Producers::Many,
            };
        };
        for (i, k) in self.known.iter().enumerate() {
            if let Some(state) = k.op.roles().installs {
                add(state, k.call, Some(i));
            }
        }
        for m in &self.maybe {
            add(m.op.installs(), m.call, None);
        }

        // Completed updates by invocation, with the earliest-completing one from each on.
        let mut updates: Vec<(Stamp, Stamp, usize)> = (self.known.iter().enumerate())
            .filter(|(_, k)| k.op.roles().installs.is_some())
            .map(|(i, k)| (k.call, k.ret, i))
            .collect();
        updates.sort_unstable();
        let mut first_done: Vec<(Stamp, usize)> = Vec::with_capacity(updates.len());
        for &(_, ret, i) in updates.iter().rev() {
            let best = first_done.last().map_or((ret, i), |&b| b.min((ret, i)));
            first_done.push(best);
        }
        first_done.reverse();

        let mut found: Option<(Stamp, Stuck)> = None;
        for (i, k) in self.known.iter().enumerate() {
            let Some(state) = k.op.roles().needs else {
                continue;
            };
            if found.as_ref().is_some_and(|(ret, _)| *ret < k.ret) {
                continue;
            }
            let s = state as usize;
            let why = if earliest[s].is_none_or(|call| call > k.ret) {
                Why::NeverInstalled(state)
            } else {
                let producer = match producers[s] {
                    Producers::Initial => None,
                    Producers::One(Some(w)) => Some(w),
                    Producers::One(None) | Producers::None | Producers::Many => continue,
                };
                // The first completed update invoked after the producer completed.
                let from = producer.map_or(0, |w| {
                    let done = self.known[w].ret;
                    updates.partition_point(|&(call, _, _)| call < done)
                });
                match first_done.get(from) {
                    Some(&(ret, by)) if ret < k.call => Why::Overwritten {
                        state,
                        producer,
                        by,
                    },
                    _ => continue,
                }
            };
            found = Some((
                k.ret,
                Stuck {
                    prefix: Vec::new(),
                    state,
                    op: i,
                    why,
                    known_placed: 0,
                },
            ));
        }
        found.map(|(_, stuck)| stuck)
    }
}
