//! The driver task: the one owner of the core's inputs. It feeds messages, requests and timer
//! expiries to the core and carries out the core's actions over the transport and the store.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hermes_core::PersistToken;
use hermes_core::{Action, Message, Node, NodeId, Op, OpResult, Outcome, RequestError, RequestId};
use hermes_net::{ClientRequest, Inbox, PeerBatch, Requests, Transport};
use hermes_store::WriterEvent;
use tokio::sync::{mpsc, oneshot, watch};

use crate::node::Shared;
use crate::persist::Persistence;
use crate::status::RuntimeCounters;
use crate::wire::{ClientAnswer, ClientCall};
use crate::NodeError;

/// A request from the in-process API.
pub(crate) struct Command {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Outcome, NodeError>>,
}

/// Where the answer to a pending request goes.
enum Waiter {
    Local(oneshot::Sender<Result<Outcome, NodeError>>),
    Remote(hermes_net::Responder<ClientAnswer>),
}

impl Waiter {
    fn answer(self, result: Result<Outcome, NodeError>) {
        match self {
            Waiter::Local(tx) => {
                let _ = tx.send(result);
            }
            Waiter::Remote(responder) => {
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

/// The driver's state besides the core (which lives in [`Shared`] for the read fast path).
pub(crate) struct Driver<T> {
    shared: Arc<Shared>,
    transport: T,
    persistence: Option<Persistence>,
    /// The store failed: the node stops (fail-stop).
    store_failure: Option<NodeError>,
    pending: HashMap<RequestId, Waiter>,
    next_request: u64,
    actions: Vec<Action>,
    had_lease: bool,
}

impl<T: Transport<Message>> Driver<T> {
    pub(crate) fn new(shared: Arc<Shared>, transport: T, persistence: Option<Persistence>) -> Self {
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
        for (_, waiter) in self.pending.drain() {
            waiter.answer(Err(NodeError::Stopped));
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
        // Replies to requests the core answered belong to the waiters of this driver; resolve
        // the request-level errors while the core's state is at hand.
        // Whether the node holds its lease: a timeout without one is a lost quorum.
        let serving = node.may_serve(now);
        for action in &mut self.actions {
            if let Action::Reply { id, result } = action {
                if let Some(waiter) = self.pending.remove(id) {
                    waiter.answer(convert(
                        std::mem::replace(result, Ok(Outcome::Value(None))),
                        serving,
                    ));
                }
            }
        }
        self.actions.retain(|a| !matches!(a, Action::Reply { .. }));
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
                self.submit(node, now, command.op, Waiter::Local(command.reply));
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
                    self.submit(node, now, op, Waiter::Remote(request.responder));
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

    fn submit(&mut self, node: &mut Node, now: hermes_core::Instant, op: Op, waiter: Waiter) {
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
                waiter.answer(Ok(Outcome::Value(value)));
                return;
            }
        }
        if self.shared.stopping.load(Ordering::Relaxed) {
            waiter.answer(Err(NodeError::NotResponsible {
                node: node.id().0,
                reason: "it is shutting down".into(),
            }));
            return;
        }
        if node.is_rejoining() || !node.membership().view().is_member(node.id()) {
            waiter.answer(Err(NodeError::NotResponsible {
                node: node.id().0,
                reason: "it is not a member of the current view (joining or restarting)".into(),
            }));
            return;
        }
        if self.pending.len() >= node.replica().config().requests_max {
            RuntimeCounters::bump(&self.shared.counters.refused);
            waiter.answer(Err(NodeError::Overloaded(format!(
                "{} requests pending (requests_max)",
                self.pending.len()
            ))));
            return;
        }
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.pending.insert(id, waiter);
        node.handle_request(now, id, op);
    }

    /// Carries out the collected actions in order.
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
                Action::Reply { .. } => {}
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

/// Maps the core's result to the API's error names.
fn convert(result: OpResult, serving: bool) -> Result<Outcome, NodeError> {
    result.map_err(|err| match err {
        RequestError::InvalidArgument(msg) => NodeError::InvalidArgument(msg),
        RequestError::Overloaded(msg) => NodeError::Overloaded(msg),
        RequestError::CasFailed => NodeError::CasFailed,
        RequestError::Aborted => NodeError::Aborted,
        RequestError::Timeout { outcome_unknown } if !serving => {
            NodeError::QuorumFailed { outcome_unknown }
        }
        RequestError::Timeout { outcome_unknown } => NodeError::Timeout { outcome_unknown },
    })
}
