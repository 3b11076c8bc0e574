//! What every actor shares: the stores, the way out, time and the read model; and the panic guard
//! around every step.

use std::sync::Arc;

use super::read_model::ReadModel;
use crate::clock::Clock;
use crate::emitter::Emitter;
use crate::model::sequence::Timeouts;
use crate::projects::ProjectManager;
use crate::store::history::HistoryWriter;
use crate::store::snapshots::SnapshotWriter;

/// What every actor needs: the stores, the way out, time, and the read model.
pub struct Runtime {
    pub projects: Arc<ProjectManager>,
    /// How the actors' events leave: history, then bus.
    pub emitter: Emitter,
    /// Where incoming events are recorded.
    pub history: HistoryWriter,
    /// Where actors persist their state before acknowledging inputs and publishing.
    pub snapshots: SnapshotWriter,
    pub clock: Arc<dyn Clock>,
    pub timeouts: Timeouts,
    /// Ended executions are forgotten this long after their context ended (`None`: kept).
    pub retention: Option<std::time::Duration>,
    pub read_model: ReadModel,
}

impl Runtime {
    pub fn new(
        projects: Arc<ProjectManager>,
        emitter: Emitter,
        history: HistoryWriter,
        snapshots: SnapshotWriter,
        clock: Arc<dyn Clock>,
        timeouts: Timeouts,
        retention: Option<std::time::Duration>,
    ) -> Arc<Self> {
        Arc::new(Self {
            projects,
            emitter,
            history,
            snapshots,
            clock,
            timeouts,
            retention,
            read_model: ReadModel::default(),
        })
    }

    /// Why new work cannot be accepted now (a store that keeps failing, a disconnected bus), if it cannot.
    pub fn storage_problem(&self) -> Option<String> {
        self.snapshots
            .health()
            .problem()
            .or_else(|| self.history.health().problem())
            .or_else(|| self.emitter.bus_problem())
    }
}

/// Runs `work`, turning a panic into its message (logged and counted) so the caller can restore and
/// restart.
pub(crate) fn guarded<T>(actor: &'static str, work: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        metrics::counter!("keelson_actor_panics_total", "actor" => actor).increment(1);
        tracing::error!(actor, panic = %message, "actor panicked; restarting it from its last state");
        message
    })
}
