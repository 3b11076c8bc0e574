//! The event router: every CloudEvent entering the control plane (from the bus or `POST /api/v1/event`)
//! is recorded in the history and handed to the actor it concerns.

use std::sync::Arc;

use actix::dev::SendError;
use actix::{Addr, Handler, Message};

use super::project::SequenceTriggered;
use super::sequence::{Apply, Command};
use super::Runtime;
use crate::model::event::{CloudEvent, CONTROL_PLANE_SOURCE};
use crate::model::event_type::{self, EventType};

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
        // The control plane stored its own events when it emitted them.
        if event.source != CONTROL_PLANE_SOURCE {
            self.runtime.history.record(Arc::clone(&event)).await;
        }
        match event_type::parse(&event.event_type) {
            EventType::Sequence { kind: event_type::TRIGGERED, .. } => {
                let Some(project) = event.project() else { return };
                let Some(address) = self.runtime.project_actor(project) else {
                    tracing::debug!(project, "trigger for an unknown project ignored");
                    return;
                };
                deliver(&address, SequenceTriggered(event)).await;
            }
            EventType::Task { kind: event_type::STARTED | event_type::FINISHED, .. } => {
                let Some(triggered_id) = event.triggeredid.as_deref() else { return };
                let Some(open) =
                    self.runtime.registry.open_tasks.get(triggered_id).map(|entry| entry.execution.clone())
                else {
                    tracing::debug!(triggered_id, "event for no open task ignored");
                    return;
                };
                deliver(&open, Apply(Command::TaskEvent(event))).await;
            }
            _ => {}
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
