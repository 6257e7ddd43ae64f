//! A reader for the JSON-lines history format (see the module docs of [`super`]).
//!
//! Each line is a flat JSON object whose values are strings, numbers, booleans, `null` or arrays
//! of strings and `null`s; nested objects are rejected.

use super::{History, HistoryOp, HistoryRet, OpId};
use crate::types::{Key, Value};
use std::collections::HashMap;
use std::fmt;

/// A line of a JSON-lines history that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line, counting from 1.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A JSON value of a flat object.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Json {
    Null,
    Bool(bool),
    /// The number's text.
    Number(String),
    String(String),
    /// An array of strings and nulls.
    Array(Vec<Option<String>>),
}

impl Json {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
        }
    }
}

/// A cursor over one line.
struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    fn error<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at column {}", self.at + 1))
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            self.error(&format!("expected `{}`", char::from(byte)))
        }
    }

    fn object(&mut self) -> Result<Vec<(String, Json)>, String> {
        self.expect(b'{')?;
        let mut fields = Vec::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
        } else {
            loop {
                self.skip_space();
                let name = self.string()?;
                self.expect(b':')?;
                let value = self.value()?;
                if fields.iter().any(|(other, _)| *other == name) {
                    return Err(format!("duplicate field `{name}`"));
                }
                fields.push((name, value));
                self.skip_space();
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b'}') => {
                        self.at += 1;
                        break;
                    }
                    _ => return self.error("expected `,` or `}`"),
                }
            }
        }
        self.skip_space();
        if self.at < self.text.len() {
            return self.error("unexpected text after the object");
        }
        Ok(fields)
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_space();
        match self.peek() {
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'n') => self.word("null", Json::Null),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => self.array(),
            Some(b'{') => self.error("nested objects are not supported"),
            _ => self.error("expected a value"),
        }
    }

    fn word(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            self.error("expected a value")
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = |p: &mut Self| {
            let from = p.at;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.at += 1;
            }
            p.at > from
        };
        if !digits(self) {
            return self.error("expected digits");
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !digits(self) {
                return self.error("expected digits");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !digits(self) {
                return self.error("expected digits");
            }
        }
        Ok(Json::Number(self.text[start..self.at].to_owned()))
    }

    fn array(&mut self) -> Result<Json, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Json::Array(items));
        }
        loop {
            match self.value()? {
                Json::String(text) => items.push(Some(text)),
                Json::Null => items.push(None),
                other => {
                    return self.error(&format!(
                        "arrays may hold strings and nulls only, not {}",
                        other.kind()
                    ))
                }
            }
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                _ => return self.error("expected `,` or `]`"),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return self.error("expected a string");
        }
        self.at += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.at..];
            let Some(special) = rest.find(['"', '\\']) else {
                return self.error("unterminated string");
            };
            let plain = &rest[..special];
            if plain.chars().any(|c| u32::from(c) < 0x20) {
                return self.error("control character in a string");
            }
            out.push_str(plain);
            self.at += special;
            if self.peek() == Some(b'"') {
                self.at += 1;
                return Ok(out);
            }
            // A backslash escape.
            self.at += 1;
            let escaped = match self.peek() {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    self.at += 1;
                    let high = self.hex4()?;
                    let code = if (0xd800..0xdc00).contains(&high) {
                        if !self.text[self.at..].starts_with("\\u") {
                            return self.error("unpaired surrogate");
                        }
                        self.at += 2;
                        let low = self.hex4()?;
                        if !(0xdc00..0xe000).contains(&low) {
                            return self.error("unpaired surrogate");
                        }
                        0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                    } else {
                        high
                    };
                    match char::from_u32(code) {
                        Some(c) => {
                            out.push(c);
                            continue;
                        }
                        None => return self.error("invalid \\u escape"),
                    }
                }
                _ => return self.error("invalid escape"),
            };
            out.push(escaped);
            self.at += 1;
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.text.get(self.at..self.at + 4);
        match digits.and_then(|d| u32::from_str_radix(d, 16).ok()) {
            Some(code) if digits.is_some_and(|d| d.bytes().all(|b| b.is_ascii_hexdigit())) => {
                self.at += 4;
                Ok(code)
            }
            _ => self.error("expected four hex digits"),
        }
    }
}

/// The event kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// The operation kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum F {
    Read,
    Write,
    Cas,
    Delete,
}

/// An operation in flight: its id, kind and key.
struct InFlight {
    id: OpId,
    f: F,
    key: Key,
}

/// Reads a history; line order is time.
pub(super) fn parse(input: &str) -> Result<History, ParseError> {
    let mut history = History::new();
    let mut in_flight: HashMap<u64, InFlight> = HashMap::new();
    for (index, text) in input.lines().enumerate() {
        let line = index + 1;
        if text.trim().is_empty() {
            continue;
        }
        event(&mut history, &mut in_flight, text, line as u64)
            .map_err(|message| ParseError { line, message })?;
    }
    Ok(history)
}

/// Reads one event into `history`.
fn event(
    history: &mut History,
    in_flight: &mut HashMap<u64, InFlight>,
    text: &str,
    time: u64,
) -> Result<(), String> {
    let fields = Parser { text, at: 0 }.object()?;
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let string = |name: &str| match field(name) {
        Some(Json::String(text)) => Ok(text.as_str()),
        Some(other) => Err(format!("`{name}` must be a string, not {}", other.kind())),
        None => Err(format!("missing field `{name}`")),
    };
    let process = match field("process") {
        Some(Json::Number(text)) => text
            .parse::<u64>()
            .map_err(|_| format!("`process` must be a non-negative integer, not {text}"))?,
        Some(other) => {
            return Err(format!(
                "`process` must be an integer, not {}",
                other.kind()
            ))
        }
        None => return Err("missing field `process`".into()),
    };
    let kind = match string("type")? {
        "invoke" => Type::Invoke,
        "ok" => Type::Ok,
        "fail" => Type::Fail,
        "info" => Type::Info,
        other => return Err(format!("unknown type {other:?}")),
    };
    let f = match string("f")? {
        "read" => F::Read,
        "write" => F::Write,
        "cas" => F::Cas,
        "delete" => F::Delete,
        other => return Err(format!("unknown f {other:?}")),
    };
    let key = Key::copy_from_slice(string("key")?.as_bytes());
    let value = field("value").unwrap_or(&Json::Null);
    let bytes = |text: &str| Value::copy_from_slice(text.as_bytes());

    if kind == Type::Invoke {
        if let Some(pending) = in_flight.get(&process) {
            return Err(format!(
                "process {process} invokes while its operation {} is in flight",
                pending.id
            ));
        }
        let op = match (f, value) {
            (F::Read, _) => HistoryOp::Read,
            (F::Delete, _) => HistoryOp::Delete,
            (F::Write, Json::String(text)) => HistoryOp::Write(bytes(text)),
            (F::Write, other) => {
                return Err(format!(
                    "a write's `value` must be a string, not {}",
                    other.kind()
                ))
            }
            (F::Cas, Json::Array(pair)) => match pair.as_slice() {
                [expected, Some(new)] => HistoryOp::Cas {
                    expected: expected.as_deref().map(bytes),
                    new: bytes(new),
                },
                _ => return Err("a cas `value` must be [expected, new] with a string `new`".into()),
            },
            (F::Cas, other) => {
                return Err(format!(
                    "a cas `value` must be an array [expected, new], not {}",
                    other.kind()
                ))
            }
        };
        let id = history.invoke(process, key.clone(), op, time);
        in_flight.insert(process, InFlight { id, f, key });
        return Ok(());
    }

    let Some(pending) = in_flight.remove(&process) else {
        return Err(format!("process {process} has no operation in flight"));
    };
    if pending.f != f || pending.key != key {
        return Err(format!(
            "the completion does not match the operation {} in flight for process {process}",
            pending.id
        ));
    }
    match (kind, f) {
        (Type::Info, _) => {}
        (Type::Ok, F::Read) => {
            let seen = match field("value") {
                Some(Json::String(text)) => Some(bytes(text)),
                Some(Json::Null) => None,
                None => return Err("a read's completion needs a `value` (null when absent)".into()),
                Some(other) => {
                    return Err(format!(
                        "a read's `value` must be a string or null, not {}",
                        other.kind()
                    ))
                }
            };
            history.complete(pending.id, HistoryRet::Read(seen), time);
        }
        (Type::Ok, F::Write | F::Delete) => history.complete(pending.id, HistoryRet::Ok, time),
        (Type::Ok, F::Cas) => history.complete(pending.id, HistoryRet::Swapped, time),
        (Type::Fail, F::Cas) => history.complete(pending.id, HistoryRet::CasFailed, time),
        (Type::Fail, _) => history.fail(pending.id),
        (Type::Invoke, _) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> Result<Vec<(String, Json)>, String> {
        Parser { text, at: 0 }.object()
    }

    #[test]
    fn parses_flat_objects() {
        let fields = object(
            r#" { "a" : 1, "b":-2.5e3, "c":null, "d":true, "e":["x", null], "f":"q\"\\\/\n\u00e9\ud83d\ude00", "g":[] } "#,
        )
        .unwrap();
        assert_eq!(fields[0], ("a".into(), Json::Number("1".into())));
        assert_eq!(fields[1], ("b".into(), Json::Number("-2.5e3".into())));
        assert_eq!(fields[2], ("c".into(), Json::Null));
        assert_eq!(fields[3], ("d".into(), Json::Bool(true)));
        assert_eq!(
            fields[4],
            ("e".into(), Json::Array(vec![Some("x".into()), None]))
        );
        assert_eq!(fields[5], ("f".into(), Json::String("q\"\\/\né😀".into())));
        assert_eq!(fields[6], ("g".into(), Json::Array(vec![])));
        assert_eq!(object("{}").unwrap(), vec![]);
    }

    #[test]
    fn rejects_malformed_objects() {
        for bad in [
            "",
            "{",
            "{\"a\":1",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{\"a\":{}}",
            "{\"a\":[1]}",
            "{\"a\":\"x}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\u12g4\"}",
            "{\"a\":nul}",
            "{\"a\":-}",
            "{\"a\":1.}",
            "{\"a\":1} x",
            "{\"a\":1,\"a\":2}",
            "{a:1}",
            "{\"a\":\"tab\there\"}",
        ] {
            assert!(object(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn reports_line_numbers() {
        let input = "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\",\"value\":null}\n\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"key\":\"k\",\"value\":5}\n";
        let error = parse(input).unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.to_string().starts_with("line 3: "), "{error}");
    }

    #[test]
    fn rejects_inconsistent_events() {
        let cases = [
            // A completion with nothing in flight.
            r#"{"process":1,"type":"ok","f":"read","key":"k","value":null}"#,
            // Two invocations in flight for one process.
            "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\"}\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\"}",
            // A read's completion without a value.
            "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\"}\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"key\":\"k\"}",
            // A completion of another kind or key.
            "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\"}\n{\"process\":1,\"type\":\"ok\",\"f\":\"write\",\"key\":\"k\",\"value\":\"v\"}",
            "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\"}\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"key\":\"j\",\"value\":null}",
            // Bad fields.
            r#"{"process":-1,"type":"invoke","f":"read","key":"k"}"#,
            r#"{"process":"a","type":"invoke","f":"read","key":"k"}"#,
            r#"{"type":"invoke","f":"read","key":"k"}"#,
            r#"{"process":1,"type":"begin","f":"read","key":"k"}"#,
            r#"{"process":1,"type":"invoke","f":"append","key":"k"}"#,
            r#"{"process":1,"type":"invoke","f":"read"}"#,
            r#"{"process":1,"type":"invoke","f":"write","key":"k","value":null}"#,
            r#"{"process":1,"type":"invoke","f":"cas","key":"k","value":["a"]}"#,
            r#"{"process":1,"type":"invoke","f":"cas","key":"k","value":["a",null]}"#,
            r#"{"process":1,"type":"invoke","f":"cas","key":"k","value":"a"}"#,
        ];
        for case in cases {
            assert!(parse(case).is_err(), "accepted {case:?}");
        }
    }
}
