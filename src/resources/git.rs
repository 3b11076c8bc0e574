//! The per-project bare repositories and the resource operations on them.
//!
//! Every function here blocks (libgit2 does file and network I/O); the async entry points run them on
//! tokio's blocking pool. A per-project mutex makes each project's repository single-writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;
use git2::{ObjectType, Oid, Repository, Signature, Tree};

use super::upstream::{self, UpstreamError, MAX_PUSH_ATTEMPTS};
use super::uri::{self, InvalidUri};
use crate::model::project::GitCredentials;

/// Branch that holds project-level files.
pub const DEFAULT_BRANCH: &str = "master";
const FILE_MODE: i32 = 0o100_644;
const TREE_MODE: i32 = 0o040_000;

/// Where a resource lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Project,
    Stage(String),
    Service { stage: String, service: String },
}

impl Scope {
    fn branch(&self) -> &str {
        match self {
            Scope::Project => DEFAULT_BRANCH,
            Scope::Stage(stage) | Scope::Service { stage, .. } => stage,
        }
    }

    fn prefix(&self) -> Vec<&str> {
        match self {
            Scope::Service { service, .. } => vec![service.as_str()],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("project repository not found")]
    ProjectNotFound,
    #[error("project repository already exists")]
    AlreadyExists,
    #[error("stage '{0}' not found")]
    StageNotFound(String),
    #[error("resource not found")]
    ResourceNotFound,
    #[error(transparent)]
    InvalidUri(#[from] InvalidUri),
    #[error("invalid git commit id '{0}'")]
    InvalidCommitId(String),
    #[error("'{0}' is a directory; a file cannot replace it")]
    PathConflict(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("background task failed: {0}")]
    Join(#[source] tokio::task::JoinError),
}

/// The resources of one scope at one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// URIs with a leading `/`, sorted.
    pub uris: Vec<String>,
    pub commit: String,
}

/// Directory under the git root where repositories without a project record are moved at start.
pub const LOST_AND_FOUND: &str = "lost+found";
/// How long connecting to an upstream may take.
const UPSTREAM_CONNECT_TIMEOUT_MS: i32 = 10_000;
/// How long an upstream may stay silent during a fetch or push.
const UPSTREAM_IO_TIMEOUT_MS: i32 = 30_000;

/// All project repositories.
pub struct GitRepos {
    root: PathBuf,
    /// One lock per project: git2 repositories are single-writer. It is an async lock taken *before*
    /// work goes to the blocking pool, so that queued requests wait without holding a pool thread.
    locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Upstream credentials per project; changed only while the project's lock is held, and read by
    /// every operation inside it, so that a write never goes to a stale upstream.
    upstreams: DashMap<String, GitCredentials>,
    /// Latest commit of every branch, by project and branch, refreshed after every change and pull, so
    /// that sequences read a stage's `gitcommitid` without touching the repository.
    heads: DashMap<(String, String), String>,
}

impl GitRepos {
    pub fn new(root: PathBuf) -> Arc<Self> {
        static TIMEOUTS: std::sync::Once = std::sync::Once::new();
        TIMEOUTS.call_once(|| {
            // SAFETY: libgit2 global options are set once, before any repository operation runs.
            unsafe {
                let _ = git2::opts::set_server_connect_timeout_in_milliseconds(UPSTREAM_CONNECT_TIMEOUT_MS);
                let _ = git2::opts::set_server_timeout_in_milliseconds(UPSTREAM_IO_TIMEOUT_MS);
            }
        });
        Arc::new(Self { root, locks: DashMap::new(), upstreams: DashMap::new(), heads: DashMap::new() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The project's upstream credentials (for rollbacks; never for display).
    pub(crate) fn upstream(&self, project: &str) -> Option<GitCredentials> {
        self.upstreams.get(project).map(|entry| entry.value().clone())
    }

    /// The latest commit of `branch` (a stage, or the default branch) of `project`.
    pub fn branch_head(&self, project: &str, branch: &str) -> Option<String> {
        self.heads.get(&(project.to_owned(), branch.to_owned())).map(|head| head.value().clone())
    }

    /// Reads every branch head of `project` into the cache (at start).
    pub async fn load_heads(self: &Arc<Self>, project: &str) -> Result<(), ResourceError> {
        self.run(project, |repos, project, _| {
            let repo = repos.open(project)?;
            repos.record_heads(project, &repo)
        })
        .await
    }

    /// Brings `project`'s repository up to date with its upstream and reads its branch heads again
    /// (an instance taking a project over, whose clone may be behind what another instance pushed).
    pub async fn refresh(self: &Arc<Self>, project: &str) -> Result<(), ResourceError> {
        self.run(project, |repos, project, upstream| {
            let repo = repos.open(project)?;
            if let Some(credentials) = &upstream {
                upstream::pull(&repo, credentials)?;
            }
            repos.record_heads(project, &repo)
        })
        .await
    }

    /// Rebuilds a missing repository of `project` from its upstream (at start). Without an upstream
    /// there is nothing to rebuild it from: `ProjectNotFound`.
    pub async fn reclone(self: &Arc<Self>, project: &str) -> Result<(), ResourceError> {
        self.run(project, |repos, project, upstream| {
            let Some(credentials) = upstream else { return Err(ResourceError::ProjectNotFound) };
            repos.clone_upstream(project, &credentials)
        })
        .await
    }

    /// Clones every branch of `credentials`' upstream as the repository of `project`, which must not
    /// exist; nothing is left behind on error.
    fn clone_upstream(&self, project: &str, credentials: &GitCredentials) -> Result<(), ResourceError> {
        let final_path = self.path(project);
        if final_path.exists() {
            return Err(ResourceError::AlreadyExists);
        }
        std::fs::create_dir_all(&self.root)?;
        let staging = self.root.join(format!(".{project}.git.{}", uuid::Uuid::new_v4()));
        let cloned =
            Repository::init_opts(&staging, git2::RepositoryInitOptions::new().bare(true).initial_head(DEFAULT_BRANCH))
                .map_err(ResourceError::from)
                .and_then(|repo| upstream::pull(&repo, credentials).map_err(ResourceError::from));
        if let Err(error) = cloned.and_then(|()| Ok(std::fs::rename(&staging, &final_path)?)) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
        self.record_heads(project, &Repository::open_bare(&final_path)?)
    }

    /// Takes a project over from an upstream that already holds it (a Keptn project being moved to
    /// Keelson): clones every branch and makes the upstream the project's. Nothing is left behind on
    /// error; an existing repository of that name is `AlreadyExists`.
    pub async fn adopt_project(
        self: &Arc<Self>,
        project: &str,
        credentials: GitCredentials,
    ) -> Result<(), ResourceError> {
        self.run(project, move |repos, project, _| {
            repos.clone_upstream(project, &credentials)?;
            repos.replace_upstream(project, Some(credentials));
            Ok(())
        })
        .await
    }

    fn record_heads(&self, project: &str, repo: &Repository) -> Result<(), ResourceError> {
        for branch in repo.branches(Some(git2::BranchType::Local))? {
            let (branch, _) = branch?;
            if let (Some(name), Some(target)) = (branch.name()?, branch.get().target()) {
                self.heads.insert((project.to_owned(), name.to_owned()), target.to_string());
            }
        }
        Ok(())
    }

    fn forget_heads(&self, project: &str) {
        self.heads.retain(|(owner, _), _| owner != project);
    }

    /// The upstream URL to show for `project` (user-info removed), if it has an upstream.
    pub fn upstream_url(&self, project: &str) -> Option<String> {
        self.upstreams.get(project).map(|credentials| credentials.secure().remote_url)
    }

    /// Sets or clears `project`'s upstream under its lock (start-up and rollbacks).
    pub async fn restore_upstream(
        self: &Arc<Self>,
        project: &str,
        credentials: Option<GitCredentials>,
    ) -> Result<(), ResourceError> {
        self.run(project, move |repos, project, _| {
            repos.replace_upstream(project, credentials);
            Ok(())
        })
        .await
    }

    fn replace_upstream(&self, project: &str, credentials: Option<GitCredentials>) {
        match credentials.filter(|c| !c.remote_url.is_empty()) {
            Some(credentials) => self.upstreams.insert(project.to_owned(), credentials),
            None => self.upstreams.remove(project).map(|(_, credentials)| credentials),
        };
    }

    fn path(&self, project: &str) -> PathBuf {
        self.root.join(format!("{project}.git"))
    }

    fn lock(&self, project: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(self.locks.entry(project.to_owned()).or_default().value())
    }

    /// Runs `work` on the blocking pool while holding the project's lock; `work` receives the
    /// project's upstream as it is under the lock.
    async fn run<T, F>(self: &Arc<Self>, project: &str, work: F) -> Result<T, ResourceError>
    where
        T: Send + 'static,
        F: FnOnce(&GitRepos, &str, Option<GitCredentials>) -> Result<T, ResourceError> + Send + 'static,
    {
        let guard = self.lock(project).lock_owned().await;
        let repos = Arc::clone(self);
        let project = project.to_owned();
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let upstream = repos.upstreams.get(&project).map(|entry| entry.value().clone());
            work(&repos, &project, upstream)
        })
        .await
        .map_err(ResourceError::Join)?
    }

    fn open(&self, project: &str) -> Result<Repository, ResourceError> {
        let path = self.path(project);
        if !path.exists() {
            return Err(ResourceError::ProjectNotFound);
        }
        Ok(Repository::open_bare(path)?)
    }

    /// Creates the repository with one branch per stage and `files` on the default branch. With an
    /// upstream, the upstream must be empty and receives every branch. Nothing is left behind on error.
    pub async fn create_project(
        self: &Arc<Self>,
        project: &str,
        stages: Vec<String>,
        files: Vec<(String, Vec<u8>)>,
        upstream: Option<GitCredentials>,
    ) -> Result<String, ResourceError> {
        self.run(project, move |repos, project, _| {
            let final_path = repos.path(project);
            if final_path.exists() {
                return Err(ResourceError::AlreadyExists);
            }
            std::fs::create_dir_all(&repos.root)?;
            let staging = repos.root.join(format!(".{project}.git.{}", uuid::Uuid::new_v4()));
            let result = init_repository(&staging, &stages, &files, upstream.as_ref());
            match result {
                Ok(commit) => {
                    std::fs::rename(&staging, &final_path)?;
                    repos.replace_upstream(project, upstream);
                    repos.record_heads(project, &Repository::open_bare(&final_path)?)?;
                    Ok(commit)
                }
                Err(error) => {
                    let _ = std::fs::remove_dir_all(&staging);
                    Err(error)
                }
            }
        })
        .await
    }

    /// Removes the project's repository; the upstream, if any, is left as it is.
    pub async fn delete_project(self: &Arc<Self>, project: &str) -> Result<(), ResourceError> {
        self.run(project, |repos, project, _| {
            repos.replace_upstream(project, None);
            repos.forget_heads(project);
            let path = repos.path(project);
            if !path.exists() {
                return Err(ResourceError::ProjectNotFound);
            }
            // Rename first so that a crash mid-delete never leaves a half-deleted repository in place.
            let doomed = repos.root.join(format!(".{project}.git.deleted.{}", uuid::Uuid::new_v4()));
            std::fs::rename(&path, &doomed)?;
            std::fs::remove_dir_all(&doomed)?;
            Ok(())
        })
        .await
    }

    /// Connects an existing project to a (new) upstream and makes it the project's upstream.
    ///
    /// The upstream may be empty or hold history the project already contains; anything else is
    /// refused, because taking it over would discard the project's files.
    pub async fn set_upstream(
        self: &Arc<Self>,
        project: &str,
        credentials: GitCredentials,
    ) -> Result<(), ResourceError> {
        self.run(project, move |repos, project, _| {
            let repo = repos.open(project)?;
            if !upstream::remote_heads(&repo, &credentials)?.is_empty() {
                upstream::fetch(&repo, &credentials)?;
                check_upstream_is_contained(&repo)?;
            }
            let branches = local_branches(&repo)?;
            let names: Vec<&str> = branches.iter().map(String::as_str).collect();
            upstream::push(&repo, &credentials, &names)?;
            repos.replace_upstream(project, Some(credentials));
            repos.record_heads(project, &repo)?;
            Ok(())
        })
        .await
    }

    /// Lists the files of `scope`, at the branch head or at `commit_id`, leaving out top-level
    /// directories named in `excluded`.
    pub async fn list(
        self: &Arc<Self>,
        project: &str,
        scope: Scope,
        excluded: Vec<String>,
        commit_id: Option<String>,
    ) -> Result<Listing, ResourceError> {
        self.run(project, move |repos, project, upstream| {
            let repo = repos.open(project)?;
            if let Some(credentials) = &upstream {
                upstream::pull(&repo, credentials)?;
                repos.record_heads(project, &repo)?;
            }
            let commit = match &commit_id {
                Some(id) => find_commit(&repo, id)?,
                None => branch_commit(&repo, scope.branch())?,
            };
            let mut uris = Vec::new();
            let root = commit.tree()?;
            if let Some(tree) = subtree(&repo, &root, &scope.prefix())? {
                collect_files(&repo, &tree, "", &excluded, &mut uris)?;
            }
            uris.sort();
            Ok(Listing { uris, commit: commit.id().to_string() })
        })
        .await
    }

    /// Reads one file, at the branch head or at `commit_id`.
    pub async fn read(
        self: &Arc<Self>,
        project: &str,
        scope: Scope,
        resource_uri: String,
        commit_id: Option<String>,
    ) -> Result<(Vec<u8>, String), ResourceError> {
        self.run(project, move |repos, project, upstream| {
            let components = uri::parse(&resource_uri)?;
            let repo = repos.open(project)?;
            if let Some(credentials) = &upstream {
                upstream::pull(&repo, credentials)?;
                repos.record_heads(project, &repo)?;
            }
            let commit = match &commit_id {
                Some(id) => find_commit(&repo, id)?,
                None => branch_commit(&repo, scope.branch())?,
            };
            let mut path: Vec<&str> = scope.prefix();
            path.extend(components);
            let entry = commit.tree()?.get_path(Path::new(&path.join("/"))).map_err(not_found)?;
            let blob = entry.to_object(&repo)?.into_blob().map_err(|_| ResourceError::ResourceNotFound)?;
            Ok((blob.content().to_vec(), commit.id().to_string()))
        })
        .await
    }

    /// Writes `files` (URI, content) in one commit; returns the commit id.
    pub async fn write(
        self: &Arc<Self>,
        project: &str,
        scope: Scope,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<String, ResourceError> {
        for (resource_uri, _) in &files {
            uri::parse(resource_uri)?;
        }
        let message = format!("write {} resource(s)", files.len());
        self.commit_change(project, scope, message, move |repo, root, prefix| {
            let mut tree_id = root.id();
            for (resource_uri, content) in &files {
                let blob = repo.blob(content)?;
                let mut path = prefix.to_vec();
                path.extend(uri::parse(resource_uri)?);
                let tree = repo.find_tree(tree_id)?;
                tree_id = update_tree(repo, Some(&tree), &path, Some(blob))?.unwrap_or(empty_tree(repo)?);
            }
            Ok(tree_id)
        })
        .await
    }

    /// Deletes one file; returns the commit id.
    pub async fn delete(
        self: &Arc<Self>,
        project: &str,
        scope: Scope,
        resource_uri: String,
    ) -> Result<String, ResourceError> {
        uri::parse(&resource_uri)?;
        let message = format!("delete {resource_uri}");
        self.commit_change(project, scope, message, move |repo, root, prefix| {
            let mut path = prefix.to_vec();
            path.extend(uri::parse(&resource_uri)?);
            let entry = root.get_path(Path::new(&path.join("/"))).map_err(not_found)?;
            if entry.kind() != Some(ObjectType::Blob) {
                return Err(ResourceError::ResourceNotFound);
            }
            Ok(update_tree(repo, Some(root), &path, None)?.unwrap_or(empty_tree(repo)?))
        })
        .await
    }

    /// Removes a service's directory from a stage branch, if it has one.
    pub async fn delete_service_files(
        self: &Arc<Self>,
        project: &str,
        stage: &str,
        service: &str,
    ) -> Result<(), ResourceError> {
        let service = service.to_owned();
        let message = format!("delete service {service}");
        let result = self
            .commit_change(project, Scope::Stage(stage.to_owned()), message, move |repo, root, _| {
                if root.get_name(&service).is_none() {
                    return Err(ResourceError::ResourceNotFound);
                }
                Ok(update_tree(repo, Some(root), &[service.as_str()], None)?.unwrap_or(empty_tree(repo)?))
            })
            .await;
        match result {
            Ok(_) | Err(ResourceError::ResourceNotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Applies `change` to the scope's branch as one commit, pushing it when an upstream is set and
    /// retrying from the new upstream head when another writer pushed first.
    async fn commit_change<F>(
        self: &Arc<Self>,
        project: &str,
        scope: Scope,
        message: String,
        change: F,
    ) -> Result<String, ResourceError>
    where
        F: Fn(&Repository, &Tree<'_>, &[&str]) -> Result<Oid, ResourceError> + Send + 'static,
    {
        self.run(project, move |repos, project, upstream| {
            let repo = repos.open(project)?;
            let branch = scope.branch();
            let reference = format!("refs/heads/{branch}");
            for attempt in 1..=MAX_PUSH_ATTEMPTS {
                if let Some(credentials) = &upstream {
                    upstream::pull(&repo, credentials)?;
                }
                let parent = branch_commit(&repo, branch)?;
                let tree_id = change(&repo, &parent.tree()?, &scope.prefix())?;
                let tree = repo.find_tree(tree_id)?;
                let signature = signature()?;
                let commit = repo.commit(Some(&reference), &signature, &signature, &message, &tree, &[&parent])?;
                let Some(credentials) = &upstream else {
                    repos.record_heads(project, &repo)?;
                    return Ok(commit.to_string());
                };
                match upstream::push(&repo, credentials, &[branch]) {
                    Ok(()) => {
                        repos.record_heads(project, &repo)?;
                        return Ok(commit.to_string());
                    }
                    Err(error) => {
                        // Roll the local branch back so that it never holds an unpushed commit.
                        repo.reference(&reference, parent.id(), true, "roll back unpushed commit")?;
                        let retry = matches!(error, UpstreamError::Rejected(_)) && attempt < MAX_PUSH_ATTEMPTS;
                        if !retry {
                            return Err(error.into());
                        }
                        tracing::debug!(project, branch, attempt, "upstream moved; retrying the write");
                    }
                }
            }
            unreachable!("the last attempt returns")
        })
        .await
    }
}

fn signature() -> Result<Signature<'static>, git2::Error> {
    Signature::now("Keelson", "keelson@localhost")
}

fn not_found(error: git2::Error) -> ResourceError {
    if error.code() == git2::ErrorCode::NotFound {
        ResourceError::ResourceNotFound
    } else {
        ResourceError::Git(error)
    }
}

fn empty_tree(repo: &Repository) -> Result<Oid, git2::Error> {
    repo.treebuilder(None)?.write()
}

fn init_repository(
    path: &Path,
    stages: &[String],
    files: &[(String, Vec<u8>)],
    upstream: Option<&GitCredentials>,
) -> Result<String, ResourceError> {
    let repo = Repository::init_opts(path, git2::RepositoryInitOptions::new().bare(true).initial_head(DEFAULT_BRANCH))?;
    if let Some(credentials) = upstream {
        if !upstream::remote_heads(&repo, credentials)?.is_empty() {
            return Err(UpstreamError::NotEmpty.into());
        }
    }
    let signature = signature()?;
    let empty = repo.find_tree(empty_tree(&repo)?)?;
    let root = repo.commit(None, &signature, &signature, "initialize project", &empty, &[])?;
    let root = repo.find_commit(root)?;
    for stage in stages {
        repo.branch(stage, &root, false)?;
    }
    let mut tree_id = empty.id();
    for (resource_uri, content) in files {
        let blob = repo.blob(content)?;
        let tree = repo.find_tree(tree_id)?;
        tree_id = update_tree(&repo, Some(&tree), &uri::parse(resource_uri)?, Some(blob))?.unwrap_or(empty.id());
    }
    let tree = repo.find_tree(tree_id)?;
    let head = repo.commit(
        Some(&format!("refs/heads/{DEFAULT_BRANCH}")),
        &signature,
        &signature,
        "add project files",
        &tree,
        &[&root],
    )?;
    if let Some(credentials) = upstream {
        let mut branches: Vec<&str> = vec![DEFAULT_BRANCH];
        branches.extend(stages.iter().map(String::as_str));
        upstream::push(&repo, credentials, &branches)?;
    }
    Ok(head.to_string())
}

/// Checks that every upstream branch (fetched to `refs/remotes/upstream/*`) is already contained in
/// the local branch of the same name.
fn check_upstream_is_contained(repo: &Repository) -> Result<(), ResourceError> {
    for reference in repo.references_glob("refs/remotes/upstream/*")? {
        let reference = reference?;
        let (Some(name), Some(remote_head)) = (reference.name(), reference.target()) else { continue };
        let branch = name.trim_start_matches("refs/remotes/upstream/");
        let contained = match repo.refname_to_id(&format!("refs/heads/{branch}")) {
            Ok(local_head) => local_head == remote_head || repo.graph_descendant_of(local_head, remote_head)?,
            Err(_) => false,
        };
        if !contained {
            return Err(UpstreamError::Diverged(branch.to_owned()).into());
        }
    }
    Ok(())
}

fn local_branches(repo: &Repository) -> Result<Vec<String>, git2::Error> {
    let mut names = Vec::new();
    for branch in repo.branches(Some(git2::BranchType::Local))? {
        let (branch, _) = branch?;
        if let Some(name) = branch.name()? {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

fn branch_commit<'r>(repo: &'r Repository, branch: &str) -> Result<git2::Commit<'r>, ResourceError> {
    let reference = repo.find_reference(&format!("refs/heads/{branch}")).map_err(|error| {
        if error.code() == git2::ErrorCode::NotFound {
            ResourceError::StageNotFound(branch.to_owned())
        } else {
            ResourceError::Git(error)
        }
    })?;
    Ok(reference.peel_to_commit()?)
}

fn find_commit<'r>(repo: &'r Repository, id: &str) -> Result<git2::Commit<'r>, ResourceError> {
    let valid = (4..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(ResourceError::InvalidCommitId(id.to_owned()));
    }
    let object = repo.revparse_single(id).map_err(|_| ResourceError::ResourceNotFound)?;
    object.peel_to_commit().map_err(|_| ResourceError::ResourceNotFound)
}

fn subtree<'r>(repo: &'r Repository, root: &Tree<'r>, prefix: &[&str]) -> Result<Option<Tree<'r>>, ResourceError> {
    if prefix.is_empty() {
        return Ok(Some(root.clone()));
    }
    match root.get_path(Path::new(&prefix.join("/"))) {
        Ok(entry) if entry.kind() == Some(ObjectType::Tree) => Ok(Some(repo.find_tree(entry.id())?)),
        Ok(_) => Ok(None),
        Err(error) if error.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn collect_files(
    repo: &Repository,
    tree: &Tree<'_>,
    base: &str,
    excluded_top: &[String],
    out: &mut Vec<String>,
) -> Result<(), git2::Error> {
    for entry in tree.iter() {
        let Some(name) = entry.name() else { continue };
        if base.is_empty() && excluded_top.iter().any(|excluded| excluded == name) {
            continue;
        }
        let path = format!("{base}/{name}");
        match entry.kind() {
            Some(ObjectType::Tree) => collect_files(repo, &repo.find_tree(entry.id())?, &path, &[], out)?,
            Some(ObjectType::Blob) => out.push(path),
            _ => {}
        }
    }
    Ok(())
}

/// Returns the id of `base` with `path` set to `blob` (or removed when `blob` is `None`); `None` when the
/// resulting tree is empty.
fn update_tree(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    path: &[&str],
    blob: Option<Oid>,
) -> Result<Option<Oid>, ResourceError> {
    let Some((first, rest)) = path.split_first() else {
        return Err(ResourceError::ResourceNotFound);
    };
    let mut builder = repo.treebuilder(base)?;
    let existing = builder.get(first)?.map(|entry| (entry.kind(), entry.id()));
    if rest.is_empty() {
        match blob {
            Some(blob) => {
                if matches!(existing, Some((Some(ObjectType::Tree), _))) {
                    return Err(ResourceError::PathConflict(first.to_string()));
                }
                builder.insert(first, blob, FILE_MODE)?;
            }
            None if existing.is_some() => {
                builder.remove(first)?;
            }
            None => return Err(ResourceError::ResourceNotFound),
        }
    } else {
        let subtree = match existing {
            Some((Some(ObjectType::Tree), id)) => Some(repo.find_tree(id)?),
            Some(_) if blob.is_some() => return Err(ResourceError::PathConflict(first.to_string())),
            _ if blob.is_none() => return Err(ResourceError::ResourceNotFound),
            _ => None,
        };
        match update_tree(repo, subtree.as_ref(), rest, blob)? {
            Some(id) => {
                builder.insert(first, id, TREE_MODE)?;
            }
            None => {
                builder.remove(first)?;
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    Ok(Some(builder.write()?))
}
