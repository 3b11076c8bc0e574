//! The event bus: how CloudEvents leave and enter the control plane.
//!
//! [`InProcessBus`] is the embedded default; [`nats::NatsBus`] publishes to a NATS server on the subject
//! equal to the event type, as Keptn services expect.

pub mod nats;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use crate::model::event::CloudEvent;

#[derive(Debug, Error)]
pub enum Error {
    /// The bus could not take the event; it was not sent.
    #[error("event bus is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends `event` on the subject equal to its type.
    async fn publish(&self, event: &CloudEvent) -> Result<(), Error>;

    /// Like [`Bus::publish`], for an event already shared (saves a copy on the in-process bus).
    async fn publish_shared(&self, event: &Arc<CloudEvent>) -> Result<(), Error> {
        self.publish(event).await
    }

    /// Publishes an event the control plane has already recorded and applied (it arrived over HTTP), for
    /// the other subscribers: the control plane's own consumer does not take it in a second time.
    async fn publish_routed(&self, event: &Arc<CloudEvent>) -> Result<(), Error>;

    /// Why the bus cannot take events now, if it cannot (checked before accepting work).
    fn problem(&self) -> Option<String> {
        None
    }
}

/// How many events an in-process subscriber may have unread before publishers wait for it. Large enough
/// to absorb bursts; a subscriber that falls further behind slows publishers down instead of losing
/// events.
pub const IN_PROCESS_CAPACITY: usize = 16_384;

type Filter = Box<dyn Fn(&CloudEvent) -> bool + Send + Sync>;

struct Subscriber {
    sender: tokio::sync::mpsc::Sender<Arc<CloudEvent>>,
    filter: Option<Filter>,
    /// Whether it receives events published with [`Bus::publish_routed`] (all but the control plane).
    takes_routed: bool,
}

/// A bus inside the process, for a Keelson running without a NATS server. Every subscriber gets every
/// event it accepts, in publish order; nothing is dropped.
#[derive(Clone, Default)]
pub struct InProcessBus {
    subscribers: Arc<std::sync::RwLock<Vec<Subscriber>>>,
}

impl InProcessBus {
    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> tokio::sync::mpsc::Receiver<Arc<CloudEvent>> {
        self.subscribe_filtered(None)
    }

    /// A receiver of the events `filter` accepts.
    pub fn subscribe_filtered(&self, filter: Option<Filter>) -> tokio::sync::mpsc::Receiver<Arc<CloudEvent>> {
        self.add_subscriber(filter, true)
    }

    /// The control plane's subscription: the events `filter` accepts, except those it routed itself.
    pub fn subscribe_unrouted(&self, filter: Option<Filter>) -> tokio::sync::mpsc::Receiver<Arc<CloudEvent>> {
        self.add_subscriber(filter, false)
    }

    fn add_subscriber(
        &self,
        filter: Option<Filter>,
        takes_routed: bool,
    ) -> tokio::sync::mpsc::Receiver<Arc<CloudEvent>> {
        let (sender, receiver) = tokio::sync::mpsc::channel(IN_PROCESS_CAPACITY);
        self.subscribers.write().expect("subscriber list poisoned").push(Subscriber { sender, filter, takes_routed });
        receiver
    }

    async fn send(&self, event: &Arc<CloudEvent>, routed: bool) {
        // Collect the senders first: the lock is never held across an await.
        let senders: Vec<_> = {
            let mut subscribers = self.subscribers.write().expect("subscriber list poisoned");
            subscribers.retain(|subscriber| !subscriber.sender.is_closed());
            subscribers
                .iter()
                .filter(|subscriber| !routed || subscriber.takes_routed)
                .filter(|subscriber| subscriber.filter.as_ref().is_none_or(|accepts| accepts(event)))
                .map(|subscriber| subscriber.sender.clone())
                .collect()
        };
        for sender in senders {
            // A subscriber that went away in between is simply skipped.
            let _ = sender.send(Arc::clone(event)).await;
        }
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, event: &CloudEvent) -> Result<(), Error> {
        self.publish_shared(&Arc::new(event.clone())).await
    }

    async fn publish_shared(&self, event: &Arc<CloudEvent>) -> Result<(), Error> {
        self.send(event, false).await;
        Ok(())
    }

    async fn publish_routed(&self, event: &Arc<CloudEvent>) -> Result<(), Error> {
        self.send(event, true).await;
        Ok(())
    }
}
