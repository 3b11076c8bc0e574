//! The event bus: how CloudEvents leave (and, later, enter) the control plane.
//!
//! [`InProcessBus`] is the embedded default; [`nats::NatsBus`] publishes to a NATS server on the subject
//! equal to the event type, as Keptn services expect.

pub mod nats;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;
use tokio::sync::broadcast;

use crate::model::event::CloudEvent;

#[derive(Debug, Error)]
pub enum Error {
    /// The bus could not take the event; it was not sent.
    #[error("event bus is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends `event` on the subject equal to its type.
    async fn publish(&self, event: &CloudEvent) -> Result<(), Error>;
}

/// How many events an in-process subscriber may fall behind before it starts missing some. Large enough
/// for bursts of a busy control plane; a subscriber that lags further is told how many it missed.
const IN_PROCESS_CAPACITY: usize = 4096;

/// A bus inside the process, for a Keelson running without a NATS server.
#[derive(Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<Arc<CloudEvent>>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(IN_PROCESS_CAPACITY);
        Self { sender }
    }
}

impl InProcessBus {
    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CloudEvent>> {
        self.sender.subscribe()
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, event: &CloudEvent) -> Result<(), Error> {
        // Having no subscriber is fine: nobody is listening for this event type.
        let _ = self.sender.send(Arc::new(event.clone()));
        Ok(())
    }
}

/// Stores an emitted event in the history, then publishes it.
///
/// Storing first means the history never misses an event that subscribers saw.
#[derive(Clone)]
pub struct EventEmitter {
    bus: Arc<dyn Bus>,
    history: Arc<dyn crate::store::EventStore>,
}

impl EventEmitter {
    pub fn new(bus: Arc<dyn Bus>, history: Arc<dyn crate::store::EventStore>) -> Self {
        Self { bus, history }
    }

    /// Emits `event`; a failure is logged and counted, never returned, because the change the event
    /// reports has already happened.
    pub async fn emit(&self, event: CloudEvent) {
        if let Err(error) = self.history.insert(&event).await {
            metrics::counter!("keelson_event_emit_failures_total", "stage" => "store").increment(1);
            tracing::warn!(event_type = %event.event_type, event_id = %event.id, %error, "could not store emitted event");
        }
        if let Err(error) = self.bus.publish(&event).await {
            metrics::counter!("keelson_event_emit_failures_total", "stage" => "publish").increment(1);
            tracing::warn!(event_type = %event.event_type, event_id = %event.id, %error, "could not publish emitted event");
        }
    }
}
