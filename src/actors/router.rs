//! The event router, the one door in: every CloudEvent entering the control plane — from the bus's
//! consumer, `POST /api/v1/event` or the evaluation trigger — is recorded in the history once and handed
//! to the actor it concerns once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::{FutureExt as _, Shared};
use tokio::sync::oneshot;

use super::directory::Directory;
use super::lanes::{Delivery, Lanes};
use super::protocol::{Apply, Command, SequenceTriggered};
use super::runtime::Runtime;
use crate::cluster::forward::{Destination, Forwarder, Reply};
use crate::model::event::{CloudEvent, CONTROL_PLANE_SOURCE};
use crate::model::event_type::{self, EventType};
use crate::store::history::Stored;

#[derive(Clone)]
pub struct EventRouter {
    directory: Arc<Directory>,
    lanes: Arc<Lanes>,
    counts: Arc<RouterCounts>,
}

/// What the router has done since start, for tests and diagnostics.
#[derive(Default)]
struct RouterCounts {
    /// Incoming events recorded in the history.
    recorded: AtomicU64,
    /// Events handed to an actor.
    delivered: AtomicU64,
}

/// What to do when the target project's lane is full.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WhenFull {
    Wait,
    /// Give up and report it (the caller can have the event redelivered later).
    GiveBack,
}

impl EventRouter {
    pub fn new(directory: Arc<Directory>) -> Self {
        Self { directory, lanes: Arc::default(), counts: Arc::default() }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        self.directory.runtime()
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Incoming events recorded in the history so far.
    pub fn recorded(&self) -> u64 {
        self.counts.recorded.load(Ordering::Relaxed)
    }

    /// Events waiting in the project lanes for room in their actor's mailbox.
    pub fn queued(&self) -> usize {
        self.lanes.pending()
    }

    /// Events handed to an actor so far.
    pub fn delivered(&self) -> u64 {
        self.counts.delivered.load(Ordering::Relaxed)
    }

    /// Records `event` and delivers it; waits only while the target's mailbox is full.
    pub async fn route(&self, event: Arc<CloudEvent>) {
        self.route_inner(event, false, WhenFull::Wait).await;
    }

    /// Like [`route`](Self::route), with a receipt that tells when the event is in the history and its
    /// effect on the actor's state is durable.
    pub async fn route_acked(&self, event: Arc<CloudEvent>) -> Receipt {
        self.route_inner(event, true, WhenFull::Wait).await
    }

    /// Like [`route_acked`](Self::route_acked), but never waits for a busy project: the receipt says
    /// [`Receipt::busy`] instead, and the event was not delivered.
    pub async fn route_or_give_back(&self, event: Arc<CloudEvent>) -> Receipt {
        self.route_inner(event, true, WhenFull::GiveBack).await
    }

    async fn deliver(&self, project: &str, delivery: Delivery, when_full: WhenFull, receipt: &mut Receipt) {
        match when_full {
            WhenFull::Wait => self.lanes.deliver_waiting(project, delivery).await,
            WhenFull::GiveBack => {
                if self.lanes.deliver(project, delivery).is_err() {
                    receipt.busy = true;
                    receipt.applied = None;
                    return;
                }
            }
        }
        self.counts.delivered.fetch_add(1, Ordering::Relaxed);
    }

    async fn route_inner(&self, event: Arc<CloudEvent>, acked: bool, when_full: WhenFull) -> Receipt {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            target: crate::telemetry::TARGET,
            "event",
            keptn.context = %event.shkeptncontext,
            event.id = %event.id,
            event.type = %event.event_type,
        );
        crate::telemetry::join_context(&span, &event.shkeptncontext);
        self.route_traced(event, acked, when_full).instrument(span).await
    }

    async fn route_traced(&self, event: Arc<CloudEvent>, acked: bool, when_full: WhenFull) -> Receipt {
        let mut receipt = Receipt::default();
        let kind = event_type::parse(&event.event_type);
        let is_trigger = matches!(kind, EventType::Sequence { kind: event_type::TRIGGERED, .. });
        // The control plane stored its own events when it emitted them. A trigger's execution waits for
        // its confirmation before it stores anything, so no durable sequence lacks its trigger in the
        // history after a crash.
        let runtime = self.directory.runtime();
        if event.source != CONTROL_PLANE_SOURCE {
            self.counts.recorded.fetch_add(1, Ordering::Relaxed);
            if is_trigger {
                // The new execution's first step waits for this.
                receipt.stored = Some(runtime.history.record_awaited(Arc::clone(&event)).await.shared());
            } else if acked {
                receipt.stored = Some(runtime.history.record_confirmed(Arc::clone(&event)).await.shared());
            } else {
                runtime.history.record(Arc::clone(&event)).await;
            }
        }
        let mut ack = || {
            acked.then(|| {
                let (ack, applied) = oneshot::channel();
                receipt.applied = Some(applied);
                ack
            })
        };
        match kind {
            EventType::Sequence { kind: event_type::TRIGGERED, .. } => {
                let Some(project) = event.project() else { return receipt };
                let Some(address) = self.directory.project(project) else {
                    tracing::debug!(project, "trigger for an unknown project ignored");
                    return receipt;
                };
                let ack = ack();
                let project = project.to_owned();
                let history = receipt.stored.clone();
                self.deliver(
                    &project,
                    Delivery::Trigger(address.recipient(), SequenceTriggered { event, ack, history }),
                    when_full,
                    &mut receipt,
                )
                .await;
            }
            EventType::Task { kind: event_type::STARTED | event_type::FINISHED, .. } => {
                let Some(triggered_id) = event.triggeredid.as_deref() else { return receipt };
                let Some((open, project)) = runtime.read_model.open_task_target(triggered_id) else {
                    tracing::debug!(triggered_id, "event for no open task ignored");
                    return receipt;
                };
                let ack = ack();
                let delivery = Delivery::Task(open, Apply { command: Command::TaskEvent(event), ack });
                self.deliver(&project, delivery, when_full, &mut receipt).await;
            }
            _ => {}
        }
        receipt
    }
}

/// Tells when a routed event is fully handled.
#[derive(Default)]
pub struct Receipt {
    stored: Option<Shared<Stored>>,
    applied: Option<oneshot::Receiver<()>>,
    busy: bool,
}

impl Receipt {
    /// The target project's lane was full and the event was not delivered.
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// Waits until the event is in the history and the actor's resulting state is durable; false when
    /// the handling actor stopped first (the input was not applied).
    pub async fn durable(self) -> bool {
        if let Some(stored) = self.stored {
            if stored.await.is_err() {
                return false;
            }
        }
        match self.applied {
            Some(applied) => applied.await.is_ok(),
            None => true,
        }
    }
}

/// Largest event taken from the bus; larger messages (possible only with a raised NATS `max_payload`)
/// are dropped as poison rather than held in memory.
pub const MAX_BUS_EVENT_BYTES: usize = 4 * 1024 * 1024;
/// When an event's project is backed up, NATS redelivers it after this long.
const BUSY_REDELIVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// When an event's project is changing hands between instances, NATS redelivers it after this long.
const MOVING_REDELIVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Feeds the control plane's durable JetStream consumer to the router. Each event is acknowledged once
/// it is in the history and its effect is stored; until then NATS keeps it (and redelivers it after the
/// ack wait, which the actors' dedupe by id makes harmless). Undecodable messages are counted, logged and
/// acknowledged so they cannot block the stream.
///
/// Stops pulling once `closing` turns true; what it pulled and had not acknowledged is delivered again
/// by NATS to the next start.
pub async fn consume_jetstream(
    consumer: async_nats::jetstream::consumer::PullConsumer,
    router: EventRouter,
    forwarder: Option<Forwarder>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    use futures_util::StreamExt as _;
    while !*closing.borrow() {
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "cannot read the jetstream consumer; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = closing.wait_for(|closing| *closing) => return,
            };
            match message {
                Some(Ok(message)) => handle_message(message, &router, forwarder.as_ref()).await,
                // Missed heartbeats and the like while NATS reconnects; the stream carries on.
                Some(Err(error)) => tracing::debug!(%error, "jetstream consumer error"),
                None => break,
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn handle_message(message: async_nats::jetstream::Message, router: &EventRouter, forwarder: Option<&Forwarder>) {
    if message.payload.len() > MAX_BUS_EVENT_BYTES {
        return poison(message, "event larger than the maximum event size").await;
    }
    if routed_already(&message) {
        // The control plane's own events, and events it took in over HTTP: stored and applied already,
        // so not even read.
        acknowledge(&message).await;
        return;
    }
    let event = match serde_json::from_slice::<CloudEvent>(&message.payload) {
        Ok(event) if !event.id.is_empty() && !event.event_type.is_empty() => event,
        Ok(_) => return poison(message, "event without id or type").await,
        Err(error) => return poison(message, &error.to_string()).await,
    };
    if event.source == CONTROL_PLANE_SOURCE {
        // Published by an earlier release, without the header.
        acknowledge(&message).await;
        return;
    }
    if let Some(forwarder) = forwarder {
        match forwarder.destination(&event).await {
            Destination::Here | Destination::Nowhere => {}
            Destination::Moving => return give_back(&message, MOVING_REDELIVERY).await,
            Destination::Node(node) => {
                // The owner answers once the event is durable there; only then is it acknowledged.
                let forwarder = forwarder.clone();
                tokio::spawn(async move {
                    match forwarder.deliver(&node, message.payload.clone()).await {
                        Reply::Durable => acknowledge(&message).await,
                        Reply::Busy => give_back(&message, BUSY_REDELIVERY).await,
                        Reply::NotOwner | Reply::Failed => give_back(&message, MOVING_REDELIVERY).await,
                    }
                });
                return;
            }
        }
    }
    let receipt = router.route_or_give_back(Arc::new(event)).await;
    if receipt.busy() {
        // Its project is backed up: NATS delivers it again shortly, while other projects carry on.
        return give_back(&message, BUSY_REDELIVERY).await;
    }
    tokio::spawn(async move {
        let durable = receipt.durable();
        tokio::pin!(durable);
        let mut progress = tokio::time::interval_at(
            tokio::time::Instant::now() + crate::bus::nats::PROGRESS_EVERY,
            crate::bus::nats::PROGRESS_EVERY,
        );
        loop {
            tokio::select! {
                applied = &mut durable => {
                    if applied {
                        acknowledge(&message).await;
                    }
                    return;
                }
                // A slow store: NATS keeps the event with this instance instead of redelivering it.
                _ = progress.tick() => {
                    let _ = message.ack_with(async_nats::jetstream::AckKind::Progress).await;
                }
            }
        }
    });
}

/// Hands a message back to JetStream for another delivery after `delay`.
async fn give_back(message: &async_nats::jetstream::Message, delay: std::time::Duration) {
    if let Err(error) = message.ack_with(async_nats::jetstream::AckKind::Nak(Some(delay))).await {
        tracing::debug!(%error, "could not hand a message back to jetstream");
    }
}

fn routed_already(message: &async_nats::jetstream::Message) -> bool {
    message.headers.as_ref().is_some_and(|headers| headers.get(crate::bus::nats::ROUTED_HEADER).is_some())
}

async fn poison(message: async_nats::jetstream::Message, reason: &str) {
    metrics::counter!("keelson_bus_malformed_events_total").increment(1);
    tracing::warn!(subject = %message.subject, bytes = message.payload.len(), reason, "malformed event on the bus acknowledged and dropped");
    acknowledge(&message).await;
}

async fn acknowledge(message: &async_nats::jetstream::Message) {
    if let Err(error) = message.ack().await {
        // Not acknowledged: NATS delivers it again, and the dedupe by id absorbs it.
        tracing::debug!(%error, "could not acknowledge a jetstream message");
    }
}
