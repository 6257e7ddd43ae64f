//! An in-process transport with the same semantics as the QUIC one, for tests and benches.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hermes_core::NodeId;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::{Inbox, NetError, PeerBatch, QuicOptions, Transport};

/// Limits of a [`MemNetwork`]; the same meaning and defaults as the matching fields of
/// [`QuicOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemConfig {
    /// Capacity of each sender→receiver queue, in messages.
    pub queue_len_max: usize,
    /// Most messages delivered in one [`PeerBatch`]; 1 turns batching off.
    pub batch_messages_max: usize,
    /// Capacity of each endpoint's [`Inbox`], in batches.
    pub inbox_batches_max: usize,
}

impl Default for MemConfig {
    fn default() -> Self {
        MemConfig {
            queue_len_max: QuicOptions::QUEUE_LEN_MAX_DEFAULT,
            batch_messages_max: QuicOptions::BATCH_MESSAGES_MAX_DEFAULT,
            inbox_batches_max: QuicOptions::INBOX_BATCHES_MAX_DEFAULT,
        }
    }
}

/// A hub connecting in-process endpoints.
///
/// Each sender→receiver pair gets a bounded queue and a pump task that moves everything queued
/// into the receiver's [`Inbox`] as one batch (up to `batch_messages_max`). A receiver that stops
/// draining its inbox makes the pump wait, the queue fill, and [`Transport::send`] return
/// [`NetError::QueueFull`] — as over QUIC. Links can be cut to simulate partitions.
///
/// Clones share the same hub.
pub struct MemNetwork<M> {
    hub: Arc<Hub<M>>,
}

impl<M> Clone for MemNetwork<M> {
    fn clone(&self) -> Self {
        MemNetwork {
            hub: Arc::clone(&self.hub),
        }
    }
}

struct Hub<M> {
    config: MemConfig,
    inboxes: Mutex<HashMap<NodeId, mpsc::Sender<PeerBatch<M>>>>,
    cut: Mutex<HashSet<(NodeId, NodeId)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<M: Send + 'static> MemNetwork<M> {
    /// A new, empty network.
    ///
    /// # Errors
    /// [`NetError::Config`] if a limit is zero.
    pub fn new(config: MemConfig) -> Result<Self, NetError> {
        if config.queue_len_max == 0
            || config.batch_messages_max == 0
            || config.inbox_batches_max == 0
        {
            return Err(NetError::Config(
                "MemConfig limits must be at least 1".into(),
            ));
        }
        Ok(MemNetwork {
            hub: Arc::new(Hub {
                config,
                inboxes: Mutex::new(HashMap::new()),
                cut: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Creates the endpoint `id`, replacing an earlier endpoint of that id (a restart: the old
    /// inbox receives nothing more).
    ///
    /// Must be called within a Tokio runtime, which runs the pump tasks.
    ///
    /// # Errors
    /// [`NetError::Config`] outside a Tokio runtime.
    pub fn endpoint(&self, id: NodeId) -> Result<(MemTransport<M>, Inbox<M>), NetError> {
        let runtime = Handle::try_current()
            .map_err(|_| NetError::Config("MemNetwork::endpoint needs a Tokio runtime".into()))?;
        let (tx, rx) = mpsc::channel(self.hub.config.inbox_batches_max);
        lock(&self.hub.inboxes).insert(id, tx);
        let transport = MemTransport {
            id,
            hub: Arc::clone(&self.hub),
            runtime,
            queues: Mutex::new(HashMap::new()),
        };
        Ok((transport, rx))
    }

    /// Cuts (`up == false`) or restores the link `from → to`. Messages sent over a cut link are
    /// dropped silently, like packets on a partitioned network.
    pub fn set_link(&self, from: NodeId, to: NodeId, up: bool) {
        let mut cut = lock(&self.hub.cut);
        if up {
            cut.remove(&(from, to));
        } else {
            cut.insert((from, to));
        }
    }

    /// Cuts or restores both directions between `a` and `b`.
    pub fn set_links(&self, a: NodeId, b: NodeId, up: bool) {
        self.set_link(a, b, up);
        self.set_link(b, a, up);
    }
}

/// One endpoint of a [`MemNetwork`].
pub struct MemTransport<M> {
    id: NodeId,
    hub: Arc<Hub<M>>,
    runtime: Handle,
    queues: Mutex<HashMap<NodeId, mpsc::Sender<M>>>,
}

impl<M: Send + 'static> Transport<M> for MemTransport<M> {
    fn local_id(&self) -> NodeId {
        self.id
    }

    fn send(&self, to: NodeId, msg: M) -> Result<(), NetError> {
        if lock(&self.hub.cut).contains(&(self.id, to)) {
            return Ok(());
        }
        let mut queues = lock(&self.queues);
        let queue = match queues.get(&to) {
            Some(queue) => queue,
            None => {
                if !lock(&self.hub.inboxes).contains_key(&to) {
                    return Err(NetError::UnknownPeer { peer: to });
                }
                let (tx, rx) = mpsc::channel(self.hub.config.queue_len_max);
                self.runtime
                    .spawn(pump(self.id, to, rx, Arc::clone(&self.hub)));
                queues.entry(to).or_insert(tx)
            }
        };
        queue.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NetError::QueueFull { peer: to },
            mpsc::error::TrySendError::Closed(_) => NetError::Closed,
        })
    }
}

/// Moves messages from one sender→receiver queue into the receiver's inbox, in batches.
async fn pump<M: Send + 'static>(
    from: NodeId,
    to: NodeId,
    mut queue: mpsc::Receiver<M>,
    hub: Arc<Hub<M>>,
) {
    let batch_max = hub.config.batch_messages_max;
    while let Some(first) = queue.recv().await {
        let mut messages = Vec::with_capacity(batch_max.min(queue.len() + 1));
        messages.push(first);
        while messages.len() < batch_max {
            match queue.try_recv() {
                Ok(msg) => messages.push(msg),
                Err(_) => break,
            }
        }
        if lock(&hub.cut).contains(&(from, to)) {
            continue;
        }
        let inbox = lock(&hub.inboxes).get(&to).cloned();
        if let Some(inbox) = inbox {
            // A closed inbox (receiver gone) drops the batch, like a crashed node.
            let _ = inbox.send(PeerBatch { from, messages }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn net(queue: usize, batch: usize, inbox: usize) -> MemNetwork<u32> {
        MemNetwork::new(MemConfig {
            queue_len_max: queue,
            batch_messages_max: batch,
            inbox_batches_max: inbox,
        })
        .unwrap()
    }

    async fn recv_n(inbox: &mut Inbox<u32>, n: usize) -> Vec<(NodeId, u32)> {
        let mut got = Vec::new();
        while got.len() < n {
            let batch = tokio::time::timeout(Duration::from_secs(5), inbox.recv())
                .await
                .expect("timed out")
                .expect("inbox closed");
            got.extend(batch.messages.into_iter().map(|m| (batch.from, m)));
        }
        got
    }

    #[tokio::test]
    async fn round_trip_in_order_and_batched() {
        let net = net(1000, 64, 16);
        let (a, mut a_in) = net.endpoint(NodeId(1)).unwrap();
        let (b, mut b_in) = net.endpoint(NodeId(2)).unwrap();
        for i in 0..500 {
            a.send(NodeId(2), i).unwrap();
        }
        b.send(NodeId(1), 7).unwrap();
        let got = recv_n(&mut b_in, 500).await;
        assert_eq!(got, (0..500).map(|i| (NodeId(1), i)).collect::<Vec<_>>());
        assert_eq!(recv_n(&mut a_in, 1).await, vec![(NodeId(2), 7)]);
    }

    #[tokio::test]
    async fn batches_respect_the_maximum() {
        let net = net(1000, 10, 100);
        let (a, _a_in) = net.endpoint(NodeId(1)).unwrap();
        let (_b, mut b_in) = net.endpoint(NodeId(2)).unwrap();
        for i in 0..95 {
            a.send(NodeId(2), i).unwrap();
        }
        let mut total = 0;
        while total < 95 {
            let batch = b_in.recv().await.unwrap();
            assert!(!batch.messages.is_empty() && batch.messages.len() <= 10);
            total += batch.messages.len();
        }
    }

    #[tokio::test]
    async fn unknown_peer_is_an_error() {
        let net = net(10, 10, 10);
        let (a, _a_in) = net.endpoint(NodeId(1)).unwrap();
        assert!(matches!(
            a.send(NodeId(9), 1),
            Err(NetError::UnknownPeer { peer: NodeId(9) })
        ));
    }

    #[tokio::test]
    async fn a_receiver_that_stops_reading_fills_the_queue_only_to_it() {
        let net = net(8, 4, 1);
        let (a, _a_in) = net.endpoint(NodeId(1)).unwrap();
        let (_b, mut b_in) = net.endpoint(NodeId(2)).unwrap();
        let (_c, mut c_in) = net.endpoint(NodeId(3)).unwrap();
        let mut accepted = 0u32;
        let full = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match a.send(NodeId(2), accepted) {
                    Ok(()) => accepted += 1,
                    Err(e) => break e,
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert!(matches!(full, NetError::QueueFull { peer: NodeId(2) }));
        a.send(NodeId(3), 99).unwrap();
        assert_eq!(recv_n(&mut c_in, 1).await, vec![(NodeId(1), 99)]);
        let got = recv_n(&mut b_in, accepted as usize).await;
        assert_eq!(
            got,
            (0..accepted).map(|i| (NodeId(1), i)).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn cut_links_drop_messages_until_restored() {
        let net = net(100, 10, 10);
        let (a, _a_in) = net.endpoint(NodeId(1)).unwrap();
        let (_b, mut b_in) = net.endpoint(NodeId(2)).unwrap();
        net.set_links(NodeId(1), NodeId(2), false);
        a.send(NodeId(2), 1).unwrap();
        net.set_links(NodeId(1), NodeId(2), true);
        a.send(NodeId(2), 2).unwrap();
        assert_eq!(recv_n(&mut b_in, 1).await, vec![(NodeId(1), 2)]);
    }
}
