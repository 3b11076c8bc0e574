//! The control plane as its HTTP API sees it: a small set of operations over the router, the project
//! actors and the read model. Handlers call these instead of sending actor messages or reading maps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::protocol::{Control, ControlCommand, ControlError, ProjectDeleted};
use super::router::EventRouter;
use crate::cluster::forward::{Destination, Forwarder, Reply};
use crate::model::event::CloudEvent;
use crate::model::sequence::Execution;

/// How long an accepted event may take to become durable before the caller is told it is pending.
const DURABLE_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting acceptance checks whether a store has started failing.
const HEALTH_POLL: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct ControlHandle {
    router: EventRouter,
    /// In a cluster: events of projects served elsewhere go to their owner.
    forwarder: Option<Forwarder>,
}

/// How an incoming event was taken in.
#[derive(Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// Recorded, applied and durable, and forwarded to the bus's other subscribers.
    Applied,
    /// Accepted, but a store is failing or slow (`problem`): it is applied and forwarded once the store
    /// answers. Clients must not send it again.
    Pending { problem: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// Refused up front (nothing was recorded): a store keeps failing or the bus is away.
    #[error("event not accepted: {0}")]
    NotAccepted(String),
    /// Its sequence restarted before applying it.
    #[error("event not applied: its sequence restarted; retry")]
    NotApplied,
    #[error("event applied but not forwarded to the bus: {0}")]
    NotForwarded(#[source] crate::bus::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ControlFailure {
    #[error("project {0} not found")]
    UnknownProject(String),
    #[error(transparent)]
    Refused(#[from] ControlError),
    #[error("project actor unavailable")]
    Unavailable,
}

impl ControlHandle {
    pub fn new(router: EventRouter, forwarder: Option<Forwarder>) -> Self {
        Self { router, forwarder }
    }

    /// The router, for the bus consumers that feed it.
    pub fn router(&self) -> &EventRouter {
        &self.router
    }

    /// The control plane's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.router.runtime().clock.now()
    }

    /// Why new work cannot be accepted now, if it cannot.
    pub fn storage_problem(&self) -> Option<String> {
        self.router.runtime().storage_problem()
    }

    /// Takes in an event from a client: records and applies it through the router, waits until that is
    /// durable, then forwards it to the bus's other subscribers (the control plane's consumer skips it).
    pub async fn accept(&self, event: CloudEvent) -> Result<Acceptance, AcceptError> {
        // Refused up front while a store keeps failing: accepting would mean holding work that cannot be
        // made durable.
        if let Some(problem) = self.storage_problem() {
            return Err(AcceptError::NotAccepted(problem));
        }
        if let Some(forwarder) = &self.forwarder {
            match forwarder.destination(&event).await {
                Destination::Here | Destination::Nowhere => {}
                Destination::Node(node) => return self.accept_elsewhere(forwarder, &node, event).await,
                Destination::Moving => {
                    return Err(AcceptError::NotAccepted("the project is moving between instances; retry".into()))
                }
            }
        }
        let event = Arc::new(event);
        let receipt = self.router.route_acked(Arc::clone(&event)).await;
        let mut durable = Box::pin(receipt.durable());
        let deadline = tokio::time::Instant::now() + DURABLE_WAIT;
        loop {
            tokio::select! {
                applied = &mut durable => {
                    if !applied {
                        return Err(AcceptError::NotApplied);
                    }
                    break;
                }
                _ = tokio::time::sleep(HEALTH_POLL) => {
                    // A store that fails while this event waits: answer now rather than at the deadline.
                    // The event stays accepted and is stored (and applied) once the store answers.
                    let problem = self.storage_problem();
                    if problem.is_some() || tokio::time::Instant::now() >= deadline {
                        let problem = problem.unwrap_or_else(|| "the stores are slow to answer".to_owned());
                        let handle = self.clone();
                        tokio::spawn(async move {
                            if durable.await {
                                if let Err(error) = handle.forward(&event).await {
                                    tracing::warn!(event_id = %event.id, %error, "accepted event could not be forwarded to the bus");
                                }
                            } else {
                                tracing::warn!(event_id = %event.id, event_type = %event.event_type, "an accepted event was not applied: its sequence restarted first");
                            }
                        });
                        return Ok(Acceptance::Pending { problem });
                    }
                }
            }
        }
        self.forward(&event).await.map_err(AcceptError::NotForwarded)?;
        Ok(Acceptance::Applied)
    }

    /// Has the owner of the event's project apply it, then forwards it to the bus like a local one.
    async fn accept_elsewhere(
        &self,
        forwarder: &Forwarder,
        node: &str,
        event: CloudEvent,
    ) -> Result<Acceptance, AcceptError> {
        let payload = serde_json::to_vec(&event).map_err(|error| AcceptError::NotAccepted(error.to_string()))?;
        match forwarder.deliver(node, payload.into()).await {
            Reply::Durable => {
                self.forward(&Arc::new(event)).await.map_err(AcceptError::NotForwarded)?;
                Ok(Acceptance::Applied)
            }
            Reply::Busy => Err(AcceptError::NotAccepted("the project's instance is busy; retry".into())),
            Reply::NotOwner | Reply::Failed => {
                Err(AcceptError::NotAccepted(format!("instance {node} did not take the event; retry")))
            }
        }
    }

    async fn forward(&self, event: &Arc<CloudEvent>) -> Result<(), crate::bus::Error> {
        self.router.runtime().emitter.forward(event).await
    }

    /// Pauses, resumes or aborts the sequences of a Keptn context (in one stage, or all); answers once
    /// the change is durable.
    pub async fn control(
        &self,
        project: &str,
        keptn_context: String,
        stage: Option<String>,
        command: ControlCommand,
    ) -> Result<(), ControlFailure> {
        let actor =
            self.router.directory().project(project).ok_or_else(|| ControlFailure::UnknownProject(project.into()))?;
        let outcome =
            actor.send(Control { keptn_context, stage, command }).await.map_err(|_| ControlFailure::Unavailable)?;
        Ok(outcome?)
    }

    /// Ends what runs in a deleted project and forgets its executions.
    pub async fn project_deleted(&self, project: &str) {
        let directory = self.router.directory();
        if let Some(actor) = directory.running(project) {
            let _ = actor.send(ProjectDeleted).await;
        }
        directory.forget(project);
    }

    /// Snapshots of a project's executions, ended ones included.
    pub fn executions(&self, project: &str) -> Vec<Arc<Execution>> {
        self.router.runtime().read_model.executions_of(project)
    }

    /// How many executions are in each Keptn state.
    pub fn execution_states(&self) -> BTreeMap<&'static str, usize> {
        self.router.runtime().read_model.count_by(Execution::state_name)
    }

    /// How many executions wait for their service's slot, by project and stage (one pass over all).
    pub fn queued_by_stage(&self) -> BTreeMap<(String, String), usize> {
        let queued = |execution: &Execution| {
            (execution.phase == crate::model::sequence::Phase::Queued)
                .then(|| (execution.scope.project.clone(), execution.scope.stage.clone()))
        };
        let counts = self.router.runtime().read_model.count_by(queued);
        counts.into_iter().filter_map(|(stage, count)| Some((stage?, count))).collect()
    }

    /// How many executions there are, ended ones included.
    pub fn execution_count(&self) -> usize {
        self.router.runtime().read_model.execution_count()
    }

    /// Task `.triggered` events of `event_type` still waiting for executors.
    pub fn open_tasks(&self, event_type: &str) -> Vec<Arc<CloudEvent>> {
        self.router.runtime().read_model.open_events(event_type)
    }

    /// Incoming events recorded in the history, and events handed to actors, since start.
    pub fn routing_counts(&self) -> (u64, u64) {
        (self.router.recorded(), self.router.delivered())
    }
}
