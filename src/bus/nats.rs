//! NATS backend of [`Bus`](super::Bus), and the control plane's durable JetStream consumer.
//!
//! Events are published on the subject equal to their type, as Keptn services expect. The stream
//! [`STREAM`] on `sh.keptn.>` keeps every event until the control plane's durable consumer [`CONSUMER`]
//! acknowledges it, which it does only once the event is in the history and its effect is stored; so an
//! event that arrives while Keelson is down or busy waits in NATS instead of being lost.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, stream::RetentionPolicy};
use async_trait::async_trait;

use super::Error;
use crate::model::event::{CloudEvent, CONTROL_PLANE_SOURCE};

/// How long to wait for the server when connecting at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The JetStream stream holding every Keptn event until the control plane has handled it.
pub const STREAM: &str = "keptn";
/// What the stream keeps: the events the control plane acts on or stores as they come in from others —
/// task `.started`/`.finished`/`.invalidated`/`.configure` (5 tokens), sequence triggers (6 tokens)
/// and logs. Left out are what only the control plane itself emits (task `.triggered`, sequence
/// `.started`/`.finished`, lifecycle events): storing them in the stream would only make NATS deliver
/// them back to be ignored.
pub const STREAM_SUBJECTS: &[&str] = &[
    "sh.keptn.event.*.started",
    "sh.keptn.event.*.finished",
    "sh.keptn.event.*.invalidated",
    "sh.keptn.event.*.configure",
    "sh.keptn.event.*.*.triggered",
    // The one task lighthouse, not the control plane, triggers: kept so the history has it.
    "sh.keptn.event.get-sli.triggered",
    "sh.keptn.log.>",
];
/// Header on events the control plane publishes after routing them itself (they arrived over HTTP):
/// its consumer acknowledges them without taking them in again.
pub const ROUTED_HEADER: &str = "Keelson-Routed";
/// The control plane's durable consumer of [`STREAM`].
pub const CONSUMER: &str = "keelson-control-plane";
/// Events handed to the control plane and not yet acknowledged, before NATS stops delivering more.
const MAX_ACK_PENDING: i64 = 16_384;
/// An unacknowledged event is delivered again after this long. Short, so that the events an instance
/// pulled just before it died reach another instance quickly; a consumer waiting for a slow store
/// keeps its events with progress acknowledgements (see [`PROGRESS_EVERY`]).
const ACK_WAIT: Duration = Duration::from_secs(4);
/// How often an event still being made durable is reported as in progress, resetting its ack wait.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How long the stream keeps an event nobody acknowledged.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Who published an event, for audits: the instance and its epoch of the event's shard (cluster mode).
pub const NODE_HEADER: &str = "Keelson-Node";
pub const EPOCH_HEADER: &str = "Keelson-Epoch";

/// Names the instance and shard epoch an event is published under (cluster mode), so that operators
/// and tests can audit who published what. Keptn clients ignore the headers.
pub trait Provenance: Send + Sync + 'static {
    /// This instance's node id and the epoch it holds `event`'s project under, if it holds it.
    fn of(&self, event: &CloudEvent) -> Option<(&str, u64)>;
}

/// See [`NatsBus::consumer_lag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerLag {
    pub pending: u64,
    pub ack_pending: u64,
    pub redelivered: u64,
}

#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    provenance: Option<std::sync::Arc<dyn Provenance>>,
}

impl NatsBus {
    /// Connects to `url`; fails if the server does not answer within a few seconds.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let client = async_nats::ConnectOptions::new()
            .name("keelson")
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| Error::Unavailable(e.into()))?;
        Ok(Self { client, provenance: None })
    }

    /// Publishes with [`NODE_HEADER`] and [`EPOCH_HEADER`] from `provenance` (cluster mode).
    pub fn with_provenance(mut self, provenance: std::sync::Arc<dyn Provenance>) -> Self {
        self.provenance = Some(provenance);
        self
    }

    fn headers(&self, event: &CloudEvent) -> Option<async_nats::HeaderMap> {
        let (node, epoch) = self.provenance.as_ref()?.of(event)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(NODE_HEADER, node);
        headers.insert(EPOCH_HEADER, epoch.to_string().as_str());
        Some(headers)
    }

    /// Publishes `event`; `routed` marks it as stored and applied already, so that the control plane's
    /// consumer acknowledges it without reading it.
    async fn send(&self, event: &CloudEvent, routed: bool) -> Result<(), Error> {
        let payload = serde_json::to_vec(event).map_err(|e| Error::Unavailable(e.into()))?;
        let mut headers = self.headers(event);
        if routed {
            headers.get_or_insert_with(async_nats::HeaderMap::new).insert(ROUTED_HEADER, "true");
        }
        let published = match headers {
            Some(headers) => self.client.publish_with_headers(event.event_type.clone(), headers, payload.into()).await,
            None => self.client.publish(event.event_type.clone(), payload.into()).await,
        };
        published.map_err(|e| Error::Unavailable(e.into()))
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Whether the client is connected now (publishing while disconnected only buffers).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// How far the control plane's consumer is behind: undelivered, unacknowledged and redelivered
    /// events.
    pub async fn consumer_lag(&self) -> Result<ConsumerLag, Error> {
        let context = jetstream::new(self.client.clone());
        let unavailable = |e: &dyn std::fmt::Display| Error::Unavailable(format!("jetstream: {e}").into());
        let stream = context.get_stream(STREAM).await.map_err(|e| unavailable(&e))?;
        let info = stream.consumer_info(CONSUMER).await.map_err(|e| unavailable(&e))?;
        Ok(ConsumerLag {
            pending: info.num_pending,
            ack_pending: u64::try_from(info.num_ack_pending).unwrap_or_default(),
            redelivered: u64::try_from(info.num_redelivered).unwrap_or_default(),
        })
    }

    /// The control plane's durable consumer, creating the stream and the consumer if missing.
    pub async fn control_plane_consumer(&self) -> Result<jetstream::consumer::PullConsumer, Error> {
        let unavailable = |e: &dyn std::fmt::Display| Error::Unavailable(format!("jetstream: {e}").into());
        let context = jetstream::new(self.client.clone());
        let config = jetstream::stream::Config {
            name: STREAM.to_owned(),
            subjects: STREAM_SUBJECTS.iter().map(|subject| (*subject).to_owned()).collect(),
            // Kept until every consumer (here: the control plane) has acknowledged it.
            retention: RetentionPolicy::Interest,
            max_age: MAX_AGE,
            ..Default::default()
        };
        let mut stream = context.get_or_create_stream(config.clone()).await.map_err(|e| unavailable(&e))?;
        // A stream made by an earlier release may keep other subjects: brought up to date.
        if stream.cached_info().config.subjects != config.subjects {
            let mut updated = stream.cached_info().config.clone();
            updated.subjects = config.subjects.clone();
            context.update_stream(updated).await.map_err(|e| unavailable(&e))?;
            stream = context.get_stream(STREAM).await.map_err(|e| unavailable(&e))?;
            tracing::info!(subjects = ?config.subjects, "jetstream stream subjects updated");
        }
        let consumer_config = pull::Config {
            durable_name: Some(CONSUMER.to_owned()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        };
        let consumer: jetstream::consumer::PullConsumer =
            stream.get_or_create_consumer(CONSUMER, consumer_config.clone()).await.map_err(|e| unavailable(&e))?;
        // A consumer made by an earlier release may wait longer before redelivering: brought up to date.
        if consumer.cached_info().config.ack_wait != ACK_WAIT {
            tracing::info!(ack_wait = ?ACK_WAIT, "jetstream consumer updated");
            return stream.update_consumer(consumer_config).await.map_err(|e| unavailable(&e));
        }
        Ok(consumer)
    }
}

#[async_trait]
impl super::Bus for NatsBus {
    async fn publish(&self, event: &CloudEvent) -> Result<(), Error> {
        // The control plane's own events were stored and applied when emitted.
        self.send(event, event.source == CONTROL_PLANE_SOURCE).await
    }

    async fn publish_routed(&self, event: &std::sync::Arc<CloudEvent>) -> Result<(), Error> {
        self.send(event, true).await
    }

    fn problem(&self) -> Option<String> {
        (!self.is_connected()).then(|| "event bus is unavailable: not connected to nats".to_owned())
    }
}
