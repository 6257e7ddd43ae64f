//! Readable descriptions of operations and violations.

use super::model::{KeyOps, Known, State, Stuck, Why};
use super::{HistoryOp, HistoryRet, OpId, Outcome, Record, Violation};
use std::fmt::{self, Write as _};

/// At most this many bytes of a value are shown.
const VALUE_SHOWN: usize = 32;
/// At most this many ops of the prefix are listed (the last ones).
const PREFIX_SHOWN: usize = 8;
/// At most this many ops are listed before and after the stuck op in invocation order.
const AROUND_BEFORE: usize = 12;
const AROUND_AFTER: usize = 12;

/// Shows bytes as a quoted string when they are printable UTF-8, as hex otherwise; long ones are
/// cut short.
pub(super) struct Bytes<'a>(pub(super) &'a [u8]);

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(VALUE_SHOWN)];
        let more = if shown.len() < self.0.len() {
            "…"
        } else {
            ""
        };
        match std::str::from_utf8(shown) {
            Ok(text) if !text.chars().any(char::is_control) => write!(f, "{text:?}{more}"),
            _ => {
                f.write_str("0x")?;
                for byte in shown {
                    write!(f, "{byte:02x}")?;
                }
                f.write_str(more)
            }
        }
    }
}

/// Shows a register state.
struct StateShown<'a>(Option<&'a [u8]>);

impl fmt::Display for StateShown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("absent"),
            Some(bytes) => Bytes(bytes).fmt(f),
        }
    }
}

fn state_shown(value: Option<&bytes::Bytes>) -> StateShown<'_> {
    StateShown(value.map(|v| &v[..]))
}

/// The name of an operation's kind.
pub(super) fn op_name(op: &HistoryOp) -> &'static str {
    match op {
        HistoryOp::Read => "read",
        HistoryOp::Write(_) => "write",
        HistoryOp::Delete => "delete",
        HistoryOp::Cas { .. } => "cas",
    }
}

/// Describes a recorded operation: `#12 client 3 write "v1" -> ok [10, 20]`; inline (in a
/// sentence), `#12 (client 3 write "v1" -> ok [10, 20])`.
struct OpShown<'a> {
    id: OpId,
    record: &'a Record,
    inline: bool,
}

impl fmt::Display for OpShown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let OpShown { id, record, inline } = *self;
        let (open, close) = if inline { ("(", ")") } else { ("", "") };
        write!(f, "{id} {open}client {} ", record.client)?;
        match &record.op {
            HistoryOp::Read => f.write_str("read")?,
            HistoryOp::Write(value) => write!(f, "write {}", Bytes(value))?,
            HistoryOp::Delete => f.write_str("delete")?,
            HistoryOp::Cas { expected, new } => {
                write!(f, "cas({}, {})", state_shown(expected.as_ref()), Bytes(new))?
            }
        }
        f.write_str(" -> ")?;
        match &record.outcome {
            Outcome::Completed { ret, at } => {
                match ret {
                    HistoryRet::Read(seen) => state_shown(seen.as_ref()).fmt(f)?,
                    HistoryRet::Ok => f.write_str("ok")?,
                    HistoryRet::Swapped => f.write_str("swapped")?,
                    HistoryRet::CasFailed => f.write_str("compare failed")?,
                }
                write!(f, " [{}, {}]{close}", record.invoked.time, at.time)
            }
            Outcome::Unknown => write!(f, "unknown [{}, ∞){close}", record.invoked.time),
            Outcome::Failed => write!(f, "failed [{}, -]{close}", record.invoked.time),
        }
    }
}

/// Describes why the ops of one key are not linearizable.
///
/// `indices` are all the recorded ops of the key (indices into `records`), `ops` the ones checked.
pub(super) fn violation(
    records: &[Record],
    indices: &[usize],
    ops: &KeyOps<'_>,
    stuck: &Stuck,
) -> Violation {
    let key = indices
        .first()
        .and_then(|&index| records.get(index))
        .map(|r| r.key.clone())
        .unwrap_or_default();
    let stuck_op = ops.known.get(stuck.op);
    let op = OpId(stuck_op.map_or(0, |k| k.record));
    let prefix: Vec<OpId> = stuck.prefix.iter().map(|p| p.id(ops)).collect();
    let shown = |id: OpId| {
        records.get(id.0).map(|record| OpShown {
            id,
            record,
            inline: false,
        })
    };
    let known_shown = |i: usize| {
        let id = OpId(ops.known.get(i).map_or(usize::MAX, |k| k.record));
        match records.get(id.0) {
            Some(record) => OpShown {
                id,
                record,
                inline: true,
            }
            .to_string(),
            None => id.to_string(),
        }
    };
    let shown_state = |state: State| {
        if Some(state) == ops.unnamed {
            return "a value no operation reads".to_owned();
        }
        let value = match state {
            0 => None,
            s => ops.values.get(s as usize - 1).copied(),
        };
        StateShown(value).to_string()
    };
    let line = known_shown(stuck.op);

    let mut text = String::new();
    let _ = match stuck.why {
        Why::Deadline => write!(
            text,
            "no linearization places {line} before its completion."
        ),
        Why::Unreachable(needed) => write!(
            text,
            "no linearization gives {line} the state {} it needs.",
            shown_state(needed)
        ),
        Why::NeverInstalled(needed) => write!(
            text,
            "{line} needs the state {}, but no update installing it was invoked before it \
             completed.",
            shown_state(needed)
        ),
        Why::Overwritten {
            state,
            producer: Some(producer),
            by,
        } => write!(
            text,
            "{line} needs the state {}, which only {} installs; but {} was invoked after that \
             completed, completed before {op} was invoked, and installs another state.",
            shown_state(state),
            known_shown(producer),
            known_shown(by)
        ),
        Why::Overwritten {
            state,
            producer: None,
            by,
        } => write!(
            text,
            "{line} needs the state {}, which only the initial state is (no update installs it); \
             but {} completed before {op} was invoked and installs another state.",
            shown_state(state),
            known_shown(by)
        ),
    };
    if matches!(stuck.why, Why::Deadline | Why::Unreachable(_)) {
        let maybe_placed = stuck.prefix.len() - stuck.known_placed;
        let _ = write!(
            text,
            "\nThe deepest linearizable prefix the search reached places {} of {} completed ops",
            stuck.known_placed,
            ops.known.len()
        );
        if !ops.maybe.is_empty() {
            let _ = write!(
                text,
                " and {} of {} updates with an unknown outcome",
                maybe_placed,
                ops.maybe.len()
            );
        }
        let _ = write!(
            text,
            "; the register then holds {}",
            shown_state(stuck.state)
        );
        match (stuck.why, stuck_op) {
            (Why::Unreachable(needed), _) => {
                let _ = write!(
                    text,
                    " and no remaining update installs {}",
                    shown_state(needed)
                );
            }
            (Why::Deadline, Some(k)) if k.op.step(stuck.state).is_none() => {
                let _ = match k.op {
                    Known::Read(_) => write!(text, ", which the read did not return"),
                    Known::Swapped { .. } => write!(text, ", not the value the swap expected"),
                    Known::CasFailed { .. } => {
                        write!(text, ", the value the failed compare expected")
                    }
                    Known::Write(_) => Ok(()),
                };
            }
            _ => {}
        }
        text.push('.');
    }
    if !prefix.is_empty() {
        let skipped = prefix.len().saturating_sub(PREFIX_SHOWN);
        let _ = write!(text, "\nPrefix");
        if skipped > 0 {
            let _ = write!(text, " (last {PREFIX_SHOWN} of {})", prefix.len());
        }
        text.push(':');
        for line in prefix[skipped..].iter().filter_map(|&id| shown(id)) {
            let _ = write!(text, "\n  {line}");
        }
    }

    // The key's ops around the stuck one, in invocation order.
    let mut all: Vec<OpId> = indices.iter().map(|&index| OpId(index)).collect();
    all.sort_by_key(|id| records.get(id.0).map(|r| r.invoked));
    let at = all.iter().position(|&id| id == op).unwrap_or(0);
    let from = at.saturating_sub(AROUND_BEFORE);
    let to = (at + AROUND_AFTER + 1).min(all.len());
    let _ = write!(
        text,
        "\nOps of the key in invocation order ({}..{} of {}):",
        from + 1,
        to,
        all.len()
    );
    for line in all[from..to].iter().filter_map(|&id| shown(id)) {
        let _ = write!(text, "\n  {line}");
    }

    Violation {
        key,
        op,
        prefix,
        explanation: text,
    }
}
