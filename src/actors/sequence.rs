//! The actor hosting one sequence execution.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::project::{ExecutionEnded, ProjectActor};
use super::registry::OpenTask;
use super::stage::{SlotRelease, SlotRequest, StageActor};
use super::{guarded, Runtime};
use crate::model::event::CloudEvent;
use crate::model::sequence::{Applied, Effect, Execution, Input};

/// Mailbox capacity: an execution gets a handful of messages per task (executor events, slot grants,
/// control commands); 64 absorbs many executors answering at once.
pub const MAILBOX_CAPACITY: usize = 64;

/// What a sequence actor can be told.
#[derive(Debug, Clone)]
pub enum Command {
    SlotGranted {
        ticket: u64,
    },
    TaskEvent(Arc<CloudEvent>),
    Tick,
    Pause,
    Resume,
    Abort,
    /// Fault injection for tests of supervision: panics inside the guarded step.
    InjectPanic,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Apply(pub Command);

pub struct SequenceActor {
    execution: Execution,
    runtime: Arc<Runtime>,
    project: Addr<ProjectActor>,
    stage: Addr<StageActor>,
    /// Effects of creating the execution, performed once the actor runs.
    initial_effects: Vec<Effect>,
    /// The single armed timer (see `Effect::WakeAt`).
    timer: Option<SpawnHandle>,
    /// Id of the task `.triggered` event this actor registered as open.
    open_task_id: Option<String>,
    /// When the last task completed, to measure dispatch latency to the next `.triggered`.
    completed_at: Option<Instant>,
}

impl SequenceActor {
    pub fn new(
        execution: Execution,
        initial_effects: Vec<Effect>,
        runtime: Arc<Runtime>,
        project: Addr<ProjectActor>,
        stage: Addr<StageActor>,
    ) -> Self {
        Self {
            execution,
            runtime,
            project,
            stage,
            initial_effects,
            timer: None,
            open_task_id: None,
            completed_at: None,
        }
    }

    fn step(&mut self, command: Command, ctx: &mut Context<Self>) {
        let now = self.runtime.clock.now();
        let timeouts = self.runtime.timeouts;
        let tasks_done = self.execution.previous_tasks.len();
        let open_since = self.execution.open_triggered_event().and_then(|event| event.time);
        let outcome = guarded("sequence", || {
            let input = match &command {
                Command::SlotGranted { ticket } => Input::SlotGranted { ticket: *ticket },
                Command::TaskEvent(event) => Input::TaskEvent(event),
                Command::Tick => Input::Tick,
                Command::Pause => Input::Pause,
                Command::Resume => Input::Resume,
                Command::Abort => Input::Abort,
                Command::InjectPanic => panic!("injected fault"),
            };
            self.execution.apply(input, now, timeouts)
        });
        let Some(step) = outcome else {
            // Back to the state before the input — the snapshot published after the last step — and
            // let the supervisor restart the actor from it.
            if let Some(last) = self.runtime.registry.executions.get(&self.execution.id) {
                self.execution = (**last).clone();
            }
            ctx.stop();
            return;
        };
        if let Applied::Ignored(reason) = step.applied {
            tracing::debug!(execution = %self.execution.id, reason, "input ignored");
        }
        if self.execution.previous_tasks.len() > tasks_done {
            self.completed_at = Some(Instant::now());
            if let Some(task) = self.execution.previous_tasks.last() {
                metrics::counter!("keelson_tasks_completed_total", "result" => task.result.clone()).increment(1);
                if let Some(dispatched_at) = open_since {
                    let duration = (now - dispatched_at).to_std().unwrap_or_default();
                    metrics::histogram!("keelson_task_duration_seconds", "task" => task.name.clone())
                        .record(duration.as_secs_f64());
                }
            }
        }
        self.perform(step.effects, ctx);
    }

    fn perform(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        let runtime = &self.runtime;
        if runtime.projects.get(&self.execution.scope.project).is_none() {
            // The project was deleted: its executions leave the read model.
            runtime.registry.executions.remove(&self.execution.id);
        } else {
            runtime.registry.executions.insert(self.execution.id.clone(), Arc::new(self.execution.clone()));
        }
        self.sync_open_task(ctx);
        let mut to_publish = Vec::new();
        // Released slots and the end are reported after this step's events are out, so that the next
        // sequence's (or a chained sequence's) events never overtake this one's `.finished`.
        let mut after_publish: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        for effect in effects {
            match effect {
                Effect::Publish(event) => to_publish.push(event),
                Effect::RequestSlot { ticket } => self.stage.do_send(self.slot_request(ticket, ctx)),
                Effect::ReleaseSlot => {
                    let stage = self.stage.clone();
                    let release = SlotRelease {
                        service: self.execution.scope.service.clone(),
                        execution: self.execution.id.clone(),
                    };
                    after_publish.push(Box::new(move || stage.do_send(release)));
                }
                Effect::WakeAt(at) => self.arm_timer(at, ctx),
                Effect::Ended { chain } => {
                    if let Some(timer) = self.timer.take() {
                        ctx.cancel_future(timer);
                    }
                    let outcome = self.execution.outcome.as_ref();
                    metrics::counter!(
                        "keelson_sequences_finished_total",
                        "result" => outcome.map(|o| o.result.clone()).unwrap_or_default(),
                        "status" => outcome.map(|o| o.status.clone()).unwrap_or_default()
                    )
                    .increment(1);
                    metrics::gauge!("keelson_sequences_active").decrement(1.0);
                    let project = self.project.clone();
                    let ended = ExecutionEnded { execution: Arc::new(self.execution.clone()), chain };
                    after_publish.push(Box::new(move || project.do_send(ended)));
                }
            }
        }
        if to_publish.is_empty() {
            after_publish.into_iter().for_each(|report| report());
            return;
        }
        let dispatched_after = self.completed_at.take();
        let runtime = Arc::clone(&self.runtime);
        // Publishing blocks this actor's mailbox until done: its events leave in order, and a slow bus
        // slows the sequences that produce events instead of piling them up.
        ctx.wait(
            async move {
                for event in to_publish {
                    runtime.publish(event).await;
                }
                if let Some(completed_at) = dispatched_after {
                    metrics::histogram!("keelson_dispatch_latency_seconds")
                        .record(completed_at.elapsed().as_secs_f64());
                }
                after_publish.into_iter().for_each(|report| report());
            }
            .into_actor(self),
        );
    }

    fn slot_request(&self, ticket: u64, ctx: &mut Context<Self>) -> SlotRequest {
        SlotRequest {
            service: self.execution.scope.service.clone(),
            execution: self.execution.id.clone(),
            triggered_at: self.execution.triggered_at,
            ticket,
            requester: ctx.address(),
        }
    }

    /// Keeps the registry's open task entry in line with the execution's open task.
    fn sync_open_task(&mut self, ctx: &mut Context<Self>) {
        let current = self.execution.open_triggered_event().cloned();
        let current_id = current.as_ref().map(|event| event.id.clone());
        if current_id == self.open_task_id {
            return;
        }
        if let Some(previous) = self.open_task_id.take() {
            self.runtime.registry.open_tasks.remove(&previous);
        }
        if let Some(event) = current {
            self.runtime.registry.open_tasks.insert(
                event.id.clone(),
                OpenTask { project: self.execution.scope.project.clone(), execution: ctx.address(), event },
            );
            self.open_task_id = current_id;
        }
    }

    fn arm_timer(&mut self, at: chrono::DateTime<chrono::Utc>, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let delay = (at - self.runtime.clock.now()).to_std().unwrap_or_default();
        self.timer = Some(ctx.run_later(delay, |actor, ctx| {
            actor.timer = None;
            actor.step(Command::Tick, ctx);
        }));
    }
}

impl Actor for SequenceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let initial = std::mem::take(&mut self.initial_effects);
        if !initial.is_empty() {
            self.perform(initial, ctx);
            return;
        }
        // A restart: re-arm the timer from the deadline kept in the state, and ask again for a slot
        // whose grant may have been lost with the input that panicked.
        if let Some(at) = self.execution.next_wake_up(self.runtime.clock.now(), self.runtime.timeouts) {
            self.arm_timer(at, ctx);
        }
        if self.execution.wants_slot {
            self.stage.do_send(self.slot_request(self.execution.slot_ticket, ctx));
        }
    }
}

impl Supervised for SequenceActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.timer = None;
        tracing::warn!(execution = %self.execution.id, "sequence actor restarting");
    }
}

impl Handler<Apply> for SequenceActor {
    type Result = ();

    fn handle(&mut self, message: Apply, ctx: &mut Context<Self>) {
        self.step(message.0, ctx);
    }
}
