//! The sequence execution state machine: one run of one shipyard sequence in one stage for one service.
//!
//! [`Execution::apply`] is a pure function of the state, an [`Input`] and the time it is given: no I/O,
//! no clock, no randomness. Event ids are derived from the execution id, so replaying the same inputs
//! produces the same events with the same ids. The actor that hosts an execution performs the returned
//! [`Effect`]s (publishing events, arming one timer, taking and releasing the service's run slot).
//!
//! # Flow
//! `Queued` → (slot granted) → `Running` ⇄ `WaitingForApproval` → `Finished` | `TimedOut`, with `paused`
//! as a flag on any non-terminal phase. A task is dispatched once it is due (`triggeredAfter`), the
//! execution is not paused and — for every task but `approval` — the execution holds its service's slot
//! in the stage: one sequence at a time deploys a service, while open approvals block nobody.
//!
//! # Guarantees
//! - At most one task is open at a time; task indexes only grow.
//! - A task's `.triggered` event is published exactly once per execution (its id is derived).
//! - A terminal execution emits nothing more, holds no slot and arms no timer.

pub mod aggregate;
pub mod control;
pub mod ids;
pub mod retention;
pub mod start;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use self::aggregate::Report;
use super::duration::later;
use super::event::CloudEvent;
use super::event_type::{self, EventType};
use super::payload::{as_object_mut, merge};
use super::verdict::{TaskResult, TaskStatus};

/// Name of the task that waits for a human (or the approval service) and blocks no other sequence.
pub const APPROVAL_TASK: &str = "approval";

/// A sequence as the shipyard defines it, copied into each execution so later shipyard edits do not
/// change a running sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub name: String,
    pub tasks: Vec<TaskDefinition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_duration")]
    pub triggered_after: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
}

/// Where and for whom an execution runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub project: String,
    pub stage: String,
    pub service: String,
    pub keptn_context: String,
    /// Id of the `<stage>.<sequence>.triggered` event that started this execution.
    pub triggered_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitcommitid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Waiting for its service's slot in the stage.
    Queued,
    Running,
    WaitingForApproval,
    Finished,
    TimedOut,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Finished | Phase::TimedOut)
    }
}

/// A task that has completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedTask {
    pub name: String,
    pub triggered_id: String,
    pub result: TaskResult,
    pub status: TaskStatus,
    /// Merged data of the task's `.finished` events.
    pub properties: Arc<Value>,
}

/// An executor's event for the current task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEventRecord {
    pub event_type: String,
    pub source: String,
    pub result: String,
    pub status: String,
    pub time: DateTime<Utc>,
    pub id: String,
    /// Full data of a `.finished` event; absent for `.started`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Arc<Value>>,
}

/// The open task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentTask {
    pub index: usize,
    pub name: String,
    pub triggered_id: String,
    /// Earliest dispatch time (`triggeredAfter`).
    pub due_at: DateTime<Utc>,
    /// The published `.triggered` event, once dispatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_event: Option<Arc<CloudEvent>>,
    pub events: Vec<TaskEventRecord>,
}

impl CurrentTask {
    fn dispatched_at(&self) -> Option<DateTime<Utc>> {
        self.triggered_event.as_ref().and_then(|event| event.time)
    }

    fn started_count(&self) -> usize {
        self.events.iter().filter(|event| event.properties.is_none()).count()
    }

    fn finished_count(&self) -> usize {
        self.events.len() - self.started_count()
    }

    fn first_response_at(&self) -> Option<DateTime<Utc>> {
        self.events.iter().map(|event| event.time).min()
    }

    /// Complete when every executor that started has finished, and at least one finished. A `.finished`
    /// without a `.started` counts (Keptn would wait forever).
    fn is_complete(&self) -> bool {
        let finished = self.finished_count();
        finished > 0 && finished >= self.started_count()
    }
}

/// How and why an execution ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: TaskStatus,
    pub result: TaskResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub ended_at: DateTime<Utc>,
}

/// Timeouts applied to dispatched tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A dispatched task with no `.started`/`.finished` by then times the sequence out.
    pub started: Duration,
    /// A task that started but has not finished by then times the sequence out; `None` = never.
    pub finished: Option<Duration>,
}

/// One sequence execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: String,
    pub definition: Arc<Definition>,
    pub scope: Scope,
    /// `data` of the trigger event.
    pub input: Arc<Value>,
    pub triggered_at: DateTime<Utc>,
    pub phase: Phase,
    pub paused: bool,
    /// Whether this execution owns its service's run slot in the stage.
    pub holds_slot: bool,
    /// Whether a slot request is outstanding.
    pub wants_slot: bool,
    /// Number of the latest slot request or withdrawal; a grant carrying an older number crossed a
    /// withdrawal and is ignored (the stage has already taken that request back).
    #[serde(default)]
    pub slot_ticket: u64,
    pub previous_tasks: Vec<CompletedTask>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task: Option<CurrentTask>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// What can happen to an execution.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// The stage handed this execution its service's slot in answer to request `ticket`.
    SlotGranted {
        ticket: u64,
    },
    /// A `.started` or `.finished` event of a task.
    TaskEvent(&'a CloudEvent),
    /// The timer armed by [`Effect::WakeAt`] fired.
    Tick,
    Pause,
    Resume,
    Abort,
    /// Its host gave up on it (its steps kept failing): the execution ends errored with this message.
    Fail {
        message: &'a str,
    },
}

/// What the hosting actor must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Publish(Arc<CloudEvent>),
    /// Ask the stage for this service's slot; it answers with [`Input::SlotGranted`] and this ticket.
    RequestSlot {
        ticket: u64,
    },
    /// Give the slot back, or withdraw an outstanding request.
    ReleaseSlot,
    /// Arm the single timer for this time, replacing any earlier one.
    WakeAt(DateTime<Utc>),
    /// The execution has ended; with `chain`, `triggeredOn` sequences are to be evaluated.
    Ended {
        chain: bool,
    },
}

/// Whether an input changed anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Changed,
    Ignored(&'static str),
}

/// Result of one [`Execution::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub applied: Applied,
    pub effects: Vec<Effect>,
}

impl Execution {
    /// A new execution for a `<stage>.<sequence>.triggered` event, waiting for its slot (or paused).
    pub fn new(
        id: String,
        definition: Arc<Definition>,
        scope: Scope,
        input: Arc<Value>,
        triggered_at: DateTime<Utc>,
        paused: bool,
    ) -> (Self, Vec<Effect>) {
        assert!(!definition.tasks.is_empty(), "a sequence without tasks cannot start");
        let mut execution = Self {
            id,
            definition,
            scope,
            input,
            triggered_at,
            phase: Phase::Queued,
            paused,
            holds_slot: false,
            wants_slot: false,
            slot_ticket: 0,
            previous_tasks: Vec::new(),
            current_task: None,
            outcome: None,
        };
        let mut effects = Vec::new();
        execution.advance(triggered_at, &mut effects);
        (execution, effects)
    }

    /// The id of the event derived from this execution for `purpose` (stable across replays).
    pub fn derived_id(&self, purpose: &str) -> String {
        ids::event_id(&self.id, purpose)
    }

    /// Keptn's state name for this execution.
    pub fn state_name(&self) -> &'static str {
        if self.paused && !self.phase.is_terminal() {
            "paused"
        } else {
            self.unpaused_state_name()
        }
    }

    /// Keptn's state name for this execution's phase, ignoring a pause (`stateBeforePause`).
    pub fn unpaused_state_name(&self) -> &'static str {
        match self.phase {
            Phase::Queued => "triggered",
            Phase::Running => "started",
            Phase::WaitingForApproval => "waitingForApproval",
            Phase::Finished => "finished",
            Phase::TimedOut => "timedOut",
        }
    }

    /// The current task's `.triggered` event while it waits for executors.
    pub fn open_triggered_event(&self) -> Option<&Arc<CloudEvent>> {
        self.current_task.as_ref().and_then(|task| task.triggered_event.as_ref())
    }

    /// Result of the sequence so far: the worst task result (a warning is not lost by a later pass).
    pub fn result(&self) -> TaskResult {
        aggregate::worst(self.previous_tasks.iter().map(|task| task.result))
    }

    /// The result `triggeredOn` selectors see: a sequence stopped by an errored or aborted task counts as
    /// `fail`, so it never promotes work that was not done.
    pub fn chaining_result(&self) -> TaskResult {
        match self.previous_tasks.last() {
            Some(last) if last.status.stops() => TaskResult::Fail,
            _ => self.result(),
        }
    }

    /// Name of the last task that completed.
    pub fn last_task_name(&self) -> Option<&str> {
        self.previous_tasks.last().map(|task| task.name.as_str())
    }

    /// The payload accumulated so far: trigger data, scope, every completed task's data, and the last
    /// task's result and status (Keptn's `GetNextTriggeredEventData` without task properties).
    pub fn accumulated_payload(&self) -> Value {
        let mut data = (*self.input).clone();
        {
            let object = as_object_mut(&mut data);
            object.insert("project".into(), json!(self.scope.project));
            object.insert("stage".into(), json!(self.scope.stage));
            object.insert("service".into(), json!(self.scope.service));
        }
        for task in &self.previous_tasks {
            merge(&mut data, &task.properties);
        }
        if let Some(last) = self.previous_tasks.last() {
            let object = as_object_mut(&mut data);
            object.insert("result".into(), json!(last.result));
            object.insert("status".into(), json!(last.status));
        }
        data
    }

    /// Applies `input` at `now`. Never panics on bad input: events that do not fit are ignored.
    pub fn apply(&mut self, input: Input<'_>, now: DateTime<Utc>, timeouts: Timeouts) -> Step {
        let mut effects = Vec::new();
        let applied = match input {
            // A grant after the end crossed the release sent at the end; the stage has taken it back.
            _ if self.phase.is_terminal() => Applied::Ignored("sequence has ended"),
            Input::SlotGranted { ticket } => self.on_slot_granted(ticket, now, &mut effects),
            Input::TaskEvent(event) => self.on_task_event(event, now, &mut effects),
            Input::Tick => self.on_tick(now, timeouts, &mut effects),
            Input::Pause => self.on_pause(&mut effects),
            Input::Resume => self.on_resume(now, &mut effects),
            Input::Abort => {
                let data = self.finished_data(TaskStatus::Aborted, TaskResult::Pass, None);
                self.finish(Phase::Finished, data, false, now, &mut effects);
                Applied::Changed
            }
            Input::Fail { message } => {
                let data = self.finished_data(TaskStatus::Errored, TaskResult::Fail, Some(message.to_owned()));
                self.finish(Phase::Finished, data, false, now, &mut effects);
                Applied::Changed
            }
        };
        if applied == Applied::Changed {
            if let Some(at) = self.next_wake_up(now, timeouts) {
                effects.push(Effect::WakeAt(at));
            }
        }
        self.check_invariants();
        Step { applied, effects }
    }

    fn on_slot_granted(&mut self, ticket: u64, now: DateTime<Utc>, effects: &mut Vec<Effect>) -> Applied {
        if self.holds_slot {
            return Applied::Ignored("slot already held");
        }
        if !self.wants_slot || ticket != self.slot_ticket {
            // The grant crossed a withdrawal, which the stage processes after sending it.
            return Applied::Ignored("stale slot grant");
        }
        self.wants_slot = false;
        self.holds_slot = true;
        self.advance(now, effects);
        Applied::Changed
    }

    fn on_pause(&mut self, effects: &mut Vec<Effect>) -> Applied {
        if self.paused {
            return Applied::Ignored("already paused");
        }
        self.paused = true;
        if self.wants_slot {
            self.wants_slot = false;
            self.slot_ticket += 1;
            effects.push(Effect::ReleaseSlot);
        }
        Applied::Changed
    }

    fn on_resume(&mut self, now: DateTime<Utc>, effects: &mut Vec<Effect>) -> Applied {
        if !self.paused {
            return Applied::Ignored("not paused");
        }
        self.paused = false;
        self.advance(now, effects);
        Applied::Changed
    }

    fn on_tick(&mut self, now: DateTime<Utc>, timeouts: Timeouts, effects: &mut Vec<Effect>) -> Applied {
        if let Some(task) = &self.current_task {
            if let Some(dispatched_at) = task.dispatched_at() {
                let task_type = event_type::task(&task.name, event_type::TRIGGERED);
                if task.events.is_empty() && now >= later(dispatched_at, timeouts.started) {
                    let message = format!(
                        "sequence timed out while waiting for task {task_type} to receive a correlating .started or .finished event"
                    );
                    let data = self.finished_data(TaskStatus::Errored, TaskResult::Fail, Some(message));
                    self.finish(Phase::TimedOut, data, false, now, effects);
                    return Applied::Changed;
                }
                let finished_deadline =
                    timeouts.finished.zip(task.first_response_at()).map(|(limit, at)| later(at, limit));
                if finished_deadline.is_some_and(|deadline| now >= deadline) {
                    let message =
                        format!("sequence timed out while waiting for task {task_type} to receive a .finished event");
                    let data = self.finished_data(TaskStatus::Errored, TaskResult::Fail, Some(message));
                    self.finish(Phase::TimedOut, data, false, now, effects);
                    return Applied::Changed;
                }
            }
        }
        // A due task (triggeredAfter) goes out now; an early wake-up only re-arms the timer.
        self.advance(now, effects);
        Applied::Changed
    }

    fn on_task_event(&mut self, event: &CloudEvent, now: DateTime<Utc>, effects: &mut Vec<Effect>) -> Applied {
        let EventType::Task { task: task_name, kind } = event_type::parse(&event.event_type) else {
            return Applied::Ignored("not a task event");
        };
        let is_finished = match kind {
            event_type::STARTED => false,
            event_type::FINISHED => true,
            _ => return Applied::Ignored("not a .started or .finished event"),
        };
        let Some(task) = self.current_task.as_mut() else {
            return Applied::Ignored("no open task");
        };
        if task.triggered_event.is_none() || event.triggeredid.as_deref() != Some(task.triggered_id.as_str()) {
            return Applied::Ignored("triggeredid does not match the open task");
        }
        if task_name != task.name {
            return Applied::Ignored("task name does not match the open task");
        }
        if !event.id.is_empty() && task.events.iter().any(|seen| seen.id == event.id) {
            return Applied::Ignored("duplicate event id");
        }
        let text = |key: &str| event.data.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        task.events.push(TaskEventRecord {
            event_type: event.event_type.clone(),
            source: event.source.clone(),
            result: text("result"),
            status: text("status"),
            time: now,
            id: event.id.clone(),
            properties: is_finished.then(|| Arc::new(event.data.clone())),
        });
        if task.is_complete() {
            self.complete_current_task(now, effects);
        }
        Applied::Changed
    }

    fn complete_current_task(&mut self, now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        let task = self.current_task.take().expect("completing an open task");
        let reports = task.events.iter().filter_map(|record| {
            record.properties.as_ref().map(|data| Report { result: &record.result, status: &record.status, data })
        });
        let outcome = aggregate::aggregate(reports);
        let stops = outcome.result == TaskResult::Fail || outcome.status.stops();
        self.previous_tasks.push(CompletedTask {
            name: task.name,
            triggered_id: task.triggered_id,
            result: outcome.result,
            status: outcome.status,
            properties: Arc::new(outcome.properties),
        });
        let next_index = task.index + 1;
        if stops || next_index >= self.definition.tasks.len() {
            let result = self.result();
            let data = self.finished_data(outcome.status, result, None);
            self.finish(Phase::Finished, data, true, now, effects);
            return;
        }
        self.open_task(next_index, now);
        self.advance(now, effects);
    }

    fn open_task(&mut self, index: usize, now: DateTime<Utc>) {
        let definition = &self.definition.tasks[index];
        let due_at = later(now, definition.triggered_after.unwrap_or_default());
        self.current_task = Some(CurrentTask {
            index,
            name: definition.name.clone(),
            triggered_id: ids::task_triggered_id(&self.id, index),
            due_at,
            triggered_event: None,
            events: Vec::new(),
        });
    }

    /// Moves forward as far as the current conditions allow: start, dispatch the open task, or wait.
    fn advance(&mut self, now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        if self.phase == Phase::Queued {
            if self.paused {
                return;
            }
            if !self.holds_slot {
                self.request_slot(effects);
                return;
            }
            self.phase = Phase::Running;
            self.open_task(0, now);
        }
        let Some(task) = &self.current_task else { return };
        if task.triggered_event.is_some() || self.paused || now < task.due_at {
            return;
        }
        let is_approval = task.name == APPROVAL_TASK;
        if !is_approval && !self.holds_slot {
            self.request_slot(effects);
            return;
        }
        if is_approval && self.holds_slot {
            // An open approval blocks no other sequence of this service.
            self.holds_slot = false;
            effects.push(Effect::ReleaseSlot);
        }
        self.dispatch(now, effects);
    }

    fn request_slot(&mut self, effects: &mut Vec<Effect>) {
        if !self.wants_slot {
            self.wants_slot = true;
            self.slot_ticket += 1;
            effects.push(Effect::RequestSlot { ticket: self.slot_ticket });
        }
    }

    fn dispatch(&mut self, now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        let payload = self.next_task_payload();
        let task = self.current_task.as_mut().expect("dispatching an open task");
        let mut event = CloudEvent::emitted(
            &event_type::task(&task.name, event_type::TRIGGERED),
            task.triggered_id.clone(),
            self.scope.keptn_context.clone(),
            now,
            payload,
        );
        event.gitcommitid = self.scope.gitcommitid.clone();
        self.phase = if task.name == APPROVAL_TASK { Phase::WaitingForApproval } else { Phase::Running };
        let event = Arc::new(event);
        task.triggered_event = Some(Arc::clone(&event));
        effects.push(Effect::Publish(event));
    }

    /// The `.triggered` payload of the open task (spec §2.4): the accumulated payload, the task's
    /// shipyard properties merged under its name, and `message` cleared.
    fn next_task_payload(&self) -> Value {
        let task = self.current_task.as_ref().expect("payload of an open task");
        let mut data = self.accumulated_payload();
        if let Some(properties) = &self.definition.tasks[task.index].properties {
            let object = as_object_mut(&mut data);
            let entry = object.entry(task.name.clone()).or_insert_with(|| json!({}));
            merge(entry, properties);
        }
        if let Some(message) = as_object_mut(&mut data).get_mut("message") {
            if !message.is_null() {
                *message = json!("");
            }
        }
        data
    }

    /// `data` of the sequence `.finished` event: the trigger's scope and labels plus the outcome.
    fn finished_data(&self, status: TaskStatus, result: TaskResult, message: Option<String>) -> Value {
        let mut data = json!({
            "project": self.scope.project,
            "stage": self.scope.stage,
            "service": self.scope.service,
            "status": status,
            "result": result,
        });
        if let Some(labels) = self.input.get("labels").filter(|labels| !labels.is_null()) {
            data["labels"] = labels.clone();
        }
        // The reason an executor gave for the last task (e.g. why it failed) travels on.
        let executor_message = self
            .previous_tasks
            .last()
            .and_then(|task| task.properties.get("message"))
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_owned);
        if let Some(message) = message.or(executor_message) {
            data["message"] = json!(message);
        }
        data
    }

    fn finish(&mut self, phase: Phase, data: Value, chain: bool, now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        debug_assert!(phase.is_terminal());
        if self.holds_slot || self.wants_slot {
            self.slot_ticket += 1;
            effects.push(Effect::ReleaseSlot);
        }
        self.holds_slot = false;
        self.wants_slot = false;
        self.phase = phase;
        self.current_task = None;
        let text = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
        // `data` is always built by `finished_data`, which writes both as typed values.
        fn read<T: serde::de::DeserializeOwned>(data: &Value, key: &str) -> Option<T> {
            data.get(key).cloned().and_then(|value| serde_json::from_value(value).ok())
        }
        self.outcome = Some(Outcome {
            status: read(&data, "status").unwrap_or(TaskStatus::Unknown),
            result: read(&data, "result").unwrap_or(TaskResult::Fail),
            message: text("message"),
            ended_at: now,
        });
        let mut event = CloudEvent::emitted(
            &event_type::sequence(&self.scope.stage, &self.definition.name, event_type::FINISHED),
            ids::sequence_finished_id(&self.id),
            self.scope.keptn_context.clone(),
            now,
            data,
        );
        event.triggeredid = Some(self.scope.triggered_id.clone());
        effects.push(Effect::Publish(Arc::new(event)));
        effects.push(Effect::Ended { chain });
    }

    /// The earliest time something may happen without new input.
    pub fn next_wake_up(&self, now: DateTime<Utc>, timeouts: Timeouts) -> Option<DateTime<Utc>> {
        if self.phase.is_terminal() {
            return None;
        }
        let task = self.current_task.as_ref()?;
        match task.dispatched_at() {
            None if !self.paused && task.due_at > now => Some(task.due_at),
            None => None,
            Some(dispatched_at) if task.events.is_empty() => Some(later(dispatched_at, timeouts.started)),
            Some(_) => timeouts.finished.zip(task.first_response_at()).map(|(limit, at)| later(at, limit)),
        }
    }

    fn check_invariants(&self) {
        if self.phase.is_terminal() {
            assert!(!self.holds_slot && !self.wants_slot, "an ended execution holds no slot");
            assert!(self.current_task.is_none(), "an ended execution has no open task");
            assert!(self.outcome.is_some(), "an ended execution has an outcome");
        }
        if let Some(task) = &self.current_task {
            assert_eq!(task.index, self.previous_tasks.len(), "tasks run in order, one at a time");
            assert!(task.index < self.definition.tasks.len());
        }
        assert!(!(self.holds_slot && self.wants_slot), "a slot is either held or wanted");
    }
}

/// Serde for `Option<Duration>` as milliseconds.
mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_u64(duration.as_millis() as u64),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests;
