//! Configuration of a replica, validated before use.

use crate::durability::Durability;
use crate::error::CoreError;
use crate::types::NodeId;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The protocol configuration of one replica. Durations are in milliseconds (`*_ms`).
///
/// Its serde form is the `[protocol]` table of a node's configuration file: every field but
/// `node_id` and `durability`, which name the node and its storage and are given once, at the top
/// of that file (they are neither read nor written here; deserializing takes them from
/// [`Config::default`]). Each default is a `*_DEFAULT` constant of this type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This replica's id.
    #[serde(skip)]
    pub node_id: NodeId,
    /// Message-loss timeout: a coordinator retransmits an unacknowledged INV after this long, and
    /// a request that waits this long on an Invalid key replays the write. A liveness knob only:
    /// it never shortens the set of ACKs a write needs. Keep it well above the p99 write latency.
    pub message_loss_timeout_ms: u64,
    /// A request not answered within this long gets [`crate::RequestError::Timeout`].
    pub request_timeout_ms: u64,
    /// The largest key accepted, in bytes.
    pub key_bytes_max: usize,
    /// The largest value accepted, in bytes.
    pub value_bytes_max: usize,
    /// The most requests that may be pending (waiting or coordinating) on one key.
    pub requests_per_key_max: usize,
    /// The most requests that may be pending on this replica in total.
    pub requests_max: usize,
    /// How often a node sends heartbeats (lease renewals) to the other replicas.
    pub heartbeat_interval_ms: u64,
    /// How long a read lease lasts, from the sending of the heartbeat that a majority granted.
    pub lease_ms: u64,
    /// How long without hearing from a replica before it is suspected and may be removed.
    pub suspicion_timeout_ms: u64,
    /// How much longer than a lease a granting node waits before it helps install a view that
    /// could exclude the lease holder. Local reads stay linearizable while clock rates differ by
    /// at most ρ with `2ρ / (1 − ρ) × lease_ms ≤ clock_drift_margin_ms`.
    pub clock_drift_margin_ms: u64,
    /// The most keys in one state-transfer chunk.
    pub transfer_chunk_keys_max: usize,
    /// How records are made durable: `memory` (the default), `async` or `sync`; see
    /// [`Durability`].
    #[serde(skip)]
    pub durability: Durability,
    /// After a start or restart, how long this node waits before it suspects a replica it has
    /// not heard from yet: processes of a cluster that start together do not remove each other
    /// while their connections are being set up. A liveness knob only.
    pub startup_grace_ms: u64,
}

impl Config {
    /// Default [`Config::message_loss_timeout_ms`].
    pub const MESSAGE_LOSS_TIMEOUT_MS_DEFAULT: u64 = 100;
    /// Default [`Config::request_timeout_ms`].
    pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 5_000;
    /// Default [`Config::key_bytes_max`].
    pub const KEY_BYTES_MAX_DEFAULT: usize = 1024;
    /// Default [`Config::value_bytes_max`]: 1 MiB.
    pub const VALUE_BYTES_MAX_DEFAULT: usize = 1 << 20;
    /// Default [`Config::requests_per_key_max`].
    pub const REQUESTS_PER_KEY_MAX_DEFAULT: usize = 1024;
    /// Default [`Config::requests_max`].
    pub const REQUESTS_MAX_DEFAULT: usize = 65_536;
    /// Default [`Config::heartbeat_interval_ms`].
    pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 50;
    /// Default [`Config::lease_ms`].
    pub const LEASE_MS_DEFAULT: u64 = 1_000;
    /// Default [`Config::suspicion_timeout_ms`].
    pub const SUSPICION_TIMEOUT_MS_DEFAULT: u64 = 500;
    /// Default [`Config::clock_drift_margin_ms`].
    pub const CLOCK_DRIFT_MARGIN_MS_DEFAULT: u64 = 100;
    /// Default [`Config::transfer_chunk_keys_max`].
    pub const TRANSFER_CHUNK_KEYS_MAX_DEFAULT: usize = 512;
    /// Default [`Config::startup_grace_ms`]: none, for replicas that start together in one
    /// program (the simulator, tests). Separate processes take the node's default instead
    /// (`hermes_node::config::ProtocolConfig::STARTUP_GRACE_MS_DEFAULT`).
    pub const STARTUP_GRACE_MS_DEFAULT: u64 = 0;
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: NodeId(1),
            message_loss_timeout_ms: Self::MESSAGE_LOSS_TIMEOUT_MS_DEFAULT,
            request_timeout_ms: Self::REQUEST_TIMEOUT_MS_DEFAULT,
            key_bytes_max: Self::KEY_BYTES_MAX_DEFAULT,
            value_bytes_max: Self::VALUE_BYTES_MAX_DEFAULT,
            requests_per_key_max: Self::REQUESTS_PER_KEY_MAX_DEFAULT,
            requests_max: Self::REQUESTS_MAX_DEFAULT,
            heartbeat_interval_ms: Self::HEARTBEAT_INTERVAL_MS_DEFAULT,
            lease_ms: Self::LEASE_MS_DEFAULT,
            suspicion_timeout_ms: Self::SUSPICION_TIMEOUT_MS_DEFAULT,
            clock_drift_margin_ms: Self::CLOCK_DRIFT_MARGIN_MS_DEFAULT,
            transfer_chunk_keys_max: Self::TRANSFER_CHUNK_KEYS_MAX_DEFAULT,
            durability: Durability::Memory,
            startup_grace_ms: Self::STARTUP_GRACE_MS_DEFAULT,
        }
    }
}

impl Config {
    /// A default configuration for `node_id`.
    pub fn for_node(node_id: NodeId) -> Self {
        Config {
            node_id,
            ..Config::default()
        }
    }

    /// Checks every field; the error names the offending field.
    pub fn validate(&self) -> Result<(), CoreError> {
        let positive = [
            (
                "message_loss_timeout_ms",
                self.message_loss_timeout_ms as usize,
            ),
            ("request_timeout_ms", self.request_timeout_ms as usize),
            ("key_bytes_max", self.key_bytes_max),
            ("value_bytes_max", self.value_bytes_max),
            ("requests_per_key_max", self.requests_per_key_max),
            ("requests_max", self.requests_max),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms as usize),
            ("lease_ms", self.lease_ms as usize),
            ("suspicion_timeout_ms", self.suspicion_timeout_ms as usize),
            ("clock_drift_margin_ms", self.clock_drift_margin_ms as usize),
            ("transfer_chunk_keys_max", self.transfer_chunk_keys_max),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(CoreError::InvalidConfig {
                    field,
                    reason: "must be greater than zero".into(),
                });
            }
        }
        if self.message_loss_timeout_ms >= self.request_timeout_ms {
            return Err(CoreError::InvalidConfig {
                field: "message_loss_timeout_ms",
                reason: format!(
                    "({}) must be shorter than request_timeout_ms ({}), or stalled requests time \
                     out before a lost message is replayed",
                    self.message_loss_timeout_ms, self.request_timeout_ms
                ),
            });
        }
        if self.heartbeat_interval_ms >= self.lease_ms {
            return Err(CoreError::InvalidConfig {
                field: "heartbeat_interval_ms",
                reason: format!(
                    "({}) must be shorter than lease_ms ({})",
                    self.heartbeat_interval_ms, self.lease_ms
                ),
            });
        }
        if self.suspicion_timeout_ms <= self.heartbeat_interval_ms {
            return Err(CoreError::InvalidConfig {
                field: "suspicion_timeout_ms",
                reason: format!(
                    "({}) must be longer than heartbeat_interval_ms ({})",
                    self.suspicion_timeout_ms, self.heartbeat_interval_ms
                ),
            });
        }
        if self.requests_per_key_max > self.requests_max {
            return Err(CoreError::InvalidConfig {
                field: "requests_per_key_max",
                reason: format!(
                    "{} exceeds requests_max ({})",
                    self.requests_per_key_max, self.requests_max
                ),
            });
        }
        Ok(())
    }

    /// The message-loss timeout as a duration.
    pub fn message_loss_timeout(&self) -> Duration {
        Duration::from_millis(self.message_loss_timeout_ms)
    }

    /// The heartbeat interval as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// The lease as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// How long a granting node waits before it may promise a new view: lease plus drift margin.
    pub fn grant_wait(&self) -> Duration {
        Duration::from_millis(self.lease_ms + self.clock_drift_margin_ms)
    }

    /// The suspicion timeout as a duration.
    pub fn suspicion_timeout(&self) -> Duration {
        Duration::from_millis(self.suspicion_timeout_ms)
    }

    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn zero_timeout_is_rejected_by_name() {
        let config = Config {
            message_loss_timeout_ms: 0,
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("message_loss_timeout_ms"), "{err}");
    }

    #[test]
    fn inconsistent_membership_timing_is_rejected_by_name() {
        let config = Config {
            heartbeat_interval_ms: 1_000,
            lease_ms: 1_000,
            ..Config::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("heartbeat_interval_ms") && err.contains("lease_ms"),
            "{err}"
        );
        let config = Config {
            clock_drift_margin_ms: 0,
            ..Config::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("clock_drift_margin_ms"), "{err}");
    }

    #[test]
    fn per_key_bound_above_total_is_rejected() {
        let config = Config {
            requests_per_key_max: 10,
            requests_max: 5,
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("requests_per_key_max"), "{err}");
    }
}
