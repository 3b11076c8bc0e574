//! The project actor: starting executions, chaining them, and pause/resume/abort.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::Shared;

use crate::actors::protocol::{Ack, ExecutionEnded, SequencePeers, SequenceTriggered};
use crate::actors::runtime::Runtime;
use crate::actors::sequence::{self, SequenceActor, Start};
use crate::actors::stage::{self, StageActor};
use crate::model::chaining;
use crate::model::event::CloudEvent;
use crate::model::sequence::control::PauseFlags;
use crate::model::sequence::start::{self, ProjectFacts, StartPlan};
use crate::model::sequence::{Effect, Execution, Scope};
use crate::store::history::Stored;

/// Mailbox capacity: the router waits when a project falls this far behind, so one busy project slows
/// its own producers and not the others.
pub const MAILBOX_CAPACITY: usize = 1024;

pub struct ProjectActor {
    pub(super) name: String,
    pub(super) runtime: Arc<Runtime>,
    pub(super) stages: HashMap<String, Addr<StageActor>>,
    /// Executions that have not ended.
    pub(in crate::actors) live: HashMap<String, Addr<SequenceActor>>,
    /// Execution ids by Keptn context, in start order (ended ones included, for control and views).
    pub(super) contexts: HashMap<String, Vec<String>>,
    pub(super) paused: PauseFlags,
    /// Moved to another instance: restarted only because old addresses linger, it does nothing.
    pub(super) retired: bool,
}

impl ProjectActor {
    pub fn new(name: String, runtime: Arc<Runtime>) -> Self {
        Self {
            name,
            runtime,
            stages: HashMap::new(),
            live: HashMap::new(),
            contexts: HashMap::new(),
            paused: PauseFlags::default(),
            retired: false,
        }
    }

    /// Where an execution of `stage` reports: this project and the stage's slot keeper.
    pub(super) fn peers(&mut self, stage: &str, ctx: &mut Context<Self>) -> (SequencePeers, Addr<StageActor>) {
        let stage = self
            .stages
            .entry(stage.to_owned())
            .or_insert_with(|| {
                Supervisor::start_in_arbiter(&Arbiter::current(), |ctx| {
                    ctx.set_mailbox_capacity(stage::MAILBOX_CAPACITY);
                    StageActor::default()
                })
            })
            .clone();
        let peers = SequencePeers {
            project: ctx.address().recipient(),
            slot_requests: stage.clone().recipient(),
            slot_releases: stage.clone().recipient(),
        };
        (peers, stage)
    }

    pub(super) fn spawn_sequence(
        &mut self,
        stage: &str,
        ctx: &mut Context<Self>,
        make: impl FnOnce(SequencePeers) -> SequenceActor + Send + 'static,
    ) -> (Addr<SequenceActor>, Addr<StageActor>) {
        let (peers, stage) = self.peers(stage, ctx);
        let address = Supervisor::start_in_arbiter(&Arbiter::current(), move |ctx| {
            ctx.set_mailbox_capacity(sequence::MAILBOX_CAPACITY);
            make(peers)
        });
        (address, stage)
    }

    /// Starts the execution for a sequence trigger. `prelude` is published first (from the new
    /// execution's outbox): the trigger of a chained sequence, which the project emits.
    fn start_sequence(
        &mut self,
        event: Arc<CloudEvent>,
        ack: Option<Ack>,
        prelude: Option<Arc<CloudEvent>>,
        history: Option<Shared<Stored>>,
        ctx: &mut Context<Self>,
    ) {
        let shipyard = self.runtime.projects.shipyard(&self.name);
        let record = self.runtime.projects.get(&self.name);
        let facts = ProjectFacts { name: &self.name, shipyard: shipyard.as_deref(), record: record.as_deref() };
        let now = self.runtime.clock.now();
        let (execution_id, stage, service, definition) =
            match start::plan(&facts, &event, |id| self.runtime.read_model.contains(id), now) {
                StartPlan::Start { execution_id, stage, service, definition } => {
                    (execution_id, stage, service, definition)
                }
                StartPlan::Reject { finished, message, .. } => {
                    tracing::info!(project = %self.name, trigger = %event.event_type, %message, "sequence not started");
                    let emitter = self.runtime.emitter.clone();
                    // The answer is durable before the trigger is acknowledged.
                    ctx.wait(
                        async move {
                            if let Some(stored) = emitter.emit_batch(&[Arc::new(*finished)]).await {
                                let _ = stored.await;
                            }
                            acknowledge(ack);
                        }
                        .into_actor(self),
                    );
                    return;
                }
                StartPlan::Duplicate => {
                    tracing::debug!(event_id = %event.id, "duplicate sequence trigger ignored");
                    return acknowledge(ack);
                }
                StartPlan::Drop { reason } => {
                    tracing::warn!(event_id = %event.id, reason, "sequence trigger dropped");
                    return acknowledge(ack);
                }
            };
        let gitcommitid = event
            .gitcommitid
            .clone()
            .filter(|id| !id.is_empty())
            .or_else(|| self.runtime.projects.repos().branch_head(&self.name, &stage));
        let paused = self.paused.is_paused(&event.shkeptncontext, &stage);
        let scope = Scope {
            project: self.name.clone(),
            stage: stage.clone(),
            service,
            keptn_context: event.shkeptncontext.clone(),
            triggered_id: event.id.clone(),
            gitcommitid,
        };
        let (execution, mut effects) =
            Execution::new(execution_id.clone(), definition, scope, Arc::new(event.data.clone()), now, paused);
        if let Some(prelude) = prelude {
            effects.insert(0, Effect::Publish(prelude));
        }
        self.runtime.read_model.publish(Arc::new(execution.clone()));
        self.contexts.entry(execution.scope.keptn_context.clone()).or_default().push(execution_id.clone());
        let runtime = Arc::clone(&self.runtime);
        let (address, _) = self.spawn_sequence(&stage, ctx, move |peers| {
            SequenceActor::new(execution, Start::New { effects, ack, history }, runtime, peers)
        });
        self.live.insert(execution_id, address);
        metrics::counter!("keelson_sequences_started_total").increment(1);
        metrics::gauge!("keelson_sequences_active").increment(1.0);
    }

    /// Starts the `triggeredOn` followers of an ended execution; each receiver resolves once that
    /// follower (and the trigger it will publish) is durable.
    fn chain(&mut self, execution: &Execution, ctx: &mut Context<Self>) -> Vec<tokio::sync::oneshot::Receiver<()>> {
        let Some(shipyard) = self.runtime.projects.shipyard(&self.name) else { return Vec::new() };
        chaining::follower_triggers(&shipyard, execution, self.runtime.clock.now())
            .into_iter()
            .map(|trigger| {
                let trigger = Arc::new(trigger);
                let (ack, durable) = tokio::sync::oneshot::channel();
                self.start_sequence(Arc::clone(&trigger), Some(ack), Some(trigger), None, ctx);
                durable
            })
            .collect()
    }
}

fn acknowledge(ack: Option<Ack>) {
    if let Some(ack) = ack {
        let _ = ack.send(());
    }
}

impl Actor for ProjectActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        if let Some(retention) = self.runtime.retention {
            self.check_retention_later(retention, ctx);
        }
    }
}

impl Supervised for ProjectActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(project = %self.name, "project actor restarting");
    }
}

impl Handler<SequenceTriggered> for ProjectActor {
    type Result = ();

    fn handle(&mut self, message: SequenceTriggered, ctx: &mut Context<Self>) {
        self.start_sequence(message.event, message.ack, None, message.history, ctx);
    }
}

impl Handler<ExecutionEnded> for ProjectActor {
    /// Resolves once the chained followers are durable, so the ended execution can stop tracking them.
    type Result = ResponseFuture<()>;

    fn handle(&mut self, message: ExecutionEnded, ctx: &mut Context<Self>) -> Self::Result {
        // Dropping the address lets the ended execution's actor stop.
        self.live.remove(&message.execution.id);
        let followers = if message.chain { self.chain(&message.execution, ctx) } else { Vec::new() };
        // A context with nothing left running (chained followers included) forgets its pauses, as
        // Keptn cleans them when a sequence ends.
        let context = &message.execution.scope.keptn_context;
        let still_running =
            self.contexts.get(context).is_some_and(|ids| ids.iter().any(|id| self.live.contains_key(id)));
        if !still_running && self.paused.context_ended(context) {
            let persisted = self.save_control();
            ctx.spawn(
                async move {
                    let _ = persisted.await;
                }
                .into_actor(self),
            );
        }
        Box::pin(async move {
            for follower in followers {
                let _ = follower.await;
            }
        })
    }
}
