//! Keys to slots: Redis Cluster's hash-slot function.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// The number of hash slots: every key belongs to exactly one slot in `0..SLOTS`.
pub const SLOTS: u16 = 16384;

/// A hash slot, in `0..`[`SLOTS`]; the unit of placement.
///
/// Deserializing a number outside `0..SLOTS` fails, so a `Slot` is always valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Slot(u16);

impl Slot {
    /// The slot numbered `number`, or `None` if `number` is not below [`SLOTS`].
    pub const fn new(number: u16) -> Option<Slot> {
        if number < SLOTS {
            Some(Slot(number))
        } else {
            None
        }
    }

    /// The slot's number, in `0..SLOTS`.
    pub const fn number(self) -> u16 {
        self.0
    }

    /// Every slot, in increasing order.
    pub fn all() -> impl DoubleEndedIterator<Item = Slot> + ExactSizeIterator {
        (0..SLOTS).map(Slot)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot {}", self.0)
    }
}

impl<'de> Deserialize<'de> for Slot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The wire form of a [`Slot`], checked before it becomes one.
        #[derive(Deserialize)]
        #[serde(rename = "Slot")]
        struct Unchecked(u16);

        let Unchecked(number) = Unchecked::deserialize(deserializer)?;
        Slot::new(number).ok_or_else(|| {
            serde::de::Error::custom(format_args!("slot {number} is not below {SLOTS}"))
        })
    }
}

/// The slot of `key`: Redis Cluster's `HASH_SLOT(key)`.
///
/// `CRC16(hashed) mod 16384`, where CRC16 is CRC-16/XMODEM (polynomial `0x1021`, initial value 0,
/// no reflection, no final xor) and `hashed` is the key's *hash tag* if it has one, else the whole
/// key. The hash tag is the bytes between the first `{` and the first `}` after it, provided there
/// is at least one byte between them; `{user1000}.following` and `{user1000}.followers` therefore
/// share a slot, while `foo{}{bar}` hashes the whole key, `foo{{bar}}zap` hashes `{bar` and
/// `foo{bar}{zap}` hashes `bar`. These are the rules of the Redis Cluster specification ("Keys
/// distribution model", "Hash tags") and of `keyHashSlot` in Redis's `src/cluster.c`, so a client
/// that speaks Redis Cluster computes the same slot.
///
/// **This function is stable forever:** slots are stored on disk and sent on the wire, so changing
/// it (even its treatment of an edge case) would move keys silently. It does not allocate.
pub fn key_slot(key: &[u8]) -> Slot {
    Slot(crc16(hash_tag(key).unwrap_or(key)) % SLOTS)
}

/// The hash tag of `key`: the non-empty bytes between its first `{` and the next `}`, if any.
pub fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&byte| byte == b'{')?;
    let after_open = &key[open + 1..];
    let close = after_open.iter().position(|&byte| byte == b'}')?;
    (close > 0).then(|| &after_open[..close])
}

/// CRC-16/XMODEM of `bytes` (polynomial `0x1021`, initial value 0, no reflection, no final xor);
/// its check value, the CRC of `b"123456789"`, is `0x31C3`.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)]
    })
}

/// `CRC16_TABLE[b]` is the CRC register after shifting the byte `b` through a zero register.
const CRC16_TABLE: [u16; 256] = crc16_table();

/// Computes [`CRC16_TABLE`] at compile time.
const fn crc16_table() -> [u16; 256] {
    const POLYNOMIAL: u16 = 0x1021;
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLYNOMIAL
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(number: u16) -> Slot {
        Slot::new(number).unwrap()
    }

    #[test]
    fn crc16_is_xmodem() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
        // The table's first entries follow from the polynomial alone.
        assert_eq!(CRC16_TABLE[1], 0x1021);
        assert_eq!(CRC16_TABLE[255], 0x1EF0);
    }

    #[test]
    fn key_slots_match_redis_cluster_keyslot() {
        assert_eq!(key_slot(b"somekey"), slot(11058));
        assert_eq!(key_slot(b"foo"), slot(12182));
        assert_eq!(key_slot(b"bar"), slot(5061));
        assert_eq!(key_slot(b"hello"), slot(866));
        // The CLUSTER KEYSLOT documentation's hash-tag examples.
        assert_eq!(key_slot(b"foo{hash_tag}"), slot(2515));
        assert_eq!(key_slot(b"bar{hash_tag}"), slot(2515));
        assert_eq!(key_slot(b""), slot(0));
    }

    #[test]
    fn keys_with_one_hash_tag_share_its_slot() {
        let tagged = key_slot(b"user1000");
        assert_eq!(key_slot(b"{user1000}.following"), tagged);
        assert_eq!(key_slot(b"{user1000}.followers"), tagged);
        assert_eq!(key_slot(b"x{user1000}"), tagged);
    }

    #[test]
    fn hash_tag_edge_cases_follow_the_redis_cluster_spec() {
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(hash_tag(b"foo{}{bar}"), None);
        assert_eq!(key_slot(b"foo{}{bar}"), Slot(crc16(b"foo{}{bar}") % SLOTS));
        // The tag ends at the first `}` after the first `{`.
        assert_eq!(hash_tag(b"foo{{bar}}zap"), Some(&b"{bar"[..]));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(hash_tag(b"foo{bar}{zap}"), Some(&b"bar"[..]));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        // Without a closing brace, or with `}` only before `{`, there is no tag.
        assert_eq!(hash_tag(b"foo{bar"), None);
        assert_eq!(hash_tag(b"foo}bar{"), None);
        assert_eq!(hash_tag(b"{}"), None);
        assert_eq!(hash_tag(b"{a}"), Some(&b"a"[..]));
        assert_eq!(hash_tag(b"a}{b}"), Some(&b"b"[..]));
    }

    #[test]
    fn every_key_slot_is_below_slots() {
        for byte in 0..=u8::MAX {
            assert!(key_slot(&[byte, byte ^ 0x5A, 0xFF]).number() < SLOTS);
        }
    }

    #[test]
    fn slots_outside_the_range_do_not_exist() {
        assert_eq!(Slot::new(SLOTS - 1).map(Slot::number), Some(SLOTS - 1));
        assert_eq!(Slot::new(SLOTS), None);
        assert_eq!(Slot::all().len(), usize::from(SLOTS));
        assert_eq!(Slot::all().next_back(), Some(slot(SLOTS - 1)));
    }

    #[test]
    fn deserializing_checks_the_range() {
        use serde::de::value::{Error, SeqDeserializer};
        let parse =
            |number: u16| Slot::deserialize(SeqDeserializer::<_, Error>::new([number].into_iter()));
        assert_eq!(parse(7).ok(), Some(slot(7)));
        assert!(parse(SLOTS).is_err());
    }
}
