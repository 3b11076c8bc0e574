//! The actor of one project: starts sequence executions, chains them through `triggeredOn`, and
//! applies pause/resume/abort to a Keptn context.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::Shared;
use serde_json::{json, Value};
use uuid::Uuid;

use super::sequence::{self, Ack, Apply, Command, SequenceActor, Start};
use super::snapshot::{control_key, execution_key, ControlRecord, ExecutionRecord, SCHEMA_VERSION};
use super::stage::{RestoreHolder, StageActor};
use super::Runtime;
use crate::model::chaining;
use crate::model::event::CloudEvent;
use crate::model::event_type::{self, EventType};
use crate::model::sequence::aggregate::{ERRORED, FAIL};
use crate::model::sequence::{Effect, Execution, Scope};
use crate::store::history::Stored;

/// Mailbox capacity: the router waits when a project falls this far behind, so one busy project slows
/// its own producers and not the others.
pub const MAILBOX_CAPACITY: usize = 1024;

/// Namespace of execution ids: an execution's id is derived from its project and trigger event id, so
/// a redelivered trigger maps to the same execution.
const EXECUTION_NAMESPACE: Uuid = Uuid::from_u128(0x6b65_656c_736f_6e00_0000_0000_0000_0001);

/// A `<stage>.<sequence>.triggered` event for this project; `ack` is told once it is durably handled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SequenceTriggered {
    pub event: Arc<CloudEvent>,
    pub ack: Option<Ack>,
    /// Resolves once the trigger is in the history; the new execution stores nothing before.
    pub history: Option<Shared<Stored>>,
}

/// Rebuilds the project's executions and pause flags from the store after a process restart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restore {
    pub executions: Vec<ExecutionRecord>,
    pub control: ControlRecord,
}

/// An execution ended; with `chain`, its `triggeredOn` followers start.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExecutionEnded {
    pub execution: Arc<Execution>,
    pub chain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlCommand {
    Pause,
    Resume,
    Abort,
}

/// `POST /sequence/{project}/{context}/control`.
#[derive(Message)]
#[rtype(result = "Result<(), ControlError>")]
pub struct Control {
    pub keptn_context: String,
    pub stage: Option<String>,
    pub command: ControlCommand,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no sequence with keptn context {0} in this project")]
    UnknownContext(String),
}

/// The project was deleted: abort what runs and forget its executions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProjectDeleted;

/// Fault injection for tests of backpressure: the project actor handles nothing else for this long.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Freeze(pub std::time::Duration);

/// Sends a command to one running execution (fault injection and tests).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct SendToExecution {
    pub execution: String,
    pub command: Command,
}

pub struct ProjectActor {
    name: String,
    runtime: Arc<Runtime>,
    stages: HashMap<String, Addr<StageActor>>,
    /// Executions that have not ended.
    live: HashMap<String, Addr<SequenceActor>>,
    /// Execution ids by Keptn context, in start order (ended ones included, for control and views).
    contexts: HashMap<String, Vec<String>>,
    /// Paused contexts (`None`) and context stages (`Some(stage)`).
    paused: HashSet<(String, Option<String>)>,
}

impl ProjectActor {
    pub fn new(name: String, runtime: Arc<Runtime>) -> Self {
        Self {
            name,
            runtime,
            stages: HashMap::new(),
            live: HashMap::new(),
            contexts: HashMap::new(),
            paused: HashSet::new(),
        }
    }

    fn stage_actor(&mut self, stage: &str) -> Addr<StageActor> {
        self.stages
            .entry(stage.to_owned())
            .or_insert_with(|| Supervisor::start_in_arbiter(&Arbiter::current(), |_| StageActor::default()))
            .clone()
    }

    fn is_paused(&self, keptn_context: &str, stage: &str) -> bool {
        self.paused.contains(&(keptn_context.to_owned(), None))
            || self.paused.contains(&(keptn_context.to_owned(), Some(stage.to_owned())))
    }

    /// Starts the execution for a sequence trigger. `prelude` are events published first (from the
    /// new execution's outbox): the trigger of a chained sequence, which the project emits.
    fn start_sequence(
        &mut self,
        event: Arc<CloudEvent>,
        ack: Option<Ack>,
        prelude: Option<Arc<CloudEvent>>,
        history: Option<Shared<Stored>>,
        ctx: &mut Context<Self>,
    ) {
        let acknowledge = |ack: Option<Ack>| {
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        };
        let EventType::Sequence { sequence: sequence_name, kind: event_type::TRIGGERED, .. } =
            event_type::parse(&event.event_type)
        else {
            acknowledge(ack);
            return;
        };
        let text = |key: &str| event.data.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (stage, service) = (text("stage"), text("service"));
        if stage.is_empty() || service.is_empty() || event.id.is_empty() {
            tracing::warn!(event_id = %event.id, "sequence trigger without stage, service or id dropped");
            acknowledge(ack);
            return;
        }
        let execution_id =
            Uuid::new_v5(&EXECUTION_NAMESPACE, format!("{}/{}", self.name, event.id).as_bytes()).to_string();
        if self.runtime.registry.executions.contains_key(&execution_id) {
            tracing::debug!(event_id = %event.id, "duplicate sequence trigger ignored");
            acknowledge(ack);
            return;
        }
        let definition =
            self.runtime.projects.shipyard(&self.name).ok_or_else(|| "project has no shipyard".to_owned()).and_then(
                |shipyard| {
                    let record = self.runtime.projects.get(&self.name);
                    let known_service =
                        record.as_ref().and_then(|r| r.stage(&stage)).is_none_or(|s| s.service(&service).is_some());
                    if !known_service {
                        return Err(format!(
                            "Unable to start sequence {sequence_name}: service {service} not found in stage {stage}"
                        ));
                    }
                    chaining::resolve(&shipyard, &stage, sequence_name)
                },
            );
        let definition = match definition {
            Ok(definition) => definition,
            Err(message) => {
                self.reject(&event, &execution_id, &stage, sequence_name, &service, message, ack, ctx);
                return;
            }
        };
        let gitcommitid = event
            .gitcommitid
            .clone()
            .filter(|id| !id.is_empty())
            .or_else(|| self.runtime.projects.repos().branch_head(&self.name, &stage));
        let scope = Scope {
            project: self.name.clone(),
            stage: stage.clone(),
            service,
            keptn_context: event.shkeptncontext.clone(),
            triggered_id: event.id.clone(),
            gitcommitid,
        };
        let paused = self.is_paused(&scope.keptn_context, &stage);
        let now = self.runtime.clock.now();
        let (execution, mut effects) =
            Execution::new(execution_id.clone(), definition, scope, Arc::new(event.data.clone()), now, paused);
        if let Some(prelude) = prelude {
            effects.insert(0, Effect::Publish(prelude));
        }
        self.runtime.registry.executions.insert(execution_id.clone(), Arc::new(execution.clone()));
        self.contexts.entry(execution.scope.keptn_context.clone()).or_default().push(execution_id.clone());
        let runtime = Arc::clone(&self.runtime);
        let project = ctx.address();
        let stage_actor = self.stage_actor(&stage);
        let address = Supervisor::start_in_arbiter(&Arbiter::current(), move |ctx| {
            ctx.set_mailbox_capacity(sequence::MAILBOX_CAPACITY);
            SequenceActor::new(execution, Start::New { effects, ack, history }, runtime, project, stage_actor)
        });
        self.live.insert(execution_id, address);
        metrics::counter!("keelson_sequences_started_total").increment(1);
        metrics::gauge!("keelson_sequences_active").increment(1.0);
    }

    /// Answers a trigger that cannot start with an errored `.finished`, as Keptn does.
    #[allow(clippy::too_many_arguments)]
    fn reject(
        &self,
        event: &CloudEvent,
        execution_id: &str,
        stage: &str,
        sequence_name: &str,
        service: &str,
        message: String,
        ack: Option<Ack>,
        ctx: &mut Context<Self>,
    ) {
        tracing::info!(project = %self.name, stage, sequence = sequence_name, %message, "sequence not started");
        let mut data = json!({
            "project": self.name, "stage": stage, "service": service,
            "status": ERRORED, "result": FAIL, "message": message,
        });
        if let Some(labels) = event.data.get("labels").filter(|labels| !labels.is_null()) {
            data["labels"] = labels.clone();
        }
        let id = Uuid::new_v5(&Uuid::parse_str(execution_id).unwrap_or(EXECUTION_NAMESPACE), b"finished").to_string();
        let mut finished = CloudEvent::emitted(
            &event_type::sequence(stage, sequence_name, event_type::FINISHED),
            id,
            event.shkeptncontext.clone(),
            self.runtime.clock.now(),
            data,
        );
        finished.triggeredid = Some(event.id.clone());
        let runtime = Arc::clone(&self.runtime);
        ctx.wait(
            async move {
                if let Some(stored) = runtime.publish_all(&[Arc::new(finished)]).await {
                    let _ = stored.await;
                }
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
            }
            .into_actor(self),
        );
    }

    /// Starts the `triggeredOn` followers of an ended execution; each receiver resolves once that
    /// follower (and the trigger it will publish) is durable.
    fn chain(&mut self, execution: &Execution, ctx: &mut Context<Self>) -> Vec<tokio::sync::oneshot::Receiver<()>> {
        let Some(shipyard) = self.runtime.projects.shipyard(&self.name) else { return Vec::new() };
        let mut followers = Vec::new();
        let targets = chaining::chained(
            &shipyard,
            &execution.scope.stage,
            &execution.definition.name,
            execution.chaining_result(),
            execution.last_task_name(),
        );
        let payload = execution.accumulated_payload();
        for target in targets {
            let mut data = payload.clone();
            data["stage"] = json!(target.stage);
            let namespace = Uuid::parse_str(&execution.id).unwrap_or(EXECUTION_NAMESPACE);
            let id = Uuid::new_v5(&namespace, format!("chain/{}/{}", target.stage, target.sequence).as_bytes());
            let trigger = CloudEvent::emitted(
                &event_type::sequence(&target.stage, &target.sequence, event_type::TRIGGERED),
                id.to_string(),
                execution.scope.keptn_context.clone(),
                self.runtime.clock.now(),
                data,
            );
            let trigger = Arc::new(trigger);
            let (ack, durable) = tokio::sync::oneshot::channel();
            self.start_sequence(Arc::clone(&trigger), Some(ack), Some(trigger), None, ctx);
            followers.push(durable);
        }
        followers
    }

    fn control(&mut self, control: Control) -> Result<(), ControlError> {
        let Some(execution_ids) = self.contexts.get(&control.keptn_context) else {
            return Err(ControlError::UnknownContext(control.keptn_context));
        };
        let in_scope: Vec<String> = execution_ids
            .iter()
            .filter(|id| {
                control.stage.is_none()
                    || self
                        .runtime
                        .registry
                        .executions
                        .get(*id)
                        .is_some_and(|execution| Some(&execution.scope.stage) == control.stage.as_ref())
            })
            .cloned()
            .collect();
        let context = control.keptn_context.clone();
        let command = match control.command {
            ControlCommand::Pause => {
                self.paused.insert((context, control.stage.clone()));
                Command::Pause
            }
            ControlCommand::Resume => {
                self.resume_flags(&context, control.stage.as_deref());
                Command::Resume
            }
            ControlCommand::Abort => {
                self.paused.retain(|(paused_context, _)| *paused_context != context);
                Command::Abort
            }
        };
        for id in in_scope {
            if let Some(address) = self.live.get(&id) {
                address.do_send(Apply::new(command.clone()));
            }
        }
        Ok(())
    }

    /// Queues the pause flags for storing (synchronously, so successive changes keep their order); the
    /// future resolves once they are durable.
    fn save_control(&self) -> impl std::future::Future<Output = ()> {
        let mut paused: Vec<(String, Option<String>)> = self.paused.iter().cloned().collect();
        paused.sort();
        let record = ControlRecord { schema_version: SCHEMA_VERSION, paused };
        let bytes = serde_json::to_vec(&record).expect("pause flags always serialise");
        self.runtime.snapshots.queue_in_order(control_key(&self.name), Some(bytes)).durable()
    }

    /// Clears pause flags. A context-wide resume clears every flag of the context; resuming one stage of
    /// a paused context keeps the other stages paused.
    fn resume_flags(&mut self, context: &str, stage: Option<&str>) {
        match stage {
            None => self.paused.retain(|(paused_context, _)| paused_context != context),
            Some(stage) => {
                if self.paused.remove(&(context.to_owned(), None)) {
                    if let Some(shipyard) = self.runtime.projects.shipyard(&self.name) {
                        for other in shipyard.stage_names().filter(|other| *other != stage) {
                            self.paused.insert((context.to_owned(), Some(other.to_owned())));
                        }
                    }
                }
                self.paused.remove(&(context.to_owned(), Some(stage.to_owned())));
            }
        }
    }
}

impl Actor for ProjectActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(retention) = self.runtime.retention {
            // Often enough that nothing outlives its retention by more than a quarter of it.
            let every =
                (retention / 4).clamp(std::time::Duration::from_millis(250), std::time::Duration::from_secs(3600));
            ctx.run_interval(every, move |actor, _| actor.forget_expired(retention));
        }
    }
}

impl ProjectActor {
    /// Forgets the contexts whose executions all ended longer ago than `retention`: from memory and
    /// from the store. Their events stay in the history.
    fn forget_expired(&mut self, retention: std::time::Duration) {
        let now = self.runtime.clock.now();
        let registry = &self.runtime.registry;
        let expired: Vec<String> = self
            .contexts
            .iter()
            .filter(|(_, ids)| !ids.iter().any(|id| self.live.contains_key(id)))
            .filter(|(_, ids)| {
                let executions: Vec<Arc<Execution>> = ids
                    .iter()
                    .filter_map(|id| registry.executions.get(id).map(|entry| Arc::clone(entry.value())))
                    .collect();
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
                registry.executions.remove(&id);
                keys.push(execution_key(&self.name, &id));
            }
        }
        metrics::counter!("keelson_executions_forgotten_total").increment(keys.len() as u64);
        tracing::debug!(project = %self.name, contexts = expired.len(), executions = keys.len(), "ended executions forgotten");
        let snapshots = self.runtime.snapshots.clone();
        actix::spawn(async move {
            for key in keys {
                drop(snapshots.delete(key).await);
            }
        });
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
        if !still_running {
            let before = self.paused.len();
            self.paused.retain(|(paused_context, _)| paused_context != context);
            if self.paused.len() != before {
                let persisted = self.save_control();
                ctx.spawn(persisted.into_actor(self));
            }
        }
        Box::pin(async move {
            for follower in followers {
                let _ = follower.await;
            }
        })
    }
}

impl Handler<Control> for ProjectActor {
    type Result = ResponseFuture<Result<(), ControlError>>;

    fn handle(&mut self, message: Control, _ctx: &mut Context<Self>) -> Self::Result {
        let outcome = self.control(message);
        let persisted = self.save_control();
        // Answers once the pause flags are durable, so an acknowledged pause survives a crash.
        Box::pin(async move {
            persisted.await;
            outcome
        })
    }
}

impl Handler<ProjectDeleted> for ProjectActor {
    type Result = ();

    fn handle(&mut self, _message: ProjectDeleted, ctx: &mut Context<Self>) {
        for address in self.live.values() {
            address.do_send(Apply::new(Command::Abort));
        }
        let registry = &self.runtime.registry;
        registry.executions.retain(|_, execution| execution.scope.project != self.name);
        registry.open_tasks.retain(|_, open| open.project != self.name);
        registry.projects.remove(&self.name);
        let mut keys: Vec<String> =
            self.contexts.values().flatten().map(|execution| execution_key(&self.name, execution)).collect();
        keys.push(control_key(&self.name));
        let snapshots = self.runtime.snapshots.clone();
        actix::spawn(async move {
            for key in keys {
                drop(snapshots.delete(key).await);
            }
        });
        self.live.clear();
        self.contexts.clear();
        self.paused.clear();
        self.stages.clear();
        ctx.stop();
    }
}

impl Handler<Restore> for ProjectActor {
    type Result = ();

    fn handle(&mut self, message: Restore, ctx: &mut Context<Self>) {
        self.paused.extend(message.control.paused);
        let mut records = message.executions;
        records.sort_by(|a, b| {
            (a.execution.triggered_at, &a.execution.id).cmp(&(b.execution.triggered_at, &b.execution.id))
        });
        for record in records {
            let execution = record.execution;
            let id = execution.id.clone();
            if self.runtime.registry.executions.contains_key(&id) {
                continue;
            }
            self.runtime.registry.executions.insert(id.clone(), Arc::new(execution.clone()));
            self.contexts.entry(execution.scope.keptn_context.clone()).or_default().push(id.clone());
            let terminal = execution.phase.is_terminal();
            if terminal && record.outbox.is_empty() && !record.chain_pending {
                continue;
            }
            if !terminal {
                metrics::gauge!("keelson_sequences_active").increment(1.0);
            }
            let stage_actor = self.stage_actor(&execution.scope.stage);
            let holder = execution.holds_slot.then(|| (execution.scope.service.clone(), execution.slot_ticket));
            let runtime = Arc::clone(&self.runtime);
            let project = ctx.address();
            let stage_for_actor = stage_actor.clone();
            let (outbox, chain_pending) = (record.outbox, record.chain_pending);
            let address = Supervisor::start_in_arbiter(&Arbiter::current(), move |ctx| {
                ctx.set_mailbox_capacity(sequence::MAILBOX_CAPACITY);
                SequenceActor::restored(execution, outbox, chain_pending, runtime, project, stage_for_actor)
            });
            if let Some((service, ticket)) = holder {
                // Sent before the restored actors run, so holders are back in place before any waiting
                // execution asks for a slot.
                stage_actor.do_send(RestoreHolder { service, execution: id.clone(), ticket, holder: address.clone() });
            }
            if !terminal {
                self.live.insert(id, address);
            }
        }
        tracing::info!(project = %self.name, executions = self.contexts.values().map(Vec::len).sum::<usize>(), running = self.live.len(), "project restored");
    }
}

impl Handler<SendToExecution> for ProjectActor {
    type Result = bool;

    fn handle(&mut self, message: SendToExecution, _ctx: &mut Context<Self>) -> bool {
        match self.live.get(&message.execution) {
            Some(address) => {
                address.do_send(Apply::new(message.command));
                true
            }
            None => false,
        }
    }
}

impl Handler<Freeze> for ProjectActor {
    type Result = ();

    fn handle(&mut self, message: Freeze, ctx: &mut Context<Self>) {
        ctx.wait(tokio::time::sleep(message.0).into_actor(self));
    }
}
