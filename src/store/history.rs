//! Batched writes to the event history, so that busy sequences do not pay one database round trip (or
//! one fsync) per event.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::health::BackendHealth;
use super::outstanding::Outstanding;
use super::EventStore;
use crate::model::event::CloudEvent;

/// Events waiting to be written before senders wait (backpressure).
const QUEUE_CAPACITY: usize = 32_768;
/// Most events written in one batch.
const BATCH_MAX: usize = 16_384;
/// Pause before retrying a failed batch.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Resolves once the event (and every event the same sender queued before it) is stored.
pub type Stored = oneshot::Receiver<()>;

struct Entry {
    event: Arc<CloudEvent>,
    stored: Option<oneshot::Sender<()>>,
    /// Someone cannot go on until the event is stored (a sequence's first step waits for its trigger).
    awaited: bool,
}

/// A handle to the background writer; cheap to clone.
#[derive(Clone)]
pub struct HistoryWriter {
    sender: mpsc::Sender<Entry>,
    health: BackendHealth,
    outstanding: Outstanding,
}

impl HistoryWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn start(store: Arc<dyn EventStore>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let health = BackendHealth::default();
        let outstanding = Outstanding::default();
        tokio::spawn(write_batches(store, receiver, health.clone(), outstanding.clone()));
        Self { sender, health, outstanding }
    }

    /// Events queued and not yet stored.
    pub fn outstanding(&self) -> &Outstanding {
        &self.outstanding
    }

    /// Queues `event` for writing; waits only when the queue is full.
    pub async fn record(&self, event: Arc<CloudEvent>) {
        self.queue(Entry { event, stored: None, awaited: false }).await;
    }

    /// Queues `event`; the receiver resolves once it is stored. Batches are written in queue order, so
    /// this also confirms every event the caller queued before.
    pub async fn record_confirmed(&self, event: Arc<CloudEvent>) -> Stored {
        self.confirmed(event, false).await
    }

    /// Like [`HistoryWriter::record_confirmed`], for an event whose confirmation holds something up:
    /// its batch is written at normal priority.
    pub async fn record_awaited(&self, event: Arc<CloudEvent>) -> Stored {
        self.confirmed(event, true).await
    }

    async fn confirmed(&self, event: Arc<CloudEvent>, awaited: bool) -> Stored {
        let (stored, receiver) = oneshot::channel();
        self.queue(Entry { event, stored: Some(stored), awaited }).await;
        receiver
    }

    async fn queue(&self, entry: Entry) {
        self.outstanding.add(1);
        if self.sender.send(entry).await.is_err() {
            self.outstanding.done(1);
            tracing::error!("event history writer has stopped");
        }
    }

    pub fn health(&self) -> &BackendHealth {
        &self.health
    }
}

async fn write_batches(
    store: Arc<dyn EventStore>,
    mut receiver: mpsc::Receiver<Entry>,
    health: BackendHealth,
    outstanding: Outstanding,
) {
    let mut entries = Vec::with_capacity(BATCH_MAX);
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while receiver.recv_many(&mut entries, BATCH_MAX).await > 0 {
        batch.extend(entries.iter().map(|entry| Arc::clone(&entry.event)));
        let awaited = entries.iter().any(|entry| entry.awaited);
        loop {
            let started = std::time::Instant::now();
            let written =
                if awaited { store.insert_many(&batch).await } else { store.insert_many_in_background(&batch).await };
            match written {
                Ok(()) => {
                    metrics::histogram!("keelson_history_batch_seconds").record(started.elapsed().as_secs_f64());
                    metrics::counter!("keelson_history_events_stored_total").increment(batch.len() as u64);
                    health.report_success();
                    break;
                }
                Err(error) => {
                    // Kept and retried: the history must not lose events while a backend restarts.
                    health.report_failure(&error);
                    metrics::counter!("keelson_history_write_failures_total").increment(1);
                    tracing::warn!(%error, events = batch.len(), "event history write failed; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
        batch.clear();
        outstanding.done(entries.len());
        for entry in entries.drain(..) {
            if let Some(stored) = entry.stored {
                let _ = stored.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventQuery, Result};
    use std::sync::Mutex;

    /// Records which way each batch was written.
    #[derive(Default)]
    struct Recording {
        batches: Mutex<Vec<(&'static str, usize)>>,
    }

    #[async_trait::async_trait]
    impl EventStore for Recording {
        async fn insert(&self, _event: &CloudEvent) -> Result<bool> {
            Ok(true)
        }
        async fn insert_many(&self, events: &[Arc<CloudEvent>]) -> Result<()> {
            self.batches.lock().unwrap().push(("awaited", events.len()));
            Ok(())
        }
        async fn insert_many_in_background(&self, events: &[Arc<CloudEvent>]) -> Result<()> {
            self.batches.lock().unwrap().push(("background", events.len()));
            Ok(())
        }
        async fn find(&self, _query: &EventQuery) -> Result<Vec<CloudEvent>> {
            Ok(Vec::new())
        }
        async fn count(&self, _query: &EventQuery) -> Result<u64> {
            Ok(0)
        }
    }

    fn event(id: &str) -> Arc<CloudEvent> {
        Arc::new(CloudEvent::emitted(
            "sh.keptn.event.x.triggered",
            id.into(),
            "c".into(),
            chrono::Utc::now(),
            serde_json::json!({}),
        ))
    }

    #[tokio::test]
    async fn batches_someone_waits_for_are_written_at_normal_priority() {
        let store = Arc::new(Recording::default());
        let writer = HistoryWriter::start(Arc::clone(&store) as Arc<dyn EventStore>);
        writer.record_confirmed(event("bookkeeping")).await.await.unwrap();
        writer.record_awaited(event("trigger")).await.await.unwrap();
        writer.record(event("plain")).await;
        writer.record_confirmed(event("last")).await.await.unwrap();
        let batches = store.batches.lock().unwrap().clone();
        let ways: Vec<&str> = batches.iter().map(|(way, _)| *way).collect();
        assert_eq!(ways.first(), Some(&"background"));
        assert_eq!(ways.get(1), Some(&"awaited"), "{batches:?}");
        assert_eq!(ways.last(), Some(&"background"), "{batches:?}");
        assert_eq!(batches.iter().map(|(_, count)| count).sum::<usize>(), 4);
    }
}
