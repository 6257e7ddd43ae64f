//! The driver task: the one owner of the core's inputs. It feeds messages, requests and timer
//! expiries to the core and carries out the core's actions over the transport and the store, in
//! the order the core emitted them (see [`Driver::execute`]). It also decides which requests the
//! node takes ([`Driver::admit`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hermes_core::PersistToken;
use hermes_core::{Action, Message, Node, NodeId, Op, OpResult, Outcome, RequestId};
use hermes_net::{ClientRequest, Inbox, PeerBatch, Requests, Transport};
use hermes_store::WriterEvent;
use tokio::sync::{mpsc, oneshot, watch};

use crate::node::SharedNode;
use crate::persist::RecordsWriter;
use crate::status::RuntimeCounters;
use crate::wire::{ClientAnswer, ClientCall};
use crate::{NodeError, RequestError};

/// A request from the in-process API.
pub(crate) struct Command {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<OpResult>,
}

/// Where the answer to a request goes: the in-process caller, or a client over the network.
enum ReplyTarget {
    Local(oneshot::Sender<OpResult>),
    Remote(hermes_net::Responder<ClientAnswer>),
}

impl ReplyTarget {
    fn answer(self, result: OpResult) {
        match self {
            ReplyTarget::Local(tx) => {
                let _ = tx.send(result);
            }
            ReplyTarget::Remote(responder) => {
                let _ = responder.respond(ClientAnswer::Done(result));
            }
        }
    }
}

/// One input taken from a channel.
enum Input {
    Batch(PeerBatch<Message>),
    Command(Command),
    Client(ClientRequest<ClientCall, ClientAnswer>),
    Persisted(WriterEvent<PersistToken>),
}

/// The channels the driver reads.
pub(crate) struct Inputs {
    pub(crate) inbox: Inbox<Message>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) clients: Option<Requests<ClientCall, ClientAnswer>>,
    /// What the store writer reports (`async` and `sync` durability).
    pub(crate) persisted: Option<mpsc::UnboundedReceiver<WriterEvent<PersistToken>>>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// The driver's state besides the core (which lives in [`SharedNode`] for the read fast path).
pub(crate) struct Driver<T> {
    shared: Arc<SharedNode>,
    transport: T,
    persistence: Option<RecordsWriter>,
    /// The store failed: the node stops (fail-stop).
    store_failure: Option<NodeError>,
    /// Where the answers to the requests the core holds go.
    pending: HashMap<RequestId, ReplyTarget>,
    next_request: u64,
    actions: Vec<Action>,
    had_lease: bool,
}

impl<T: Transport<Message>> Driver<T> {
    pub(crate) fn new(
        shared: Arc<SharedNode>,
        transport: T,
        persistence: Option<RecordsWriter>,
    ) -> Self {
        Driver {
            shared,
            transport,
            persistence,
            store_failure: None,
            pending: HashMap::new(),
            next_request: 0,
            actions: Vec::new(),
            had_lease: false,
        }
    }

    /// Runs until asked to stop or until the store fails.
    pub(crate) async fn run(mut self, mut inputs: Inputs) -> Result<(), NodeError> {
        let mut result = self.run_loop(&mut inputs).await;
        // Whatever is still pending will not be answered by this node any more.
        for (_, target) in self.pending.drain() {
            target.answer(Err(RequestError::Stopped));
        }
        if let Some(persistence) = self.persistence.take() {
            let closed = tokio::task::spawn_blocking(move || persistence.close())
                .await
                .unwrap_or_else(|err| Err(NodeError::Store(format!("store writer: {err}"))));
            if result.is_ok() {
                result = closed;
            }
        }
        if let Err(err) = &result {
            tracing::error!(node = self.shared.id.0, error = %err, "node stopped");
        }
        result
    }

    async fn run_loop(&mut self, inputs: &mut Inputs) -> Result<(), NodeError> {
        // The initial actions (the first membership save).
        self.step(|_, _| {});
        self.execute().await?;
        loop {
            let deadline = self.shared.core().poll_timeout();
            let sleep_until = self.shared.clock.to_tokio(deadline);
            let input = tokio::select! {
                biased;
                _ = inputs.stop.changed() => return Ok(()),
                Some(batch) = inputs.inbox.recv() => Some(Input::Batch(batch)),
                Some(command) = inputs.commands.recv() => Some(Input::Command(command)),
                Some(request) = next_client(&mut inputs.clients) => Some(Input::Client(request)),
                Some(event) = next_event(&mut inputs.persisted) => Some(Input::Persisted(event)),
                () = tokio::time::sleep_until(sleep_until) => None,
            };
            if *inputs.stop.borrow() {
                return Ok(());
            }
            let mut batch = Vec::with_capacity(16);
            batch.extend(input);
            // Take what else is queued, so that one lock of the core serves many inputs.
            let limit = self.shared.drain_inputs_max;
            while batch.len() < limit {
                if let Ok(b) = inputs.inbox.try_recv() {
                    batch.push(Input::Batch(b));
                } else if let Ok(c) = inputs.commands.try_recv() {
                    batch.push(Input::Command(c));
                } else if let Some(Ok(r)) = inputs.clients.as_mut().map(|c| c.try_recv()) {
                    batch.push(Input::Client(r));
                } else {
                    break;
                }
            }
            self.step(|driver, node| {
                for input in batch {
                    driver.feed(node, input);
                }
            });
            self.execute().await?;
            if let Some(err) = self.store_failure.take() {
                return Err(err);
            }
        }
    }

    /// Locks the core once, runs `feed`, fires due timers and collects the actions.
    fn step(&mut self, feed: impl FnOnce(&mut Self, &mut Node)) {
        let shared = Arc::clone(&self.shared);
        let mut node = shared.core();
        feed(self, &mut node);
        let now = shared.clock.now();
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
        while let Some(action) = node.poll_action() {
            self.actions.push(action);
        }
        let has_lease = node.membership().has_lease(now);
        if self.had_lease && !has_lease && node.membership().view().is_member(node.id()) {
            RuntimeCounters::bump(&shared.counters.lease_expiries);
            tracing::warn!(node = node.id().0, "lease expired");
        }
        self.had_lease = has_lease;
        // A request that times out while this node holds no lease failed for want of a quorum.
        // Decided here, where the core's state is at hand; the reply itself is carried out in
        // order with the other actions.
        if !node.may_serve(now) {
            for action in &mut self.actions {
                if let Action::Reply {
                    result: Err(error @ RequestError::Timeout { .. }),
                    ..
                } = action
                {
                    *error = RequestError::QuorumFailed {
                        outcome_unknown: error.outcome_unknown(),
                    };
                }
            }
        }
    }

    fn feed(&mut self, node: &mut Node, input: Input) {
        let now = self.shared.clock.now();
        match input {
            Input::Batch(batch) => {
                for msg in batch.messages {
                    node.handle_message(now, batch.from, msg);
                }
            }
            Input::Command(command) => {
                self.submit(node, now, command.op, ReplyTarget::Local(command.reply));
            }
            Input::Persisted(WriterEvent::Durable(tokens)) => {
                if let Some(last) = tokens.last() {
                    node.handle_persisted(now, *last);
                }
            }
            Input::Persisted(WriterEvent::Failed(err)) => {
                self.store_failure = Some(err.into());
            }
            Input::Client(request) => match request.request {
                ClientCall::Execute(op) => {
                    self.submit(node, now, op, ReplyTarget::Remote(request.responder));
                }
                ClientCall::Status => {
                    let status = self.shared.status_of(node, &self.transport_peers());
                    let _ = request
                        .responder
                        .respond(ClientAnswer::Status(Box::new(status)));
                }
            },
        }
    }

    fn transport_peers(&self) -> Vec<NodeId> {
        self.shared.peers.keys().copied().collect()
    }

    /// Hands a request to the core, unless it is answered at once: a read the fast path can
    /// serve, or a request the node does not take ([`Driver::admit`]).
    fn submit(&mut self, node: &mut Node, now: hermes_core::Instant, op: Op, target: ReplyTarget) {
        let _span = tracing::debug_span!(
            "request",
            node = self.shared.id.0,
            op = op_name(&op),
            key_bytes = op.key().len()
        )
        .entered();
        if let Op::Read { key } = &op {
            if let Some(value) = node.read_local(now, key) {
                RuntimeCounters::bump(&self.shared.counters.fast_reads);
                target.answer(Ok(Outcome::Value(value)));
                return;
            }
        }
        if let Err(refusal) = self.admit(node) {
            target.answer(Err(refusal));
            return;
        }
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.pending.insert(id, target);
        node.handle_request(now, id, op);
    }

    /// Whether this node takes a request: the one place where the runtime decides admission.
    ///
    /// A node that is shutting down, rejoining or not a member of its view refuses at once
    /// (`NotResponsible`), so that the client tries another node; the core would hold the
    /// request until it timed out. The other checks sit where they must, and nowhere else:
    /// - Before the driver, on the channels that carry requests to it: a full channel has no
    ///   room to queue a request (`Overloaded`: `runtime.commands_max` in
    ///   [`crate::ClusterNode::execute`], `network.client_queue_max` in `hermes-net`'s client
    ///   server), and a stopping handle takes no new command (`Stopped`, in
    ///   [`crate::ClusterNode::execute`]).
    /// - In the core (`Replica::handle_request`), which owns the pending requests: malformed
    ///   requests (`InvalidArgument`), the bounds `requests_max` and `requests_per_key_max`
    ///   (`Overloaded`), and the lease: without one, a request waits and times out
    ///   (`QuorumFailed`, see [`Driver::step`]).
    fn admit(&self, node: &Node) -> Result<(), RequestError> {
        if self.shared.stopping.load(Ordering::Relaxed) {
            return Err(RequestError::NotResponsible {
                node: node.id().0,
                reason: "it is shutting down".into(),
            });
        }
        if node.is_rejoining() || !node.membership().view().is_member(node.id()) {
            return Err(RequestError::NotResponsible {
                node: node.id().0,
                reason: "it is not a member of the current view (joining or restarting)".into(),
            });
        }
        Ok(())
    }

    /// Carries out the collected actions one after the other, in the order the core emitted
    /// them: an action starts only once the one before it is done. What "done" means:
    /// - `Send`: enqueued on the transport's queue to that peer. The transport batches each
    ///   peer's messages and keeps their order; messages to different peers travel
    ///   independently (no order between peers exists on a network anyway).
    /// - `Persist`: queued on the store writer, which commits in queue order; the core hears
    ///   of durability later (`handle_persisted`) and emits nothing that needs it before.
    /// - `SaveMembership`: written and synced (the driver waits).
    /// - `Reply`: handed to the caller's channel.
    ///
    /// The one answer given outside this order: a read served on the fast path (in
    /// [`Driver::submit`], and on the caller's task in [`crate::ClusterNode::read`]) reads the
    /// core's state under its lock, which may be ahead of actions not yet carried out. It
    /// returns only Valid keys under a lease, and a key is Valid only once its write committed.
    async fn execute(&mut self) -> Result<(), NodeError> {
        let actions = std::mem::take(&mut self.actions);
        for action in actions {
            match action {
                Action::Send { to, msg } => {
                    if let Err(err) = self.transport.send(to, msg) {
                        RuntimeCounters::bump(&self.shared.counters.send_failures);
                        tracing::debug!(node = self.shared.id.0, peer = to.0, error = %err, "message not sent");
                    }
                }
                Action::Reply { id, result } => {
                    if let Some(target) = self.pending.remove(&id) {
                        target.answer(result);
                    }
                }
                Action::Persist { records, token } => {
                    if let Some(persistence) = &self.persistence {
                        persistence.submit(records, token).await?;
                    }
                }
                Action::SaveMembership(state) => {
                    // Durable before any later action: the driver waits, the runtime does not.
                    let data = Arc::clone(&self.shared);
                    tokio::task::spawn_blocking(move || data.save_membership(&state))
                        .await
                        .map_err(|err| {
                            NodeError::Store(format!("membership save failed: {err}"))
                        })??;
                }
                Action::ViewInstalled(view) => {
                    let _span = tracing::info_span!(
                        "view_change",
                        node = self.shared.id.0,
                        epoch = view.epoch.0
                    )
                    .entered();
                    let members: Vec<u32> = view.members.iter().map(|n| n.0).collect();
                    let shadows: Vec<u32> = view.shadows.iter().map(|n| n.0).collect();
                    tracing::info!(
                        node = self.shared.id.0,
                        epoch = view.epoch.0,
                        ?members,
                        ?shadows,
                        "view installed"
                    );
                }
                Action::JoinRefused(reason) => {
                    tracing::warn!(node = self.shared.id.0, %reason, "join refused");
                }
            }
        }
        self.shared
            .pending_requests
            .store(self.pending.len(), Ordering::Relaxed);
        Ok(())
    }
}

async fn next_event(
    events: &mut Option<mpsc::UnboundedReceiver<WriterEvent<PersistToken>>>,
) -> Option<WriterEvent<PersistToken>> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_client(
    clients: &mut Option<Requests<ClientCall, ClientAnswer>>,
) -> Option<ClientRequest<ClientCall, ClientAnswer>> {
    match clients {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The operation's name in logs.
fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Read { .. } => "read",
        Op::Write { .. } => "write",
        Op::Delete { .. } => "delete",
        Op::Cas { .. } => "cas",
    }
}
