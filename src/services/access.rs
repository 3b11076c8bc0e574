//! What the built-in services read from the control plane: resources at a commit, earlier events,
//! secrets, the SLI provider of a project, the webhook service's subscriptions.
//!
//! In-process the services read it directly ([`LocalAccess`]); the trait keeps them independent of how.

use std::sync::Arc;

use async_trait::async_trait;

use crate::integrations::Integrations;
use crate::model::event::CloudEvent;
use crate::model::uniform::{EventSubscription, IntegrationQuery, LogEntry};
use crate::projects::ProjectManager;
use crate::resources::git::{ResourceError, Scope};
use crate::secrets::Secrets;
use crate::store::{versioned, EventQuery, EventStore, SnapshotStore};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The project, stage or service asked about does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
}

/// Where a resource is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level<'a> {
    Project,
    Stage(&'a str),
    Service { stage: &'a str, service: &'a str },
}

#[async_trait]
pub trait ControlPlaneAccess: Send + Sync + 'static {
    /// The text of resource `uri` at `level` of `project`, at `commit` when given (project-level files
    /// live on their own branch and are read at its head); `None` when there is no such file.
    async fn resource(
        &self,
        project: &str,
        level: Level<'_>,
        uri: &str,
        commit: Option<&str>,
    ) -> Result<Option<String>, AccessError>;
    /// The paths of the files at `level` of `project` that lie under directory `directory` (`a/b`), at
    /// `commit` when given, as [`ControlPlaneAccess::resource`] reads them.
    async fn resources_under(
        &self,
        project: &str,
        level: Level<'_>,
        directory: &str,
        commit: Option<&str>,
    ) -> Result<Vec<String>, AccessError>;
    /// Events of the history, newest first.
    async fn find_events(&self, query: &EventQuery) -> Result<Vec<CloudEvent>, AccessError>;
    /// The value of `key` in secret `name` of `scope` (`None`: no such secret in that scope).
    async fn secret(&self, name: &str, scope: &str, key: &str) -> Result<Option<String>, AccessError>;
    /// The keys of secret `name` of `scope` (`None`: no such secret in that scope).
    async fn secret_keys(&self, name: &str, scope: &str) -> Result<Option<Vec<String>>, AccessError>;
    /// The SLI provider configured for `project` (`sh.keptn.event.monitoring.configure`).
    async fn sli_provider(&self, project: &str) -> Result<Option<String>, AccessError>;
    async fn set_sli_provider(&self, project: &str, provider: &str) -> Result<(), AccessError>;
    /// Forgets a deleted project's SLI provider.
    async fn remove_sli_provider(&self, project: &str) -> Result<(), AccessError>;
    /// The subscriptions of the integrations called `integration`.
    async fn subscriptions(&self, integration: &str) -> Result<Vec<EventSubscription>, AccessError>;
    /// Adds `entry` to the log of the integration called `integration` (the Bridge's integrations page).
    async fn log(&self, integration: &str, entry: LogEntry) -> Result<(), AccessError>;
}

/// Reads straight from the stores of the Keelson the services run in.
pub struct LocalAccess {
    pub projects: Arc<ProjectManager>,
    pub events: Arc<dyn EventStore>,
    pub secrets: Arc<Secrets>,
    pub providers: SliProviders,
    pub integrations: Arc<Integrations>,
}

/// Where a project's SLI provider is kept (Keptn: ConfigMap `lighthouse-config-<project>`).
const SLI_PROVIDER_PREFIX: &str = "lighthouse-config/";

#[derive(serde::Serialize, serde::Deserialize)]
struct LighthouseConfig {
    #[serde(rename = "sli-provider")]
    sli_provider: String,
}

/// The SLI provider of each project, in the snapshot store (`lighthouse-config/<project>`).
#[derive(Clone)]
pub struct SliProviders(pub Arc<dyn SnapshotStore>);

impl SliProviders {
    pub async fn get(&self, project: &str) -> Result<Option<String>, AccessError> {
        let Some(bytes) = self.0.get(&format!("{SLI_PROVIDER_PREFIX}{project}")).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let config: LighthouseConfig = versioned::decode(&bytes).map_err(unavailable)?;
        Ok(Some(config.sli_provider))
    }

    pub async fn set(&self, project: &str, provider: &str) -> Result<(), AccessError> {
        let record = versioned::encode(&LighthouseConfig { sli_provider: provider.to_owned() });
        self.0.put(&format!("{SLI_PROVIDER_PREFIX}{project}"), record).await.map_err(unavailable)
    }

    pub async fn remove(&self, project: &str) -> Result<(), AccessError> {
        self.0.delete(&format!("{SLI_PROVIDER_PREFIX}{project}")).await.map_err(unavailable)
    }
}

fn unavailable(error: impl std::fmt::Display) -> AccessError {
    AccessError::Unavailable(error.to_string())
}

impl LocalAccess {
    /// Where `level` of `project` lives in the resource repository; `NotFound` for an unknown project,
    /// stage or service.
    fn scope_of(&self, project: &str, level: Level<'_>) -> Result<Scope, AccessError> {
        let record =
            self.projects.get(project).ok_or_else(|| AccessError::NotFound(format!("project {project} not found")))?;
        let scope = match level {
            Level::Project => Scope::Project,
            Level::Stage(stage) | Level::Service { stage, .. } => {
                let stage_record =
                    record.stage(stage).ok_or_else(|| AccessError::NotFound(format!("stage {stage} not found")))?;
                match level {
                    Level::Service { service, .. } => {
                        if !stage_record.services.iter().any(|known| known.name == service) {
                            return Err(AccessError::NotFound(format!("service {service} not found")));
                        }
                        Scope::Service { stage: stage.to_owned(), service: service.to_owned() }
                    }
                    _ => Scope::Stage(stage.to_owned()),
                }
            }
        };
        Ok(scope)
    }
}

#[async_trait]
impl ControlPlaneAccess for LocalAccess {
    async fn resource(
        &self,
        project: &str,
        level: Level<'_>,
        uri: &str,
        commit: Option<&str>,
    ) -> Result<Option<String>, AccessError> {
        let scope = self.scope_of(project, level)?;
        let repos = self.projects.repos();
        let read = |commit: Option<String>| repos.read(project, scope.clone(), uri.to_owned(), commit);
        match at_commit(level, commit, read).await {
            Ok((bytes, _commit)) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(ResourceError::ResourceNotFound) => Ok(None),
            Err(error) => Err(resource_error(project, error)),
        }
    }

    async fn find_events(&self, query: &EventQuery) -> Result<Vec<CloudEvent>, AccessError> {
        self.events.find(query).await.map_err(unavailable)
    }

    async fn secret(&self, name: &str, scope: &str, key: &str) -> Result<Option<String>, AccessError> {
        self.secrets.value(name, scope, key).await.map_err(unavailable)
    }

    async fn secret_keys(&self, name: &str, scope: &str) -> Result<Option<Vec<String>>, AccessError> {
        secret_keys(&self.secrets, name, scope).await
    }

    async fn resources_under(
        &self,
        project: &str,
        level: Level<'_>,
        directory: &str,
        commit: Option<&str>,
    ) -> Result<Vec<String>, AccessError> {
        let scope = self.scope_of(project, level)?;
        // A stage's listing leaves out its services' directories, as the API's does.
        let excluded = match level {
            Level::Stage(stage) => self.projects.service_names(project, stage),
            _ => Vec::new(),
        };
        let repos = self.projects.repos();
        let list = |commit: Option<String>| repos.list(project, scope.clone(), excluded.clone(), commit);
        let listing = at_commit(level, commit, list).await.map_err(|error| resource_error(project, error))?;
        let prefix = format!("{}/", directory.trim_matches('/'));
        Ok(listing.uris.into_iter().filter(|uri| uri.trim_start_matches('/').starts_with(&prefix)).collect())
    }

    async fn sli_provider(&self, project: &str) -> Result<Option<String>, AccessError> {
        self.providers.get(project).await
    }

    async fn set_sli_provider(&self, project: &str, provider: &str) -> Result<(), AccessError> {
        if self.projects.get(project).is_none() {
            return Err(AccessError::NotFound(format!("project {project} not found")));
        }
        self.providers.set(project, provider).await
    }

    async fn remove_sli_provider(&self, project: &str) -> Result<(), AccessError> {
        self.providers.remove(project).await
    }

    async fn subscriptions(&self, integration: &str) -> Result<Vec<EventSubscription>, AccessError> {
        let query = IntegrationQuery { name: Some(integration.to_owned()), ..Default::default() };
        let found =
            self.integrations.list(&query).await.map_err(|error| AccessError::Unavailable(error.to_string()))?;
        Ok(found.into_iter().flat_map(|found| found.subscriptions).collect())
    }

    async fn log(&self, integration: &str, mut entry: LogEntry) -> Result<(), AccessError> {
        let query = IntegrationQuery { name: Some(integration.to_owned()), ..Default::default() };
        let found =
            self.integrations.list(&query).await.map_err(|error| AccessError::Unavailable(error.to_string()))?;
        let Some(registered) = found.into_iter().next() else {
            return Err(AccessError::NotFound(format!("integration {integration} is not registered")));
        };
        entry.integrationid = registered.id;
        self.integrations.add_logs(vec![entry]).await.map_err(|error| AccessError::Unavailable(error.to_string()))
    }
}

/// Runs `work` (a read or a listing) at `commit`, or at the branch head: without a commit, for
/// project-level files, and when the commit is no commit id at all (a client's placeholder). A commit
/// of a stage branch does not hold project-level files written later; those live on their own branch.
async fn at_commit<T, F, Fut>(level: Level<'_>, commit: Option<&str>, work: F) -> Result<T, ResourceError>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ResourceError>>,
{
    match commit.filter(|commit| !commit.is_empty() && level != Level::Project) {
        Some(commit) => match work(Some(commit.to_owned())).await {
            Err(ResourceError::InvalidCommitId(_)) => work(None).await,
            other => other,
        },
        None => work(None).await,
    }
}

/// What a failed read or listing of `project`'s resources means to a service.
fn resource_error(project: &str, error: ResourceError) -> AccessError {
    match error {
        ResourceError::StageNotFound(stage) => AccessError::NotFound(format!("stage {stage} not found")),
        ResourceError::ProjectNotFound => AccessError::NotFound(format!("project {project} not found")),
        other => unavailable(other),
    }
}

/// The keys of a secret, read from the secrets store.
pub(super) async fn secret_keys(
    secrets: &Secrets,
    name: &str,
    scope: &str,
) -> Result<Option<Vec<String>>, AccessError> {
    let found = secrets.list(Some(name), Some(scope)).await.map_err(unavailable)?;
    Ok(found.into_iter().next().map(|secret| secret.keys))
}
