//! [`ClusterNode`]: the public handle of a running node.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use hermes_core::{DurableMembership, Epoch, Message, Node, NodeId, Op, Outcome, Ts, View};
use hermes_net::{Inbox, NetError, QuicTransport, Transport};
use hermes_store::Durability;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::api::{found, ClientApi};
use crate::config::NodeConfig;
use crate::data_dir::DataDir;
use crate::driver::{Command, Driver, Inputs};
use crate::persist::RecordsWriter;
use crate::status::{NodeCounters, PeerStatus, RuntimeCounters, Status};
use crate::wire::{ClientAnswer, ClientCall};
use crate::{NodeError, NodeState, RequestError};

/// Maps the runtime's monotonic clock to the core's [`hermes_core::Instant`] (microseconds since
/// the node started).
pub(crate) struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: tokio::time::Instant::now(),
        }
    }

    /// The core's notion of now.
    pub(crate) fn now(&self) -> hermes_core::Instant {
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        hermes_core::Instant::from_micros(micros)
    }

    /// A core deadline as a runtime instant; no deadline is an hour from now.
    pub(crate) fn to_tokio(&self, deadline: Option<hermes_core::Instant>) -> tokio::time::Instant {
        match deadline {
            Some(t) if t != hermes_core::Instant::NEVER => {
                self.start + Duration::from_micros(t.as_micros())
            }
            _ => tokio::time::Instant::now() + Duration::from_secs(3600),
        }
    }
}

type Links = Box<dyn Fn(NodeId) -> bool + Send + Sync>;
type Closer = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The part of a running node that its handles, its driver task and the read fast path share:
/// the core behind a mutex, the clock, the counters and what the status reports.
pub(crate) struct SharedNode {
    pub(crate) id: NodeId,
    core: Mutex<Node>,
    pub(crate) clock: Clock,
    pub(crate) counters: RuntimeCounters,
    /// The other configured nodes and their addresses.
    pub(crate) peers: BTreeMap<NodeId, Option<SocketAddr>>,
    links: Links,
    durability: Durability,
    pub(crate) stopping: AtomicBool,
    pub(crate) pending_requests: AtomicUsize,
    pub(crate) drain_inputs_max: usize,
    data: Option<DataDir>,
}

impl SharedNode {
    /// Locks the core. Never held across an `.await`.
    pub(crate) fn core(&self) -> MutexGuard<'_, Node> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn save_membership(&self, state: &DurableMembership) -> Result<(), NodeError> {
        match &self.data {
            Some(data) => data.save_membership(state),
            None => Ok(()),
        }
    }

    pub(crate) fn status_of(&self, node: &Node, peers: &[NodeId]) -> Status {
        let now = self.clock.now();
        let view = node.membership().view();
        let mut counters = NodeCounters::default();
        self.counters.fill(&node.stats(), &mut counters);
        let lease = node.membership().lease_until().saturating_since(now);
        Status {
            node_id: self.id.0,
            state: node.state(now),
            epoch: view.epoch.0,
            members: view.members.iter().map(|n| n.0).collect(),
            shadows: view.shadows.iter().map(|n| n.0).collect(),
            lease_remaining_ms: if node.may_serve(now) {
                u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)
            } else {
                0
            },
            durability: self.durability.to_string(),
            peers: peers
                .iter()
                .map(|id| PeerStatus {
                    id: id.0,
                    addr: self.peers.get(id).copied().flatten().map(|a| a.to_string()),
                    connected: (self.links)(*id),
                    member: view.is_member(*id),
                })
                .collect(),
            pending_requests: node.replica().pending_requests(),
            uptime_ms: now.as_micros() / 1000,
            counters,
        }
    }
}

/// A running Hermes node: the core driven by one task over a transport, with the async client
/// API of the project's seed (`write`, `read`) plus `delete`, `cas` and `status`.
///
/// Reads of keys that are Valid while the node holds its lease are answered on the caller's
/// task (the read fast path) and never wait behind writes; everything else goes through the
/// driver task. Cloning the handle is cheap; every clone drives the same node.
#[derive(Clone)]
pub struct ClusterNode {
    shared: Arc<SharedNode>,
    handle: Arc<Handle>,
}

struct Handle {
    commands: mpsc::Sender<Command>,
    stop: watch::Sender<bool>,
    driver: Mutex<Option<JoinHandle<Result<(), NodeError>>>>,
    closer: Mutex<Option<Closer>>,
    local_addr: Option<SocketAddr>,
    shutdown_timeout_ms: u64,
}

impl ClusterNode {
    /// Starts a node from its configuration: locks the data directory, restores the saved
    /// membership state (a node that ran before rejoins the cluster), binds the QUIC endpoint
    /// (peers and QUIC clients, UDP) and the TCP port of the same number (TLS clients), and
    /// starts the driver task. Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// [`NodeError::Config`] for an invalid configuration or unusable certificates,
    /// [`NodeError::Io`] if the data directory is in use or the address cannot be bound,
    /// [`NodeError::Store`] if the data directory holds a corrupt or foreign file.
    pub async fn start(config: NodeConfig) -> Result<ClusterNode, NodeError> {
        config.validate().map_err(NodeError::Config)?;
        let tls = config.tls.load()?;
        let data = DataDir::open(&config.data_dir, config.node_id)?;
        let saved = data.load_membership()?;
        let clock = Clock::new();
        let core_config = config.core_config();
        let (persistence, records) = if config.durability == Durability::Memory {
            (None, Vec::new())
        } else {
            let (persistence, records) = RecordsWriter::open(&config.data_dir, config.durability)?;
            (Some(persistence), records)
        };
        let node = match saved {
            None if !records.is_empty() => {
                return Err(NodeError::Store(format!(
                    "data directory {} holds records but no membership file; it does not \
                     belong to a node of this cluster",
                    config.data_dir.display()
                )))
            }
            None => Node::new(
                core_config,
                View::new(Epoch(1), config.cluster()),
                clock.now(),
            ),
            Some(saved) => {
                tracing::info!(
                    node = config.node_id.0,
                    epoch = saved.view.epoch.0,
                    records = records.len(),
                    "restarting: rejoining the cluster"
                );
                if persistence.is_some() {
                    Node::recover(core_config, saved, records, clock.now())
                } else {
                    Node::restart(core_config, saved, clock.now())
                }
            }
        }
        .map_err(|err| NodeError::Config(err.to_string()))?;
        let (transport, inbox, clients) = QuicTransport::<Message>::bind_with_clients(
            config.quic_config(tls),
        )
        .map_err(|err| match err {
            NetError::Io { .. } => {
                NodeError::Io(format!("cannot listen on {}: {err}", config.listen))
            }
            other => NodeError::Config(other.to_string()),
        })?;
        let local_addr = transport.local_addr().ok();
        let transport = Arc::new(transport);
        let weak: Weak<QuicTransport<Message>> = Arc::downgrade(&transport);
        let links: Links = Box::new(move |peer| {
            weak.upgrade()
                .is_some_and(|t: Arc<QuicTransport<Message>>| t.is_connected(peer))
        });
        let closing = Arc::clone(&transport);
        let closer: Closer = Box::new(move || {
            Box::pin(async move {
                // The driver has dropped its reference; close the endpoint cleanly.
                match Arc::try_unwrap(closing) {
                    Ok(transport) => transport.shutdown().await,
                    Err(shared) => drop(shared),
                }
            })
        });
        let peers = config.peers.iter().map(|p| (p.id, Some(p.addr))).collect();
        let parts = Parts {
            node,
            clock,
            peers,
            links,
            durability: config.durability,
            data: Some(data),
            persistence,
            runtime: config.runtime.clone(),
            local_addr,
            closer: Some(closer),
        };
        tracing::info!(node = config.node_id.0, addr = ?local_addr, "node started");
        Ok(Self::launch(parts, transport, inbox, Some(clients)))
    }

    /// Starts a node of a new cluster whose initial members are `members`, over any transport
    /// (for example [`hermes_net::MemTransport`] for several nodes in one process), with no
    /// data directory and no client endpoint. Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// [`NodeError::Config`] for an invalid core configuration.
    pub fn start_with_transport<T>(
        config: hermes_core::Config,
        members: &[NodeId],
        transport: T,
        inbox: Inbox<Message>,
    ) -> Result<ClusterNode, NodeError>
    where
        T: Transport<Message> + 'static,
    {
        let clock = Clock::new();
        let id = config.node_id;
        let view = View::new(Epoch(1), members.iter().copied());
        let node = Node::new(config, view, clock.now())
            .map_err(|err| NodeError::Config(err.to_string()))?;
        let parts = Parts {
            node,
            clock,
            peers: members
                .iter()
                .filter(|n| **n != id)
                .map(|n| (*n, None))
                .collect(),
            links: Box::new(|_| true),
            durability: Durability::Memory,
            data: None,
            persistence: None,
            runtime: crate::config::RuntimeConfig::default(),
            local_addr: None,
            closer: None,
        };
        Ok(Self::launch(parts, transport, inbox, None))
    }

    fn launch<T: Transport<Message> + 'static>(
        parts: Parts,
        transport: T,
        inbox: Inbox<Message>,
        clients: Option<hermes_net::Requests<ClientCall, ClientAnswer>>,
    ) -> ClusterNode {
        let (commands_tx, commands_rx) = mpsc::channel(parts.runtime.commands_max);
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(SharedNode {
            id: parts.node.id(),
            core: Mutex::new(parts.node),
            clock: parts.clock,
            counters: RuntimeCounters::default(),
            peers: parts.peers,
            links: parts.links,
            durability: parts.durability,
            stopping: AtomicBool::new(false),
            pending_requests: AtomicUsize::new(0),
            drain_inputs_max: parts.runtime.drain_inputs_max,
            data: parts.data,
        });
        let (persistence, persisted) = match parts.persistence {
            Some(mut persistence) => {
                let (_, empty) = mpsc::unbounded_channel();
                let events = std::mem::replace(&mut persistence.events, empty);
                (Some(persistence), Some(events))
            }
            None => (None, None),
        };
        let driver = Driver::new(Arc::clone(&shared), transport, persistence);
        let inputs = Inputs {
            inbox,
            commands: commands_rx,
            clients,
            persisted,
            stop: stop_rx,
        };
        let task = tokio::spawn(driver.run(inputs));
        ClusterNode {
            shared,
            handle: Arc::new(Handle {
                commands: commands_tx,
                stop: stop_tx,
                driver: Mutex::new(Some(task)),
                closer: Mutex::new(parts.closer),
                local_addr: parts.local_addr,
                shutdown_timeout_ms: parts.runtime.shutdown_timeout_ms,
            }),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The address the node listens on (with the real port if the configuration said 0);
    /// `None` for a node started over another transport.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.handle.local_addr
    }

    /// Writes `value` under `key`; returns the write's timestamp once every live replica has it
    /// ([`ClientApi::write`]).
    ///
    /// # Errors
    /// [`RequestError::InvalidArgument`], [`RequestError::Overloaded`],
    /// [`RequestError::NotResponsible`], [`RequestError::Timeout`] /
    /// [`RequestError::QuorumFailed`] (see `outcome_unknown`), [`RequestError::Stopped`].
    pub async fn write(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<Ts, RequestError> {
        ClientApi::write(self, key, value).await
    }

    /// Reads `key`. Served locally when the key is Valid and the node holds its lease.
    ///
    /// # Errors
    /// [`RequestError::ValueNotFound`] if the key does not exist, or as [`ClusterNode::write`].
    pub async fn read(&self, key: impl Into<Bytes>) -> Result<Bytes, RequestError> {
        let key = key.into();
        if let Some(found) = self.read_local(&key) {
            return found.ok_or(RequestError::ValueNotFound);
        }
        found(self.execute(Op::Read { key }).await?)
    }

    /// The read fast path alone: `Some(value or None for absent)` if the read can be answered
    /// locally now, `None` if it would have to wait (the key is being written, or the node holds
    /// no lease).
    pub fn read_local(&self, key: &[u8]) -> Option<Option<Bytes>> {
        if self.shared.stopping.load(Ordering::Relaxed) {
            return None;
        }
        let now = self.shared.clock.now();
        let found = self.shared.core().read_local(now, key);
        if found.is_some() {
            RuntimeCounters::bump(&self.shared.counters.fast_reads);
        }
        found
    }

    /// Deletes `key` (a tombstone write); returns its timestamp ([`ClientApi::delete`]).
    ///
    /// # Errors
    /// As [`ClusterNode::write`].
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<Ts, RequestError> {
        ClientApi::delete(self, key).await
    }

    /// Compare-and-swap: sets `new` if `key` holds `expected` (`None`: the key must be absent;
    /// [`ClientApi::cas`]).
    ///
    /// # Errors
    /// [`RequestError::CasFailed`] if the key holds something else, [`RequestError::Aborted`] if
    /// a concurrent update won the race, or as [`ClusterNode::write`].
    pub async fn cas(
        &self,
        key: impl Into<Bytes>,
        expected: Option<Bytes>,
        new: impl Into<Bytes>,
    ) -> Result<Ts, RequestError> {
        ClientApi::cas(self, key, expected, new).await
    }

    /// Runs any operation through the driver.
    ///
    /// Admission is decided by the driver (see `Driver::admit`); the two refusals here concern
    /// the handle's own channel, before the driver sees the request: a stopping node takes no
    /// new command (`Stopped`, as once the driver has gone), and a full channel
    /// (`runtime.commands_max`) has no room to queue one (`Overloaded`).
    ///
    /// # Errors
    /// As the operation's method.
    pub async fn execute(&self, op: Op) -> Result<Outcome, RequestError> {
        if self.shared.stopping.load(Ordering::Relaxed) {
            return Err(RequestError::Stopped);
        }
        let (reply, answer) = oneshot::channel();
        self.handle
            .commands
            .try_send(Command { op, reply })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => RequestError::Overloaded(
                    "the node's request queue is full (runtime.commands_max)".into(),
                ),
                mpsc::error::TrySendError::Closed(_) => RequestError::Stopped,
            })?;
        answer.await.unwrap_or(Err(RequestError::Stopped))
    }

    /// A snapshot of the node: view, epoch, lease, state, peers, counters.
    pub fn status(&self) -> Status {
        let peers: Vec<NodeId> = self.shared.peers.keys().copied().collect();
        let node = self.shared.core();
        self.shared.status_of(&node, &peers)
    }

    /// Waits until the node is Active (a member holding its lease, hearing from every peer), or
    /// until `timeout_ms` passes.
    ///
    /// # Errors
    /// [`NodeError::NotActive`] with the last state seen.
    pub async fn wait_active(&self, timeout_ms: u64) -> Result<(), NodeError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            let state = self.status().state;
            if state == NodeState::Active {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::NotActive {
                    waited_ms: timeout_ms,
                    state,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the node gracefully: refuses new requests, waits (up to
    /// `runtime.shutdown_timeout_ms`) for pending ones, stops the driver and closes the
    /// endpoint. The data directory is unlocked afterwards. Calling it again does nothing.
    ///
    /// # Errors
    /// The error that stopped the driver earlier, if any (for example a store failure).
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.shared.stopping.store(true, Ordering::Relaxed);
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.handle.shutdown_timeout_ms);
        while self.shared.pending_requests.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = self.handle.stop.send(true);
        let task = self
            .handle
            .driver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let result = match task {
            Some(task) => task
                .await
                .unwrap_or_else(|err| Err(NodeError::Io(format!("driver task failed: {err}")))),
            None => Ok(()),
        };
        let closer = self
            .handle
            .closer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(close) = closer {
            close().await;
        }
        result
    }

    /// Waits until the driver stops on its own (a store failure) and returns why. Used by the
    /// `hermes start` command to exit with the node's last word.
    pub async fn stopped(&self) -> Result<(), NodeError> {
        loop {
            let finished = self
                .handle
                .driver
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_none_or(JoinHandle::is_finished);
            if finished {
                return self.shutdown().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl ClientApi for ClusterNode {
    fn execute(&self, op: Op) -> impl Future<Output = Result<Outcome, RequestError>> + Send {
        ClusterNode::execute(self, op)
    }

    fn status(&self) -> impl Future<Output = Result<Status, RequestError>> + Send {
        std::future::ready(Ok(ClusterNode::status(self)))
    }

    fn read(
        &self,
        key: impl Into<Bytes>,
    ) -> impl Future<Output = Result<Bytes, RequestError>> + Send {
        // The fast path, as the inherent method.
        let key: Bytes = key.into();
        ClusterNode::read(self, key)
    }
}

/// Everything [`ClusterNode::launch`] needs besides the transport.
struct Parts {
    node: Node,
    clock: Clock,
    peers: BTreeMap<NodeId, Option<SocketAddr>>,
    links: Links,
    durability: Durability,
    data: Option<DataDir>,
    persistence: Option<RecordsWriter>,
    runtime: crate::config::RuntimeConfig,
    local_addr: Option<SocketAddr>,
    closer: Option<Closer>,
}
