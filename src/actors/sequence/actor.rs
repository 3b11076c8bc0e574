//! The sequence actor: its state, its step, and how it starts, restarts and takes input.
//!
//! Each step: apply the input to the pure state machine, store the new state together with the events
//! it emitted (the outbox), acknowledge the input, then publish the events. Events leave the outbox once
//! the history has them; a crash before that publishes them again, with the same ids, on recovery.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures_util::future::Shared;

use super::outbox::Outbox;
use crate::actors::protocol::{Ack, Apply, Command, Retire, SequencePeers};
use crate::actors::runtime::{guarded, Runtime};
use crate::model::event::CloudEvent;
use crate::model::sequence::{Applied, Effect, Execution, Input, Step, Timeouts};
use crate::store::history::Stored;

/// Mailbox capacity: an execution gets a handful of messages per task (executor events, slot grants,
/// control commands); 64 absorbs many executors answering at once.
pub const MAILBOX_CAPACITY: usize = 64;

/// How long bookkeeping-only changes (a confirmed outbox, a finished chain) may wait for the next step
/// to store them before they are stored on their own.
pub(super) const STALE_RECORD_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);
/// Panics in a row after which the execution is ended errored instead of restarted again.
const MAX_CONSECUTIVE_PANICS: u32 = 3;

/// How the actor comes to life.
pub enum Start {
    /// A new execution with the effects of creating it.
    New { effects: Vec<Effect>, ack: Option<Ack>, history: Option<Shared<Stored>> },
    /// Rebuilt from the store after a process restart: publish what the outbox still holds.
    Restored,
    /// Restarted by its supervisor after a panic.
    Restarted,
}

pub struct SequenceActor {
    pub(super) execution: Execution,
    pub(super) runtime: Arc<Runtime>,
    pub(super) peers: SequencePeers,
    pub(super) start: Start,
    /// Emitted events not yet confirmed stored in the history.
    pub(super) outbox: Outbox,
    /// Ended with `triggeredOn` followers the project has not started yet.
    pub(super) chain_pending: bool,
    /// Set while the stored record is older than the state only by bookkeeping (a shorter outbox, a
    /// finished chain): the scheduled write of it, cancelled when a step writes first.
    pub(super) flush: Option<SpawnHandle>,
    /// The single armed timer (see `Effect::WakeAt`).
    pub(super) timer: Option<SpawnHandle>,
    /// Id of the task `.triggered` event this actor registered as open.
    pub(super) open_task_id: Option<String>,
    /// When the last task completed, to measure dispatch latency to the next `.triggered`.
    pub(super) completed_at: Option<Instant>,
    /// The trigger's history write, which the first stored record waits for.
    pub(super) trigger_stored: Option<Shared<Stored>>,
    /// Steps that panicked since the last one that did not, and the last panic's message.
    pub(super) consecutive_panics: u32,
    pub(super) last_panic: String,
    /// Even ending the execution panicked: the actor takes no more input until the process restarts.
    pub(super) quarantined: bool,
    /// Its project moved to another instance: the actor takes no more input and is dropped.
    pub(super) retired: bool,
    /// Fault injection: every step panics.
    #[cfg(feature = "fault-injection")]
    pub(in crate::actors) broken: bool,
}

impl SequenceActor {
    pub fn new(execution: Execution, start: Start, runtime: Arc<Runtime>, peers: SequencePeers) -> Self {
        Self {
            execution,
            runtime,
            peers,
            start,
            outbox: Outbox::default(),
            chain_pending: false,
            flush: None,
            timer: None,
            open_task_id: None,
            completed_at: None,
            trigger_stored: None,
            consecutive_panics: 0,
            last_panic: String::new(),
            quarantined: false,
            retired: false,
            #[cfg(feature = "fault-injection")]
            broken: false,
        }
    }

    /// An actor for a stored execution, with the outbox and chain flag it was stored with.
    pub fn restored(
        execution: Execution,
        outbox: Vec<Arc<CloudEvent>>,
        chain_pending: bool,
        runtime: Arc<Runtime>,
        peers: SequencePeers,
    ) -> Self {
        let mut actor = Self::new(execution, Start::Restored, runtime, peers);
        actor.outbox = Outbox::restored(outbox);
        actor.chain_pending = chain_pending;
        actor
    }

    pub(super) fn step(&mut self, command: Command, ack: Option<Ack>, ctx: &mut Context<Self>) {
        self.step_with(Some(&command), ack, ctx, |execution, now, timeouts| {
            let input = match &command {
                Command::SlotGranted { ticket } => Input::SlotGranted { ticket: *ticket },
                Command::TaskEvent(event) => Input::TaskEvent(event),
                Command::Tick => Input::Tick,
                Command::Pause => Input::Pause,
                Command::Resume => Input::Resume,
                Command::Abort => Input::Abort,
                Command::Fail(message) => Input::Fail { message },
            };
            execution.apply(input, now, timeouts)
        });
    }

    /// Runs one step of the state machine, `apply`, guarded against panics, and performs its effects.
    pub(in crate::actors) fn step_with(
        &mut self,
        command: Option<&Command>,
        ack: Option<Ack>,
        ctx: &mut Context<Self>,
        apply: impl FnOnce(&mut Execution, chrono::DateTime<chrono::Utc>, Timeouts) -> Step,
    ) {
        let span = tracing::info_span!(
            target: crate::telemetry::TARGET,
            "sequence.step",
            keptn.context = %self.execution.scope.keptn_context,
            execution = %self.execution.id,
            stage = %self.execution.scope.stage,
        );
        crate::telemetry::join_context(&span, &self.execution.scope.keptn_context);
        let _step = span.enter();
        let now = self.runtime.clock.now();
        let timeouts = self.runtime.timeouts;
        let tasks_done = self.execution.previous_tasks.len();
        let open_since = self.execution.open_triggered_event().and_then(|event| event.time);
        #[cfg(feature = "fault-injection")]
        let apply = {
            let broken = self.broken;
            move |execution: &mut Execution, now, timeouts| {
                assert!(!broken, "step of a broken execution (fault injection)");
                apply(execution, now, timeouts)
            }
        };
        let outcome = guarded("sequence", || apply(&mut self.execution, now, timeouts));
        let step = match outcome {
            Ok(step) => {
                self.consecutive_panics = 0;
                step
            }
            Err(panic) => {
                // Back to the state before the input — the snapshot published after the last step — and
                // let the supervisor restart the actor from it. The input is not acknowledged.
                if let Some(last) = self.runtime.read_model.execution(&self.execution.id) {
                    self.execution = (*last).clone();
                }
                self.consecutive_panics += 1;
                self.last_panic = panic;
                ctx.stop();
                return;
            }
        };
        if let Applied::Ignored(reason) = step.applied {
            tracing::debug!(execution = %self.execution.id, reason, "input ignored");
            if step.effects.is_empty() {
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
                return;
            }
        }
        if self.execution.previous_tasks.len() > tasks_done {
            self.completed_at = Some(Instant::now());
            if let Some(task) = self.execution.previous_tasks.last() {
                metrics::counter!("keelson_tasks_completed_total", "result" => task.result.as_str()).increment(1);
                if let Some(dispatched_at) = open_since {
                    let duration = (now - dispatched_at).to_std().unwrap_or_default();
                    metrics::histogram!("keelson_task_duration_seconds", "task" => crate::actors::labels::task_label(&task.name))
                        .record(duration.as_secs_f64());
                }
            }
        }
        self.observe_activity(step.applied == Applied::Changed, command, &step.effects);
        self.perform(step.effects, ack, ctx);
    }
}

impl Actor for SequenceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match std::mem::replace(&mut self.start, Start::Restarted) {
            Start::New { effects, ack, history } => {
                self.trigger_stored = history;
                self.perform(effects, ack, ctx);
            }
            Start::Restarted if self.quarantined || self.retired => {}
            Start::Restarted if self.consecutive_panics > MAX_CONSECUTIVE_PANICS => self.quarantine(),
            Start::Restarted if self.consecutive_panics == MAX_CONSECUTIVE_PANICS => {
                let message = format!(
                    "sequence ended by Keelson: its step failed {MAX_CONSECUTIVE_PANICS} times in a row ({})",
                    self.last_panic
                );
                tracing::error!(execution = %self.execution.id, %message, "giving up on a sequence");
                self.step(Command::Fail(message), None, ctx);
            }
            Start::Restarted => self.resume_waiting(ctx),
            Start::Restored => {
                let _ = self.sync_open_task(ctx);
                if !self.execution.phase.is_terminal() {
                    self.resume_waiting(ctx);
                }
                self.republish_outbox(ctx);
            }
        }
    }
}

impl SequenceActor {
    /// Stops acting for good without writing or publishing anything: its project is now another
    /// instance's, which continues from the stored state.
    pub(in crate::actors) fn retire(&mut self, ctx: &mut Context<Self>) {
        self.retired = true;
        for handle in [self.timer.take(), self.flush.take()].into_iter().flatten() {
            ctx.cancel_future(handle);
        }
        ctx.stop();
    }
}

impl Handler<Retire> for SequenceActor {
    type Result = ();

    fn handle(&mut self, _message: Retire, ctx: &mut Context<Self>) {
        self.retire(ctx);
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
        if self.quarantined || self.retired {
            // Dropping the acknowledgement tells the sender the input was not applied.
            return;
        }
        self.step(message.command, message.ack, ctx);
    }
}
