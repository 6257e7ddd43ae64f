//! Readable descriptions of operations and violations.

use super::check::{KeyOps, Known, Stuck};
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

/// One line describing a recorded operation:
/// `#12 client 3 write "v1" -> ok [10, 20]`.
struct OpShown<'a>(OpId, &'a Record);

impl fmt::Display for OpShown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let OpShown(id, record) = *self;
        write!(f, "{id} client {} ", record.client)?;
        match &record.op {
            HistoryOp::Read => f.write_str("read")?,
            HistoryOp::Write(value) => write!(f, "write {}", Bytes(value))?,
            HistoryOp::Delete => f.write_str("delete")?,
            HistoryOp::Cas { expected, new } => write!(
                f,
                "cas {} -> {}",
                state_shown(expected.as_ref()),
                Bytes(new)
            )?,
        }
        match &record.outcome {
            Outcome::Completed { ret, at } => {
                match ret {
                    HistoryRet::Read(seen) => write!(f, " = {}", state_shown(seen.as_ref()))?,
                    HistoryRet::Ok => f.write_str(": ok")?,
                    HistoryRet::Swapped => f.write_str(": swapped")?,
                    HistoryRet::CasFailed => f.write_str(": compare failed")?,
                }
                write!(f, " [{}, {}]", record.invoked.time, at.time)
            }
            Outcome::Unknown => write!(f, ": unknown [{}, ∞)", record.invoked.time),
            Outcome::Failed => write!(f, ": failed [{}, -]", record.invoked.time),
        }
    }
}

/// Describes the deepest point a failed search reached.
///
/// `indices` are all the recorded ops of the key (indices into `records`), `ops` the ones searched.
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
    let state = match stuck.state {
        0 => None,
        s => ops.values.get(s as usize - 1).copied(),
    };
    let shown = |id: OpId| records.get(id.0).map(|r| OpShown(id, r));

    let mut text = String::new();
    if let Some(line) = shown(op) {
        let _ = write!(text, "{line} cannot take effect before it completed.");
    }
    let maybe_placed = stuck.prefix.len() - stuck.known_placed;
    let _ = write!(
        text,
        "\nThe longest linearizable prefix found places {} of {} completed ops",
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
    let _ = write!(text, "; the register then holds {}", StateShown(state));
    if let Some(k) = stuck_op {
        if k.op.step(stuck.state).is_none() {
            let _ = match k.op {
                Known::Read(_) => write!(text, ", which the read did not return"),
                Known::Swapped { .. } => write!(text, ", not the value the swap expected"),
                Known::CasFailed { .. } => {
                    write!(text, ", the value the failed compare expected")
                }
                Known::Write(_) => Ok(()),
            };
        }
    }
    text.push('.');
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
