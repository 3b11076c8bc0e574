//! Batched, coalescing writes to the [`SnapshotStore`]: actors hand over their latest state and wait
//! only for it to be durable, while one background task turns everything queued into one round trip
//! (one Redis `MULTI`/`EXEC` pipeline, one SQLite transaction). Several writes of the same key in a
//! batch collapse into the last one.
//!
//! Writes are never dropped: a failed batch is kept, merged with what arrives meanwhile and retried
//! until the store answers again; waiters learn about it only through [`SnapshotWriter::health`].
//!
//! In a cluster, writes of a shard's keys are *fenced*: each carries the epoch under which this
//! instance holds the shard, and the store applies them only while that epoch is current (see
//! [`Fencing`]). A fenced write is refused, not retried: its waiters learn it was not stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::health::BackendHealth;
use super::outstanding::Outstanding;
use super::{FencedGroup, KeyWrite, SnapshotStore};

/// Writes waiting before senders wait (backpressure).
const QUEUE_CAPACITY: usize = 16_384;
/// Most writes taken from the queue per batch.
const BATCH_MAX: usize = 4_096;
/// Pause before retrying a failed batch.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Resolves once the write is durable (`true`) or was refused by the fence (`false`).
pub type Persisted = oneshot::Receiver<bool>;

/// The shard epoch a write must carry; `None` for keys outside every shard.
type Tag = Option<(u32, u64)>;

/// Which writes are fenced, and under which epoch: cluster mode's shard ownership.
pub trait Fencing: Send + Sync + 'static {
    /// The fence a write of `key` passes through.
    fn fence(&self, key: &str) -> Fence;
    /// The store refused writes of `shard` under `epoch`: another instance holds the shard now.
    fn refused(&self, shard: u32, epoch: u64);
}

/// How a key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// Not part of any shard (records shared by the whole cluster).
    Open,
    /// Part of `shard`, held here under `epoch`: stored only while that epoch is current.
    Epoch { shard: u32, epoch: u64 },
    /// Part of a shard this instance does not hold: refused before it is sent.
    NotHeld,
}

struct Write {
    key: String,
    value: Option<Vec<u8>>,
    tag: Tag,
    done: oneshot::Sender<bool>,
}

/// A write handed to [`SnapshotWriter::queue_in_order`].
pub enum Queued {
    InQueue(Persisted),
    /// The queue was full; [`Queued::durable`] queues it, waiting for room.
    WaitingForRoom {
        writer: SnapshotWriter,
        key: String,
        value: Option<Vec<u8>>,
    },
}

impl Queued {
    pub fn is_waiting_for_room(&self) -> bool {
        matches!(self, Queued::WaitingForRoom { .. })
    }

    /// Waits until the write is stored: true then; false when the fence refused it (the shard is no
    /// longer this instance's) or the writer has stopped.
    pub async fn durable(self) -> bool {
        let persisted = match self {
            Queued::InQueue(persisted) => persisted,
            Queued::WaitingForRoom { writer, key, value } => writer.queue(key, value).await,
        };
        persisted.await.unwrap_or(false)
    }
}

/// A handle to the background writer; cheap to clone.
#[derive(Clone)]
pub struct SnapshotWriter {
    sender: mpsc::Sender<Write>,
    shared: Shared,
}

/// What the handles and the background writer both see.
#[derive(Clone, Default)]
struct Shared {
    health: BackendHealth,
    outstanding: Outstanding,
    fencing: Option<Arc<dyn Fencing>>,
    /// Fault injection: the next batch with fenced writes waits this long (ms) before it is sent.
    #[cfg(feature = "fault-injection")]
    hold_next: Arc<std::sync::atomic::AtomicU64>,
}

impl SnapshotWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn start(store: Arc<dyn SnapshotStore>) -> Self {
        Self::start_fenced(store, None)
    }

    /// Starts a writer whose writes of shard keys pass through `fencing` (cluster mode).
    pub fn start_fenced(store: Arc<dyn SnapshotStore>, fencing: Option<Arc<dyn Fencing>>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Shared { fencing, ..Shared::default() };
        tokio::spawn(Batches { store, shared: shared.clone() }.run(receiver));
        Self { sender, shared }
    }

    /// Fault injection: holds the next batch of fenced writes for `millis` after the local lease
    /// check and before it is sent, so that tests can show the store refusing a stale owner's writes.
    #[cfg(feature = "fault-injection")]
    pub fn hold_next_batch(&self, millis: u64) {
        self.shared.hold_next.store(millis, std::sync::atomic::Ordering::Release);
    }

    /// The epoch `key` is written under; `Err` (with a resolved receiver) when this instance does not
    /// hold its shard.
    fn tag(&self, key: &str) -> Result<Tag, Persisted> {
        match self.shared.fencing.as_ref().map_or(Fence::Open, |fencing| fencing.fence(key)) {
            Fence::Open => Ok(None),
            Fence::Epoch { shard, epoch } => Ok(Some((shard, epoch))),
            Fence::NotHeld => {
                metrics::counter!("keelson_fenced_writes_total", "side" => "local").increment(1);
                let (done, persisted) = oneshot::channel();
                let _ = done.send(false);
                Err(persisted)
            }
        }
    }

    /// Whether writes pass through a fence (cluster mode).
    pub fn is_fenced(&self) -> bool {
        self.shared.fencing.is_some()
    }

    /// Whether this instance may still act on `key`'s shard (always, outside a cluster): checked before
    /// publishing what a durable write allowed, since the lease may have run out meanwhile.
    pub fn holds(&self, key: &str) -> bool {
        self.shared.fencing.as_ref().is_none_or(|fencing| fencing.fence(key) != Fence::NotHeld)
    }

    /// Writes queued and not yet durable.
    pub fn outstanding(&self) -> &Outstanding {
        &self.shared.outstanding
    }

    /// Queues the deletion of `key`; the receiver resolves when it is gone.
    pub async fn delete(&self, key: String) -> Persisted {
        self.queue(key, None).await
    }

    /// Queues a write (`None` deletes) at once when the queue has room. Callers that must keep their
    /// writes in order call this from synchronous code, where nothing can overtake; a full queue hands
    /// the write back as [`Queued::WaitingForRoom`] (dropping that queues nothing).
    pub fn queue_in_order(&self, key: String, value: Option<Vec<u8>>) -> Queued {
        let tag = match self.tag(&key) {
            Ok(tag) => tag,
            Err(refused) => return Queued::InQueue(refused),
        };
        let (done, persisted) = oneshot::channel();
        self.shared.outstanding.add(1);
        match self.sender.try_send(Write { key, value, tag, done }) {
            Ok(()) => Queued::InQueue(persisted),
            Err(mpsc::error::TrySendError::Full(write)) => {
                self.shared.outstanding.done(1);
                Queued::WaitingForRoom { writer: self.clone(), key: write.key, value: write.value }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.outstanding.done(1);
                tracing::error!("snapshot writer has stopped");
                Queued::InQueue(persisted)
            }
        }
    }

    async fn queue(&self, key: String, value: Option<Vec<u8>>) -> Persisted {
        let tag = match self.tag(&key) {
            Ok(tag) => tag,
            Err(refused) => return refused,
        };
        let (done, persisted) = oneshot::channel();
        let write = Write { key, value, tag, done };
        self.shared.outstanding.add(1);
        if self.sender.send(write).await.is_err() {
            self.shared.outstanding.done(1);
            tracing::error!("snapshot writer has stopped");
        }
        persisted
    }

    pub fn health(&self) -> &BackendHealth {
        &self.shared.health
    }
}

/// The background writer.
struct Batches {
    store: Arc<dyn SnapshotStore>,
    shared: Shared,
}

impl Batches {
    async fn run(self, mut receiver: mpsc::Receiver<Write>) {
        let Batches { store, shared } = &self;
        let Shared { health, outstanding, fencing, .. } = shared;
        let mut incoming = Vec::with_capacity(BATCH_MAX);
        let mut pending = Pending::default();
        while receiver.recv_many(&mut incoming, BATCH_MAX).await > 0 {
            pending.absorb(&mut incoming);
            loop {
                let (open, groups) = pending.batch();
                let count = open.len() + groups.iter().map(|group| group.writes.len()).sum::<usize>();
                #[cfg(feature = "fault-injection")]
                {
                    let hold = shared.hold_next.swap(0, std::sync::atomic::Ordering::AcqRel);
                    if hold > 0 && !groups.is_empty() {
                        tokio::time::sleep(Duration::from_millis(hold)).await;
                    }
                }
                let started = std::time::Instant::now();
                let outcome = if groups.is_empty() {
                    store.write_batch(open).await.map(|()| Vec::new())
                } else {
                    store.write_fenced(open, groups).await
                };
                match outcome {
                    Ok(refused) => {
                        metrics::histogram!("keelson_snapshot_batch_seconds").record(started.elapsed().as_secs_f64());
                        health.report_success();
                        metrics::counter!("keelson_snapshot_writes_total").increment(count as u64);
                        metrics::counter!("keelson_snapshot_batches_total").increment(1);
                        for &(shard, epoch) in &refused {
                            metrics::counter!("keelson_fenced_writes_total", "side" => "redis").increment(1);
                            tracing::warn!(shard, epoch, "writes refused: another instance holds the shard now");
                            if let Some(fencing) = &fencing {
                                fencing.refused(shard, epoch);
                            }
                        }
                        outstanding.done(pending.waiting.len());
                        pending.finish(&refused);
                        break;
                    }
                    Err(error) => {
                        health.report_failure(&error);
                        metrics::counter!("keelson_snapshot_write_failures_total").increment(1);
                        tracing::warn!(%error, writes = count, "snapshot write failed; keeping the writes and retrying");
                        tokio::time::sleep(RETRY_DELAY).await;
                        // Newer states of the same keys replace the failed ones: the retry writes only the latest.
                        while let Ok(write) = receiver.try_recv() {
                            incoming.push(write);
                            if incoming.len() >= BATCH_MAX {
                                break;
                            }
                        }
                        pending.absorb(&mut incoming);
                    }
                }
            }
        }
    }
}

/// The writes of the batch being stored, the last value per key, and who waits for them.
#[derive(Default)]
struct Pending {
    writes: HashMap<String, (Option<Vec<u8>>, Tag)>,
    waiting: Vec<(Tag, oneshot::Sender<bool>)>,
}

impl Pending {
    fn absorb(&mut self, incoming: &mut Vec<Write>) {
        for write in incoming.drain(..) {
            self.writes.insert(write.key, (write.value, write.tag));
            self.waiting.push((write.tag, write.done));
        }
    }

    /// The open writes, and the fenced ones grouped by shard and epoch.
    fn batch(&self) -> (Vec<KeyWrite>, Vec<FencedGroup>) {
        let mut open = Vec::new();
        let mut groups: HashMap<(u32, u64), Vec<KeyWrite>> = HashMap::new();
        for (key, (value, tag)) in &self.writes {
            let write = (key.clone(), value.clone());
            match tag {
                None => open.push(write),
                Some(tag) => groups.entry(*tag).or_default().push(write),
            }
        }
        let groups = groups.into_iter().map(|((shard, epoch), writes)| FencedGroup { shard, epoch, writes }).collect();
        (open, groups)
    }

    /// Tells every waiter whether its write was stored: all were, except those of `refused` groups.
    fn finish(&mut self, refused: &[(u32, u64)]) {
        self.writes.clear();
        for (tag, done) in self.waiting.drain(..) {
            let stored = tag.is_none_or(|tag| !refused.contains(&tag));
            let _ = done.send(stored);
        }
    }
}
