//! What an execution waits for and tells others: its service's slot, its one timer, its open task in
//! the read model, its service's activity, and giving everything back when it must stop.

use std::sync::Arc;

use actix::prelude::*;

use super::actor::SequenceActor;
use crate::actors::protocol::{Command, ExecutionEnded, SlotRelease, SlotRequest};
use crate::actors::read_model::OpenTask;
use crate::model::sequence::Effect;

impl SequenceActor {
    /// Keeps the service's `lastEventTypes` and `deployedImage` up to date with the task events this
    /// step took in or sends out.
    pub(super) fn observe_activity(&self, applied: bool, command: Option<&Command>, effects: &[Effect]) {
        let incoming = match command {
            Some(Command::TaskEvent(event)) if applied => Some(event),
            _ => None,
        };
        let outgoing = effects.iter().filter_map(|effect| match effect {
            Effect::Publish(event) => Some(event),
            _ => None,
        });
        let scope = &self.execution.scope;
        for event in incoming.into_iter().chain(outgoing) {
            self.runtime.projects.observe_task_event(
                &scope.project,
                &scope.stage,
                &scope.service,
                event,
                &self.execution.input,
            );
        }
    }

    /// Gives back this execution's slot (or withdraws its request) in its stage.
    pub(super) fn slot_release(&self) -> SlotRelease {
        SlotRelease { service: self.execution.scope.service.clone(), execution: self.execution.id.clone() }
    }

    pub(super) fn slot_request(&self, ticket: u64, ctx: &mut Context<Self>) -> SlotRequest {
        SlotRequest {
            service: self.execution.scope.service.clone(),
            execution: self.execution.id.clone(),
            triggered_at: self.execution.triggered_at,
            ticket,
            requester: ctx.address().recipient(),
        }
    }

    /// Keeps the read model's open task entry in line with the execution's open task. Returns the task
    /// that is no longer open, for the caller to forget once that is durable.
    pub(super) fn sync_open_task(&mut self, ctx: &mut Context<Self>) -> Option<String> {
        let current = self.execution.open_triggered_event().cloned();
        let current_id = current.as_ref().map(|event| event.id.clone());
        if current_id == self.open_task_id {
            return None;
        }
        let closed = self.open_task_id.take();
        if let Some(event) = current {
            self.runtime.read_model.open_task(OpenTask {
                project: self.execution.scope.project.clone(),
                execution: ctx.address().recipient(),
                event,
            });
            self.open_task_id = current_id;
        }
        closed
    }

    pub(super) fn arm_timer(&mut self, at: chrono::DateTime<chrono::Utc>, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        // The clock may wake the actor early (a far deadline): a tick before it is due only re-arms.
        let wake = self.runtime.clock.wait_until(at).into_actor(self).map(|(), actor, ctx| {
            actor.timer = None;
            actor.step(Command::Tick, None, ctx);
        });
        self.timer = Some(ctx.spawn(wake));
    }

    /// Ending the execution panicked too: the actor stays alive but takes no more input (rather than
    /// loop), and gives back what others wait for — its service's slot, its open task, its place among
    /// the project's running executions. Its stored record is left as it was.
    pub(super) fn quarantine(&mut self) {
        self.quarantined = true;
        tracing::error!(execution = %self.execution.id, panic = %self.last_panic, "sequence cannot even be ended; it takes no more input until Keelson restarts");
        self.peers.slot_releases.do_send(self.slot_release());
        if let Some(open) = self.open_task_id.take() {
            self.runtime.read_model.close_task(&open);
        }
        metrics::gauge!("keelson_sequences_active").decrement(1.0);
        self.peers.project.do_send(ExecutionEnded { execution: Arc::new(self.execution.clone()), chain: false });
    }

    /// Re-arms the timer from the deadline kept in the state, and asks again for a slot whose grant may
    /// have been lost (with the input that panicked, or with the process).
    pub(super) fn resume_waiting(&mut self, ctx: &mut Context<Self>) {
        if let Some(at) = self.execution.next_wake_up(self.runtime.clock.now(), self.runtime.timeouts) {
            self.arm_timer(at, ctx);
        }
        if self.execution.wants_slot {
            self.peers.slot_requests.do_send(self.slot_request(self.execution.slot_ticket, ctx));
        }
    }
}
