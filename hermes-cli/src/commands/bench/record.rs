//! `--record FILE`: every operation as JSON lines, in the order the events happened.
//!
//! The format is the one `hermes_core::history::History::from_jsonl` reads: one flat object per
//! line with `process` (the client number), `type` (`invoke`, `ok`, `fail`, `info`), `f`
//! (`read`, `write`, `cas`), `key` and `value` (the written value; the value read or `null`; the
//! pair `[expected, new]` of a compare-and-swap). A compare-and-swap that compared a different
//! value is a `fail` (the checker takes it as an observation); one that failed otherwise is an
//! `info` (it did not apply, or may have: `info` is right in both cases). Reads that failed are
//! `fail`; writes that failed are `info` when their outcome is unknown, `fail` otherwise.
//! Completions of failed requests carry an extra `error` field that the checker ignores.
//!
//! The checker starts every key absent, so a recorded run first reads every key and records the
//! value of each existing one as a write by one more process (one past the last client),
//! invoked and completed before any client starts, marked `"initial":true`. Written values carry
//! a tag of the run, so they differ from those of earlier runs. The history is checkable as long
//! as nothing else writes the keys during the run.
//!
//! Clients format their lines in their own buffers and append them under one lock: the invoke
//! line is appended before the request is sent, the completion line after the answer arrived,
//! so the file's order respects real time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::workload::OpKind;
use crate::error::CliError;

/// The size of the file buffer: few system calls, each short.
const BUFFER_BYTES: usize = 1 << 20;

/// The event types of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The operation was invoked.
    Invoke,
    /// It completed with the recorded result.
    Ok,
    /// It certainly did not apply (for `cas`: it compared a different value).
    Fail,
    /// Its outcome is unknown.
    Info,
}

impl EventType {
    /// The name in the format.
    fn name(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

/// The `value` field of an event.
#[derive(Clone, Copy, Debug)]
pub enum EventValue<'a> {
    /// `null`: a read's invocation, or a read that found the key absent.
    Null,
    /// A written value, or the value a read returned.
    Bytes(&'a [u8]),
    /// A compare-and-swap's `[expected, new]` (`expected: None`: the key must be absent).
    Pair(Option<&'a [u8]>, &'a [u8]),
}

/// One event, borrowed from the client that formats it.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// The client number.
    pub process: usize,
    /// What happened.
    pub event_type: EventType,
    /// The kind of operation.
    pub kind: OpKind,
    /// The key.
    pub key: &'a [u8],
    /// The value field.
    pub value: EventValue<'a>,
    /// The name of the error behind a `fail` or `info`, if any.
    pub error: Option<&'static str>,
    /// Whether the event stands for the value a key held before the run (`"initial":true`).
    pub initial: bool,
}

impl Event<'_> {
    /// Replaces the contents of `line` with the event as one JSON line (ending in a newline).
    pub fn format_into(&self, line: &mut Vec<u8>) {
        line.clear();
        self.append_to(line);
    }

    /// Appends the event to `line` as one JSON line (ending in a newline).
    pub fn append_to(&self, line: &mut Vec<u8>) {
        line.extend_from_slice(b"{\"process\":");
        let _ = write!(line, "{}", self.process);
        line.extend_from_slice(b",\"type\":\"");
        line.extend_from_slice(self.event_type.name().as_bytes());
        line.extend_from_slice(b"\",\"f\":\"");
        line.extend_from_slice(self.kind.name().as_bytes());
        line.extend_from_slice(b"\",\"key\":");
        push_json_string(line, self.key);
        line.extend_from_slice(b",\"value\":");
        match self.value {
            EventValue::Null => line.extend_from_slice(b"null"),
            EventValue::Bytes(value) => push_json_string(line, value),
            EventValue::Pair(expected, new) => {
                line.push(b'[');
                match expected {
                    Some(expected) => push_json_string(line, expected),
                    None => line.extend_from_slice(b"null"),
                }
                line.push(b',');
                push_json_string(line, new);
                line.push(b']');
            }
        }
        if let Some(error) = self.error {
            line.extend_from_slice(b",\"error\":");
            push_json_string(line, error.as_bytes());
        }
        if self.initial {
            line.extend_from_slice(b",\"initial\":true");
        }
        line.extend_from_slice(b"}\n");
    }
}

/// Appends `bytes` as a JSON string. Bytes that are not UTF-8 are replaced by U+FFFD (values
/// this benchmark writes are ASCII).
fn push_json_string(line: &mut Vec<u8>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => push_escaped(line, text),
        Err(_) => push_escaped(line, &String::from_utf8_lossy(bytes)),
    }
}

/// Appends `text` as a JSON string, escaping quotes, backslashes and control characters.
fn push_escaped(line: &mut Vec<u8>, text: &str) {
    line.push(b'"');
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        if byte >= 0x20 && byte != b'"' && byte != b'\\' {
            continue;
        }
        line.extend_from_slice(&bytes[plain_from..at]);
        match byte {
            b'"' => line.extend_from_slice(b"\\\""),
            b'\\' => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\t' => line.extend_from_slice(b"\\t"),
            b'\r' => line.extend_from_slice(b"\\r"),
            control => {
                let _ = write!(line, "\\u{control:04x}");
            }
        }
        plain_from = at + 1;
    }
    line.extend_from_slice(&bytes[plain_from..]);
    line.push(b'"');
}

/// The open record file, shared by every client.
pub struct Recorder {
    /// The file's path, for messages.
    path: PathBuf,
    /// The buffered file and what became of it.
    state: Mutex<RecorderState>,
}

/// The part of a [`Recorder`] behind its lock.
struct RecorderState {
    /// The buffered file.
    out: BufWriter<File>,
    /// Lines appended so far.
    events: u64,
    /// The first write error; nothing is written after it.
    failure: Option<std::io::Error>,
}

impl Recorder {
    /// Creates (or truncates) the file.
    ///
    /// # Errors
    /// A one-line message naming the file if it cannot be created.
    pub fn create(path: &Path) -> Result<Self, CliError> {
        let file = File::create(path).map_err(|err| {
            CliError::other(format!("--record {}: cannot create: {err}", path.display()))
        })?;
        Ok(Recorder {
            path: path.to_path_buf(),
            state: Mutex::new(RecorderState {
                out: BufWriter::with_capacity(BUFFER_BYTES, file),
                events: 0,
                failure: None,
            }),
        })
    }

    /// Appends `events` formatted lines at once (adjacent in the file). Returns `false` once
    /// writing has failed (the run should stop; [`Recorder::finish`] reports why).
    pub fn append(&self, lines: &[u8], events: u64) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.failure.is_some() {
            return false;
        }
        match state.out.write_all(lines) {
            Ok(()) => {
                state.events += events;
                true
            }
            Err(err) => {
                state.failure = Some(err);
                false
            }
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the file and returns how many events it holds.
    ///
    /// # Errors
    /// A one-line message naming the file if a write failed.
    pub fn finish(&self) -> Result<u64, CliError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let flushed = match state.failure.take() {
            Some(err) => Err(err),
            None => state.out.flush(),
        };
        flushed.map_err(|err| {
            CliError::other(format!(
                "--record {}: cannot write: {err}",
                self.path.display()
            ))
        })?;
        Ok(state.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(event: Event<'_>) -> String {
        let mut line = Vec::new();
        event.format_into(&mut line);
        String::from_utf8(line).unwrap_or_default()
    }

    #[test]
    fn events_have_the_documented_shape() {
        let write = Event {
            process: 3,
            event_type: EventType::Invoke,
            kind: OpKind::Write,
            key: b"k7",
            value: EventValue::Bytes(b"v123"),
            error: None,
            initial: false,
        };
        assert_eq!(
            formatted(write),
            "{\"process\":3,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"k7\",\"value\":\"v123\"}\n"
        );
        let absent = Event {
            process: 0,
            event_type: EventType::Ok,
            kind: OpKind::Read,
            key: b"k1",
            value: EventValue::Null,
            error: None,
            initial: false,
        };
        assert!(formatted(absent).contains("\"value\":null}"));
        let cas = Event {
            process: 1,
            event_type: EventType::Info,
            kind: OpKind::Cas,
            key: b"k1",
            value: EventValue::Pair(None, b"v1-2"),
            error: Some("timeout"),
            initial: true,
        };
        assert!(formatted(cas)
            .ends_with("\"value\":[null,\"v1-2\"],\"error\":\"timeout\",\"initial\":true}\n"));
    }

    #[test]
    fn strings_are_escaped() {
        let mut line = Vec::new();
        push_json_string(&mut line, b"a\"b\\c\nd\x01e\xffz");
        assert_eq!(
            String::from_utf8(line).unwrap_or_default(),
            "\"a\\\"b\\\\c\\nd\\u0001e\u{fffd}z\""
        );
    }

    #[test]
    fn recorded_events_read_back_as_a_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let recorder = Recorder::create(&path).unwrap();
        let mut line = Vec::new();
        // The value the key held before the run, as one adjacent pair.
        for event_type in [EventType::Invoke, EventType::Ok] {
            Event {
                process: 9,
                event_type,
                kind: OpKind::Write,
                key: b"k0",
                value: EventValue::Bytes(b"old"),
                error: None,
                initial: true,
            }
            .append_to(&mut line);
        }
        assert!(recorder.append(&line, 2));
        let events = [
            (2, EventType::Invoke, OpKind::Read, EventValue::Null, None),
            (
                2,
                EventType::Ok,
                OpKind::Read,
                EventValue::Bytes(b"old"),
                None,
            ),
            (
                0,
                EventType::Invoke,
                OpKind::Write,
                EventValue::Bytes(b"a"),
                None,
            ),
            (
                1,
                EventType::Invoke,
                OpKind::Cas,
                EventValue::Pair(None, b"b"),
                None,
            ),
            (
                0,
                EventType::Ok,
                OpKind::Write,
                EventValue::Bytes(b"a"),
                None,
            ),
            (
                1,
                EventType::Fail,
                OpKind::Cas,
                EventValue::Pair(None, b"b"),
                None,
            ),
            (2, EventType::Invoke, OpKind::Read, EventValue::Null, None),
            (
                2,
                EventType::Ok,
                OpKind::Read,
                EventValue::Bytes(b"a"),
                None,
            ),
            (
                1,
                EventType::Invoke,
                OpKind::Cas,
                EventValue::Pair(Some(b"a"), b"c"),
                None,
            ),
            (
                1,
                EventType::Info,
                OpKind::Cas,
                EventValue::Pair(Some(b"a"), b"c"),
                Some("aborted"),
            ),
            (2, EventType::Invoke, OpKind::Read, EventValue::Null, None),
            (
                2,
                EventType::Fail,
                OpKind::Read,
                EventValue::Null,
                Some("overloaded"),
            ),
        ];
        for (process, event_type, kind, value, error) in events {
            Event {
                process,
                event_type,
                kind,
                key: b"k0",
                value,
                error,
                initial: false,
            }
            .format_into(&mut line);
            assert!(recorder.append(&line, 1));
        }
        assert_eq!(recorder.finish().unwrap(), 14);
        let text = std::fs::read_to_string(&path).unwrap();
        let history = hermes_core::history::History::from_jsonl(&text).unwrap();
        assert_eq!(history.len(), 7);
        history.check().unwrap();
    }
}
