//! The one way events leave the control plane: recorded in the history, then published on the bus.
//!
//! Two modes behind one type. [`Emitter::emit`] waits until the history holds the event before
//! publishing it (lifecycle events of projects and services, which are few). [`Emitter::emit_batch`]
//! queues a sequence step's events for the batching history writer and publishes them at once; the
//! caller learns when the history holds them and keeps them in its outbox until then, so a crash
//! republishes them with the same ids. Either way no subscriber sees an event the history could miss.

use std::sync::Arc;

use crate::bus::{self, Bus};
use crate::model::event::CloudEvent;
use crate::store::history::{HistoryWriter, Stored};

/// How long [`Emitter::emit`] waits for the history before publishing anyway.
pub const DURABLE_EMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct Emitter {
    bus: Arc<dyn Bus>,
    history: HistoryWriter,
}

impl Emitter {
    pub fn new(bus: Arc<dyn Bus>, history: HistoryWriter) -> Self {
        Self { bus, history }
    }

    /// Stores `event` in the history, then publishes it. A failure is logged and counted, never
    /// returned: the change the event reports has already happened. While the history is down the
    /// event stays queued for it (the writer retries) and is published after [`DURABLE_EMIT_WAIT`], so
    /// a project operation does not hang on the history.
    pub async fn emit(&self, event: CloudEvent) {
        let event = Arc::new(event);
        let stored = self.history.record_confirmed(Arc::clone(&event)).await;
        match tokio::time::timeout(DURABLE_EMIT_WAIT, stored).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                metrics::counter!("keelson_event_emit_failures_total", "stage" => "store").increment(1);
                tracing::warn!(event_type = %event.event_type, event_id = %event.id, "emitted event not yet stored; published anyway, stored once the history answers");
            }
        }
        self.publish(&event).await;
    }

    /// Queues `events` for the history and publishes them on the bus, in order; the receiver resolves
    /// once the history holds all of them (`None` for no events).
    pub async fn emit_batch(&self, events: &[Arc<CloudEvent>]) -> Option<Stored> {
        let (last, rest) = events.split_last()?;
        for event in rest {
            self.history.record(Arc::clone(event)).await;
        }
        let stored = self.history.record_confirmed(Arc::clone(last)).await;
        for event in events {
            self.publish(event).await;
        }
        Some(stored)
    }

    /// Passes an incoming event the control plane has already recorded and applied on to the bus's
    /// other subscribers; the control plane's own consumer skips it.
    pub async fn forward(&self, event: &Arc<CloudEvent>) -> Result<(), bus::Error> {
        self.bus.publish_routed(event).await
    }

    /// Why the bus cannot take events now, if it cannot.
    pub fn bus_problem(&self) -> Option<String> {
        self.bus.problem()
    }

    async fn publish(&self, event: &Arc<CloudEvent>) {
        if let Err(error) = self.bus.publish_shared(event).await {
            metrics::counter!("keelson_event_emit_failures_total", "stage" => "publish").increment(1);
            tracing::warn!(event_type = %event.event_type, event_id = %event.id, %error, "could not publish event");
        }
    }
}
