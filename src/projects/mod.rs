//! Project, stage and service lifecycle: validation, the git repository, the stored record and the
//! lifecycle events, kept consistent with each other.
//!
//! Invariant: a stored project record implies its repository exists. Create writes the repository first
//! and the record last; delete removes the record first. [`ProjectManager::load`] removes repositories
//! left without a record by a crash in between.

pub mod credentials;
mod error;

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine as _;
use dashmap::DashMap;
use serde_json::json;

pub use error::ProjectError;

use crate::clock::Clock;
use crate::emitter::Emitter;
use crate::model::clock::unix_nanos_string;
use crate::model::event::{self, CloudEvent, Outcome};
use crate::model::host_policy::HostPolicy;
use crate::model::names;
use crate::model::project::{without_password, ExpandedProject, GitCredentials, ProjectRecord, ServiceActivity};
use crate::model::shipyard::{self, Shipyard};
use crate::resources::{GitRepos, ResourceError, Scope};
use crate::secrets::SecretKey;
use crate::store::SnapshotStore;

/// File name of the shipyard in the project's default branch.
pub const SHIPYARD_FILE: &str = "shipyard.yaml";
const RECORD_PREFIX: &str = "project/";
const CREDENTIALS_PREFIX: &str = "project-credentials/";
/// What the task events of each service in each stage told: `service-activity/<project>/<stage>/<service>`.
const ACTIVITY_PREFIX: &str = "service-activity/";
/// How long the start waits for a missing repository to be cloned again from its upstream.
const RECLONE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `work` against a project's upstream, giving up after [`RECLONE_TIMEOUT`].
async fn within_upstream_timeout(
    work: impl std::future::Future<Output = Result<(), ResourceError>>,
) -> Result<(), ResourceError> {
    tokio::time::timeout(RECLONE_TIMEOUT, work).await.unwrap_or_else(|_| {
        Err(ResourceError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "the upstream did not answer in time")))
    })
}

/// `POST /project` body.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateProject {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub shipyard: String,
    #[serde(default)]
    pub git_credentials: Option<GitCredentials>,
}

/// `PUT /project` body.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateProject {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub shipyard: Option<String>,
    #[serde(default)]
    pub git_credentials: Option<GitCredentials>,
}

/// `POST /api/v1/import/project` body: a project taken over from the upstream that holds it.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportProject {
    #[serde(default)]
    pub name: String,
    /// The upstream holding the project: `shipyard.yaml` on `master`, one branch per stage.
    pub git_credentials: GitCredentials,
    /// The project's services (they exist in every stage).
    #[serde(default)]
    pub services: Vec<String>,
    /// Unix nanoseconds, as Keptn writes it; now when absent.
    #[serde(default)]
    pub creation_date: Option<String>,
}

pub struct ProjectManager {
    snapshots: Arc<dyn SnapshotStore>,
    repos: Arc<GitRepos>,
    emitter: Emitter,
    clock: Arc<dyn Clock>,
    /// Read cache of the stored records; written only while the project's lock is held.
    projects: DashMap<String, Arc<ProjectRecord>>,
    /// Parsed shipyards of the cached records, so that triggering a sequence parses no YAML.
    shipyards: DashMap<String, Arc<Shipyard>>,
    /// One async lock per project name: lifecycle changes of a project run one at a time.
    locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    remote_url_denylist: Vec<regex::Regex>,
    /// Seals upstream credentials at rest.
    secret_key: SecretKey,
    /// Where upstreams may point.
    upstream_policy: HostPolicy,
    /// `lastEventTypes` and `deployedImage` per (project, stage, service).
    activity: DashMap<(String, String, String), Arc<ServiceActivity>>,
    /// Activity changed since it was last stored (see [`ProjectManager::store_activity_every`]).
    activity_dirty: std::sync::Mutex<HashSet<(String, String, String)>>,
    /// Other instances share the store (cluster mode).
    shared: std::sync::atomic::AtomicBool,
}

impl ProjectManager {
    pub fn new(
        snapshots: Arc<dyn SnapshotStore>,
        repos: Arc<GitRepos>,
        emitter: Emitter,
        clock: Arc<dyn Clock>,
        remote_url_denylist: Vec<regex::Regex>,
        secret_key: SecretKey,
        upstream_policy: HostPolicy,
    ) -> Self {
        Self {
            snapshots,
            repos,
            emitter,
            clock,
            projects: DashMap::new(),
            shipyards: DashMap::new(),
            locks: DashMap::new(),
            remote_url_denylist,
            secret_key,
            upstream_policy,
            activity: DashMap::new(),
            activity_dirty: std::sync::Mutex::default(),
            shared: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Loads every stored project, restores upstreams, drops credentials without a project and moves
    /// repositories without a record to `lost+found`. In a cluster only the records are read here:
    /// each instance takes over the credentials and repositories of the projects it comes to own
    /// ([`ProjectManager::adopt`]).
    pub async fn load(&self) -> Result<usize, ProjectError> {
        let all = |_: &str| true;
        self.read_records(&all).await?;
        if self.is_shared() {
            self.read_activity(&all).await?;
            return Ok(self.projects.len());
        }
        self.read_credentials(&all, true).await?;
        self.read_activity(&all).await?;
        self.sweep_repositories().await;
        self.check_repositories(&all).await;
        Ok(self.projects.len())
    }

    /// Takes over the projects `select` picks, which another instance may have changed: reads their
    /// records, upstreams and activity again, and clones repositories missing here from their upstreams.
    pub async fn adopt(&self, select: &(dyn Fn(&str) -> bool + Sync)) -> Result<(), ProjectError> {
        self.read_records(select).await?;
        self.read_credentials(select, false).await?;
        self.read_activity(select).await?;
        self.check_repositories(select).await;
        Ok(())
    }

    /// Instances share the store (cluster mode): records change under this instance's feet.
    pub fn set_shared(&self) {
        self.shared.store(true, std::sync::atomic::Ordering::Release);
    }

    fn is_shared(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every project, sorted by name; in a cluster read again from the store first, since other
    /// instances create and delete projects.
    pub async fn list_current(&self) -> Result<Vec<Arc<ProjectRecord>>, ProjectError> {
        if self.is_shared() {
            let all = |_: &str| true;
            self.read_records(&all).await?;
            self.read_activity(&all).await?;
        }
        Ok(self.list())
    }

    /// Caches the stored records of the selected projects, and forgets selected projects that have none.
    async fn read_records(&self, select: &(dyn Fn(&str) -> bool + Sync)) -> Result<(), ProjectError> {
        let mut stored = HashSet::new();
        for (key, value) in self.snapshots.scan_prefix(RECORD_PREFIX).await? {
            let name = &key[RECORD_PREFIX.len()..];
            if !select(name) {
                continue;
            }
            let record: ProjectRecord = crate::store::versioned::decode(&value)
                .map_err(|e| ProjectError::Internal(format!("stored project '{key}' cannot be read: {e}")))?;
            stored.insert(record.name.clone());
            let unchanged = self.get(&record.name).is_some_and(|cached| *cached == record);
            if !unchanged {
                self.cache(record);
            }
        }
        let gone: Vec<String> = self
            .projects
            .iter()
            .map(|entry| entry.key().clone())
            .filter(|name| select(name) && !stored.contains(name))
            .collect();
        for name in gone {
            self.uncache(&name);
        }
        Ok(())
    }

    /// Restores the upstreams of the selected projects; `drop_orphans` deletes credentials whose
    /// project does not exist (only safe where no other instance creates projects meanwhile).
    async fn read_credentials(
        &self,
        select: &(dyn Fn(&str) -> bool + Sync),
        drop_orphans: bool,
    ) -> Result<(), ProjectError> {
        for (key, value) in self.snapshots.scan_prefix(CREDENTIALS_PREFIX).await? {
            let project = &key[CREDENTIALS_PREFIX.len()..];
            if !select(project) {
                continue;
            }
            if !self.projects.contains_key(project) {
                if drop_orphans {
                    tracing::warn!(project, "dropping upstream credentials of a project that does not exist");
                    self.snapshots.delete(&key).await?;
                }
                continue;
            }
            // A project whose credentials cannot be read is served without its upstream, not dropped.
            let credentials = match credentials::open(&self.secret_key, &key, &value) {
                Ok(credentials::Opened::Sealed(credentials)) => credentials,
                Ok(credentials::Opened::Plain(credentials)) => {
                    tracing::info!(project, "sealing upstream credentials stored in plain text by an earlier release");
                    if let Err(error) = self.store_credentials(project, &credentials).await {
                        tracing::warn!(project, %error, "upstream credentials stay in plain text until the next start");
                    }
                    credentials
                }
                Err(error) => {
                    tracing::error!(project, %error, "upstream credentials cannot be read (was secret_key changed?); the project runs without its upstream until they are set again");
                    continue;
                }
            };
            self.repos.restore_upstream(project, Some(credentials)).await.map_err(ProjectError::from_resource)?;
        }
        Ok(())
    }

    async fn read_activity(&self, select: &(dyn Fn(&str) -> bool + Sync)) -> Result<(), ProjectError> {
        for (key, value) in self.snapshots.scan_prefix(ACTIVITY_PREFIX).await? {
            let mut parts = key[ACTIVITY_PREFIX.len()..].splitn(3, '/');
            let (Some(project), Some(stage), Some(service)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if !select(project) {
                continue;
            }
            match crate::store::versioned::decode::<ServiceActivity>(&value) {
                Ok(activity) => {
                    self.activity
                        .insert((project.to_owned(), stage.to_owned(), service.to_owned()), Arc::new(activity));
                }
                Err(error) => tracing::warn!(key, %error, "stored service activity cannot be read; ignored"),
            }
        }
        Ok(())
    }

    /// Opens the repositories of the selected projects, cloning missing ones from their upstreams; a
    /// project whose repository cannot be restored is served without its resources, and logged.
    async fn check_repositories(&self, select: &(dyn Fn(&str) -> bool + Sync)) {
        for project in self.list().into_iter().filter(|project| select(&project.name)) {
            let loaded = if self.is_shared() {
                // Another instance may have pushed since this clone was last used.
                match within_upstream_timeout(self.repos.refresh(&project.name)).await {
                    Err(error) if !matches!(error, ResourceError::ProjectNotFound) => {
                        tracing::warn!(project = %project.name, %error, "repository not brought up to date with its upstream; its local branch heads are used until the next read");
                        self.repos.load_heads(&project.name).await
                    }
                    refreshed => refreshed,
                }
            } else {
                self.repos.load_heads(&project.name).await
            };
            let Err(error) = loaded else { continue };
            // One damaged project must not keep the others from being served.
            let recovered = match error {
                ResourceError::ProjectNotFound if self.repos.upstream_url(&project.name).is_some() => {
                    // An upstream that does not answer must not hold up the start of every project.
                    within_upstream_timeout(self.repos.reclone(&project.name)).await
                }
                error => Err(error),
            };
            match recovered {
                Ok(()) => {
                    tracing::warn!(project = %project.name, "repository was missing; cloned again from its upstream")
                }
                Err(error) => {
                    tracing::error!(project = %project.name, %error, "repository of the project cannot be opened; its resources are unavailable until it is restored");
                }
            }
        }
    }

    /// Removes leftovers of interrupted creates and deletes, and moves repositories that no record refers
    /// to into `lost+found` — never deleting them, since a lost record should not cost the files.
    async fn sweep_repositories(&self) {
        let git_root = self.repos.root().to_owned();
        let Ok(entries) = std::fs::read_dir(&git_root) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".git.") {
                tracing::warn!(directory = %name, "removing leftover of an interrupted create or delete");
                let _ = tokio::fs::remove_dir_all(entry.path()).await;
                continue;
            }
            let Some(project) = name.strip_suffix(".git") else { continue };
            if self.projects.contains_key(project) {
                continue;
            }
            let lost_and_found = git_root.join(crate::resources::git::LOST_AND_FOUND);
            let target = lost_and_found.join(format!("{project}.{}.git", uuid::Uuid::new_v4()));
            tracing::warn!(repository = %name, target = %target.display(), "moving repository without a project record");
            if let Err(error) =
                std::fs::create_dir_all(&lost_and_found).and_then(|()| std::fs::rename(entry.path(), &target))
            {
                tracing::error!(repository = %name, %error, "could not move repository without a project record");
            }
        }
    }

    /// Caches `record` and its parsed shipyard.
    fn cache(&self, record: ProjectRecord) {
        match shipyard::parse(&record.shipyard) {
            Ok(parsed) => {
                self.shipyards.insert(record.name.clone(), Arc::new(parsed));
            }
            Err(error) => tracing::error!(project = %record.name, %error, "stored shipyard does not parse"),
        }
        self.projects.insert(record.name.clone(), Arc::new(record));
    }

    fn uncache(&self, project: &str) {
        self.projects.remove(project);
        self.shipyards.remove(project);
    }

    /// The project's parsed shipyard.
    pub fn shipyard(&self, project: &str) -> Option<Arc<Shipyard>> {
        self.shipyards.get(project).map(|entry| Arc::clone(entry.value()))
    }

    fn lock(&self, project: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(self.locks.entry(project.to_owned()).or_default().value())
    }

    pub fn get(&self, project: &str) -> Option<Arc<ProjectRecord>> {
        self.projects.get(project).map(|entry| Arc::clone(entry.value()))
    }

    /// Every project, sorted by name.
    pub fn list(&self) -> Vec<Arc<ProjectRecord>> {
        let mut projects: Vec<_> = self.projects.iter().map(|entry| Arc::clone(entry.value())).collect();
        projects.sort_by(|a, b| a.name.cmp(&b.name));
        projects
    }

    /// The project as the API shows it, with its services' activity.
    pub fn expand(&self, record: &ProjectRecord) -> ExpandedProject {
        record.expand(&self.activity_of(&record.name))
    }

    /// Looks up the activity of `project`'s services by stage and service name.
    pub fn activity_of<'a>(&'a self, project: &'a str) -> impl Fn(&str, &str) -> Option<Arc<ServiceActivity>> + 'a {
        move |stage, service| {
            self.activity
                .get(&(project.to_owned(), stage.to_owned(), service.to_owned()))
                .map(|entry| Arc::clone(entry.value()))
        }
    }

    /// Takes in a task event of `service` in `stage` (see [`ServiceActivity::observe`]). Only memory is
    /// touched here, on the sequence's hot path; [`ProjectManager::store_activity_every`] stores what
    /// changed.
    pub fn observe_task_event(
        &self,
        project: &str,
        stage: &str,
        service: &str,
        event: &CloudEvent,
        input: &serde_json::Value,
    ) {
        let known =
            self.get(project).is_some_and(|record| record.stage(stage).is_some_and(|s| s.service(service).is_some()));
        if !known {
            return;
        }
        let key = (project.to_owned(), stage.to_owned(), service.to_owned());
        let mut entry = self.activity.entry(key.clone()).or_default();
        if Arc::make_mut(entry.value_mut()).observe(event, input) {
            drop(entry);
            self.activity_dirty.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key);
        }
    }

    /// Stores the activity that changed, every `period`, for the life of the process. Activity is a view
    /// for people: up to one period of it may be lost in a crash, in exchange for no write per event.
    pub fn store_activity_every(self: &Arc<Self>, period: std::time::Duration) {
        let manager = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                manager.store_activity().await;
            }
        });
    }

    /// Writes the changed activity in one batch; keys whose write fails stay marked.
    pub async fn store_activity(&self) {
        let keys: Vec<_> =
            self.activity_dirty.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain().collect();
        if keys.is_empty() {
            return;
        }
        let writes: Vec<(String, Option<Vec<u8>>)> = keys
            .iter()
            .filter_map(|key| {
                let activity = self.activity.get(key)?;
                let (project, stage, service) = key;
                Some((
                    format!("{ACTIVITY_PREFIX}{project}/{stage}/{service}"),
                    Some(crate::store::versioned::encode(&**activity)),
                ))
            })
            .collect();
        if let Err(error) = self.snapshots.write_batch(writes).await {
            tracing::warn!(%error, "service activity not stored; retried");
            self.activity_dirty.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(keys);
        }
    }

    /// Forgets the activity of a deleted project or service (`service` `None`: all of the project's).
    async fn forget_activity(&self, project: &str, service: Option<&str>) {
        let mut keys = Vec::new();
        self.activity_dirty
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(owner, _, name)| !(owner == project && service.is_none_or(|service| service == name)));
        self.activity.retain(|(owner, stage, name), _| {
            let doomed = owner == project && service.is_none_or(|service| service == name);
            if doomed {
                keys.push(format!("{ACTIVITY_PREFIX}{owner}/{stage}/{name}"));
            }
            !doomed
        });
        for key in keys {
            if let Err(error) = self.snapshots.delete(&key).await {
                tracing::warn!(key, %error, "could not remove stored service activity");
            }
        }
    }

    pub fn repos(&self) -> &Arc<GitRepos> {
        &self.repos
    }

    fn event(&self, event_type: &str, keptn_context: &str, data: serde_json::Value) -> CloudEvent {
        CloudEvent::emitted(
            event_type,
            uuid::Uuid::new_v4().to_string(),
            keptn_context.to_owned(),
            self.clock.now(),
            data,
        )
    }

    /// Applies the destination policy webhooks follow to an upstream (and its proxy): no loopback,
    /// link-local (cloud metadata), unspecified or multicast address, by literal or as resolved now,
    /// and none of the denied cluster names, unless `git_allowed_hosts` lists the host. Git operations
    /// follow no redirects. A name that does not resolve now is left to the git operation, which
    /// reports it; later operations are not pinned to the checked addresses.
    async fn check_destination(&self, credentials: &GitCredentials) -> Result<(), ProjectError> {
        let remote_url = credentials.remote_url.as_str();
        let refused = |reason: String| {
            ProjectError::Unprocessable(format!("Invalid RemoteURL: {}: {reason}", without_password(remote_url)))
        };
        let mut urls = vec![url::Url::parse(remote_url).map_err(|error| refused(error.to_string()))?];
        if let Some(proxy) = credentials.https.as_ref().and_then(|https| https.proxy.as_ref()) {
            if !proxy.url.is_empty() {
                let scheme = if proxy.scheme.is_empty() { "http" } else { proxy.scheme.as_str() };
                let proxy_url = url::Url::parse(&format!("{scheme}://{}", proxy.url))
                    .map_err(|error| refused(format!("invalid proxy: {error}")))?;
                urls.push(proxy_url);
            }
        }
        for url in urls {
            self.upstream_policy.check_url(&url).map_err(refused)?;
            let Some(host) = url.host_str() else { continue };
            let port = url.port_or_known_default().unwrap_or(22);
            let host = host.trim_matches(['[', ']']).to_owned();
            let Ok(addresses) = tokio::net::lookup_host((host.as_str(), port)).await else { continue };
            for address in addresses {
                self.upstream_policy.check_address(&url, address.ip()).map_err(refused)?;
            }
        }
        Ok(())
    }

    fn check_credentials(&self, credentials: &GitCredentials) -> Result<(), ProjectError> {
        credentials.validate().map_err(|message| {
            if message.starts_with("Invalid RemoteURL") {
                ProjectError::Unprocessable(message)
            } else {
                ProjectError::BadRequest(message)
            }
        })?;
        if self.remote_url_denylist.iter().any(|pattern| pattern.is_match(&credentials.remote_url)) {
            return Err(ProjectError::Unprocessable(format!("Invalid RemoteURL: {}", credentials.remote_url)));
        }
        Ok(())
    }

    async fn store_record(&self, record: &ProjectRecord) -> Result<(), ProjectError> {
        let bytes = crate::store::versioned::encode(record);
        self.snapshots.put(&format!("{RECORD_PREFIX}{}", record.name), bytes).await?;
        Ok(())
    }

    /// Removes what setting up a new project left behind (its credentials and repository), so that a
    /// retry starts from nothing.
    async fn undo_new_project(&self, project: &str) {
        let _ = self.snapshots.delete(&format!("{CREDENTIALS_PREFIX}{project}")).await;
        let _ = self.repos.delete_project(project).await;
    }

    async fn store_credentials(&self, project: &str, credentials: &GitCredentials) -> Result<(), ProjectError> {
        let key = format!("{CREDENTIALS_PREFIX}{project}");
        let bytes = credentials::seal(&self.secret_key, &key, credentials);
        self.snapshots.put(&key, bytes).await?;
        Ok(())
    }

    /// Creates a project: repository, stage branches, shipyard, record and lifecycle events.
    pub async fn create(&self, request: CreateProject) -> Result<(), ProjectError> {
        names::validate_project_name(&request.name).map_err(|e| ProjectError::BadRequest(e.to_string()))?;
        let (shipyard_text, shipyard) = decode_shipyard(&request.shipyard)?;
        let credentials = request.git_credentials.clone().filter(|c| !c.remote_url.is_empty());
        if credentials.is_none() && self.is_shared() {
            // Several instances serve a project in turn: its repository must live upstream.
            return Err(ProjectError::Unprocessable(
                "this Keelson runs as a cluster: a project needs gitCredentials with a remoteURL".into(),
            ));
        }
        if let Some(credentials) = &credentials {
            self.check_credentials(credentials)?;
            self.check_destination(credentials).await?;
        }

        let lock = self.lock(&request.name);
        let _guard = lock.lock().await;
        let keptn_context = uuid::Uuid::new_v4().to_string();
        self.emitter
            .emit(self.event(event::PROJECT_CREATE_STARTED, &keptn_context, json!({ "project": request.name })))
            .await;

        let result = if self.projects.contains_key(&request.name) {
            Err(ProjectError::project_exists(&request.name))
        } else {
            self.create_locked(&request, &shipyard_text, &shipyard, credentials).await
        };
        let data = match &result {
            Ok(record) => json!({
                "project": request.name,
                "status": Outcome::Succeeded.status(),
                "result": Outcome::Succeeded.result(),
                "createdProject": {
                    "projectName": request.name,
                    "gitRemoteURL": record.git_remote.as_ref().map(|r| r.remote_url.clone()).unwrap_or_default(),
                    "shipyard": request.shipyard,
                },
            }),
            Err(error) => json!({
                "project": request.name,
                "status": Outcome::Errored.status(),
                "result": Outcome::Errored.result(),
                "message": error.to_string(),
            }),
        };
        self.emitter.emit(self.event(event::PROJECT_CREATE_FINISHED, &keptn_context, data)).await;
        let record = result?;
        tracing::info!(project = %record.name, stages = record.stages.len(), "project created");
        self.cache(record);
        Ok(())
    }

    async fn create_locked(
        &self,
        request: &CreateProject,
        shipyard_text: &str,
        shipyard: &Shipyard,
        credentials: Option<GitCredentials>,
    ) -> Result<ProjectRecord, ProjectError> {
        let stages: Vec<String> = shipyard.stage_names().map(str::to_owned).collect();
        self.repos
            .create_project(
                &request.name,
                stages,
                vec![(SHIPYARD_FILE.to_owned(), shipyard_text.as_bytes().to_vec())],
                credentials.clone(),
            )
            .await
            .map_err(|error| ProjectError::from_new_repository(&request.name, error))?;
        let mut record =
            ProjectRecord::new(&request.name, unix_nanos_string(self.clock.now()), shipyard_text.to_owned(), shipyard);
        record.git_remote = credentials.as_ref().map(GitCredentials::secure);
        let credentials_key = format!("{CREDENTIALS_PREFIX}{}", request.name);
        let stored = async {
            match &credentials {
                Some(credentials) => self.store_credentials(&request.name, credentials).await?,
                // Clear credentials a crash may have left behind for this name.
                None => self.snapshots.delete(&credentials_key).await?,
            }
            self.store_record(&record).await
        }
        .await;
        if let Err(error) = stored {
            self.undo_new_project(&request.name).await;
            return Err(error);
        }
        Ok(record)
    }

    /// Takes over a project whose upstream already holds it (moving from Keptn): clones the upstream,
    /// reads its shipyard from `master`, checks that every stage has its branch, and stores the record
    /// with the given services. Emits no lifecycle events: the project is not new, only new here.
    pub async fn import(&self, request: ImportProject) -> Result<(), ProjectError> {
        names::validate_project_name(&request.name).map_err(|e| ProjectError::BadRequest(e.to_string()))?;
        for service in &request.services {
            names::validate_service_name(service).map_err(|e| ProjectError::BadRequest(e.to_string()))?;
        }
        let credentials = request.git_credentials.clone();
        if credentials.remote_url.is_empty() {
            return Err(ProjectError::BadRequest("gitCredentials.remoteURL is required to import a project".into()));
        }
        self.check_credentials(&credentials)?;
        self.check_destination(&credentials).await?;
        let lock = self.lock(&request.name);
        let _guard = lock.lock().await;
        if self.projects.contains_key(&request.name) {
            return Err(ProjectError::project_exists(&request.name));
        }
        self.repos
            .adopt_project(&request.name, credentials.clone())
            .await
            .map_err(|error| ProjectError::from_new_repository(&request.name, error))?;
        let record = match self.import_locked(&request, &credentials).await {
            Ok(record) => record,
            Err(error) => {
                self.undo_new_project(&request.name).await;
                return Err(error);
            }
        };
        tracing::info!(project = %record.name, stages = record.stages.len(), services = request.services.len(), "project imported");
        self.cache(record);
        Ok(())
    }

    async fn import_locked(
        &self,
        request: &ImportProject,
        credentials: &GitCredentials,
    ) -> Result<ProjectRecord, ProjectError> {
        let not_a_project = |why: String| {
            ProjectError::Unprocessable(format!(
                "{} does not hold a Keptn project: {why}",
                without_password(&credentials.remote_url)
            ))
        };
        let (bytes, _) = self
            .repos
            .read(&request.name, Scope::Project, SHIPYARD_FILE.to_owned(), None)
            .await
            .map_err(|error| not_a_project(format!("no {SHIPYARD_FILE} on master ({error})")))?;
        let text = String::from_utf8(bytes).map_err(|_| not_a_project(format!("{SHIPYARD_FILE} is not UTF-8")))?;
        let shipyard =
            shipyard::parse(&text).map_err(|e| not_a_project(format!("{SHIPYARD_FILE} is not valid: {e}")))?;
        if let Some(stage) = shipyard.stage_names().find(|stage| self.repos.branch_head(&request.name, stage).is_none())
        {
            return Err(not_a_project(format!("no branch for stage {stage}")));
        }
        let creation_date = request
            .creation_date
            .clone()
            .filter(|date| !date.is_empty())
            .unwrap_or_else(|| unix_nanos_string(self.clock.now()));
        let mut record = ProjectRecord::new(&request.name, creation_date.clone(), text, &shipyard);
        record.git_remote = Some(credentials.secure());
        for service in &request.services {
            if !record.has_service(service) {
                record.add_service(service, &creation_date);
            }
        }
        self.store_credentials(&request.name, credentials).await?;
        self.store_record(&record).await?;
        Ok(record)
    }

    /// Updates a project's shipyard (same stages only) and/or its upstream.
    pub async fn update(&self, request: UpdateProject) -> Result<(), ProjectError> {
        names::validate_project_name(&request.name).map_err(|e| ProjectError::BadRequest(e.to_string()))?;
        let shipyard = match request.shipyard.as_deref().filter(|s| !s.is_empty()) {
            Some(encoded) => Some(decode_shipyard(encoded)?),
            None => None,
        };
        let credentials = request.git_credentials.clone().filter(|c| !c.remote_url.is_empty());
        if let Some(credentials) = &credentials {
            self.check_credentials(credentials)?;
            self.check_destination(credentials).await?;
        }

        let lock = self.lock(&request.name);
        let _guard = lock.lock().await;
        let current = self.get(&request.name).ok_or_else(|| ProjectError::project_not_found(&request.name))?;
        if let Some((_, new_shipyard)) = &shipyard {
            let current_shipyard = shipyard::parse(&current.shipyard)
                .map_err(|e| ProjectError::Internal(format!("stored shipyard is invalid: {e}")))?;
            if !current_shipyard.has_same_stages(new_shipyard) {
                return Err(ProjectError::BadRequest("stage name cannot be changed or removed".into()));
            }
        }
        let previous_upstream = self.repos.upstream(&request.name);
        let result = self.update_locked(&current, credentials, shipyard).await;
        match result {
            Ok(record) => {
                self.cache(record);
                tracing::info!(project = %request.name, "project updated");
                Ok(())
            }
            Err(error) => {
                // Whatever was pushed stays in the new upstream; the project keeps using the old one.
                let _ = self.repos.restore_upstream(&request.name, previous_upstream).await;
                Err(error)
            }
        }
    }

    async fn update_locked(
        &self,
        current: &ProjectRecord,
        credentials: Option<GitCredentials>,
        shipyard: Option<(String, Shipyard)>,
    ) -> Result<ProjectRecord, ProjectError> {
        let mut record = current.clone();
        if let Some(credentials) = &credentials {
            self.repos.set_upstream(&record.name, credentials.clone()).await.map_err(ProjectError::from_resource)?;
            record.git_remote = Some(credentials.secure());
        }
        if let Some((text, parsed)) = shipyard {
            self.repos
                .write(&record.name, Scope::Project, vec![(SHIPYARD_FILE.to_owned(), text.as_bytes().to_vec())])
                .await
                .map_err(ProjectError::from_resource)?;
            record.replace_shipyard(text, &parsed);
        }
        if let Some(credentials) = &credentials {
            self.store_credentials(&record.name, credentials).await?;
        }
        self.store_record(&record).await?;
        Ok(record)
    }

    /// Deletes a project's record, credentials and repository; returns Keptn's explanatory message.
    pub async fn delete(&self, project: &str) -> Result<String, ProjectError> {
        if self.get(project).is_none() {
            return Err(ProjectError::project_not_found(project));
        }
        let lock = self.lock(project);
        let _guard = lock.lock().await;
        let record = self.get(project).ok_or_else(|| ProjectError::project_not_found(project))?;
        self.snapshots.delete(&format!("{RECORD_PREFIX}{project}")).await?;
        self.uncache(project);
        self.forget_activity(project, None).await;
        let had_upstream = record.git_remote.is_some();
        if let Err(error) = self.snapshots.delete(&format!("{CREDENTIALS_PREFIX}{project}")).await {
            // Harmless: the next start drops credentials without a project.
            tracing::warn!(project, %error, "could not delete upstream credentials");
        }
        let cleanup = self.repos.delete_project(project).await.map_err(ProjectError::from_resource);
        let outcome = if cleanup.is_ok() { Outcome::Succeeded } else { Outcome::Errored };
        let data = json!({ "project": project, "status": outcome.status(), "result": outcome.result() });
        let keptn_context = uuid::Uuid::new_v4().to_string();
        self.emitter.emit(self.event(event::PROJECT_DELETE_FINISHED, &keptn_context, data)).await;
        if let Err(error) = cleanup {
            // The record is gone; the next start moves the repository to lost+found.
            tracing::error!(project, %error, "project record deleted but its repository could not be removed");
            return Err(ProjectError::Internal(format!(
                "project {project} was deleted but its repository could not be removed: {error}"
            )));
        }
        tracing::info!(project, stages = record.stages.len(), "project deleted");
        let mut message = format!("Project {project} deleted.");
        if had_upstream {
            message.push_str(
                "\nThe Git upstream repository of the project was not changed; delete it there if it is no longer needed.",
            );
        }
        Ok(message)
    }

    /// Adds a service to every stage of a project.
    pub async fn create_service(&self, project: &str, service: &str) -> Result<(), ProjectError> {
        names::validate_service_name(service).map_err(|e| ProjectError::BadRequest(e.to_string()))?;
        if self.get(project).is_none() {
            return Err(ProjectError::project_not_found(project));
        }
        let lock = self.lock(project);
        let _guard = lock.lock().await;
        let current = self.get(project).ok_or_else(|| ProjectError::project_not_found(project))?;
        if current.has_service(service) {
            return Err(ProjectError::Conflict(format!("service {service} already exists in project {project}")));
        }
        let keptn_context = uuid::Uuid::new_v4().to_string();
        let data = json!({ "project": project, "service": service });
        self.emitter.emit(self.event(event::SERVICE_CREATE_STARTED, &keptn_context, data)).await;
        let mut record = (*current).clone();
        record.add_service(service, &unix_nanos_string(self.clock.now()));
        let result = self.store_record(&record).await;
        self.emit_service_finished(event::SERVICE_CREATE_FINISHED, &keptn_context, project, service, result.is_ok())
            .await;
        result?;
        self.projects.insert(project.to_owned(), Arc::new(record));
        tracing::info!(project, service, "service created");
        Ok(())
    }

    /// Removes a service from every stage, with its files on every stage branch.
    pub async fn delete_service(&self, project: &str, service: &str) -> Result<(), ProjectError> {
        if !self.get(project).is_some_and(|record| record.has_service(service)) {
            return Err(self.missing(project, service));
        }
        let lock = self.lock(project);
        let _guard = lock.lock().await;
        let current = self.get(project).ok_or_else(|| ProjectError::project_not_found(project))?;
        if !current.has_service(service) {
            return Err(self.missing(project, service));
        }
        let keptn_context = uuid::Uuid::new_v4().to_string();
        let data = json!({ "project": project, "service": service });
        self.emitter.emit(self.event(event::SERVICE_DELETE_STARTED, &keptn_context, data)).await;
        let mut record = (*current).clone();
        record.remove_service(service);
        let result = async {
            // Files first: if a stage fails, the service is still listed and the delete can be retried.
            for stage in &current.stages {
                self.repos
                    .delete_service_files(project, &stage.name, service)
                    .await
                    .map_err(ProjectError::from_resource)?;
            }
            self.store_record(&record).await
        }
        .await;
        self.emit_service_finished(event::SERVICE_DELETE_FINISHED, &keptn_context, project, service, result.is_ok())
            .await;
        result?;
        self.projects.insert(project.to_owned(), Arc::new(record));
        self.forget_activity(project, Some(service)).await;
        tracing::info!(project, service, "service deleted");
        Ok(())
    }

    /// Emits a service lifecycle `.finished` event with the operation's outcome.
    async fn emit_service_finished(
        &self,
        event_type: &str,
        keptn_context: &str,
        project: &str,
        service: &str,
        succeeded: bool,
    ) {
        let outcome = if succeeded { Outcome::Succeeded } else { Outcome::Errored };
        let data = json!({
            "project": project, "service": service, "status": outcome.status(), "result": outcome.result()
        });
        self.emitter.emit(self.event(event_type, keptn_context, data)).await;
    }

    fn missing(&self, project: &str, service: &str) -> ProjectError {
        if self.get(project).is_none() {
            ProjectError::project_not_found(project)
        } else {
            ProjectError::NotFound(format!("Service not found: {service}"))
        }
    }

    /// Checks that `scope` exists in `project`, with Keptn's not-found messages.
    pub fn check_scope(&self, project: &str, scope: &Scope) -> Result<(), ProjectError> {
        let record = self.get(project).ok_or_else(|| ProjectError::project_not_found(project))?;
        let (stage, service) = match scope {
            Scope::Project => return Ok(()),
            Scope::Stage(stage) => (stage, None),
            Scope::Service { stage, service } => (stage, Some(service)),
        };
        let stage_record =
            record.stage(stage).ok_or_else(|| ProjectError::NotFound(format!("Stage not found: {stage}")))?;
        if let Some(service) = service {
            stage_record
                .service(service)
                .ok_or_else(|| ProjectError::NotFound(format!("Service not found: {service}")))?;
        }
        Ok(())
    }

    /// Names of the services of `stage`, which stage-level listings leave out.
    pub fn service_names(&self, project: &str, stage: &str) -> Vec<String> {
        self.get(project)
            .and_then(|record| record.stage(stage).map(|s| s.services.iter().map(|svc| svc.name.clone()).collect()))
            .unwrap_or_default()
    }
}

/// Decodes and validates a base64 shipyard; returns the YAML text and the parsed file.
fn decode_shipyard(encoded: &str) -> Result<(String, Shipyard), ProjectError> {
    if encoded.trim().is_empty() {
        return Err(ProjectError::BadRequest("Could not validate payload: shipyard must not be empty".into()));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ProjectError::BadRequest("could not decode shipyard content: it is not valid base64".into()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ProjectError::BadRequest("could not decode shipyard content: it is not UTF-8".into()))?;
    let parsed = shipyard::parse(&text)
        .map_err(|e| ProjectError::BadRequest(format!("provided shipyard file is not valid: {e}")))?;
    Ok((text, parsed))
}
