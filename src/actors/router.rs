//! The event router: every CloudEvent entering the control plane (from the bus or `POST /api/v1/event`)
//! is recorded in the history and handed to the actor it concerns.

use std::sync::Arc;

use actix::dev::SendError;
use actix::{Addr, Handler, Message};

use super::project::SequenceTriggered;
use tokio::sync::oneshot;

use super::sequence::{Apply, Command};
use super::Runtime;
use crate::model::event::{CloudEvent, CONTROL_PLANE_SOURCE};
use crate::model::event_type::{self, EventType};
use crate::store::history::Stored;

#[derive(Clone)]
pub struct EventRouter {
    runtime: Arc<Runtime>,
}

impl EventRouter {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Records `event` and delivers it; waits only while the target's mailbox is full.
    pub async fn route(&self, event: Arc<CloudEvent>) {
        self.route_inner(event, false).await;
    }

    /// Like [`route`](Self::route), with a receipt that tells when the event is in the history and its
    /// effect on the actor's state is durable.
    pub async fn route_acked(&self, event: Arc<CloudEvent>) -> Receipt {
        self.route_inner(event, true).await
    }

    async fn route_inner(&self, event: Arc<CloudEvent>, acked: bool) -> Receipt {
        let mut receipt = Receipt::default();
        // The control plane stored its own events when it emitted them.
        if event.source != CONTROL_PLANE_SOURCE {
            if acked {
                receipt.stored = Some(self.runtime.history.record_confirmed(Arc::clone(&event)).await);
            } else {
                self.runtime.history.record(Arc::clone(&event)).await;
            }
        }
        let mut ack = || {
            acked.then(|| {
                let (ack, applied) = oneshot::channel();
                receipt.applied = Some(applied);
                ack
            })
        };
        match event_type::parse(&event.event_type) {
            EventType::Sequence { kind: event_type::TRIGGERED, .. } => {
                let Some(project) = event.project() else { return receipt };
                let Some(address) = self.runtime.project_actor(project) else {
                    tracing::debug!(project, "trigger for an unknown project ignored");
                    return receipt;
                };
                let ack = ack();
                deliver(&address, SequenceTriggered { event, ack }).await;
            }
            EventType::Task { kind: event_type::STARTED | event_type::FINISHED, .. } => {
                let Some(triggered_id) = event.triggeredid.as_deref() else { return receipt };
                let Some(open) =
                    self.runtime.registry.open_tasks.get(triggered_id).map(|entry| entry.execution.clone())
                else {
                    tracing::debug!(triggered_id, "event for no open task ignored");
                    return receipt;
                };
                let ack = ack();
                deliver(&open, Apply { command: Command::TaskEvent(event), ack }).await;
            }
            _ => {}
        }
        receipt
    }
}

/// Tells when a routed event is fully handled.
#[derive(Default)]
pub struct Receipt {
    stored: Option<Stored>,
    applied: Option<oneshot::Receiver<()>>,
}

impl Receipt {
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

/// `try_send` first (no waiting while there is room), `send().await` when the mailbox is full.
async fn deliver<A, M>(address: &Addr<A>, message: M)
where
    A: actix::Actor<Context = actix::Context<A>> + Handler<M>,
    M: Message<Result = ()> + Send + 'static,
{
    match address.try_send(message) {
        Ok(()) => {}
        Err(SendError::Full(message)) => {
            // A full mailbox: count it (mailbox pressure) and wait for room.
            metrics::counter!("keelson_mailbox_full_total", "actor" => std::any::type_name::<A>().rsplit("::").next().unwrap_or("actor")).increment(1);
            let _ = address.send(message).await;
        }
        Err(SendError::Closed(_)) => tracing::debug!("event for a stopped actor dropped"),
    }
}
