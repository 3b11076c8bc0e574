//! Batched, coalescing writes to the [`SnapshotStore`]: actors hand over their latest state and wait
//! only for it to be durable, while one background task turns everything queued into one round trip
//! (one Redis `MULTI`/`EXEC` pipeline, one SQLite transaction). Several writes of the same key in a
//! batch collapse into the last one.
//!
//! Writes are never dropped: a failed batch is kept, merged with what arrives meanwhile and retried
//! until the store answers again; waiters learn about it only through [`SnapshotWriter::health`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::health::BackendHealth;
use super::outstanding::Outstanding;
use super::SnapshotStore;

/// Writes waiting before senders wait (backpressure).
const QUEUE_CAPACITY: usize = 16_384;
/// Most writes taken from the queue per batch.
const BATCH_MAX: usize = 4_096;
/// Pause before retrying a failed batch.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Resolves once the write is durable.
pub type Persisted = oneshot::Receiver<()>;

struct Write {
    key: String,
    value: Option<Vec<u8>>,
    done: oneshot::Sender<()>,
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

    /// Waits until the write is stored (or the writer has stopped).
    pub async fn durable(self) {
        let persisted = match self {
            Queued::InQueue(persisted) => persisted,
            Queued::WaitingForRoom { writer, key, value } => writer.queue(key, value).await,
        };
        let _ = persisted.await;
    }
}

/// A handle to the background writer; cheap to clone.
#[derive(Clone)]
pub struct SnapshotWriter {
    sender: mpsc::Sender<Write>,
    health: BackendHealth,
    outstanding: Outstanding,
}

impl SnapshotWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn start(store: Arc<dyn SnapshotStore>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let health = BackendHealth::default();
        let outstanding = Outstanding::default();
        tokio::spawn(write_batches(store, receiver, health.clone(), outstanding.clone()));
        Self { sender, health, outstanding }
    }

    /// Writes queued and not yet durable.
    pub fn outstanding(&self) -> &Outstanding {
        &self.outstanding
    }

    /// Queues the deletion of `key`; the receiver resolves when it is gone.
    pub async fn delete(&self, key: String) -> Persisted {
        self.queue(key, None).await
    }

    /// Queues a write (`None` deletes) at once when the queue has room. Callers that must keep their
    /// writes in order call this from synchronous code, where nothing can overtake; a full queue hands
    /// the write back as [`Queued::WaitingForRoom`] (dropping that queues nothing).
    pub fn queue_in_order(&self, key: String, value: Option<Vec<u8>>) -> Queued {
        let (done, persisted) = oneshot::channel();
        self.outstanding.add(1);
        match self.sender.try_send(Write { key, value, done }) {
            Ok(()) => Queued::InQueue(persisted),
            Err(mpsc::error::TrySendError::Full(write)) => {
                self.outstanding.done(1);
                Queued::WaitingForRoom { writer: self.clone(), key: write.key, value: write.value }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.outstanding.done(1);
                tracing::error!("snapshot writer has stopped");
                Queued::InQueue(persisted)
            }
        }
    }

    async fn queue(&self, key: String, value: Option<Vec<u8>>) -> Persisted {
        let (done, persisted) = oneshot::channel();
        let write = Write { key, value, done };
        self.outstanding.add(1);
        if self.sender.send(write).await.is_err() {
            self.outstanding.done(1);
            tracing::error!("snapshot writer has stopped");
        }
        persisted
    }

    pub fn health(&self) -> &BackendHealth {
        &self.health
    }
}

async fn write_batches(
    store: Arc<dyn SnapshotStore>,
    mut receiver: mpsc::Receiver<Write>,
    health: BackendHealth,
    outstanding: Outstanding,
) {
    let mut incoming = Vec::with_capacity(BATCH_MAX);
    let mut pending: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while receiver.recv_many(&mut incoming, BATCH_MAX).await > 0 {
        absorb(&mut incoming, &mut pending, &mut waiting);
        loop {
            let writes: Vec<(String, Option<Vec<u8>>)> =
                pending.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
            let count = writes.len();
            let started = std::time::Instant::now();
            match store.write_batch(writes).await {
                Ok(()) => {
                    metrics::histogram!("keelson_snapshot_batch_seconds").record(started.elapsed().as_secs_f64());
                    health.report_success();
                    metrics::counter!("keelson_snapshot_writes_total").increment(count as u64);
                    metrics::counter!("keelson_snapshot_batches_total").increment(1);
                    pending.clear();
                    outstanding.done(waiting.len());
                    waiting.drain(..).for_each(|done| {
                        let _ = done.send(());
                    });
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
                    absorb(&mut incoming, &mut pending, &mut waiting);
                }
            }
        }
    }
}

fn absorb(
    incoming: &mut Vec<Write>,
    pending: &mut HashMap<String, Option<Vec<u8>>>,
    waiting: &mut Vec<oneshot::Sender<()>>,
) {
    for write in incoming.drain(..) {
        pending.insert(write.key, write.value);
        waiting.push(write.done);
    }
}
