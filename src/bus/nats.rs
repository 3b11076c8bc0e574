//! NATS backend of [`Bus`](super::Bus).

use std::time::Duration;

use async_trait::async_trait;

use super::Error;
use crate::model::event::CloudEvent;

/// How long to wait for the server when connecting at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
}

impl NatsBus {
    /// Connects to `url`; fails if the server does not answer within a few seconds.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let client = async_nats::ConnectOptions::new()
            .name("keelson")
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(Self { client })
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Every event on `sh.keptn.>`.
    pub async fn subscribe_all(&self) -> Result<async_nats::Subscriber, Error> {
        self.client.subscribe("sh.keptn.>").await.map_err(|e| Error::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl super::Bus for NatsBus {
    async fn publish(&self, event: &CloudEvent) -> Result<(), Error> {
        let payload = serde_json::to_vec(event).map_err(|e| Error::Unavailable(e.to_string()))?;
        self.client
            .publish(event.event_type.clone(), payload.into())
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))
    }
}
