//! The actor hosting one sequence execution.
//!
//! Each step: apply the input to the pure state machine, store the new state together with the events
//! it emitted (the outbox), acknowledge the input, then publish the events. Events leave the outbox once
//! the history has them; a crash before that publishes them again, with the same ids, on recovery.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures_util::future::Shared;

use super::protocol::{Ack, Apply, Command, ExecutionEnded, SequencePeers, SlotRelease, SlotRequest};
use super::read_model::OpenTask;
use super::runtime::{guarded, Runtime};
use super::snapshot::{execution_key, ExecutionRecordRef, SCHEMA_VERSION};
use crate::model::event::CloudEvent;
use crate::model::sequence::{Applied, Effect, Execution, Input, Step, Timeouts};
use crate::store::history::Stored;
use crate::store::snapshots::Queued;

/// Mailbox capacity: an execution gets a handful of messages per task (executor events, slot grants,
/// control commands); 64 absorbs many executors answering at once.
pub const MAILBOX_CAPACITY: usize = 64;

/// How long bookkeeping-only changes (a confirmed outbox, a finished chain) may wait for the next step
/// to store them before they are stored on their own.
const STALE_RECORD_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);
/// Panics in a row after which the execution is ended errored instead of restarted again.
const MAX_CONSECUTIVE_PANICS: u32 = 3;
/// The longest a timer is armed for; a later deadline is checked again after this long.
const LONGEST_TIMER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

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
    execution: Execution,
    runtime: Arc<Runtime>,
    peers: SequencePeers,
    start: Start,
    /// Emitted events not yet confirmed stored in the history, oldest first.
    outbox: Vec<Arc<CloudEvent>>,
    /// Events ever appended to / dropped from the outbox, to match confirmations to entries.
    outbox_appended: u64,
    outbox_dropped: u64,
    /// Ended with `triggeredOn` followers the project has not started yet.
    chain_pending: bool,
    /// Set while the stored record is older than the state only by bookkeeping (a shorter outbox, a
    /// finished chain): the scheduled write of it, cancelled when a step writes first.
    flush: Option<SpawnHandle>,
    /// The single armed timer (see `Effect::WakeAt`).
    timer: Option<SpawnHandle>,
    /// Id of the task `.triggered` event this actor registered as open.
    open_task_id: Option<String>,
    /// When the last task completed, to measure dispatch latency to the next `.triggered`.
    completed_at: Option<Instant>,
    /// The trigger's history write, which the first stored record waits for.
    trigger_stored: Option<Shared<Stored>>,
    /// Steps that panicked since the last one that did not, and the last panic's message.
    consecutive_panics: u32,
    last_panic: String,
    /// Even ending the execution panicked: the actor takes no more input until the process restarts.
    quarantined: bool,
}

/// What a step does to the execution's stored record.
enum RecordWrite {
    Put(Vec<u8>),
    /// The project was deleted.
    Delete,
    /// Already stored (a restored execution).
    Unchanged,
}

/// What one step hands to the asynchronous part: persist, acknowledge, publish, report.
struct Delivery {
    record: RecordWrite,
    ack: Option<Ack>,
    publish: Vec<Arc<CloudEvent>>,
    release_slot: bool,
    ended: Option<bool>,
    /// The open task this step closed, forgotten by the router once the step is durable.
    closed_task: Option<String>,
}

impl SequenceActor {
    pub fn new(execution: Execution, start: Start, runtime: Arc<Runtime>, peers: SequencePeers) -> Self {
        Self {
            execution,
            runtime,
            peers,
            start,
            outbox: Vec::new(),
            outbox_appended: 0,
            outbox_dropped: 0,
            chain_pending: false,
            flush: None,
            timer: None,
            open_task_id: None,
            completed_at: None,
            trigger_stored: None,
            consecutive_panics: 0,
            last_panic: String::new(),
            quarantined: false,
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
        actor.outbox_appended = outbox.len() as u64;
        actor.outbox = outbox;
        actor.chain_pending = chain_pending;
        actor
    }

    fn step(&mut self, command: Command, ack: Option<Ack>, ctx: &mut Context<Self>) {
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
    pub(super) fn step_with(
        &mut self,
        command: Option<&Command>,
        ack: Option<Ack>,
        ctx: &mut Context<Self>,
        apply: impl FnOnce(&mut Execution, chrono::DateTime<chrono::Utc>, Timeouts) -> Step,
    ) {
        let now = self.runtime.clock.now();
        let timeouts = self.runtime.timeouts;
        let tasks_done = self.execution.previous_tasks.len();
        let open_since = self.execution.open_triggered_event().and_then(|event| event.time);
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
                metrics::counter!("keelson_tasks_completed_total", "result" => task.result.clone()).increment(1);
                if let Some(dispatched_at) = open_since {
                    let duration = (now - dispatched_at).to_std().unwrap_or_default();
                    metrics::histogram!("keelson_task_duration_seconds", "task" => super::labels::task_label(&task.name))
                        .record(duration.as_secs_f64());
                }
            }
        }
        self.observe_activity(step.applied == Applied::Changed, command, &step.effects);
        self.perform(step.effects, ack, ctx);
    }

    /// Keeps the service's `lastEventTypes` and `deployedImage` up to date with the task events this
    /// step took in or sends out.
    fn observe_activity(&self, applied: bool, command: Option<&Command>, effects: &[Effect]) {
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

    fn perform(&mut self, effects: Vec<Effect>, ack: Option<Ack>, ctx: &mut Context<Self>) {
        let mut delivery = Delivery {
            record: RecordWrite::Unchanged,
            ack,
            publish: Vec::new(),
            release_slot: false,
            ended: None,
            closed_task: None,
        };
        for effect in effects {
            match effect {
                Effect::Publish(event) => delivery.publish.push(event),
                Effect::RequestSlot { ticket } => self.peers.slot_requests.do_send(self.slot_request(ticket, ctx)),
                // Released slots and the end are reported after this step's events are out, so that the
                // next sequence's (or a chained sequence's) events never overtake this one's `.finished`.
                Effect::ReleaseSlot => delivery.release_slot = true,
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
                    self.chain_pending = chain;
                    delivery.ended = Some(chain);
                }
            }
        }
        let project_exists = self.runtime.projects.get(&self.execution.scope.project).is_some();
        if project_exists {
            self.runtime.read_model.publish(Arc::new(self.execution.clone()));
        } else {
            // The project was deleted: its executions leave the read model and the store.
            self.runtime.read_model.forget(&self.execution.id);
        }
        delivery.closed_task = self.sync_open_task(ctx);
        self.outbox.extend(delivery.publish.iter().cloned());
        self.outbox_appended += delivery.publish.len() as u64;
        delivery.record = if project_exists { RecordWrite::Put(self.encode_current(ctx)) } else { RecordWrite::Delete };
        self.deliver(delivery, ctx);
    }

    /// Persists (or, for a deleted project, removes) the state, then acknowledges, publishes and reports.
    /// Runs with the mailbox blocked: this execution's events leave in order, and a slow store or bus
    /// slows the sequences that produce events instead of piling them up.
    fn deliver(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let Delivery { record, ack, publish, release_slot, ended, closed_task } = delivery;
        let runtime = Arc::clone(&self.runtime);
        let key = execution_key(&self.execution.scope.project, &self.execution.id);
        let dispatched_after = if publish.is_empty() { None } else { self.completed_at.take() };
        let peers = self.peers.clone();
        let release = self.slot_release();
        let ended_message = ended.map(|chain| ExecutionEnded { execution: Arc::new(self.execution.clone()), chain });
        let published_upto = self.outbox_appended;
        // The write is queued here, synchronously, so this execution's writes reach the writer in step
        // order (the writer keeps the last value per key). Only a full queue makes it wait below.
        let write = match record {
            RecordWrite::Put(record) => Some(Some(record)),
            RecordWrite::Delete => Some(None),
            RecordWrite::Unchanged => None,
        };
        // The first record of a new execution waits until its trigger is in the history.
        let trigger_stored = if write.is_some() { self.trigger_stored.take() } else { None };
        let (queued, deferred) = match (write, &trigger_stored) {
            (Some(record), None) => (Some(runtime.snapshots.queue_in_order(key, record)), None),
            (Some(record), Some(_)) => (None, Some((key, record))),
            (None, _) => (None, None),
        };
        let waits_for_room = queued.as_ref().is_some_and(Queued::is_waiting_for_room);
        // A step that publishes and reports nothing (a `.started`, a pause) need not hold the mailbox
        // while its write becomes durable: the next step's write is queued behind it.
        let quiet = publish.is_empty()
            && !release_slot
            && ended_message.is_none()
            && !waits_for_room
            && deferred.is_none()
            && closed_task.is_none();
        let work = async move {
            let queued = match (trigger_stored, deferred) {
                (Some(trigger_stored), Some((key, record))) => {
                    let _ = trigger_stored.await;
                    Some(runtime.snapshots.queue_in_order(key, record))
                }
                _ => queued,
            };
            // Waits for as long as the store is down: nothing after this point may run before the
            // state is durable.
            if let Some(queued) = queued {
                queued.durable().await;
            }
            // Only now may a retried event for the task this step closed miss it: until here, it
            // reaches this actor and is answered once the close is durable.
            if let Some(closed_task) = closed_task {
                runtime.read_model.close_task(&closed_task);
            }
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
            let stored = runtime.emitter.emit_batch(&publish).await;
            if let Some(completed_at) = dispatched_after {
                metrics::histogram!("keelson_dispatch_latency_seconds").record(completed_at.elapsed().as_secs_f64());
            }
            if release_slot {
                peers.slot_releases.do_send(release);
            }
            let chained = match ended_message {
                Some(message) => {
                    let chain = message.chain;
                    // Waits until the project has started (and queued the records of) the followers.
                    let _ = peers.project.send(message).await;
                    chain
                }
                None => false,
            };
            (stored, chained)
        };
        let work = work.into_actor(self).map(move |(stored, chained), actor, ctx| {
            if chained {
                actor.chain_pending = false;
                actor.mark_stale(ctx);
            }
            if let Some(stored) = stored {
                ctx.spawn(async move { stored.await.is_ok() }.into_actor(actor).map(move |stored, actor, ctx| {
                    if stored {
                        actor.outbox_stored(published_upto, ctx);
                    }
                }));
            }
        });
        if quiet {
            ctx.spawn(work);
        } else {
            ctx.wait(work);
        }
    }

    /// The history holds every event up to number `upto`: they leave the outbox.
    fn outbox_stored(&mut self, upto: u64, ctx: &mut Context<Self>) {
        if upto <= self.outbox_dropped {
            return;
        }
        let count = usize::try_from(upto - self.outbox_dropped).unwrap_or(usize::MAX).min(self.outbox.len());
        self.outbox.drain(..count);
        self.outbox_dropped = upto;
        self.mark_stale(ctx);
    }

    /// Schedules storing the bookkeeping-only changes. A busy execution's next step writes them anyway,
    /// so only an execution that then waits (for an executor, a timer) pays for a write of its own.
    /// Nothing depends on this write: losing it only means republishing events or re-chaining after a
    /// crash, both with the same ids.
    fn mark_stale(&mut self, ctx: &mut Context<Self>) {
        if self.flush.is_none() {
            self.flush = Some(ctx.run_later(STALE_RECORD_FLUSH, |actor, ctx| {
                actor.flush = None;
                if actor.runtime.projects.get(&actor.execution.scope.project).is_none() {
                    return;
                }
                let key = execution_key(&actor.execution.scope.project, &actor.execution.id);
                let record = actor.encode_current(ctx);
                // Queued synchronously, like every write of this actor, so it cannot overtake a later one.
                if actor.runtime.snapshots.queue_in_order(key, Some(record)).is_waiting_for_room() {
                    // A full queue: the next step (or the next flush) stores it.
                    actor.mark_stale(ctx);
                }
            }));
        }
    }

    /// The record of the current state; it makes any scheduled flush unnecessary.
    fn encode_current(&mut self, ctx: &mut Context<Self>) -> Vec<u8> {
        if let Some(flush) = self.flush.take() {
            ctx.cancel_future(flush);
        }
        self.encode()
    }

    fn encode(&self) -> Vec<u8> {
        ExecutionRecordRef {
            schema_version: SCHEMA_VERSION,
            execution: &self.execution,
            outbox: &self.outbox,
            chain_pending: self.chain_pending,
        }
        .encode()
    }

    /// Gives back this execution's slot (or withdraws its request) in its stage.
    fn slot_release(&self) -> SlotRelease {
        SlotRelease { service: self.execution.scope.service.clone(), execution: self.execution.id.clone() }
    }

    fn slot_request(&self, ticket: u64, ctx: &mut Context<Self>) -> SlotRequest {
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
    fn sync_open_task(&mut self, ctx: &mut Context<Self>) -> Option<String> {
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

    fn arm_timer(&mut self, at: chrono::DateTime<chrono::Utc>, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        // A far deadline wakes the actor daily instead: an early tick only re-arms the timer.
        let delay = (at - self.runtime.clock.now()).to_std().unwrap_or_default().min(LONGEST_TIMER);
        self.timer = Some(ctx.run_later(delay, |actor, ctx| {
            actor.timer = None;
            actor.step(Command::Tick, None, ctx);
        }));
    }

    /// Ending the execution panicked too: the actor stays alive but takes no more input (rather than
    /// loop), and gives back what others wait for — its service's slot, its open task, its place among
    /// the project's running executions. Its stored record is left as it was.
    fn quarantine(&mut self) {
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
    fn resume_waiting(&mut self, ctx: &mut Context<Self>) {
        if let Some(at) = self.execution.next_wake_up(self.runtime.clock.now(), self.runtime.timeouts) {
            self.arm_timer(at, ctx);
        }
        if self.execution.wants_slot {
            self.peers.slot_requests.do_send(self.slot_request(self.execution.slot_ticket, ctx));
        }
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
            Start::Restarted if self.quarantined => {}
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
                let ended = (self.execution.phase.is_terminal() && self.chain_pending).then_some(true);
                let delivery = Delivery {
                    record: RecordWrite::Unchanged,
                    ack: None,
                    publish: self.outbox.clone(),
                    release_slot: false,
                    ended,
                    closed_task: None,
                };
                self.deliver(delivery, ctx);
            }
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
        if self.quarantined {
            // Dropping the acknowledgement tells the sender the input was not applied.
            return;
        }
        self.step(message.command, message.ack, ctx);
    }
}
