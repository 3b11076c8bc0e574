//! Where things are: actor addresses and read-only snapshots for the read APIs.
//!
//! Only addresses and immutable snapshots live here; each entry has exactly one writer (the actor that
//! owns the execution or project), so no domain state is shared for writing.

use std::sync::Arc;

use actix::Addr;
use dashmap::DashMap;

use super::project::ProjectActor;
use super::sequence::SequenceActor;
use crate::model::event::CloudEvent;
use crate::model::sequence::Execution;

/// A task `.triggered` event waiting for its executors.
#[derive(Clone)]
pub struct OpenTask {
    pub project: String,
    pub execution: Addr<SequenceActor>,
    pub event: Arc<CloudEvent>,
}

#[derive(Default)]
pub struct Registry {
    pub projects: DashMap<String, Addr<ProjectActor>>,
    /// Open task `.triggered` events by id: how executor responses find their execution, and what
    /// `GET /event/triggered/{type}` lists.
    pub open_tasks: DashMap<String, OpenTask>,
    /// The latest snapshot of every execution, by execution id.
    pub executions: DashMap<String, Arc<Execution>>,
}

impl Registry {
    /// Snapshots of `project`'s executions.
    pub fn executions_of(&self, project: &str) -> Vec<Arc<Execution>> {
        self.executions
            .iter()
            .filter(|entry| entry.value().scope.project == project)
            .map(|entry| Arc::clone(entry.value()))
            .collect()
    }
}
