//! What each client does next: which key, which kind of operation, which value.

use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};

/// The kinds of operation the benchmark issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A linearizable read.
    Read,
    /// A write of a fresh value.
    Write,
    /// A compare-and-swap from the value the client last saw to a fresh value.
    Cas,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 3] = [OpKind::Read, OpKind::Write, OpKind::Cas];

    /// The name used in reports and in recorded histories (`f`).
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Cas => "cas",
        }
    }

    /// The position of the kind in [`OpKind::ALL`].
    pub fn index(self) -> usize {
        match self {
            OpKind::Read => 0,
            OpKind::Write => 1,
            OpKind::Cas => 2,
        }
    }
}

/// A small, fast pseudo-random generator (SplitMix64); one per client, no locking.
pub struct SplitMix64 {
    /// The generator's state, advanced by a constant on every draw.
    state: u64,
}

impl SplitMix64 {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound` (`bound` ≥ 1), uniform up to a bias below 2^-32 for any
    /// realistic bound (multiply-shift, no division).
    pub fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }

    /// A number in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }
}

/// A tag of four base-36 digits drawn from `seed`, naming one run.
pub fn run_tag(seed: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = SplitMix64::new(seed);
    (0..4)
        .map(|_| char::from(DIGITS[rng.below(DIGITS.len())]))
        .collect()
}

/// The key space and the mix of operations, shared by every client.
pub struct Workload {
    /// The text of every key, `k0k1k2…`, in one buffer: a key is a slice of it (no allocation).
    key_text: Bytes,
    /// Where key `i` starts in `key_text`; key `i` ends where key `i + 1` starts.
    key_starts: Vec<u32>,
    /// The size of every written value.
    value_bytes: usize,
    /// A short tag of this run, so that values differ from those of earlier runs.
    run_tag: String,
    /// Draws below this are compare-and-swaps.
    cas_below: f64,
    /// Draws below this (and not below `cas_below`) are writes; the rest are reads.
    write_below: f64,
}

impl Workload {
    /// Keys `k0..k{keys - 1}`, values of `value_bytes` bytes tagged with `run_tag`, and the
    /// given mix.
    ///
    /// `keys` must be at least 1 and small enough that all key texts fit in 4 GiB (the caller
    /// validates far lower bounds).
    pub fn new(
        keys: usize,
        value_bytes: usize,
        write_ratio: f64,
        cas_ratio: f64,
        run_tag: String,
    ) -> Self {
        let mut text = String::new();
        let mut key_starts = Vec::with_capacity(keys + 1);
        for index in 0..keys {
            key_starts.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
            let _ = write!(text, "k{index}");
        }
        key_starts.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        Workload {
            key_text: Bytes::from(text),
            key_starts,
            value_bytes,
            run_tag,
            cas_below: cas_ratio,
            write_below: cas_ratio + write_ratio,
        }
    }

    /// How many keys there are.
    pub fn key_count(&self) -> usize {
        self.key_starts.len() - 1
    }

    /// Key number `index` (`k<index>`), sharing the key buffer.
    pub fn key(&self, index: usize) -> Bytes {
        let start = self.key_starts[index] as usize;
        let end = self.key_starts[index + 1] as usize;
        self.key_text.slice(start..end)
    }

    /// The fraction of compare-and-swaps.
    pub fn cas_ratio(&self) -> f64 {
        self.cas_below
    }

    /// A key number drawn uniformly.
    pub fn pick_key(&self, rng: &mut SplitMix64) -> usize {
        rng.below(self.key_count())
    }

    /// An operation kind drawn by the configured ratios.
    pub fn pick_op(&self, rng: &mut SplitMix64) -> OpKind {
        let draw = rng.unit();
        if draw < self.cas_below {
            OpKind::Cas
        } else if draw < self.write_below {
            OpKind::Write
        } else {
            OpKind::Read
        }
    }

    /// The `sequence`-th value written by client `client` in this run:
    /// `v<client>-<sequence>-<run tag>` padded with dots to exactly `value_bytes` bytes, hence
    /// unique per write (unless `value_bytes` is shorter than that tag, which truncates it).
    pub fn value(&self, client: usize, sequence: u64) -> Bytes {
        /// Room for `v`, two 20-digit numbers, two dashes and a run tag.
        const TAG_BYTES_MAX: usize = 64;
        let mut value = BytesMut::with_capacity(self.value_bytes.max(TAG_BYTES_MAX));
        let _ = write!(value, "v{client}-{sequence}-{}", self.run_tag);
        value.truncate(self.value_bytes);
        value.resize(self.value_bytes, b'.');
        value.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_slices_of_one_buffer() {
        let workload = Workload::new(12, 8, 0.5, 0.0, "r".into());
        assert_eq!(workload.key_count(), 12);
        assert_eq!(&workload.key(0)[..], b"k0");
        assert_eq!(&workload.key(9)[..], b"k9");
        assert_eq!(&workload.key(11)[..], b"k11");
    }

    #[test]
    fn values_have_the_requested_size_and_are_unique() {
        let workload = Workload::new(1, 16, 1.0, 0.0, run_tag(1));
        let tag = run_tag(1);
        assert_eq!(tag.len(), 4);
        assert_ne!(tag, run_tag(2));
        assert_eq!(workload.value(3, 123), format!("v3-123-{tag}....."));
        assert_ne!(workload.value(3, 12), workload.value(31, 2));
        let tiny = Workload::new(1, 2, 1.0, 0.0, tag);
        assert_eq!(&tiny.value(3, 123)[..], b"v3");
    }

    #[test]
    fn ratios_pick_the_kinds() {
        let mut rng = SplitMix64::new(7);
        let writes_only = Workload::new(10, 4, 1.0, 0.0, "r".into());
        assert!((0..1000).all(|_| writes_only.pick_op(&mut rng) == OpKind::Write));
        let reads_only = Workload::new(10, 4, 0.0, 0.0, "r".into());
        assert!((0..1000).all(|_| reads_only.pick_op(&mut rng) == OpKind::Read));
        let cas_only = Workload::new(10, 4, 0.0, 1.0, "r".into());
        assert!((0..1000).all(|_| cas_only.pick_op(&mut rng) == OpKind::Cas));
        let mixed = Workload::new(10, 4, 0.3, 0.2, "r".into());
        let mut counts = [0usize; 3];
        for _ in 0..100_000 {
            counts[mixed.pick_op(&mut rng).index()] += 1;
        }
        assert!((49_000..51_000).contains(&counts[0]), "{counts:?}");
        assert!((29_000..31_000).contains(&counts[1]), "{counts:?}");
        assert!((19_000..21_000).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn keys_are_drawn_uniformly() {
        let mut rng = SplitMix64::new(1);
        let workload = Workload::new(4, 4, 0.0, 0.0, "r".into());
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            counts[workload.pick_key(&mut rng)] += 1;
        }
        assert!(
            counts.iter().all(|c| (9_500..10_500).contains(c)),
            "{counts:?}"
        );
    }
}
