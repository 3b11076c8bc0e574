//! Batched writes to the event history, so that busy sequences do not pay one database round trip (or
//! one fsync) per event.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::EventStore;
use crate::model::event::CloudEvent;

/// Events waiting to be written before senders wait (backpressure).
const QUEUE_CAPACITY: usize = 32_768;
/// Most events written in one batch.
const BATCH_MAX: usize = 16_384;
/// Pause before retrying a failed batch.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// A handle to the background writer; cheap to clone.
#[derive(Clone)]
pub struct HistoryWriter {
    sender: mpsc::Sender<Arc<CloudEvent>>,
}

impl HistoryWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn start(store: Arc<dyn EventStore>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_batches(store, receiver));
        Self { sender }
    }

    /// Queues `event` for writing; waits only when the queue is full.
    pub async fn record(&self, event: Arc<CloudEvent>) {
        if self.sender.send(event).await.is_err() {
            tracing::error!("event history writer has stopped");
        }
    }
}

async fn write_batches(store: Arc<dyn EventStore>, mut receiver: mpsc::Receiver<Arc<CloudEvent>>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while receiver.recv_many(&mut batch, BATCH_MAX).await > 0 {
        loop {
            match store.insert_many(&batch).await {
                Ok(()) => break,
                Err(error) => {
                    // Kept and retried: the history must not lose events while a backend restarts.
                    metrics::counter!("keelson_history_write_failures_total").increment(1);
                    tracing::warn!(%error, events = batch.len(), "event history write failed; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
        batch.clear();
    }
}
