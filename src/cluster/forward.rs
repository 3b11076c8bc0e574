//! Events to their project's owner: whichever instance pulled an event from JetStream or received it
//! over HTTP asks the owner to apply it (NATS request on `keelson.cluster.deliver.<node>`), and
//! acknowledges it only once the owner answered that it is durable.

use std::sync::Arc;
use std::time::Duration;

use super::table::{Location, ShardTable};
use crate::model::event::CloudEvent;
use crate::store::{EventQuery, EventStore};

/// How long the owner may take to make a forwarded event durable.
pub const DELIVER_TIMEOUT: Duration = Duration::from_secs(1);
/// Version of the deliver protocol, checked by the receiver (mixed versions during an upgrade).
pub(super) const PROTOCOL_HEADER: &str = "Keelson-Cluster-Protocol";
pub(super) const PROTOCOL_VERSION: &str = "1";

/// Subject on which `node` takes forwarded events.
pub fn deliver_subject(node: &str) -> String {
    format!("keelson.cluster.deliver.{node}")
}

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// This instance owns its project.
    Here,
    /// Another instance does.
    Node(String),
    /// Its project is changing hands: give it back for a later delivery.
    Moving,
    /// It names no project this cluster can find: recorded and otherwise ignored, like a single
    /// instance does.
    Nowhere,
}

/// What the owner answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Applied and durable.
    Durable,
    /// Its project is backed up: deliver later.
    Busy,
    /// The receiver does not own the project (any more).
    NotOwner,
    /// No answer, or the owner could not apply it.
    Failed,
}

impl Reply {
    pub fn as_str(self) -> &'static str {
        match self {
            Reply::Durable => "ok",
            Reply::Busy => "busy",
            Reply::NotOwner => "not-owner",
            Reply::Failed => "failed",
        }
    }

    fn parse(text: &[u8]) -> Self {
        match text {
            b"ok" => Reply::Durable,
            b"busy" => Reply::Busy,
            b"not-owner" => Reply::NotOwner,
            _ => Reply::Failed,
        }
    }
}

#[derive(Clone)]
pub struct Forwarder {
    table: Arc<ShardTable>,
    nats: async_nats::Client,
    history: Arc<dyn EventStore>,
}

impl Forwarder {
    pub fn new(table: Arc<ShardTable>, nats: async_nats::Client, history: Arc<dyn EventStore>) -> Self {
        Self { table, nats, history }
    }

    pub fn table(&self) -> &Arc<ShardTable> {
        &self.table
    }

    /// The project of `event`: `data.project`, else the project of its Keptn context in the history.
    async fn project_of(&self, event: &CloudEvent) -> Option<String> {
        if let Some(project) = event.project().filter(|project| !project.is_empty()) {
            return Some(project.to_owned());
        }
        let context = Some(event.shkeptncontext.as_str()).filter(|context| !context.is_empty())?;
        let query = EventQuery { keptn_context: Some(context.to_owned()), limit: 10, ..Default::default() };
        let found = self.history.find(&query).await.ok()?;
        found.iter().find_map(|event| event.project().map(str::to_owned))
    }

    pub async fn destination(&self, event: &CloudEvent) -> Destination {
        let Some(project) = self.project_of(event).await else { return Destination::Nowhere };
        match self.table.locate(&project) {
            Location::Here => Destination::Here,
            Location::Node { node, .. } => Destination::Node(node),
            Location::Moving => Destination::Moving,
        }
    }

    /// Asks `node` to apply `payload` (the event's JSON).
    pub async fn deliver(&self, node: &str, payload: bytes::Bytes) -> Reply {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(PROTOCOL_HEADER, PROTOCOL_VERSION);
        let request = async_nats::Request::new().payload(payload).headers(headers).timeout(Some(DELIVER_TIMEOUT));
        let reply = match self.nats.send_request(deliver_subject(node), request).await {
            Ok(message) => Reply::parse(&message.payload),
            Err(error) => {
                tracing::debug!(node, %error, "cluster: forwarded event not answered");
                Reply::Failed
            }
        };
        metrics::counter!("keelson_forwarded_total", "kind" => "event", "outcome" => reply.as_str()).increment(1);
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::Reply;

    #[test]
    fn replies_round_trip() {
        for reply in [Reply::Durable, Reply::Busy, Reply::NotOwner, Reply::Failed] {
            assert_eq!(Reply::parse(reply.as_str().as_bytes()), reply);
        }
        assert_eq!(Reply::parse(b"anything else"), Reply::Failed);
    }
}
