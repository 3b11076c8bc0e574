//! Start-up recovery: every stored execution and pause flag goes back to its project's actor, which
//! restarts what was running, re-arms timers from stored deadlines and republishes unsent events.

use std::collections::HashMap;

use super::directory::Directory;
use super::protocol::Restore;
use super::snapshot::{self, ControlRecord, ExecutionRecord, CONTROL_PREFIX, EXECUTION_PREFIX};
use crate::store::SnapshotStore;

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub executions: usize,
    /// Executions that were still running.
    pub running: usize,
    /// Records that could not be read (logged and left in place).
    pub unreadable: usize,
    /// Records of projects that no longer exist (removed).
    pub orphaned: usize,
}

impl Directory {
    /// Rebuilds every project's actors from `store`. Call once, before serving.
    pub async fn recover(&self, store: &dyn SnapshotStore) -> crate::store::Result<Recovered> {
        self.recover_where(store, |_| true).await
    }

    /// Rebuilds the actors of the projects `select` picks (in a cluster: those of the shards just
    /// acquired, read only after the acquisition made older owners' writes impossible).
    pub async fn recover_where(
        &self,
        store: &dyn SnapshotStore,
        select: impl Fn(&str) -> bool,
    ) -> crate::store::Result<Recovered> {
        let selected = |key: &str| snapshot::project_of_key(key).is_some_and(&select);
        let mut report = Recovered::default();
        let mut by_project: HashMap<String, (Vec<ExecutionRecord>, ControlRecord)> = HashMap::new();
        for (key, bytes) in store.scan_prefix(EXECUTION_PREFIX).await? {
            if !selected(&key) {
                continue;
            }
            match snapshot::decode_execution(&bytes) {
                Ok(record) => {
                    report.executions += 1;
                    if !record.execution.phase.is_terminal() {
                        report.running += 1;
                    }
                    let project = record.execution.scope.project.clone();
                    by_project.entry(project).or_default().0.push(record);
                }
                Err(error) => {
                    report.unreadable += 1;
                    metrics::counter!("keelson_snapshot_unreadable_total").increment(1);
                    tracing::error!(key, %error, "stored execution cannot be read; left in place");
                }
            }
        }
        for (key, bytes) in store.scan_prefix(CONTROL_PREFIX).await? {
            if !selected(&key) {
                continue;
            }
            match snapshot::decode_control(&bytes) {
                Ok(record) => by_project.entry(key[CONTROL_PREFIX.len()..].to_owned()).or_default().1 = record,
                Err(error) => {
                    report.unreadable += 1;
                    tracing::error!(key, %error, "stored pause flags cannot be read; left in place");
                }
            }
        }
        for (project, (executions, control)) in by_project {
            let Some(actor) = self.project(&project) else {
                // The project was deleted while its records were being removed.
                report.orphaned += executions.len();
                for record in &executions {
                    let key = snapshot::execution_key(&project, &record.execution.id);
                    drop(self.runtime().snapshots.delete(key).await);
                }
                drop(self.runtime().snapshots.delete(snapshot::control_key(&project)).await);
                continue;
            };
            if actor.send(Restore { executions, control }).await.is_err() {
                tracing::error!(project, "project actor stopped during recovery");
            }
        }
        Ok(report)
    }
}
