//! The receiving side of event forwarding: this instance applies the events other instances pulled
//! or received for projects it serves, and answers each once it is durable.

use std::sync::Arc;

use futures_util::StreamExt as _;

use super::forward::{deliver_subject, Reply, PROTOCOL_HEADER, PROTOCOL_VERSION};
use super::table::ShardTable;
use crate::actors::router::EventRouter;
use crate::model::event::CloudEvent;

/// Applies events other instances forward to this one, answering each once it is durable.
pub async fn serve_deliveries(
    nats: async_nats::Client,
    node: String,
    router: EventRouter,
    table: Arc<ShardTable>,
) -> Result<(), async_nats::SubscribeError> {
    let mut requests = nats.subscribe(deliver_subject(&node)).await?;
    tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let Some(reply_to) = message.reply.clone() else { continue };
            let (nats, router, table) = (nats.clone(), router.clone(), Arc::clone(&table));
            tokio::spawn(async move {
                let reply = apply_forwarded(&message, &router, &table).await;
                if let Err(error) = nats.publish(reply_to, reply.as_str().into()).await {
                    tracing::debug!(%error, "cluster: could not answer a forwarded event");
                }
            });
        }
    });
    Ok(())
}

async fn apply_forwarded(message: &async_nats::Message, router: &EventRouter, table: &ShardTable) -> Reply {
    let version = message.headers.as_ref().and_then(|headers| headers.get(PROTOCOL_HEADER)).map(|v| v.as_str());
    if version != Some(PROTOCOL_VERSION) {
        tracing::warn!(?version, "cluster: forwarded event of another protocol version refused");
        return Reply::Failed;
    }
    let Ok(event) = serde_json::from_slice::<CloudEvent>(&message.payload) else { return Reply::Failed };
    // The sender located the project from the event or its context; the owner checks with the same
    // rule for events that name their project.
    if let Some(project) = event.project() {
        if !table.serves(project) {
            return Reply::NotOwner;
        }
    }
    let receipt = router.route_or_give_back(Arc::new(event)).await;
    if receipt.busy() {
        return Reply::Busy;
    }
    if receipt.durable().await {
        Reply::Durable
    } else {
        Reply::Failed
    }
}
