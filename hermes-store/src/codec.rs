//! The on-disk encoding of a [`Record`].
//!
//! ```text
//! offset  size  field
//!      0     1  format version (2)
//!      1     1  kind: 0 = value, 1 = tombstone
//!      2     8  ts.version, big-endian
//!     10     4  ts.node, big-endian
//!     14     4  ts.incarnation, big-endian
//!     18     n  the value's bytes (n = 0 for a tombstone)
//! ```

use bytes::Bytes;
use hermes_core::{NodeId, Record, Ts};

/// The format version byte written at the start of every record.
pub(crate) const RECORD_FORMAT: u8 = 2;
/// The size of the fixed header in front of the value.
pub(crate) const HEADER_LEN: usize = 18;

const KIND_VALUE: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;

/// Encodes `record` into `out` (cleared first).
pub(crate) fn encode(record: &Record, out: &mut Vec<u8>) {
    out.clear();
    let value = record.value.as_deref();
    out.reserve(HEADER_LEN + value.map_or(0, <[u8]>::len));
    out.push(RECORD_FORMAT);
    out.push(if value.is_some() {
        KIND_VALUE
    } else {
        KIND_TOMBSTONE
    });
    out.extend_from_slice(&record.ts.version.to_be_bytes());
    out.extend_from_slice(&record.ts.node.0.to_be_bytes());
    out.extend_from_slice(&record.ts.incarnation.to_be_bytes());
    if let Some(value) = value {
        out.extend_from_slice(value);
    }
}

/// Decodes a record, or says in one line why the bytes are not one.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "record of {} bytes is shorter than its {HEADER_LEN}-byte header",
            bytes.len()
        ));
    }
    let (header, value) = bytes.split_at(HEADER_LEN);
    if header[0] != RECORD_FORMAT {
        return Err(format!(
            "record format version {} is not the supported version {RECORD_FORMAT}",
            header[0]
        ));
    }
    let mut version = [0u8; 8];
    version.copy_from_slice(&header[2..10]);
    let mut node = [0u8; 4];
    node.copy_from_slice(&header[10..14]);
    let mut incarnation = [0u8; 4];
    incarnation.copy_from_slice(&header[14..18]);
    let ts = Ts::new(
        u64::from_be_bytes(version),
        NodeId(u32::from_be_bytes(node)),
    )
    .with_incarnation(u32::from_be_bytes(incarnation));
    let value = match header[1] {
        KIND_VALUE => Some(Bytes::copy_from_slice(value)),
        KIND_TOMBSTONE if value.is_empty() => None,
        KIND_TOMBSTONE => return Err(format!("tombstone carries {} value bytes", value.len())),
        kind => return Err(format!("unknown record kind {kind}")),
    };
    Ok(Record { ts, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(record: Record) {
        let mut buf = Vec::new();
        encode(&record, &mut buf);
        assert_eq!(decode(&buf), Ok(record));
    }

    #[test]
    fn roundtrips() {
        roundtrip(Record {
            ts: Ts::new(u64::MAX, NodeId(u32::MAX)),
            value: Some(Bytes::from_static(b"hello")),
        });
        roundtrip(Record {
            ts: Ts::new(2, NodeId(1)),
            value: Some(Bytes::new()),
        });
        roundtrip(Record {
            ts: Ts::new(4, NodeId(3)),
            value: None,
        });
    }

    #[test]
    fn layout_is_fixed() {
        let mut buf = Vec::new();
        encode(
            &Record {
                ts: Ts::new(0x0102_0304_0506_0708, NodeId(0x0a0b_0c0d))
                    .with_incarnation(0x1112_1314),
                value: Some(Bytes::from_static(b"v")),
            },
            &mut buf,
        );
        assert_eq!(
            buf,
            [2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0x11, 0x12, 0x13, 0x14, b'v']
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(decode(&[1, 0, 0]).unwrap_err().contains("shorter"));
        let mut buf = vec![0u8; HEADER_LEN];
        buf[0] = 9;
        assert!(decode(&buf).unwrap_err().contains("format version 9"));
        buf[0] = RECORD_FORMAT;
        buf[1] = 7;
        assert!(decode(&buf).unwrap_err().contains("kind 7"));
        buf[1] = KIND_TOMBSTONE;
        buf.push(b'x');
        assert!(decode(&buf).unwrap_err().contains("tombstone"));
    }
}
