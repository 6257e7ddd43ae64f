//! Property tests of every decoder of bytes from the network: the frame reader
//! ([`frame::read_frame`], used by peer streams, the server's client reader and the client's
//! response reader) and the batch decoder ([`frame::decode_batch`]) for peer messages, hellos,
//! client requests and client responses.
//!
//! Arbitrary bytes, and valid frames split at every offset, truncated, with their length prefix
//! replaced or a byte flipped: no panic, a typed error, and no allocation larger than the frame
//! limit (read_frame) or than serde's fixed preallocation cap (decode_batch).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use hermes_core::NodeId;
use hermes_net::frame::{self, encode_batch, Hello, ReadFrameError, FRAME_BYTES_MIN, PREFIX_BYTES};
use hermes_net::{FrameError, RequestEnvelope, ResponseEnvelope, ServerError};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, ReadBuf};

/// Records the largest single allocation made on a thread while it runs a measurement.
struct LargestAllocation;

thread_local! {
    // Const-initialized cells without destructors: reading them never allocates.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn note(size: usize) {
    if MEASURING.get() {
        LARGEST.set(LARGEST.get().max(size));
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Runs `f` and returns its result with the largest single allocation it made on this thread.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.set(0);
    MEASURING.set(true);
    let out = f();
    MEASURING.set(false);
    (out, LARGEST.get())
}

/// serde preallocates at most this many bytes for a sequence whose length the input announces
/// (`serde::__private::size_hint::cautious`), whatever the announced length.
const SERDE_PREALLOC_BYTES_MAX: usize = 1 << 20;

/// A client request type with the shapes real ones have: strings, byte strings, options,
/// nested sequences and enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Req {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    },
    Batch(Vec<Vec<u8>>),
    Ping,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Resp {
    Value(Option<Vec<u8>>),
    Done,
    Failed(String),
}

/// A peer message type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PeerMsg {
    Inv {
        key: u64,
        ts: (u32, u32),
        value: Vec<u8>,
    },
    Ack(u64),
    Val(u64),
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        ".{0,12}".prop_map(|key| Req::Get { key }),
        (
            ".{0,12}",
            prop::collection::vec(any::<u8>(), 0..40),
            any::<Option<u64>>()
        )
            .prop_map(|(key, value, ttl_ms)| Req::Put { key, value, ttl_ms }),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..4).prop_map(Req::Batch),
        Just(Req::Ping),
    ]
}

fn requests() -> impl Strategy<Value = Vec<RequestEnvelope<Req>>> {
    prop::collection::vec(
        (any::<u64>(), req()).prop_map(|(id, body)| RequestEnvelope { id, body }),
        0..6,
    )
}

/// A reader that hands out its bytes at most `chunk` at a time, always ready.
struct Chunked<'a> {
    bytes: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(self.bytes.len()).min(buf.remaining());
        let (head, tail) = self.bytes.split_at(n);
        buf.put_slice(head);
        self.bytes = tail;
        Poll::Ready(Ok(()))
    }
}

/// A reader that hands out `first`, then the rest, in one read each.
struct Split<'a> {
    parts: [&'a [u8]; 2],
}

impl AsyncRead for Split<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let part = if self.parts[0].is_empty() { 1 } else { 0 };
        let n = self.parts[part].len().min(buf.remaining());
        let (head, tail) = self.parts[part].split_at(n);
        buf.put_slice(head);
        self.parts[part] = tail;
        Poll::Ready(Ok(()))
    }
}

/// Runs a future over an always-ready reader to completion.
fn ready<T>(fut: impl Future<Output = T>) -> T {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Reads frames from `reader` into one reused buffer until the stream ends or fails; checks
/// that no frame and no allocation exceeds `max`. Returns the bodies and the final outcome.
fn read_all<R: AsyncRead + Unpin>(
    mut reader: R,
    max: usize,
) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
    let mut buf = Vec::new();
    let mut bodies = Vec::new();
    loop {
        let (read, largest) = measured(|| ready(frame::read_frame(&mut reader, &mut buf, max)));
        assert!(
            largest <= max,
            "allocated {largest} bytes with a frame limit of {max}"
        );
        assert!(
            buf.capacity() <= max,
            "buffer capacity {} over {max}",
            buf.capacity()
        );
        match read {
            Ok(true) => {
                assert!(buf.len() <= max);
                bodies.push(buf.clone());
            }
            Ok(false) => return (bodies, Ok(())),
            Err(ReadFrameError::Frame(e)) => return (bodies, Err(e)),
            Err(ReadFrameError::Io(e)) => panic!("I/O error from an in-memory reader: {e}"),
        }
    }
}

/// Decodes `body` as a batch of `T`: a typed error or a value, and no allocation beyond serde's
/// preallocation cap plus the body's own size.
fn decode_checked<T: DeserializeOwned>(body: &[u8]) -> Result<Vec<T>, FrameError> {
    let (decoded, largest) = measured(|| frame::decode_batch::<T>(body));
    let bound = SERDE_PREALLOC_BYTES_MAX + body.len();
    assert!(
        largest <= bound,
        "decoding {} bytes allocated {largest}",
        body.len()
    );
    if let Err(e) = &decoded {
        assert!(
            matches!(
                e,
                FrameError::Decode { .. } | FrameError::TrailingBytes { .. }
            ),
            "{e:?}"
        );
    }
    decoded
}

/// Every batch decoder of the crate, on one body.
fn decode_every_kind(body: &[u8]) {
    let _ = decode_checked::<RequestEnvelope<Req>>(body);
    let _ = decode_checked::<ResponseEnvelope<Resp>>(body);
    let _ = decode_checked::<PeerMsg>(body);
    let _ = decode_checked::<Hello>(body);
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_on_a_stream_give_frames_within_the_limit_or_a_typed_error(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        max in FRAME_BYTES_MIN..512usize,
        chunk in 1..64usize,
    ) {
        let (bodies, _) = read_all(Chunked { bytes: &bytes, chunk }, max);
        for body in &bodies {
            decode_every_kind(body);
        }
    }

    #[test]
    fn arbitrary_bodies_decode_or_give_a_typed_error(
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        decode_every_kind(&body);
    }

    #[test]
    fn huge_announced_counts_allocate_no_more_than_the_cap(
        count in any::<u32>(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut body = postcard::to_allocvec(&count).unwrap();
        body.extend_from_slice(&tail);
        decode_every_kind(&body);
    }

    #[test]
    fn valid_frames_split_at_every_offset_read_back_whole(batch in requests()) {
        let frame = encode_batch(&batch, 1 << 16).unwrap();
        for at in 0..=frame.len() {
            let (first, rest) = frame.split_at(at);
            let (bodies, end) = read_all(Split { parts: [first, rest] }, 1 << 16);
            prop_assert_eq!(end, Ok(()));
            prop_assert_eq!(bodies.len(), 1);
            prop_assert_eq!(&decode_checked::<RequestEnvelope<Req>>(&bodies[0]).unwrap(), &batch);
        }
    }

    #[test]
    fn truncated_frames_give_truncated(batch in requests()) {
        let frame = encode_batch(&batch, 1 << 16).unwrap();
        for at in 1..frame.len() {
            let (bodies, end) = read_all(Chunked { bytes: &frame[..at], chunk: 7 }, 1 << 16);
            prop_assert!(bodies.is_empty());
            prop_assert!(matches!(end, Err(FrameError::Truncated { .. })), "{:?}", end);
        }
    }

    #[test]
    fn frames_with_another_length_give_a_typed_error(
        batch in requests(),
        len in any::<u32>(),
        max in FRAME_BYTES_MIN..4096usize,
    ) {
        let mut frame = encode_batch(&batch, 1 << 16).unwrap();
        frame[..PREFIX_BYTES].copy_from_slice(&len.to_le_bytes());
        let (bodies, end) = read_all(Chunked { bytes: &frame, chunk: 13 }, max);
        if len as usize > max {
            prop_assert!(bodies.is_empty());
            let oversize = matches!(end, Err(FrameError::Oversize { .. }));
            prop_assert!(oversize, "{:?}", end);
        }
        for body in &bodies {
            decode_every_kind(body);
        }
    }

    #[test]
    fn frames_with_a_flipped_byte_give_a_typed_error(
        batch in requests(),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let mut frame = encode_batch(&batch, 1 << 16).unwrap();
        let at = PREFIX_BYTES + at.index(frame.len() - PREFIX_BYTES);
        frame[at] ^= flip;
        let (bodies, end) = read_all(Chunked { bytes: &frame, chunk: 5 }, 1 << 16);
        prop_assert_eq!(end, Ok(()));
        for body in &bodies {
            decode_every_kind(body);
        }
    }

    #[test]
    fn responses_and_hellos_round_trip_through_the_readers(
        ids in prop::collection::vec(any::<u64>(), 0..6),
        node in any::<u32>(),
    ) {
        let responses: Vec<ResponseEnvelope<Resp>> = ids
            .iter()
            .map(|&id| ResponseEnvelope { id, body: if id % 2 == 0 { Ok(Resp::Done) } else { Err(ServerError::Overloaded) } })
            .collect();
        let mut stream = frame::encode_hello(NodeId(node));
        stream.extend(encode_batch(&responses, 1 << 16).unwrap());
        let (bodies, end) = read_all(Chunked { bytes: &stream, chunk: 3 }, 1 << 16);
        prop_assert_eq!(end, Ok(()));
        prop_assert_eq!(bodies.len(), 2);
        let hello: Hello = postcard::from_bytes(&bodies[0]).unwrap();
        prop_assert_eq!(hello.node, NodeId(node));
        prop_assert_eq!(&decode_checked::<ResponseEnvelope<Resp>>(&bodies[1]).unwrap(), &responses);
    }
}
