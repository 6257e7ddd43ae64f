//! Length-prefixed postcard frames carrying batches.
//!
//! # Wire format
//!
//! Every stream (peer or client) is a sequence of frames:
//!
//! ```text
//! frame = length: u32 little-endian ‖ body: [u8; length]      (length ≤ frame_bytes_max)
//! batch = postcard(Vec<T>) = varint(count) ‖ postcard(T) × count
//! hello = postcard(Hello { magic: b"HRMS", version: u16, node: NodeId })
//! ```
//!
//! A peer stream starts with one hello frame and continues with batch frames of the message type;
//! a client stream carries batch frames of [`crate::RequestEnvelope`] one way and [`crate::ResponseEnvelope`] the
//! other. The length prefix is checked against the maximum before anything is allocated; a body
//! must decode completely with no bytes left over.

use hermes_core::NodeId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{FrameError, NetError};

/// Bytes of the length prefix in front of every frame body.
pub const PREFIX_BYTES: usize = 4;
/// The smallest accepted `frame_bytes_max`.
pub const FRAME_BYTES_MIN: usize = 64;
/// The largest accepted `frame_bytes_max` (the length prefix is a `u32`).
pub const FRAME_BYTES_LIMIT: usize = u32::MAX as usize;
/// The default `frame_bytes_max` of nodes and clients: 4 MiB, room for the largest value a
/// node accepts by default (`hermes_core::Config::VALUE_BYTES_MAX_DEFAULT`, 1 MiB) with its key
/// and everything around it.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 4 << 20;
/// Magic bytes at the start of a hello.
pub const HELLO_MAGIC: [u8; 4] = *b"HRMS";
/// Version of the peer wire protocol, sent in the hello.
pub const PROTOCOL_VERSION: u16 = 1;
/// Maximum size of a hello frame body.
pub(crate) const HELLO_BYTES_MAX: usize = 64;

/// Bytes reserved in front of the batch for the prefix and the element count (a `u32` varint).
const COUNT_BYTES_MAX: usize = 5;
const HEADER_RESERVE: usize = PREFIX_BYTES + COUNT_BYTES_MAX;

/// The first frame on every peer stream: who the sender claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`HELLO_MAGIC`].
    pub magic: [u8; 4],
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The node id the sender claims; it must be named by the sender's certificate.
    pub node: NodeId,
}

/// Encodes the hello frame (prefix included) of `node`.
pub fn encode_hello(node: NodeId) -> Vec<u8> {
    let hello = Hello {
        magic: HELLO_MAGIC,
        version: PROTOCOL_VERSION,
        node,
    };
    let mut frame = vec![0; PREFIX_BYTES];
    // A struct of fixed-size fields always encodes.
    frame = postcard::to_extend(&hello, frame).unwrap_or_default();
    let len = (frame.len() - PREFIX_BYTES) as u32;
    frame[..PREFIX_BYTES].copy_from_slice(&len.to_le_bytes());
    frame
}

/// Decodes a hello body and checks its magic and version.
pub(crate) fn decode_hello(body: &[u8]) -> Result<NodeId, FrameError> {
    let hello: Hello = decode_value(body).map_err(|e| FrameError::Hello {
        detail: e.to_string(),
    })?;
    if hello.magic != HELLO_MAGIC {
        return Err(FrameError::Hello {
            detail: format!("wrong magic {:?}", hello.magic),
        });
    }
    if hello.version != PROTOCOL_VERSION {
        return Err(FrameError::Hello {
            detail: format!(
                "protocol version {} (this node speaks {PROTOCOL_VERSION})",
                hello.version
            ),
        });
    }
    Ok(hello.node)
}

/// Whether a [`BatchEncoder::push`] took the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The item is in the batch.
    Added,
    /// The item would make the frame exceed the maximum; it was not added. Finish this frame and
    /// push the item into the next one.
    Full,
}

/// Builds one batch frame incrementally, never exceeding the maximum frame size.
///
/// The buffer is reused across frames: [`BatchEncoder::clear`], push items, then write
/// [`BatchEncoder::finish`]. The body is written once; no copy is made to prepend the header.
#[derive(Debug)]
pub struct BatchEncoder {
    buf: Vec<u8>,
    count: usize,
    frame_bytes_max: usize,
}

impl BatchEncoder {
    /// A new encoder for frames whose body is at most `frame_bytes_max` bytes.
    pub fn new(frame_bytes_max: usize) -> Self {
        BatchEncoder {
            buf: vec![0; HEADER_RESERVE],
            count: 0,
            frame_bytes_max: frame_bytes_max.min(FRAME_BYTES_LIMIT),
        }
    }

    /// Number of items in the current batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the current batch is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Starts a new, empty batch.
    pub fn clear(&mut self) {
        self.buf.truncate(HEADER_RESERVE);
        self.count = 0;
    }

    /// Appends `item` to the batch if the frame stays within the maximum.
    ///
    /// # Errors
    /// [`NetError::MessageTooLarge`] if `item` alone exceeds the maximum frame size (it can never
    /// be sent); [`NetError::Encode`] if it cannot be serialized. The batch is unchanged then.
    pub fn push<T: Serialize>(&mut self, item: &T) -> Result<Push, NetError> {
        let before = self.buf.len();
        match postcard::to_extend(item, std::mem::take(&mut self.buf)) {
            Ok(buf) => self.buf = buf,
            Err(e) => {
                self.buf = Vec::with_capacity(before);
                self.buf.resize(HEADER_RESERVE, 0);
                self.count = 0;
                return Err(NetError::Encode(e.to_string()));
            }
        }
        let body = varint_len(self.count + 1) + self.buf.len() - HEADER_RESERVE;
        if body <= self.frame_bytes_max {
            self.count += 1;
            return Ok(Push::Added);
        }
        let item_bytes = self.buf.len() - before;
        self.buf.truncate(before);
        if self.count == 0 {
            Err(NetError::MessageTooLarge {
                bytes: item_bytes + varint_len(1),
                max: self.frame_bytes_max,
            })
        } else {
            Ok(Push::Full)
        }
    }

    /// The complete frame (length prefix, count, items) of the current batch.
    pub fn finish(&mut self) -> &[u8] {
        let mut count = [0u8; COUNT_BYTES_MAX];
        let count_len = write_varint(self.count, &mut count);
        let body_len = count_len + self.buf.len() - HEADER_RESERVE;
        let start = HEADER_RESERVE - count_len - PREFIX_BYTES;
        // `push` keeps body_len within frame_bytes_max ≤ u32::MAX.
        let len = (body_len as u32).to_le_bytes();
        self.buf[start..start + PREFIX_BYTES].copy_from_slice(&len);
        self.buf[start + PREFIX_BYTES..HEADER_RESERVE].copy_from_slice(&count[..count_len]);
        &self.buf[start..]
    }
}

/// Encodes `items` as one frame.
///
/// # Errors
/// [`NetError::MessageTooLarge`] if the frame would exceed `frame_bytes_max`, or
/// [`NetError::Encode`].
pub fn encode_batch<T: Serialize>(
    items: &[T],
    frame_bytes_max: usize,
) -> Result<Vec<u8>, NetError> {
    let mut encoder = BatchEncoder::new(frame_bytes_max);
    for item in items {
        if encoder.push(item)? == Push::Full {
            return Err(NetError::MessageTooLarge {
                bytes: encoded_len(items),
                max: frame_bytes_max,
            });
        }
    }
    Ok(encoder.finish().to_vec())
}

fn encoded_len<T: Serialize>(items: &[T]) -> usize {
    items
        .iter()
        .map(|item| postcard::to_allocvec(item).map_or(0, |v| v.len()))
        .sum::<usize>()
        + varint_len(items.len())
}

/// Decodes a batch body (the bytes after the length prefix).
///
/// # Errors
/// [`FrameError::Decode`] for bytes that are not a batch of `T` (garbage, unknown message kinds,
/// truncated contents) and [`FrameError::TrailingBytes`] if bytes are left over.
pub fn decode_batch<T: DeserializeOwned>(body: &[u8]) -> Result<Vec<T>, FrameError> {
    decode_value(body)
}

fn decode_value<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(FrameError::TrailingBytes { extra: rest.len() }),
        Err(e) => Err(FrameError::Decode {
            detail: e.to_string(),
        }),
    }
}

/// Why [`read_frame`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadFrameError {
    /// The bytes on the stream are not a valid frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Reading the stream failed (connection lost, stream reset).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads the next frame body into `buf`.
///
/// Returns `Ok(false)` at a clean end of the stream (between frames).
///
/// # Errors
/// [`FrameError::Oversize`] when the prefix announces more than `frame_bytes_max` (checked before
/// allocating), [`FrameError::Truncated`] when the stream ends inside a frame, or an I/O error.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    frame_bytes_max: usize,
) -> Result<bool, ReadFrameError> {
    let mut prefix = [0u8; PREFIX_BYTES];
    let got = read_full(reader, &mut prefix).await?;
    if got == 0 {
        return Ok(false);
    }
    if got < PREFIX_BYTES {
        return Err(FrameError::Truncated {
            expected: PREFIX_BYTES,
            got,
        }
        .into());
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > frame_bytes_max {
        return Err(FrameError::Oversize {
            len: len as u64,
            max: frame_bytes_max,
        }
        .into());
    }
    buf.clear();
    // Exactly `len`: growing by doubling could reserve up to twice the maximum.
    buf.reserve_exact(len);
    buf.resize(len, 0);
    let got = read_full(reader, buf).await?;
    if got < len {
        return Err(FrameError::Truncated { expected: len, got }.into());
    }
    Ok(true)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn varint_len(mut value: usize) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

fn write_varint(mut value: usize, out: &mut [u8; COUNT_BYTES_MAX]) -> usize {
    let mut i = 0;
    while value >= 0x80 && i < COUNT_BYTES_MAX - 1 {
        out[i] = (value as u8) | 0x80;
        value >>= 7;
        i += 1;
    }
    out[i] = value as u8;
    i + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Msg {
        A(u32),
        B(Vec<u8>),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Short {
        A(u32),
    }

    async fn read_one(bytes: &[u8], max: usize) -> Result<Option<Vec<u8>>, ReadFrameError> {
        let mut reader = bytes;
        let mut buf = Vec::new();
        Ok(read_frame(&mut reader, &mut buf, max).await?.then_some(buf))
    }

    #[tokio::test]
    async fn batch_round_trips_and_matches_postcard_vec() {
        let items: Vec<Msg> = (0..300).map(|i| Msg::A(i * 1000)).collect();
        let frame = encode_batch(&items, 1 << 20).unwrap();
        let body = read_one(&frame, 1 << 20).await.unwrap().unwrap();
        assert_eq!(body, postcard::to_allocvec(&items).unwrap());
        assert_eq!(decode_batch::<Msg>(&body).unwrap(), items);
    }

    #[test]
    fn encoder_splits_at_the_frame_maximum() {
        let mut encoder = BatchEncoder::new(100);
        let item = Msg::B(vec![7; 30]);
        let mut added = 0;
        while encoder.push(&item).unwrap() == Push::Added {
            added += 1;
        }
        assert_eq!(added, 3);
        let frame = encoder.finish().to_vec();
        assert!(frame.len() - PREFIX_BYTES <= 100);
        let batch: Vec<Msg> = decode_batch(&frame[PREFIX_BYTES..]).unwrap();
        assert_eq!(batch, vec![item.clone(); 3]);
        encoder.clear();
        assert_eq!(encoder.push(&item).unwrap(), Push::Added);
        assert_eq!(encoder.push(&Msg::B(vec![0; 200])).unwrap(), Push::Full);
    }

    #[test]
    fn single_oversize_item_is_refused() {
        let mut encoder = BatchEncoder::new(FRAME_BYTES_MIN);
        let err = encoder.push(&Msg::B(vec![0; 100])).unwrap_err();
        assert!(
            matches!(err, NetError::MessageTooLarge { max: 64, .. }),
            "{err}"
        );
        assert!(encoder.is_empty());
        assert_eq!(encoder.push(&Msg::A(1)).unwrap(), Push::Added);
    }

    #[tokio::test]
    async fn oversize_prefix_is_rejected_before_allocating() {
        let frame = (u32::MAX).to_le_bytes();
        let err = read_one(&frame, 1024).await.unwrap_err();
        assert!(matches!(
            err,
            ReadFrameError::Frame(FrameError::Oversize { len, max: 1024 }) if len == u64::from(u32::MAX)
        ));
    }

    #[tokio::test]
    async fn truncated_frames_are_detected() {
        let frame = encode_batch(&[Msg::A(5)], 1024).unwrap();
        assert!(read_one(&[], 1024).await.unwrap().is_none());
        let err = read_one(&frame[..2], 1024).await.unwrap_err();
        assert!(matches!(
            err,
            ReadFrameError::Frame(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        let err = read_one(&frame[..frame.len() - 1], 1024).await.unwrap_err();
        assert!(matches!(
            err,
            ReadFrameError::Frame(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn garbage_unknown_kinds_and_trailing_bytes_are_rejected() {
        assert!(matches!(
            decode_batch::<Msg>(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::Decode { .. })
        ));
        let frame = encode_batch(&[Msg::B(vec![1, 2])], 1024).unwrap();
        assert!(matches!(
            decode_batch::<Short>(&frame[PREFIX_BYTES..]),
            Err(FrameError::Decode { .. })
        ));
        let mut body = frame[PREFIX_BYTES..].to_vec();
        body.push(0);
        assert_eq!(
            decode_batch::<Msg>(&body),
            Err(FrameError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn hello_round_trips_and_checks_magic() {
        let frame = encode_hello(NodeId(42));
        assert!(frame.len() - PREFIX_BYTES <= HELLO_BYTES_MAX);
        assert_eq!(decode_hello(&frame[PREFIX_BYTES..]).unwrap(), NodeId(42));
        let mut bad = frame[PREFIX_BYTES..].to_vec();
        bad[0] = b'X';
        assert!(matches!(decode_hello(&bad), Err(FrameError::Hello { .. })));
    }

    #[test]
    fn varints_match_postcard() {
        assert_eq!(varint_len(u32::MAX as usize), COUNT_BYTES_MAX);
        for n in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let mut out = [0; COUNT_BYTES_MAX];
            let len = write_varint(n, &mut out);
            assert_eq!(len, varint_len(n));
            let expect = postcard::to_allocvec(&vec![(); n]).unwrap();
            assert_eq!(&out[..len], &expect[..]);
        }
    }
}
