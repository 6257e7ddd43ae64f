//! RESP2, the Redis protocol: commands out as arrays of bulk strings, replies in as simple
//! strings, errors, integers, bulk strings (or nil) and arrays of those.

use bytes::{Buf, Bytes, BytesMut};

/// The longest bulk string accepted: Redis' own `proto-max-bulk-len` default (512 MiB).
const BULK_BYTES_MAX: usize = 512 << 20;
/// The most elements of an array reply accepted.
const ARRAY_ELEMENTS_MAX: usize = 1 << 20;
/// The deepest nesting of array replies accepted.
const ARRAY_DEPTH_MAX: usize = 8;
/// The longest header line (`+…`, `-…`, `:…`, `$n`, `*n`) accepted, without its `\r\n`.
const LINE_BYTES_MAX: usize = 64 << 10;

/// One reply of the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(Bytes),
    /// `-ERR …`: the command failed; the text is the server's message.
    Error(Bytes),
    /// `:12`.
    Integer(i64),
    /// `$3 abc`, or `$-1` (nil: `None`).
    Bulk(Option<Bytes>),
    /// `*2 …`, or `*-1` (nil: `None`).
    Array(Option<Vec<Reply>>),
}

/// A reply that is not valid RESP2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "invalid reply: {}", self.0)
    }
}

/// Appends one command, an array of bulk strings, to `out`.
pub fn encode_command(out: &mut Vec<u8>, arguments: &[&[u8]]) {
    push_header(out, b'*', arguments.len());
    for argument in arguments {
        push_header(out, b'$', argument.len());
        out.extend_from_slice(argument);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `<marker><count>\r\n`.
fn push_header(out: &mut Vec<u8>, marker: u8, count: usize) {
    out.push(marker);
    out.extend_from_slice(count.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Takes one complete reply off the front of `buffer`: `Ok(None)` (and `buffer` untouched) if
/// the reply has not fully arrived yet.
///
/// # Errors
/// A [`ProtocolError`] if the bytes are not a RESP2 reply (the connection is then unusable).
pub fn take_reply(buffer: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
    match parse(buffer, 0, 0)? {
        Some((reply, length)) => {
            buffer.advance(length);
            Ok(Some(reply))
        }
        None => Ok(None),
    }
}

/// Parses the reply that starts at `start`; its value and where it ends, or `None` if
/// incomplete.
fn parse(
    buffer: &BytesMut,
    start: usize,
    depth: usize,
) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let Some((line, after_line)) = line_at(buffer, start)? else {
        return Ok(None);
    };
    let Some((&marker, text)) = line.split_first() else {
        return Err(ProtocolError("an empty line".into()));
    };
    let reply = match marker {
        b'+' => Reply::Simple(Bytes::copy_from_slice(text)),
        b'-' => Reply::Error(Bytes::copy_from_slice(text)),
        b':' => Reply::Integer(integer(text)?),
        b'$' => {
            let Some(length) = length(text, BULK_BYTES_MAX, "bulk string")? else {
                return Ok(Some((Reply::Bulk(None), after_line)));
            };
            let end = after_line + length;
            if buffer.len() < end + 2 {
                return Ok(None);
            }
            if &buffer[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("a bulk string without its CRLF".into()));
            }
            let value = Bytes::copy_from_slice(&buffer[after_line..end]);
            return Ok(Some((Reply::Bulk(Some(value)), end + 2)));
        }
        b'*' => {
            if depth >= ARRAY_DEPTH_MAX {
                return Err(ProtocolError("arrays nested too deep".into()));
            }
            let Some(count) = length(text, ARRAY_ELEMENTS_MAX, "array")? else {
                return Ok(Some((Reply::Array(None), after_line)));
            };
            let mut elements = Vec::with_capacity(count.min(64));
            let mut position = after_line;
            for _ in 0..count {
                let Some((element, next)) = parse(buffer, position, depth + 1)? else {
                    return Ok(None);
                };
                elements.push(element);
                position = next;
            }
            return Ok(Some((Reply::Array(Some(elements)), position)));
        }
        other => {
            return Err(ProtocolError(format!(
                "unknown reply type {:?}",
                char::from(other)
            )))
        }
    };
    Ok(Some((reply, after_line)))
}

/// The line that starts at `start` (without its `\r\n`) and where the next one starts, or
/// `None` if it has not fully arrived.
fn line_at(buffer: &BytesMut, start: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = &buffer[start.min(buffer.len())..];
    match rest.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) if end > LINE_BYTES_MAX => Err(ProtocolError("a line too long".into())),
        Some(end) => Ok(Some((&rest[..end], start + end + 2))),
        None if rest.len() > LINE_BYTES_MAX + 1 => Err(ProtocolError("a line too long".into())),
        None => Ok(None),
    }
}

/// A decimal integer.
fn integer(text: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| {
            ProtocolError(format!(
                "not an integer: {:?}",
                String::from_utf8_lossy(text)
            ))
        })
}

/// The length of a bulk string or array: `None` for `-1` (nil).
fn length(text: &[u8], most: usize, what: &str) -> Result<Option<usize>, ProtocolError> {
    match integer(text)? {
        -1 => Ok(None),
        length if length < 0 => Err(ProtocolError(format!("a negative {what} length"))),
        length => match usize::try_from(length) {
            Ok(length) if length <= most => Ok(Some(length)),
            _ => Err(ProtocolError(format!("a {what} longer than {most}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `bytes` as exactly one reply.
    fn one(bytes: &[u8]) -> Reply {
        let mut buffer = BytesMut::from(bytes);
        let reply = take_reply(&mut buffer)
            .unwrap_or_else(|err| panic!("{err}"))
            .unwrap_or_else(|| panic!("incomplete: {bytes:?}"));
        assert!(buffer.is_empty(), "left over: {buffer:?}");
        reply
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SET", b"k1", b"a\r\nb"]);
        encode_command(&mut out, &[b"WAIT", b"1", b"1000"]);
        encode_command(&mut out, &[b"GET", b""]);
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$4\r\na\r\nb\r\n\
              *3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$4\r\n1000\r\n\
              *2\r\n$3\r\nGET\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn every_reply_type_parses() {
        assert_eq!(one(b"+OK\r\n"), Reply::Simple(Bytes::from_static(b"OK")));
        assert_eq!(
            one(b"-ERR wrong\r\n"),
            Reply::Error(Bytes::from_static(b"ERR wrong"))
        );
        assert_eq!(one(b":1\r\n"), Reply::Integer(1));
        assert_eq!(one(b":-42\r\n"), Reply::Integer(-42));
        assert_eq!(
            one(b"$5\r\na\r\nbc\r\n"),
            Reply::Bulk(Some(Bytes::from_static(b"a\r\nbc")))
        );
        assert_eq!(one(b"$0\r\n\r\n"), Reply::Bulk(Some(Bytes::new())));
        assert_eq!(one(b"$-1\r\n"), Reply::Bulk(None));
        assert_eq!(one(b"*-1\r\n"), Reply::Array(None));
        assert_eq!(
            one(b"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n$-1\r\n"),
            Reply::Array(Some(vec![
                Reply::Integer(1),
                Reply::Bulk(Some(Bytes::from_static(b"x"))),
                Reply::Array(Some(vec![Reply::Bulk(None)])),
            ]))
        );
    }

    #[test]
    fn replies_arriving_in_pieces_wait_for_the_rest() {
        let whole: &[u8] = b"$3\r\nabc\r\n:7\r\n";
        for cut in 0..whole.len() {
            let mut buffer = BytesMut::from(&whole[..cut]);
            if cut < 9 {
                assert_eq!(take_reply(&mut buffer), Ok(None), "cut at {cut}");
                assert_eq!(buffer.len(), cut, "nothing consumed at {cut}");
            }
            buffer.extend_from_slice(&whole[cut..]);
            assert_eq!(
                take_reply(&mut buffer),
                Ok(Some(Reply::Bulk(Some(Bytes::from_static(b"abc")))))
            );
            assert_eq!(take_reply(&mut buffer), Ok(Some(Reply::Integer(7))));
            assert_eq!(take_reply(&mut buffer), Ok(None));
        }
    }

    #[test]
    fn malformed_replies_are_refused() {
        for bad in [
            &b"?x\r\n"[..],
            b":12a\r\n",
            b"$-2\r\n",
            b"$3\r\nabcd\r\n",
            b"*-5\r\n",
            b"\r\n",
        ] {
            let mut buffer = BytesMut::from(bad);
            assert!(take_reply(&mut buffer).is_err(), "{bad:?}");
        }
        let mut deep = BytesMut::from(&b"*1\r\n".repeat(ARRAY_DEPTH_MAX + 1)[..]);
        deep.extend_from_slice(b":1\r\n");
        assert!(take_reply(&mut deep).is_err());
        let mut endless = BytesMut::from(&b"+"[..]);
        endless.extend_from_slice(&vec![b'a'; LINE_BYTES_MAX + 2]);
        assert!(take_reply(&mut endless).is_err());
    }
}
