//! A step's durable part: store the record (with the outbox), then acknowledge, publish and report —
//! in that order — and the bookkeeping writes that follow confirmations.

use std::sync::Arc;

use actix::prelude::*;

use super::actor::{SequenceActor, STALE_RECORD_FLUSH};
use crate::actors::protocol::{Ack, ExecutionEnded};
use crate::actors::snapshot::{execution_key, ExecutionRecordRef, SCHEMA_VERSION};
use crate::model::event::CloudEvent;
use crate::model::sequence::Effect;
use crate::store::snapshots::Queued;

/// What a step does to the execution's stored record.
pub(super) enum RecordWrite {
    Put(Vec<u8>),
    /// The project was deleted.
    Delete,
    /// Already stored (a restored execution).
    Unchanged,
}

/// What one step hands to the asynchronous part: persist, acknowledge, publish, report.
pub(super) struct Delivery {
    record: RecordWrite,
    ack: Option<Ack>,
    publish: Vec<Arc<CloudEvent>>,
    release_slot: bool,
    ended: Option<bool>,
    /// The open task this step closed, forgotten by the router once the step is durable.
    closed_task: Option<String>,
}

impl SequenceActor {
    pub(super) fn perform(&mut self, effects: Vec<Effect>, ack: Option<Ack>, ctx: &mut Context<Self>) {
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
                        "result" => outcome.map(|o| o.result.as_str()).unwrap_or_default(),
                        "status" => outcome.map(|o| o.status.as_str()).unwrap_or_default()
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
        self.outbox.append(&delivery.publish);
        delivery.record = if project_exists { RecordWrite::Put(self.encode_current(ctx)) } else { RecordWrite::Delete };
        self.deliver(delivery, ctx);
    }

    /// After a restart: publishes what the stored outbox still holds and, for an ended execution whose
    /// followers were not started, reports the end again.
    pub(super) fn republish_outbox(&mut self, ctx: &mut Context<Self>) {
        let ended = (self.execution.phase.is_terminal() && self.chain_pending).then_some(true);
        let delivery = Delivery {
            record: RecordWrite::Unchanged,
            ack: None,
            publish: self.outbox.events().to_vec(),
            release_slot: false,
            ended,
            closed_task: None,
        };
        self.deliver(delivery, ctx);
    }

    /// Persists (or, for a deleted project, removes) the state, then acknowledges, publishes and reports.
    /// Runs with the mailbox blocked: this execution's events leave in order, and a slow store or bus
    /// slows the sequences that produce events instead of piling them up.
    pub(super) fn deliver(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let Delivery { record, ack, publish, release_slot, ended, closed_task } = delivery;
        let runtime = Arc::clone(&self.runtime);
        let key = execution_key(&self.execution.scope.project, &self.execution.id);
        // Only a cluster checks its lease before publishing.
        let fence_key = runtime.snapshots.is_fenced().then(|| key.clone());
        let dispatched_after = if publish.is_empty() { None } else { self.completed_at.take() };
        let peers = self.peers.clone();
        let release = self.slot_release();
        let ended_message = ended.map(|chain| ExecutionEnded { execution: Arc::new(self.execution.clone()), chain });
        let published_upto = self.outbox.appended();
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
                if !queued.durable().await {
                    // Refused by the fence: another instance holds the project now. Nothing of this
                    // step may be acknowledged or published; the new owner restores the last stored state.
                    return None;
                }
            }
            // Only now may a retried event for the task this step closed miss it: until here, it
            // reaches this actor and is answered once the close is durable.
            if let Some(closed_task) = closed_task {
                runtime.read_model.close_task(&closed_task);
            }
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
            // The lease may have run out while the write was in flight: an instance that cannot be
            // sure it still holds the project publishes nothing (the new owner republishes the outbox).
            if !publish.is_empty() && fence_key.is_some_and(|key| !runtime.snapshots.holds(&key)) {
                return None;
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
            Some((stored, chained))
        };
        let work = work.into_actor(self).map(move |outcome, actor, ctx| {
            let Some((stored, chained)) = outcome else {
                actor.retire(ctx);
                return;
            };
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
        if self.outbox.confirm(upto) {
            self.mark_stale(ctx);
        }
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
            outbox: self.outbox.events(),
            chain_pending: self.chain_pending,
        }
        .encode()
    }
}
