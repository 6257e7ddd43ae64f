//! `--target redis`: one RESP2 connection per client, every command to the primary.
//!
//! Reads are `GET`. Writes are `SET`, followed in the same packet by `WAIT <replicas>
//! <timeout>` unless `--redis-wait 0`: the write counts as done once the reply to `WAIT` says at
//! least that many replicas acknowledged it (fewer is the error `too_few_replicas`, outcome
//! unknown: the primary has the value). Compare-and-swaps run a small Lua script (`GET`,
//! compare, `SET`), followed by the same `WAIT`.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::resp::{encode_command, take_reply, Reply};
use super::{Completion, Request};
use crate::commands::bench::stats::UNEXPECTED_ANSWER;
use crate::commands::bench::workload::OpKind;

/// How long opening a connection may take.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// The initial size of a connection's read buffer.
const READ_BUFFER_BYTES: usize = 16 << 10;

/// The compare-and-swap script: `KEYS[1]` the key, `ARGV[1]` `1` if the key must be absent
/// (else `0`), `ARGV[2]` the expected value, `ARGV[3]` the new one; answers 1 if it swapped,
/// 0 if the key held something else.
const CAS_SCRIPT: &[u8] = b"local current = redis.call('GET', KEYS[1]) \
if ARGV[1] == '1' then if current then return 0 end \
elseif current ~= ARGV[2] then return 0 end \
redis.call('SET', KEYS[1], ARGV[3]) return 1";

/// How writes wait for replication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Replicas that must acknowledge a write (0: no `WAIT`).
    pub replicas: usize,
    /// The `WAIT` timeout, in milliseconds.
    pub timeout_ms: u64,
}

/// Where the clients connect, and how they write.
pub struct RedisBackend {
    /// The primary's `host:port`.
    pub primary: String,
    /// How writes wait for replication.
    pub wait: WaitPolicy,
}

impl RedisBackend {
    /// Checks that the primary answers `PING`.
    ///
    /// # Errors
    /// One line saying why the primary cannot be reached.
    pub async fn connect(primary: String, wait: WaitPolicy) -> Result<Self, String> {
        let mut probe = RedisConnection::new(primary.clone(), wait);
        match probe.command(&[b"PING"]).await {
            Ok(Reply::Simple(_)) => Ok(RedisBackend { primary, wait }),
            Ok(other) => Err(format!(
                "cannot use redis at {primary}: PING answered {}",
                describe(&other)
            )),
            Err(err) => Err(format!("cannot connect to redis at {primary}: {err}")),
        }
    }

    /// A new connection for one client (opened now, so that the run does not pay for it).
    ///
    /// # Errors
    /// One line saying why the primary cannot be reached.
    pub async fn client(&self) -> Result<RedisConnection, String> {
        let mut connection = RedisConnection::new(self.primary.clone(), self.wait);
        let link = connection
            .take_link()
            .await
            .map_err(|err| format!("cannot connect to redis at {}: {err}", self.primary))?;
        connection.link = Some(link);
        Ok(connection)
    }

    /// How writes are done, for the report: `SET + WAIT 1` or `SET`.
    pub fn write_mode(&self) -> String {
        match self.wait.replicas {
            0 => "SET".into(),
            replicas => format!("SET + WAIT {replicas}"),
        }
    }
}

/// An open connection and what it has read but not parsed.
struct Link {
    /// The socket.
    stream: TcpStream,
    /// Bytes received and not yet taken as replies.
    received: BytesMut,
}

/// One client's connection to the primary, reopened on the next request after any failure.
pub struct RedisConnection {
    /// The primary's `host:port`.
    primary: String,
    /// How writes wait for replication.
    wait: WaitPolicy,
    /// The open connection, if any. It is taken out for the duration of a request and put back
    /// only once every reply arrived, so that a failed or abandoned request never leaves a
    /// reply behind for the next one.
    link: Option<Link>,
    /// The commands of the current request, encoded.
    outgoing: Vec<u8>,
    /// `WAIT`'s arguments, formatted once.
    wait_arguments: [Vec<u8>; 2],
}

/// Why a request got no complete answer.
enum LinkError {
    /// The connection failed or closed.
    Network(String),
    /// The server sent something that is not RESP2.
    Protocol(String),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Network(message) | LinkError::Protocol(message) => {
                formatter.write_str(message)
            }
        }
    }
}

impl RedisConnection {
    /// A connection to `primary`, opened on first use.
    fn new(primary: String, wait: WaitPolicy) -> Self {
        RedisConnection {
            primary,
            wait,
            link: None,
            outgoing: Vec::new(),
            wait_arguments: [
                wait.replicas.to_string().into_bytes(),
                wait.timeout_ms.to_string().into_bytes(),
            ],
        }
    }

    /// The open connection, taken out of `self` (see the field `link`), or a new one.
    async fn take_link(&mut self) -> Result<Link, LinkError> {
        if let Some(link) = self.link.take() {
            return Ok(link);
        }
        let connecting = TcpStream::connect(self.primary.as_str());
        let stream = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connecting)
            .await
            .map_err(|_| {
                LinkError::Network(format!("no connection after {CONNECT_TIMEOUT_MS} ms"))
            })?
            .map_err(|err| LinkError::Network(err.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|err| LinkError::Network(err.to_string()))?;
        Ok(Link {
            stream,
            received: BytesMut::with_capacity(READ_BUFFER_BYTES),
        })
    }

    /// Sends the commands encoded in `self.outgoing` and reads `replies` replies.
    async fn exchange(&mut self, replies: usize) -> Result<Vec<Reply>, LinkError> {
        let mut link = self.take_link().await?;
        link.stream
            .write_all(&self.outgoing)
            .await
            .map_err(|err| LinkError::Network(err.to_string()))?;
        let mut answers = Vec::with_capacity(replies);
        while answers.len() < replies {
            match take_reply(&mut link.received) {
                Ok(Some(reply)) => answers.push(reply),
                Ok(None) => {
                    let read = link
                        .stream
                        .read_buf(&mut link.received)
                        .await
                        .map_err(|err| LinkError::Network(err.to_string()))?;
                    if read == 0 {
                        return Err(LinkError::Network(
                            "the server closed the connection".into(),
                        ));
                    }
                }
                Err(err) => return Err(LinkError::Protocol(err.to_string())),
            }
        }
        self.link = Some(link);
        Ok(answers)
    }

    /// Sends one command and returns its reply.
    async fn command(&mut self, arguments: &[&[u8]]) -> Result<Reply, LinkError> {
        self.outgoing.clear();
        encode_command(&mut self.outgoing, arguments);
        let mut replies = self.exchange(1).await?;
        replies
            .pop()
            .ok_or_else(|| LinkError::Protocol("no reply".into()))
    }

    /// Appends `WAIT` to the outgoing commands if writes wait; how many replies that adds.
    fn push_wait(&mut self) -> usize {
        if self.wait.replicas == 0 {
            return 0;
        }
        let [replicas, timeout_ms] = &self.wait_arguments;
        encode_command(&mut self.outgoing, &[b"WAIT", replicas, timeout_ms]);
        1
    }

    /// Sends one operation and sorts the answer.
    pub async fn execute(&mut self, request: Request) -> Completion {
        let kind = request.kind();
        self.outgoing.clear();
        match &request {
            Request::Read { key } => encode_command(&mut self.outgoing, &[b"GET", key]),
            Request::Write { key, value } => {
                encode_command(&mut self.outgoing, &[b"SET", key, value]);
            }
            Request::Cas { key, expected, new } => {
                let (absent, expected): (&[u8], &[u8]) = match expected {
                    Some(value) => (b"0", value),
                    None => (b"1", b""),
                };
                encode_command(
                    &mut self.outgoing,
                    &[b"EVAL", CAS_SCRIPT, b"1", key, absent, expected, new],
                );
            }
        }
        let waits = if kind == OpKind::Read {
            0
        } else {
            self.push_wait()
        };
        match self.exchange(1 + waits).await {
            Ok(replies) => self.sort(kind, replies),
            Err(LinkError::Network(_)) => Completion::failed("network_error", kind, true),
            Err(LinkError::Protocol(_)) => Completion::failed("protocol_error", kind, true),
        }
    }

    /// The completion of an operation of `kind` from its replies (the command's, then
    /// `WAIT`'s if any).
    fn sort(&self, kind: OpKind, replies: Vec<Reply>) -> Completion {
        let mut replies = replies.into_iter();
        let answer = replies.next();
        let acknowledged = replies.next();
        let done = match (kind, answer) {
            (_, Some(Reply::Error(_))) => return Completion::failed("redis_error", kind, true),
            (OpKind::Read, Some(Reply::Bulk(value))) => return Completion::Read(value),
            (OpKind::Write, Some(Reply::Simple(ok))) if ok == "OK" => Completion::Written,
            (OpKind::Cas, Some(Reply::Integer(1))) => Completion::Swapped,
            (OpKind::Cas, Some(Reply::Integer(0))) => return Completion::ComparedDifferent,
            _ => return Completion::failed(UNEXPECTED_ANSWER, kind, true),
        };
        match acknowledged {
            None => done,
            Some(Reply::Integer(replicas))
                if usize::try_from(replicas).is_ok_and(|count| count >= self.wait.replicas) =>
            {
                done
            }
            Some(Reply::Integer(_)) => Completion::Failed {
                name: "too_few_replicas",
                outcome_unknown: true,
                pause: false,
            },
            Some(Reply::Error(_)) => Completion::failed("redis_error", kind, true),
            Some(_) => Completion::failed(UNEXPECTED_ANSWER, kind, true),
        }
    }
}

/// A reply for an error message.
fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Simple(text) | Reply::Error(text) => String::from_utf8_lossy(text).into_owned(),
        Reply::Integer(number) => number.to_string(),
        Reply::Bulk(Some(_)) => "a bulk string".into(),
        Reply::Bulk(None) | Reply::Array(None) => "nil".into(),
        Reply::Array(Some(_)) => "an array".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// How a connection waiting for `replicas` sorts `replies` to an operation of `kind`.
    fn sorted(kind: OpKind, replicas: usize, replies: Vec<Reply>) -> Completion {
        let connection = RedisConnection::new(
            "127.0.0.1:1".into(),
            WaitPolicy {
                replicas,
                timeout_ms: 100,
            },
        );
        connection.sort(kind, replies)
    }

    #[test]
    fn replies_sort_into_completions() {
        let ok = || Reply::Simple(Bytes::from_static(b"OK"));
        let value = Bytes::from_static(b"v");
        assert!(matches!(
            sorted(OpKind::Read, 1, vec![Reply::Bulk(Some(value.clone()))]),
            Completion::Read(Some(read)) if read == value
        ));
        assert!(matches!(
            sorted(OpKind::Read, 1, vec![Reply::Bulk(None)]),
            Completion::Read(None)
        ));
        assert!(matches!(
            sorted(OpKind::Write, 1, vec![ok(), Reply::Integer(1)]),
            Completion::Written
        ));
        assert!(matches!(
            sorted(OpKind::Write, 0, vec![ok()]),
            Completion::Written
        ));
        assert!(matches!(
            sorted(OpKind::Write, 1, vec![ok(), Reply::Integer(0)]),
            Completion::Failed {
                name: "too_few_replicas",
                outcome_unknown: true,
                ..
            }
        ));
        assert!(matches!(
            sorted(OpKind::Cas, 1, vec![Reply::Integer(1), Reply::Integer(1)]),
            Completion::Swapped
        ));
        assert!(matches!(
            sorted(OpKind::Cas, 1, vec![Reply::Integer(0), Reply::Integer(1)]),
            Completion::ComparedDifferent
        ));
        assert!(matches!(
            sorted(
                OpKind::Write,
                1,
                vec![Reply::Error(Bytes::from_static(b"READONLY"))]
            ),
            Completion::Failed {
                name: "redis_error",
                ..
            }
        ));
        assert!(matches!(
            sorted(OpKind::Read, 1, vec![Reply::Integer(3)]),
            Completion::Failed {
                name: UNEXPECTED_ANSWER,
                ..
            }
        ));
    }
}
