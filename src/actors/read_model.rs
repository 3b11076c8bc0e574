//! The read model: the latest immutable snapshot of every execution and the open task `.triggered`
//! events, for the read APIs and for routing executor events.
//!
//! Written only through the narrow methods below, each entry by the one actor that owns it (the
//! execution's sequence actor, or its project actor when the project goes away).

use std::sync::Arc;

use actix::Recipient;
use dashmap::DashMap;

use super::protocol::Apply;
use crate::model::event::CloudEvent;
use crate::model::sequence::Execution;

/// A task `.triggered` event waiting for its executors.
#[derive(Clone)]
pub struct OpenTask {
    pub project: String,
    pub execution: Recipient<Apply>,
    pub event: Arc<CloudEvent>,
}

#[derive(Default)]
pub struct ReadModel {
    /// Open task `.triggered` events by id: how executor responses find their execution, and what
    /// `GET /event/triggered/{type}` lists.
    open_tasks: DashMap<String, OpenTask>,
    /// The latest snapshot of every execution, by execution id.
    executions: DashMap<String, Arc<Execution>>,
}

impl ReadModel {
    /// Publishes the state of an execution after a step.
    pub fn publish(&self, execution: Arc<Execution>) {
        self.executions.insert(execution.id.clone(), execution);
    }

    /// Forgets an execution (its project was deleted, or its retention ran out).
    pub fn forget(&self, execution: &str) {
        self.executions.remove(execution);
    }

    pub fn open_task(&self, task: OpenTask) {
        self.open_tasks.insert(task.event.id.clone(), task);
    }

    pub fn close_task(&self, triggered_id: &str) {
        self.open_tasks.remove(triggered_id);
    }

    /// Forgets everything of a deleted project.
    pub fn forget_project(&self, project: &str) {
        self.executions.retain(|_, execution| execution.scope.project != project);
        self.open_tasks.retain(|_, open| open.project != project);
    }

    /// Forgets everything of the projects `moved` selects (they went to another instance).
    pub fn forget_projects(&self, moved: &impl Fn(&str) -> bool) {
        self.executions.retain(|_, execution| !moved(&execution.scope.project));
        self.open_tasks.retain(|_, open| !moved(&open.project));
    }

    pub fn execution(&self, id: &str) -> Option<Arc<Execution>> {
        self.executions.get(id).map(|entry| Arc::clone(entry.value()))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.executions.contains_key(id)
    }

    /// Snapshots of `project`'s executions.
    pub fn executions_of(&self, project: &str) -> Vec<Arc<Execution>> {
        self.executions
            .iter()
            .filter(|entry| entry.value().scope.project == project)
            .map(|entry| Arc::clone(entry.value()))
            .collect()
    }

    /// How many executions there are, ended ones included.
    pub fn execution_count(&self) -> usize {
        self.executions.len()
    }

    /// Counts every execution by `key` (e.g. its state name).
    pub fn count_by<K: Ord>(&self, key: impl Fn(&Execution) -> K) -> std::collections::BTreeMap<K, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for entry in self.executions.iter() {
            *counts.entry(key(entry.value())).or_default() += 1;
        }
        counts
    }

    /// The execution (and its project) waiting for events answering `triggered_id`.
    pub fn open_task_target(&self, triggered_id: &str) -> Option<(Recipient<Apply>, String)> {
        self.open_tasks.get(triggered_id).map(|entry| (entry.execution.clone(), entry.project.clone()))
    }

    /// The open `.triggered` events of type `event_type`.
    pub fn open_events(&self, event_type: &str) -> Vec<Arc<CloudEvent>> {
        self.open_tasks
            .iter()
            .filter(|entry| entry.value().event.event_type == event_type)
            .map(|entry| Arc::clone(&entry.value().event))
            .collect()
    }
}
