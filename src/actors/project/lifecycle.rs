//! A project's executions across their life: restored after a restart, forgotten after their
//! retention, removed with the project.

use std::sync::Arc;

use actix::prelude::*;

use super::actor::ProjectActor;
use crate::actors::protocol::{Apply, Command, ProjectDeleted, Restore, RestoreHolder, Retire};
use crate::actors::sequence::SequenceActor;
use crate::actors::snapshot::{control_key, execution_key};
use crate::model::sequence::control::PauseFlags;
use crate::model::sequence::Execution;

impl ProjectActor {
    /// Forgets expired executions a quarter of the retention from now (on the control plane's clock),
    /// and again after that: nothing outlives its retention by more than a quarter of it.
    pub(super) fn check_retention_later(&mut self, retention: std::time::Duration, ctx: &mut Context<Self>) {
        let every = (retention / 4).clamp(std::time::Duration::from_millis(250), std::time::Duration::from_secs(3600));
        let at = crate::model::duration::later(self.runtime.clock.now(), every);
        ctx.spawn(self.runtime.clock.wait_until(at).into_actor(self).map(move |(), actor, ctx| {
            actor.forget_expired(retention);
            actor.check_retention_later(retention, ctx);
        }));
    }
    /// Forgets the contexts whose executions all ended longer ago than `retention`: from memory and
    /// from the store. Their events stay in the history.
    pub(super) fn forget_expired(&mut self, retention: std::time::Duration) {
        let now = self.runtime.clock.now();
        let read_model = &self.runtime.read_model;
        let expired: Vec<String> = self
            .contexts
            .iter()
            .filter(|(_, ids)| !ids.iter().any(|id| self.live.contains_key(id)))
            .filter(|(_, ids)| {
                let executions: Vec<Arc<Execution>> = ids.iter().filter_map(|id| read_model.execution(id)).collect();
                executions.len() == ids.len()
                    && crate::model::sequence::retention::context_expired(
                        executions.iter().map(Arc::as_ref),
                        now,
                        retention,
                    )
            })
            .map(|(context, _)| context.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        let mut keys = Vec::new();
        for context in &expired {
            for id in self.contexts.remove(context).unwrap_or_default() {
                read_model.forget(&id);
                keys.push(execution_key(&self.name, &id));
            }
        }
        metrics::counter!("keelson_executions_forgotten_total").increment(keys.len() as u64);
        tracing::debug!(project = %self.name, contexts = expired.len(), executions = keys.len(), "ended executions forgotten");
        self.delete_records(keys);
    }

    fn delete_records(&self, keys: Vec<String>) {
        let snapshots = self.runtime.snapshots.clone();
        actix::spawn(async move {
            for key in keys {
                drop(snapshots.delete(key).await);
            }
        });
    }
}

impl Handler<ProjectDeleted> for ProjectActor {
    type Result = ();

    fn handle(&mut self, _message: ProjectDeleted, ctx: &mut Context<Self>) {
        for address in self.live.values() {
            address.do_send(Apply::new(Command::Abort));
        }
        self.runtime.read_model.forget_project(&self.name);
        let mut keys: Vec<String> =
            self.contexts.values().flatten().map(|execution| execution_key(&self.name, execution)).collect();
        keys.push(control_key(&self.name));
        self.delete_records(keys);
        self.live.clear();
        self.contexts.clear();
        self.paused = PauseFlags::default();
        self.stages.clear();
        ctx.stop();
    }
}

impl Handler<Retire> for ProjectActor {
    type Result = ();

    /// The project moved to another instance: its actors stop without writing anything, and this
    /// instance forgets it. The stored records stay for the new owner.
    fn handle(&mut self, _message: Retire, ctx: &mut Context<Self>) {
        self.retired = true;
        for address in self.live.values() {
            address.do_send(Retire);
        }
        for stage in self.stages.values() {
            stage.do_send(Retire);
        }
        self.runtime.read_model.forget_project(&self.name);
        self.live.clear();
        self.contexts.clear();
        self.stages.clear();
        self.paused = PauseFlags::default();
        ctx.stop();
    }
}

impl Handler<Restore> for ProjectActor {
    type Result = ();

    fn handle(&mut self, message: Restore, ctx: &mut Context<Self>) {
        self.paused.merge(PauseFlags::from_stored(message.control.paused));
        let mut records = message.executions;
        records.sort_by(|a, b| {
            (a.execution.triggered_at, &a.execution.id).cmp(&(b.execution.triggered_at, &b.execution.id))
        });
        for record in records {
            let execution = record.execution;
            let id = execution.id.clone();
            if self.runtime.read_model.contains(&id) {
                continue;
            }
            self.runtime.read_model.publish(Arc::new(execution.clone()));
            self.contexts.entry(execution.scope.keptn_context.clone()).or_default().push(id.clone());
            let terminal = execution.phase.is_terminal();
            if terminal && record.outbox.is_empty() && !record.chain_pending {
                continue;
            }
            if !terminal {
                metrics::gauge!("keelson_sequences_active").increment(1.0);
            }
            let holder = execution.holds_slot.then(|| (execution.scope.service.clone(), execution.slot_ticket));
            let runtime = Arc::clone(&self.runtime);
            let (outbox, chain_pending) = (record.outbox, record.chain_pending);
            let stage = execution.scope.stage.clone();
            let (address, stage) = self.spawn_sequence(&stage, ctx, move |peers| {
                SequenceActor::restored(execution, outbox, chain_pending, runtime, peers)
            });
            if let Some((service, ticket)) = holder {
                // Sent before the restored actors run, so holders are back in place before any waiting
                // execution asks for a slot.
                stage.do_send(RestoreHolder {
                    service,
                    execution: id.clone(),
                    ticket,
                    holder: address.clone().recipient(),
                });
            }
            if !terminal {
                self.live.insert(id, address);
            }
        }
        tracing::info!(project = %self.name, executions = self.contexts.values().map(Vec::len).sum::<usize>(), running = self.live.len(), "project restored");
    }
}
