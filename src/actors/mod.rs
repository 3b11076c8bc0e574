//! The actor shell around the pure model: a project actor per project, a stage actor per project stage
//! and a sequence actor per running sequence execution, fed by the [`router::EventRouter`].
//!
//! Actors decide no domain question: they hand inputs to the pure state machine in
//! [`crate::model::sequence`] and perform the effects it returns. Each is started under an actix
//! `Supervisor`; a panic while applying an input is caught at the actor boundary, the state from before
//! the input is restored, and the actor restarts from it, so one bad input affects one execution only.

pub mod labels;
pub mod lanes;
pub mod project;
pub mod recovery;
pub mod registry;
pub mod router;
pub mod sequence;
pub mod snapshot;
pub mod stage;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use actix::{Addr, Arbiter, ArbiterHandle, Supervisor};

use crate::bus::Bus;
use crate::model::clock::Clock;
use crate::model::event::CloudEvent;
use crate::model::sequence::Timeouts;
use crate::projects::ProjectManager;
use crate::store::history::{HistoryWriter, Stored};
use crate::store::snapshots::SnapshotWriter;

pub use registry::Registry;

/// What every actor needs: the stores, the bus, time, and where the other actors are.
pub struct Runtime {
    pub projects: Arc<ProjectManager>,
    pub bus: Arc<dyn Bus>,
    pub history: HistoryWriter,
    /// Where actors persist their state before acknowledging inputs and publishing.
    pub snapshots: SnapshotWriter,
    pub clock: Arc<dyn Clock>,
    pub timeouts: Timeouts,
    /// Ended executions are forgotten this long after their context ended (`None`: kept).
    pub retention: Option<std::time::Duration>,
    pub registry: Registry,
    /// One arbiter (thread) per core; a project's actors all live on the arbiter its name hashes to.
    arbiters: Vec<Arbiter>,
}

impl Runtime {
    pub fn new(
        projects: Arc<ProjectManager>,
        bus: Arc<dyn Bus>,
        history: HistoryWriter,
        snapshots: SnapshotWriter,
        clock: Arc<dyn Clock>,
        timeouts: Timeouts,
        retention: Option<std::time::Duration>,
    ) -> Arc<Self> {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        let arbiters = (0..cores).map(|_| Arbiter::new()).collect();
        Arc::new(Self {
            projects,
            bus,
            history,
            snapshots,
            clock,
            timeouts,
            retention,
            registry: Registry::default(),
            arbiters,
        })
    }

    fn arbiter_for(&self, project: &str) -> ArbiterHandle {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        project.hash(&mut hasher);
        self.arbiters[(hasher.finish() as usize) % self.arbiters.len()].handle()
    }

    /// The project's actor, started on first use; `None` for a project that does not exist.
    pub fn project_actor(self: &Arc<Self>, project: &str) -> Option<Addr<project::ProjectActor>> {
        if let Some(address) = self.registry.projects.get(project) {
            if address.connected() {
                return Some(address.clone());
            }
        }
        self.projects.get(project)?;
        let entry = self.registry.projects.entry(project.to_owned());
        let address = match entry {
            dashmap::mapref::entry::Entry::Occupied(occupied) if occupied.get().connected() => occupied.get().clone(),
            entry => {
                let runtime = Arc::clone(self);
                let name = project.to_owned();
                let address = Supervisor::start_in_arbiter(&self.arbiter_for(project), move |ctx| {
                    ctx.set_mailbox_capacity(project::MAILBOX_CAPACITY);
                    project::ProjectActor::new(name, runtime)
                });
                entry.insert(address.clone());
                address
            }
        };
        Some(address)
    }

    /// Queues `events` for the history and publishes them on the bus, in order; the receiver resolves
    /// once the history holds all of them (`None` for no events).
    pub async fn publish_all(&self, events: &[Arc<CloudEvent>]) -> Option<Stored> {
        let (last, rest) = events.split_last()?;
        for event in rest {
            self.history.record(Arc::clone(event)).await;
        }
        let stored = self.history.record_confirmed(Arc::clone(last)).await;
        for event in events {
            if let Err(error) = self.bus.publish_shared(event).await {
                metrics::counter!("keelson_event_emit_failures_total", "stage" => "publish").increment(1);
                tracing::warn!(event_type = %event.event_type, event_id = %event.id, %error, "could not publish event");
            }
        }
        Some(stored)
    }

    /// Why new work cannot be accepted now (a store that keeps failing, a disconnected bus), if it cannot.
    pub fn storage_problem(&self) -> Option<String> {
        self.snapshots.health().problem().or_else(|| self.history.health().problem()).or_else(|| self.bus.problem())
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
