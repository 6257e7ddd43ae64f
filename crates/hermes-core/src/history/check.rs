//! The per-key Wing–Gong–Lowe search.

use super::report;
use super::{HistoryOp, HistoryRet, OpId, Outcome, Record, Stamp, Violation};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The verdict on one key.
pub(super) enum KeyResult {
    Linearizable,
    Violation(Violation),
    Inconclusive { steps: u64 },
}

/// A register state: 0 is `None`, any other number an interned value.
type State = u32;

/// The absent state.
const ABSENT: State = 0;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    fn installs(self) -> State {
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
                        // `History::complete` only stores results that fit the operation.
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
        }
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

/// Checks the operations `ops` (indices into `records`) of one key.
pub(super) fn check_key(records: &[Record], ops: &[usize], max_steps: u64) -> KeyResult {
    let mut key_ops = KeyOps::build(records, ops);
    key_ops.drop_unobservable();
    match search(&key_ops, max_steps) {
        Search::Linearizable => KeyResult::Linearizable,
        Search::Inconclusive { steps } => KeyResult::Inconclusive { steps },
        Search::Stuck(stuck) => {
            KeyResult::Violation(report::violation(records, ops, &key_ops, &stuck))
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

/// The deepest point of a failed search.
#[derive(Clone, Debug, Default)]
pub(super) struct Stuck {
    /// The linearized prefix.
    pub(super) prefix: Vec<Placed>,
    /// The state after it.
    pub(super) state: State,
    /// The completed operation whose return was reached without linearizing it.
    pub(super) op: usize,
    /// The number of completed operations in the prefix.
    pub(super) known_placed: usize,
}

/// The outcome of a search.
pub(super) enum Search {
    Linearizable,
    Stuck(Stuck),
    Inconclusive { steps: u64 },
}

/// A growable bitset.
#[derive(Clone, Debug)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Self {
        Bits(vec![0; len.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }

    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// A fast hasher for the cache's bitset keys (multiply-rotate with a final mix).
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }

    fn finish(&self) -> u64 {
        // The murmur3 finaliser, so that every input bit reaches the low (bucket) bits.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The visited configurations: (completed ops linearized, state) to the sets of unknown-outcome
/// ops linearized with them, flattened (`maybe_words` words each).
struct Cache {
    map: HashMap<Box<[u64]>, Vec<u64>, BuildHasherDefault<WordHasher>>,
    key: Vec<u64>,
    maybe_words: usize,
}

impl Cache {
    fn new(maybe_words: usize) -> Self {
        Cache {
            map: HashMap::default(),
            key: Vec::new(),
            maybe_words,
        }
    }

    /// Records the configuration; false if it, or one that has every option it has (same
    /// completed ops and state, a subset of its unknown ops), was visited before.
    fn visit(&mut self, known: &Bits, state: State, maybe: &Bits) -> bool {
        self.key.clear();
        self.key.extend_from_slice(&known.0);
        self.key.push(u64::from(state));
        match self.map.get_mut(self.key.as_slice()) {
            None => {
                self.map.insert(self.key.as_slice().into(), maybe.0.clone());
                true
            }
            Some(_) if self.maybe_words == 0 => false,
            Some(sets) => {
                let dominated = sets.chunks(self.maybe_words).any(|set| {
                    set.iter()
                        .zip(&maybe.0)
                        .all(|(visited, current)| visited & !current == 0)
                });
                if !dominated {
                    sets.extend_from_slice(&maybe.0);
                }
                !dominated
            }
        }
    }
}

/// Where the search resumes in a configuration.
#[derive(Clone, Copy, Debug)]
enum Cursor {
    /// At event `e` of the list of completed ops.
    Known(usize),
    /// At unknown-outcome op `j`; only ops invoked before `frontier` (the first pending return)
    /// are candidates.
    Maybe { j: usize, frontier: Stamp },
}

/// A linearization step, to undo on backtracking.
struct Frame {
    placed: Placed,
    state_before: State,
    resume: Cursor,
}

/// The doubly linked list of call and return events of the completed ops, in time order.
/// Node 0 is the head sentinel and node `len - 1` the tail sentinel.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For every event node: the op and whether it is the call.
    node: Vec<(usize, bool)>,
    /// For every event node: its time.
    stamp: Vec<Stamp>,
    call: Vec<usize>,
    ret: Vec<usize>,
}

const HEAD: usize = 0;

impl Events {
    fn new(known: &[KnownOp]) -> Self {
        let mut order: Vec<(Stamp, usize, bool)> = Vec::with_capacity(known.len() * 2);
        for (i, k) in known.iter().enumerate() {
            order.push((k.call, i, true));
            order.push((k.ret, i, false));
        }
        order.sort_unstable_by_key(|&(stamp, _, _)| stamp);
        let nodes = order.len() + 2;
        let mut events = Events {
            next: (1..=nodes).collect(),
            prev: (0..nodes).map(|n| n.saturating_sub(1)).collect(),
            node: Vec::with_capacity(nodes),
            stamp: Vec::with_capacity(nodes),
            call: vec![0; known.len()],
            ret: vec![0; known.len()],
        };
        events.node.push((0, false));
        events.stamp.push(Stamp { time: 0, seq: 0 });
        for (n, &(stamp, i, is_call)) in order.iter().enumerate() {
            if is_call {
                events.call[i] = n + 1;
            } else {
                events.ret[i] = n + 1;
            }
            events.node.push((i, is_call));
            events.stamp.push(stamp);
        }
        events.node.push((0, false));
        events.stamp.push(Stamp {
            time: u64::MAX,
            seq: u64::MAX,
        });
        events
    }

    fn tail(&self) -> usize {
        self.next.len() - 1
    }

    fn unlink(&mut self, n: usize) {
        let (p, q) = (self.prev[n], self.next[n]);
        self.next[p] = q;
        self.prev[q] = p;
    }

    fn relink(&mut self, n: usize) {
        let (p, q) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        self.prev[q] = n;
    }

    /// Removes op `i` (linearized) from the list.
    fn lift(&mut self, i: usize) {
        self.unlink(self.call[i]);
        self.unlink(self.ret[i]);
    }

    /// Undoes [`Events::lift`]; lifts must be undone in reverse order.
    fn unlift(&mut self, i: usize) {
        self.relink(self.ret[i]);
        self.relink(self.call[i]);
    }
}

/// Searches for a linearization of one key's operations.
pub(super) fn search(ops: &KeyOps<'_>, max_steps: u64) -> Search {
    let known = &ops.known;
    let maybe = &ops.maybe;
    let mut events = Events::new(known);
    let tail = events.tail();
    let mut known_set = Bits::new(known.len());
    let mut maybe_set = Bits::new(maybe.len());
    let mut cache = Cache::new(maybe_set.0.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut known_placed = 0usize;
    let mut state = ABSENT;
    let mut cursor = Cursor::Known(events.next[HEAD]);
    let mut stuck: Option<Stuck> = None;
    let mut steps = 0u64;
    cache.visit(&known_set, state, &maybe_set);

    loop {
        if steps >= max_steps {
            return Search::Inconclusive { steps };
        }
        steps += 1;
        match cursor {
            Cursor::Known(n) => {
                if n == tail {
                    // Scans stop at the first return, so the tail is only reached when the list
                    // is empty: every completed operation is linearized.
                    return Search::Linearizable;
                }
                let (i, is_call) = events.node[n];
                if is_call {
                    if let Some(next_state) = known[i].op.step(state) {
                        known_set.set(i);
                        if cache.visit(&known_set, next_state, &maybe_set) {
                            stack.push(Frame {
                                placed: Placed::Known(i),
                                state_before: state,
                                resume: Cursor::Known(events.next[n]),
                            });
                            events.lift(i);
                            known_placed += 1;
                            state = next_state;
                            cursor = Cursor::Known(events.next[HEAD]);
                            continue;
                        }
                        known_set.clear(i);
                    }
                    cursor = Cursor::Known(events.next[n]);
                } else {
                    // Op `i` must be linearized before this return and is not: only unknown
                    // updates invoked before this point remain to try here.
                    if stuck.as_ref().is_none_or(|s| known_placed > s.known_placed) {
                        stuck = Some(Stuck {
                            prefix: stack.iter().map(|f| f.placed).collect(),
                            state,
                            op: i,
                            known_placed,
                        });
                    }
                    cursor = Cursor::Maybe {
                        j: 0,
                        frontier: events.stamp[n],
                    };
                }
            }
            Cursor::Maybe { j, frontier } => {
                if j < maybe.len() && maybe[j].call < frontier {
                    cursor = Cursor::Maybe { j: j + 1, frontier };
                    if maybe_set.get(j) {
                        continue;
                    }
                    if let Some(next_state) = maybe[j].op.step(state) {
                        maybe_set.set(j);
                        if cache.visit(&known_set, next_state, &maybe_set) {
                            stack.push(Frame {
                                placed: Placed::Maybe(j),
                                state_before: state,
                                resume: cursor,
                            });
                            state = next_state;
                            cursor = Cursor::Known(events.next[HEAD]);
                            continue;
                        }
                        maybe_set.clear(j);
                    }
                    continue;
                }
                // No candidate left in this configuration: backtrack.
                let Some(frame) = stack.pop() else {
                    return Search::Stuck(stuck.unwrap_or_default());
                };
                match frame.placed {
                    Placed::Known(i) => {
                        events.unlift(i);
                        known_set.clear(i);
                        known_placed -= 1;
                    }
                    Placed::Maybe(j) => maybe_set.clear(j),
                }
                state = frame.state_before;
                cursor = frame.resume;
            }
        }
    }
}
