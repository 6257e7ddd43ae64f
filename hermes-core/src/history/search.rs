//! The Wing–Gong–Lowe search for a linearization of one key's operations.

use super::model::{
    KeyOps, Known, KnownOp, Maybe, MaybeOp, Placed, Roles, State, Stuck, Why, ABSENT,
};
use super::Stamp;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The outcome of a search.
pub(super) enum Search {
    Linearizable,
    Stuck(Stuck),
    Inconclusive { steps: u64 },
}

/// A fixed-size bitset.
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

/// The visited configurations: (completed ops linearized, state) to the (unknown-outcome ops
/// placed, mode) pairs visited with them, flattened (`maybe_words + 1` words each; the mode is the
/// state before an unjustified placement, or [`NO_MODE`]).
struct Cache {
    map: HashMap<Box<[u64]>, Vec<u64>, BuildHasherDefault<WordHasher>>,
    key: Vec<u64>,
    maybe_words: usize,
    /// Work done, for the step count: one per visited (unknown-outcome ops, mode) pair compared,
    /// one per word stored.
    work: u64,
}

/// The work charged for storing a configuration, besides its words: the map's own memory.
const ENTRY_OVERHEAD: u64 = 8;

/// The mode word of a configuration with no unjustified placement.
const NO_MODE: u64 = u64::MAX;

impl Cache {
    fn new(maybe_words: usize) -> Self {
        Cache {
            map: HashMap::default(),
            key: Vec::new(),
            maybe_words,
            work: 0,
        }
    }

    /// Records the configuration; false if it, or one that has every option it has, was visited
    /// before. A configuration has every option of another with the same completed ops and state
    /// if it placed a subset of its unknown-outcome ops and is unrestricted or in the same mode.
    fn visit(&mut self, known: &Bits, state: State, maybe: &Bits, mode: Option<State>) -> bool {
        self.key.clear();
        self.key.extend_from_slice(&known.0);
        self.key.push(u64::from(state));
        let mode = mode.map_or(NO_MODE, u64::from);
        match self.map.get_mut(self.key.as_slice()) {
            None => {
                let mut entry = Vec::with_capacity(self.maybe_words + 1);
                if self.maybe_words > 0 {
                    entry.extend_from_slice(&maybe.0);
                    entry.push(mode);
                }
                self.work += (self.key.len() + entry.len()) as u64 + ENTRY_OVERHEAD;
                self.map.insert(self.key.as_slice().into(), entry);
                true
            }
            // Without unknown-outcome ops there is one configuration per key.
            Some(_) if self.maybe_words == 0 => false,
            Some(entries) => {
                let work = &mut self.work;
                let dominated = entries.chunks(self.maybe_words + 1).any(|entry| {
                    *work += 1;
                    let (set, visited_mode) = entry.split_at(self.maybe_words);
                    visited_mode.iter().all(|&m| m == NO_MODE || m == mode)
                        && set
                            .iter()
                            .zip(&maybe.0)
                            .all(|(visited, current)| visited & !current == 0)
                });
                if !dominated {
                    entries.extend_from_slice(&maybe.0);
                    entries.push(mode);
                    self.work += self.maybe_words as u64 + 1;
                }
                !dominated
            }
        }
    }
}

/// Where the search resumes in a configuration.
#[derive(Clone, Copy, Debug)]
enum Cursor {
    /// A configuration just reached: look for a forced move first.
    Fresh,
    /// At event `e` of the list of completed ops.
    Known(usize),
    /// At node `node` of the list of unplaced unknown-outcome ops; only ops invoked before
    /// `frontier` (the first pending return) are candidates.
    Maybe { node: usize, frontier: Stamp },
    /// No candidate left: backtrack.
    Exhausted,
}

/// A linearization step, to undo on backtracking.
struct Frame {
    placed: Placed,
    state_before: State,
    mode_before: Option<State>,
    resume: Cursor,
}

/// A doubly linked list over nodes `0..len` (node 0 the head and node `len - 1` the tail
/// sentinel), from which nodes are removed and put back in reverse order.
struct Links {
    next: Vec<usize>,
    prev: Vec<usize>,
}

const HEAD: usize = 0;

impl Links {
    fn new(len: usize) -> Self {
        Links {
            next: (1..=len).collect(),
            prev: (0..len).map(|n| n.saturating_sub(1)).collect(),
        }
    }

    fn unlink(&mut self, n: usize) {
        let (p, q) = (self.prev[n], self.next[n]);
        self.next[p] = q;
        self.prev[q] = p;
    }

    /// Undoes [`Links::unlink`]; unlinks must be undone in reverse order.
    fn relink(&mut self, n: usize) {
        let (p, q) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        self.prev[q] = n;
    }
}

/// The list of call and return events of the completed ops not linearized yet, in time order.
struct Events {
    links: Links,
    /// For every event node: the op and whether it is the call.
    node: Vec<(usize, bool)>,
    /// For every event node: its time.
    stamp: Vec<Stamp>,
    call: Vec<usize>,
    ret: Vec<usize>,
}

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
            links: Links::new(nodes),
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
        self.links.next.len() - 1
    }

    fn next(&self, n: usize) -> usize {
        self.links.next[n]
    }

    /// Removes op `i` (linearized) from the list.
    fn lift(&mut self, i: usize) {
        self.links.unlink(self.call[i]);
        self.links.unlink(self.ret[i]);
    }

    /// Undoes [`Events::lift`]; lifts must be undone in reverse order.
    fn unlift(&mut self, i: usize) {
        self.links.relink(self.ret[i]);
        self.links.relink(self.call[i]);
    }
}

/// Counts, per state, what the pending ops (completed ops not linearized yet, unknown-outcome
/// updates not placed) ask of the register and can do to it.
///
/// A state is starving when a pending completed op needs it and no pending update installs it:
/// if the register does not hold it now, it never will again, and that op can never be
/// linearized.
struct Supply {
    needed: Vec<u32>,
    installed: Vec<u32>,
    refused: Vec<u32>,
    refusing: u32,
    may_use: Vec<u32>,
    starving: usize,
}

impl Supply {
    fn new(states: usize, known: &[KnownOp], maybe: &[MaybeOp]) -> Self {
        let mut supply = Supply {
            needed: vec![0; states],
            installed: vec![0; states],
            refused: vec![0; states],
            refusing: 0,
            may_use: vec![0; states],
            starving: 0,
        };
        for k in known {
            supply.restore(k.op.roles());
        }
        for m in maybe {
            supply.restore(m.op.roles());
        }
        supply
    }

    fn is_starving(&self, state: State) -> bool {
        self.needed[state as usize] > 0 && self.installed[state as usize] == 0
    }

    /// Whether some state other than `state` is starving.
    fn dead(&self, state: State) -> bool {
        self.starving > usize::from(self.is_starving(state))
    }

    /// A starving state other than `state`.
    fn starving_other_than(&self, state: State) -> Option<State> {
        (0..self.needed.len())
            .filter_map(|s| State::try_from(s).ok())
            .find(|&s| s != state && self.is_starving(s))
    }

    /// Whether some pending op other than the unknown-outcome update `op` could tell `state`
    /// apart from other states: a completed op needing it, an unknown swap expecting it, or a
    /// failed compare expecting something else.
    fn observable(&self, state: State, op: Maybe) -> bool {
        let s = state as usize;
        let own_use = match op {
            Maybe::Cas { expected, .. } => u32::from(expected == state),
            Maybe::Write(_) => 0,
        };
        self.needed[s] > 0 || self.may_use[s] > own_use || self.refusing > self.refused[s]
    }

    fn count(&mut self, roles: Roles, change: fn(&mut u32)) {
        if let Some(s) = roles.needs {
            let before = self.is_starving(s);
            change(&mut self.needed[s as usize]);
            self.track(s, before);
        }
        if let Some(s) = roles.installs {
            let before = self.is_starving(s);
            change(&mut self.installed[s as usize]);
            self.track(s, before);
        }
        if let Some(s) = roles.refuses {
            change(&mut self.refused[s as usize]);
            change(&mut self.refusing);
        }
        if let Some(s) = roles.may_use {
            change(&mut self.may_use[s as usize]);
        }
    }

    fn track(&mut self, state: State, before: bool) {
        match (before, self.is_starving(state)) {
            (false, true) => self.starving += 1,
            (true, false) => self.starving -= 1,
            _ => {}
        }
    }

    /// Accounts for a pending op being linearized.
    fn take(&mut self, roles: Roles) {
        self.count(roles, |n| *n = n.saturating_sub(1));
    }

    /// Undoes [`Supply::take`].
    fn restore(&mut self, roles: Roles) {
        self.count(roles, |n| *n += 1);
    }
}

/// The state of the depth-first search over configurations.
struct Searcher<'k> {
    known: &'k [KnownOp],
    maybe: &'k [MaybeOp],
    events: Events,
    known_set: Bits,
    maybe_set: Bits,
    /// The unknown-outcome updates not placed, as a list over nodes `j + 1` (node 0 is the
    /// head, node `maybe.len() + 1` the tail).
    unplaced: Links,
    cache: Cache,
    supply: Supply,
    stack: Vec<Frame>,
    known_placed: usize,
    state: State,
    /// After an unknown-outcome update was placed and until an op needed the state it
    /// installed: the state before it. Only ops that keep the state and are fine with it either
    /// way, or that need the new state, may follow.
    mode: Option<State>,
    /// The deepest point where the search got stuck so far.
    deepest: Option<Deepest>,
    /// The linearized prefix of `deepest`; its first `synced` entries are also those of `stack`.
    deepest_prefix: Vec<Placed>,
    synced: usize,
}

/// The deepest point where the search got stuck, measured in completed ops linearized.
struct Deepest {
    known_placed: usize,
    /// A move beyond `deepest_prefix` that led to a dead configuration.
    extra: Option<Placed>,
    state: State,
    /// The op whose completion was reached ([`Why::Deadline`]); for [`Why::Unreachable`], found
    /// once the search is over.
    op: Option<usize>,
    why: Why,
}

impl Searcher<'_> {
    fn roles(&self, placed: Placed) -> Roles {
        match placed {
            Placed::Known(i) => self.known[i].op.roles(),
            Placed::Maybe(j) => self.maybe[j].op.roles(),
        }
    }

    fn mark(&mut self, placed: Placed, on: bool) {
        match (placed, on) {
            (Placed::Known(i), true) => self.known_set.set(i),
            (Placed::Known(i), false) => self.known_set.clear(i),
            (Placed::Maybe(j), true) => {
                self.maybe_set.set(j);
                self.unplaced.unlink(j + 1);
            }
            (Placed::Maybe(j), false) => {
                self.maybe_set.clear(j);
                self.unplaced.relink(j + 1);
            }
        }
    }

    /// Linearizes `placed` next, reaching `next_state`, unless the new configuration is dead or
    /// was visited (or one that has every option it has). True if it was linearized; `resume` is
    /// where to go on in the current configuration after backtracking.
    fn advance(&mut self, placed: Placed, next_state: State, resume: Cursor) -> bool {
        self.mark(placed, true);
        let roles = self.roles(placed);
        self.supply.take(roles);
        let mode = match (placed, self.mode) {
            (Placed::Maybe(_), _) => Some(self.state),
            (Placed::Known(i), Some(before)) => match self.known[i].op {
                // A failed compare that the state before the placement also satisfies.
                Known::CasFailed { expected } if expected != before => Some(before),
                _ => None,
            },
            (Placed::Known(_), None) => None,
        };
        let explore = if self.supply.dead(next_state) {
            self.note_unreachable(Some(placed), next_state);
            false
        } else {
            self.cache
                .visit(&self.known_set, next_state, &self.maybe_set, mode)
        };
        if !explore {
            self.supply.restore(roles);
            self.mark(placed, false);
            return false;
        }
        self.stack.push(Frame {
            placed,
            state_before: self.state,
            mode_before: self.mode,
            resume,
        });
        if let Placed::Known(i) = placed {
            self.events.lift(i);
            self.known_placed += 1;
        }
        self.state = next_state;
        self.mode = mode;
        true
    }

    /// Undoes the last [`Searcher::advance`]; returns where to resume, or `None` at the root.
    fn retreat(&mut self) -> Option<Cursor> {
        let frame = self.stack.pop()?;
        self.synced = self.synced.min(self.stack.len());
        if let Placed::Known(i) = frame.placed {
            self.events.unlift(i);
            self.known_placed -= 1;
        }
        let roles = self.roles(frame.placed);
        self.supply.restore(roles);
        self.mark(frame.placed, false);
        self.state = frame.state_before;
        self.mode = frame.mode_before;
        Some(frame.resume)
    }

    /// Remembers the current configuration as the deepest point if it got further, with `extra`
    /// linearized beyond it. Copies only the part of the stack that changed since the last time.
    fn note(&mut self, extra: Option<Placed>, state: State, op: Option<usize>, why: Why) {
        let known_placed = self.known_placed + usize::from(matches!(extra, Some(Placed::Known(_))));
        if self
            .deepest
            .as_ref()
            .is_some_and(|d| d.known_placed >= known_placed)
        {
            return;
        }
        self.deepest_prefix.truncate(self.synced);
        let synced = self.synced;
        self.deepest_prefix
            .extend(self.stack[synced..].iter().map(|f| f.placed));
        self.synced = self.stack.len();
        self.deepest = Some(Deepest {
            known_placed,
            extra,
            state,
            op,
            why,
        });
    }

    /// Notes that the return of op `i` was reached in the current configuration.
    fn note_deadline(&mut self, i: usize) {
        self.note(None, self.state, Some(i), Why::Deadline);
    }

    /// Notes that linearizing `placed` (already marked and accounted for) next would reach
    /// `state`, where some pending op needs a state that nothing left installs.
    fn note_unreachable(&mut self, placed: Option<Placed>, state: State) {
        let starving = self.supply.starving_other_than(state).unwrap_or(state);
        self.note(placed, state, None, Why::Unreachable(starving));
    }

    /// Describes the deepest point where the search got stuck.
    fn stuck(self) -> Stuck {
        let Some(deepest) = self.deepest else {
            // The search fails only after reaching a return or a dead configuration, which are
            // noted; the fallback names the first op.
            return Stuck {
                prefix: Vec::new(),
                state: ABSENT,
                op: 0,
                why: Why::Deadline,
                known_placed: 0,
            };
        };
        let mut prefix = self.deepest_prefix;
        prefix.extend(deepest.extra);
        let op = deepest.op.unwrap_or_else(|| {
            // A completed op outside the prefix that needs the starving state.
            let mut placed = vec![false; self.known.len()];
            for p in &prefix {
                if let Placed::Known(i) = *p {
                    placed[i] = true;
                }
            }
            let Why::Unreachable(starving) = deepest.why else {
                return 0;
            };
            (0..self.known.len())
                .find(|&i| !placed[i] && self.known[i].op.roles().needs == Some(starving))
                .unwrap_or(0)
        });
        Stuck {
            prefix,
            state: deepest.state,
            op,
            why: deepest.why,
            known_placed: deepest.known_placed,
        }
    }
}

/// Searches for a linearization of one key's operations.
///
/// Besides the memo cache, these rules prune the search; none loses a linearization:
///
/// - a completed read or failed compare that is a candidate and whose result fits the current
///   state is linearized at once, and no alternative is tried in that configuration: in any
///   linearization that continues from there, the operation can be moved to the front, since it
///   changes no state, its result fits, and everything that must precede it in real time is
///   already linearized (it was invoked before every pending return);
/// - a configuration is abandoned when a pending completed op needs a state (a read's value, a
///   swap's expected value) that the register does not hold and no pending update installs;
/// - an unknown-outcome update is placed only if some pending op could observe the state it
///   installs (otherwise leaving it out does as well);
/// - after placing one, until some op needs the state it installed, only ops that keep the state
///   and would be fine without the placement, or that need the new state, are tried: if a write
///   or delete came first, the placement could be left out (the configuration reached that way,
///   with fewer unknown-outcome ops placed, is explored anyway).
pub(super) fn search(ops: &KeyOps<'_>, max_steps: u64) -> Search {
    let known = &ops.known;
    let maybe = &ops.maybe;
    let events = Events::new(known);
    let tail = events.tail();
    let maybe_set = Bits::new(maybe.len());
    let mut s = Searcher {
        known,
        maybe,
        events,
        known_set: Bits::new(known.len()),
        cache: Cache::new(maybe_set.0.len()),
        maybe_set,
        unplaced: Links::new(maybe.len() + 2),
        supply: Supply::new(ops.values.len() + 1, known, maybe),
        stack: Vec::new(),
        known_placed: 0,
        state: ABSENT,
        mode: None,
        deepest: None,
        deepest_prefix: Vec::new(),
        synced: 0,
    };
    // Identical unknown-outcome ops are interchangeable, except that an earlier-invoked one is a
    // candidate wherever a later one is: they are placed in invocation order only.
    let mut same_before = vec![None; maybe.len()];
    let mut last: HashMap<Maybe, usize> = HashMap::new();
    for (j, m) in maybe.iter().enumerate() {
        same_before[j] = last.insert(m.op, j);
    }
    let mut cursor = Cursor::Fresh;
    let mut steps = 0u64;
    s.cache.visit(&s.known_set, s.state, &s.maybe_set, None);
    if s.supply.dead(s.state) {
        s.note_unreachable(None, s.state);
        cursor = Cursor::Exhausted;
    }

    loop {
        if steps + s.cache.work >= max_steps {
            return Search::Inconclusive {
                steps: steps + s.cache.work,
            };
        }
        steps += 1;
        match cursor {
            Cursor::Fresh => {
                let first = s.events.next(HEAD);
                if first == tail {
                    return Search::Linearizable;
                }
                cursor = Cursor::Known(first);
                let mut n = first;
                while let (i, true) = s.events.node[n] {
                    steps += 1;
                    let op = known[i].op;
                    if matches!(op, Known::Read(_) | Known::CasFailed { .. })
                        && op.step(s.state).is_some()
                    {
                        cursor = if s.advance(Placed::Known(i), s.state, Cursor::Exhausted) {
                            Cursor::Fresh
                        } else {
                            Cursor::Exhausted
                        };
                        break;
                    }
                    n = s.events.next(n);
                }
            }
            Cursor::Known(first) => {
                // Skip to the next call whose op fits the state and may follow here.
                let mut n = first;
                let mut next_state = None;
                while let (i, true) = s.events.node[n] {
                    steps += 1;
                    let op = known[i].op;
                    next_state = op.step(s.state);
                    if next_state.is_some() && !(s.mode.is_some() && matches!(op, Known::Write(_)))
                    {
                        break;
                    }
                    next_state = None;
                    n = s.events.next(n);
                }
                let (i, _) = s.events.node[n];
                cursor = match next_state {
                    Some(next_state) => {
                        let next = Cursor::Known(s.events.next(n));
                        if s.advance(Placed::Known(i), next_state, next) {
                            Cursor::Fresh
                        } else {
                            next
                        }
                    }
                    None => {
                        // Op `i` must be linearized before this return and is not (the list is
                        // not empty, so the scan stops at a return before the tail): only unknown
                        // updates invoked before this point remain to try here.
                        s.note_deadline(i);
                        Cursor::Maybe {
                            node: s.unplaced.next[HEAD],
                            frontier: s.events.stamp[n],
                        }
                    }
                };
            }
            Cursor::Maybe {
                node: first,
                frontier,
            } => {
                // Skip to the next unknown-outcome update that may be placed here.
                let mut node = first;
                let mut candidate = None;
                while let Some(&MaybeOp { op, call, .. }) = maybe.get(node.wrapping_sub(1)) {
                    if call >= frontier {
                        break;
                    }
                    steps += 1;
                    let j = node - 1;
                    if let Some(next_state) = op.step(s.state) {
                        if !(s.mode.is_some() && matches!(op, Maybe::Write(_)))
                            && same_before[j].is_none_or(|p| s.maybe_set.get(p))
                            && s.supply.observable(next_state, op)
                        {
                            candidate = Some((j, next_state));
                            break;
                        }
                    }
                    node = s.unplaced.next[node];
                }
                cursor = match candidate {
                    Some((j, next_state)) => {
                        let next = Cursor::Maybe {
                            node: s.unplaced.next[node],
                            frontier,
                        };
                        if s.advance(Placed::Maybe(j), next_state, next) {
                            Cursor::Fresh
                        } else {
                            next
                        }
                    }
                    None => Cursor::Exhausted,
                };
            }
            Cursor::Exhausted => match s.retreat() {
                Some(resume) => cursor = resume,
                None => return Search::Stuck(s.stuck()),
            },
        }
    }
}
