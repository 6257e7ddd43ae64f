//! A deterministic cluster with a hand-driven clock, network and disks.
//!
//! [`Cluster`] holds the processes `1..=n` — whole [`Node`]s (replica and membership) or bare
//! [`Replica`]s, both seen through [`Process`] — and passes their messages by hand. Nothing is
//! random: messages are delivered in the order they were sent (or one at a time, chosen by the
//! test, with [`Cluster::deliver`]); a disk syncs what was written only when the network is
//! quiet; time moves only in [`Cluster::run_for`], from deadline to deadline.
//!
//! Faults: [`Cluster::isolate`] cuts a node off (what it sends or is sent is dropped),
//! [`Cluster::crash`] kills its process (what its disk did not sync is lost, and so is every
//! message from or to it), [`Cluster::start`] brings it back from its disk. Every action of every
//! process is kept, in order, in [`Cluster::log`].

use hermes_core::{
    Action, Config, DurableMembership, Epoch, Instant, Key, Message, Node, NodeId, NodeState, Op,
    OpResult, Outcome, PersistToken, PlantedBug, Record, Replica, RequestId, Value, View,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// What the cluster needs of a process: the inputs and outputs of the sans-IO core.
pub trait Process {
    /// The process's id.
    fn id(&self) -> NodeId;
    /// A client request.
    fn handle_request(&mut self, now: Instant, id: RequestId, op: Op);
    /// A message from `from`.
    fn handle_message(&mut self, now: Instant, from: NodeId, msg: Message);
    /// Every `Persist` up to `token` is durable.
    fn handle_persisted(&mut self, now: Instant, token: PersistToken);
    /// The deadline passed.
    fn handle_timeout(&mut self, now: Instant);
    /// The next action, if any.
    fn poll_action(&mut self) -> Option<Action>;
    /// The earliest deadline, if any.
    fn poll_timeout(&self) -> Option<Instant>;
}

impl Process for Node {
    fn id(&self) -> NodeId {
        Node::id(self)
    }
    fn handle_request(&mut self, now: Instant, id: RequestId, op: Op) {
        Node::handle_request(self, now, id, op);
    }
    fn handle_message(&mut self, now: Instant, from: NodeId, msg: Message) {
        Node::handle_message(self, now, from, msg);
    }
    fn handle_persisted(&mut self, now: Instant, token: PersistToken) {
        Node::handle_persisted(self, now, token);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Node::handle_timeout(self, now);
    }
    fn poll_action(&mut self) -> Option<Action> {
        Node::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Node::poll_timeout(self)
    }
}

impl Process for Replica {
    fn id(&self) -> NodeId {
        Replica::id(self)
    }
    fn handle_request(&mut self, now: Instant, id: RequestId, op: Op) {
        Replica::handle_request(self, now, id, op);
    }
    fn handle_message(&mut self, now: Instant, from: NodeId, msg: Message) {
        Replica::handle_message(self, now, from, msg);
    }
    fn handle_persisted(&mut self, now: Instant, token: PersistToken) {
        Replica::handle_persisted(self, now, token);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Replica::handle_timeout(self, now);
    }
    fn poll_action(&mut self) -> Option<Action> {
        Replica::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Replica::poll_timeout(self)
    }
}

/// One node's disk: what is durable, the `Persist` batches written but not yet synced, and the
/// last saved membership state. A disk outlives the crashes of its process.
#[derive(Default)]
pub struct Disk {
    /// The synced records.
    pub durable: BTreeMap<Key, Record>,
    /// Written, not yet synced: lost in a crash.
    pub queued: Vec<(PersistToken, Vec<(Key, Record)>)>,
    /// The last `SaveMembership` (saved at once: the runtime waits for it).
    pub saved: Option<DurableMembership>,
}

/// Processes `1..=n`, their disks, the clock and the network; see the module documentation.
pub struct Cluster<P> {
    /// Process `id` at index `id - 1`; `None` while it is crashed.
    pub processes: Vec<Option<P>>,
    /// Disk of node `id` at index `id - 1`.
    pub disks: Vec<Disk>,
    /// The time inputs are given at.
    pub now: Instant,
    /// Messages in flight, in sending order: (from, to, message).
    pub network: VecDeque<(NodeId, NodeId, Message)>,
    /// Answers not yet taken, by (answering node, request).
    pub replies: BTreeMap<(NodeId, RequestId), OpResult>,
    /// Nodes cut off from everyone: what they send or are sent is dropped.
    pub isolated: BTreeSet<NodeId>,
    /// Every view any node installed, in order of epochs.
    pub views: Vec<View>,
    /// Every action of every process, in the order they were emitted.
    pub log: Vec<(NodeId, Action)>,
    /// The configuration of every process, but for its id.
    template: Config,
    next_request: u64,
}

/// The view `{1, ..., size}` of epoch 1.
fn initial_view(size: u32) -> View {
    View::new(Epoch(1), (1..=size).map(NodeId))
}

impl Cluster<Node> {
    /// Nodes `1..=size` of the view `{1..=size}` at epoch 1, each configured as `template` but
    /// for its id.
    pub fn nodes(size: u32, template: Config) -> Self {
        let view = initial_view(size);
        let processes = (1..=size)
            .map(|id| {
                let config = Self::configure(&template, id);
                Some(Node::new(config, view.clone(), Instant::ZERO).expect("a valid node"))
            })
            .collect();
        Self::with(processes, template)
    }

    /// Node `id` restarts from its disk: with its synced records (recovery) or without them.
    pub fn start(&mut self, id: u32, with_records: bool) {
        let index = id as usize - 1;
        let disk = &self.disks[index];
        let saved = disk.saved.clone().expect("the membership state was saved");
        let config = self.config(id);
        let node = if with_records {
            let records = disk
                .durable
                .iter()
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect();
            Node::recover(config, saved, records, self.now)
        } else {
            Node::restart(config, saved, self.now)
        };
        self.processes[index] = Some(node.expect("a valid restart"));
    }

    /// Whether node `id` is Active now.
    pub fn active(&self, id: u32) -> bool {
        self.node(id).state(self.now) == NodeState::Active
    }
}

impl Cluster<Replica> {
    /// Bare replicas `1..=size` of the view `{1..=size}` at epoch 1, each configured as
    /// `template` but for its id, with `bug` planted, serving (no membership: views are
    /// installed by hand).
    pub fn replicas(size: u32, template: Config, bug: Option<PlantedBug>) -> Self {
        let view = initial_view(size);
        let processes = (1..=size)
            .map(|id| {
                let config = Self::configure(&template, id);
                let mut replica = Replica::new(config, view.clone()).expect("a valid replica");
                if let Some(bug) = bug {
                    replica.plant_bug(bug);
                }
                replica.set_serving(Instant::ZERO, true);
                Some(replica)
            })
            .collect();
        Self::with(processes, template)
    }
}

impl<P: Process> Cluster<P> {
    fn with(processes: Vec<Option<P>>, template: Config) -> Self {
        let disks = processes.iter().map(|_| Disk::default()).collect();
        Cluster {
            processes,
            disks,
            now: Instant::ZERO,
            network: VecDeque::new(),
            replies: BTreeMap::new(),
            isolated: BTreeSet::new(),
            views: Vec::new(),
            log: Vec::new(),
            template,
            next_request: 1,
        }
    }

    fn configure(template: &Config, id: u32) -> Config {
        Config {
            node_id: NodeId(id),
            ..template.clone()
        }
    }

    /// The configuration of node `id`.
    pub fn config(&self, id: u32) -> Config {
        Self::configure(&self.template, id)
    }

    /// Process `id`, which must be up.
    pub fn node(&self, id: u32) -> &P {
        self.processes[id as usize - 1]
            .as_ref()
            .expect("the node is up")
    }

    /// Process `id`, which must be up.
    pub fn node_mut(&mut self, id: u32) -> &mut P {
        self.processes[id as usize - 1]
            .as_mut()
            .expect("the node is up")
    }

    /// Gives node `id` an input by hand (`f` gets the process and the time), then carries out
    /// the actions it produced.
    pub fn act(&mut self, id: u32, f: impl FnOnce(&mut P, Instant)) {
        let now = self.now;
        f(self.node_mut(id), now);
        self.drain(id);
    }

    /// The actions node `id` emitted since the log held `since` entries, in order.
    pub fn actions_of(&self, id: u32, since: usize) -> impl Iterator<Item = &Action> {
        self.log[since..]
            .iter()
            .filter(move |(node, _)| *node == NodeId(id))
            .map(|(_, action)| action)
    }

    /// Cuts node `id` off from everyone.
    pub fn isolate(&mut self, id: u32) {
        self.isolated.insert(NodeId(id));
    }

    /// Reconnects every isolated node.
    pub fn heal(&mut self) {
        self.isolated.clear();
    }

    /// Carries out the actions of node `id`: sends go to the network (unless an end is
    /// isolated), answers to [`Cluster::replies`], `Persist` batches to the disk's write queue,
    /// membership saves straight to the disk. A refused join fails the test.
    pub fn drain(&mut self, id: u32) {
        let index = id as usize - 1;
        let Some(process) = self.processes[index].as_mut() else {
            return;
        };
        let from = process.id();
        let actions: Vec<Action> = std::iter::from_fn(|| process.poll_action()).collect();
        for action in actions {
            self.log.push((from, action.clone()));
            match action {
                Action::Send { to, msg } => {
                    if !self.isolated.contains(&from) && !self.isolated.contains(&to) {
                        self.network.push_back((from, to, msg));
                    }
                }
                Action::Reply {
                    id: request,
                    result,
                } => {
                    self.replies.insert((from, request), result);
                }
                Action::Persist { records, token } => {
                    self.disks[index].queued.push((token, records));
                }
                Action::SaveMembership(state) => self.disks[index].saved = Some(state),
                Action::ViewInstalled(view) => {
                    if self.views.last().is_none_or(|v| v.epoch < view.epoch) {
                        self.views.push(view);
                    }
                }
                Action::JoinRefused(reason) => panic!("node {from} refused: {reason}"),
            }
        }
    }

    fn ids(&self) -> impl Iterator<Item = u32> {
        1..=self.processes.len() as u32
    }

    fn drain_all(&mut self) {
        for id in self.ids() {
            self.drain(id);
        }
    }

    /// Hands `msg` from `from` to `to` (dropped if `to` is down) and carries out its actions.
    fn hand_over(&mut self, from: NodeId, to: NodeId, msg: Message) {
        let now = self.now;
        if let Some(process) = self.processes[to.0 as usize - 1].as_mut() {
            process.handle_message(now, from, msg);
        }
        self.drain(to.0);
    }

    /// Delivers the first message in flight from `from` to `to`; there must be one.
    pub fn deliver(&mut self, from: u32, to: u32) {
        let index = self
            .network
            .iter()
            .position(|(f, t, _)| *f == NodeId(from) && *t == NodeId(to))
            .unwrap_or_else(|| panic!("no message in flight from {from} to {to}"));
        let (from, to, msg) = self.network.remove(index).expect("the message found");
        self.hand_over(from, to, msg);
    }

    /// Delivers everything in flight, in order, until the network is quiet; time stands still.
    pub fn deliver_all(&mut self) {
        while let Some((from, to, msg)) = self.network.pop_front() {
            self.hand_over(from, to, msg);
        }
    }

    /// Makes every written batch of node `id` durable and reports the last token; false if
    /// nothing was written.
    pub fn sync_disk(&mut self, id: u32) -> bool {
        let index = id as usize - 1;
        let queued = std::mem::take(&mut self.disks[index].queued);
        let Some(last) = queued.last().map(|(token, _)| *token) else {
            return false;
        };
        for (_, records) in queued {
            self.disks[index].durable.extend(records);
        }
        let now = self.now;
        if let Some(process) = self.processes[index].as_mut() {
            process.handle_persisted(now, last);
        }
        true
    }

    /// Runs for `duration`: messages are delivered at once and in order, disks sync when the
    /// network is quiet, timers fire on time. Ends with the clock at `now + duration`.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        loop {
            self.drain_all();
            if let Some((from, to, msg)) = self.network.pop_front() {
                self.hand_over(from, to, msg);
                continue;
            }
            if self.ids().any(|id| self.sync_disk(id)) {
                continue;
            }
            let next = self
                .processes
                .iter()
                .flatten()
                .filter_map(P::poll_timeout)
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for process in self.processes.iter_mut().flatten() {
                        if process.poll_timeout().is_some_and(|d| d <= now) {
                            process.handle_timeout(now);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// Hands `op` to node `id` under a fresh request id, carries out what it did at once, and
    /// returns the id without waiting for the answer.
    pub fn submit(&mut self, id: u32, op: Op) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.act(id, |process, now| process.handle_request(now, request, op));
        request
    }

    /// Takes the answer node `id` gave to `request`, if it gave one.
    pub fn take_reply(&mut self, id: u32, request: RequestId) -> Option<OpResult> {
        self.replies.remove(&(NodeId(id), request))
    }

    /// Sends `op` to node `id` and runs until it is answered (at most `patience`).
    pub fn request(&mut self, id: u32, op: Op, patience: Duration) -> OpResult {
        let request = self.submit(id, op);
        let end = self.now + patience;
        while self.now < end {
            self.run_for(Duration::from_millis(5));
            if let Some(result) = self.take_reply(id, request) {
                return result;
            }
        }
        panic!(
            "request {} to node {id} unanswered after {patience:?}",
            request.0
        );
    }

    /// Writes `value` to `key` through node `id`; the write must succeed within 5 s.
    pub fn write(&mut self, id: u32, key: &str, value: &str) {
        let op = Op::Write {
            key: Key::from(key.to_string()),
            value: Value::from(value.to_string()),
        };
        let result = self.request(id, op, Duration::from_secs(5));
        assert!(matches!(result, Ok(Outcome::Written { .. })), "{result:?}");
    }

    /// Reads `key` through node `id`; the read must succeed within 10 s.
    pub fn read(&mut self, id: u32, key: &str) -> Option<Value> {
        let op = Op::Read {
            key: Key::from(key.to_string()),
        };
        match self.request(id, op, Duration::from_secs(10)) {
            Ok(Outcome::Value(value)) => value,
            other => panic!("read of {key} at node {id}: {other:?}"),
        }
    }

    /// The process of node `id` dies: what its disk did not sync is lost, and so is every
    /// message from or to it.
    pub fn crash(&mut self, id: u32) {
        let index = id as usize - 1;
        self.processes[index] = None;
        self.disks[index].queued.clear();
        self.network
            .retain(|(from, to, _)| from.0 != id && to.0 != id);
    }
}

/// The value made of the bytes of `s`.
pub fn value(s: &str) -> Option<Value> {
    Some(Value::from(s.to_string()))
}
