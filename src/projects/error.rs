//! Errors of project lifecycle operations, each with the HTTP status Keptn answers with.

use crate::resources::upstream::UpstreamError;
use crate::resources::ResourceError;

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The request is malformed or breaks a rule (400).
    #[error("{0}")]
    BadRequest(String),
    /// The project, stage, service or resource does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// It exists already (409).
    #[error("{0}")]
    Conflict(String),
    /// A remote URL that is refused by policy (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The git upstream refused or failed (424).
    #[error("{0}")]
    FailedDependency(String),
    /// Nothing was changed and a retry may succeed: a store is unreachable, the disk is full (503).
    #[error("{0}")]
    Unavailable(String),
    /// A store is unreachable, with the store's error as the cause; nothing was changed (503).
    #[error(transparent)]
    Store(crate::store::Error),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
}

impl ProjectError {
    pub fn project_not_found(project: &str) -> Self {
        ProjectError::NotFound(format!("Project not found: {project}"))
    }

    pub fn project_exists(project: &str) -> Self {
        ProjectError::Conflict(format!("project {project} already exists"))
    }

    /// A failure to set up a new project's repository: one that exists already is a conflict.
    pub fn from_new_repository(project: &str, error: ResourceError) -> Self {
        match error {
            ResourceError::AlreadyExists => Self::project_exists(project),
            other => Self::from_resource(other),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ProjectError::BadRequest(_) => 400,
            ProjectError::NotFound(_) => 404,
            ProjectError::Conflict(_) => 409,
            ProjectError::Unprocessable(_) => 422,
            ProjectError::FailedDependency(_) => 424,
            ProjectError::Unavailable(_) | ProjectError::Store(_) => 503,
            ProjectError::Internal(_) => 500,
        }
    }

    /// Maps a repository error onto the API's vocabulary.
    pub fn from_resource(error: ResourceError) -> Self {
        match error {
            ResourceError::ProjectNotFound => ProjectError::NotFound("Project not found".into()),
            ResourceError::StageNotFound(stage) => ProjectError::NotFound(format!("Stage not found: {stage}")),
            ResourceError::ResourceNotFound => ProjectError::NotFound("Resource not found".into()),
            ResourceError::AlreadyExists => ProjectError::Conflict("Project already exists".into()),
            ResourceError::InvalidUri(error) => ProjectError::BadRequest(error.to_string()),
            ResourceError::InvalidCommitId(id) => ProjectError::BadRequest(format!("invalid gitCommitID '{id}'")),
            ResourceError::PathConflict(path) => {
                ProjectError::Conflict(format!("'{path}' is a directory; a file cannot replace it"))
            }
            ResourceError::Upstream(UpstreamError::NotFound) => {
                ProjectError::NotFound(UpstreamError::NotFound.to_string())
            }
            ResourceError::Upstream(UpstreamError::NotEmpty) => {
                ProjectError::Conflict("Project already exists with an already initialized GIT repository".into())
            }
            ResourceError::Upstream(error @ UpstreamError::Diverged(_)) => ProjectError::Conflict(error.to_string()),
            ResourceError::Upstream(UpstreamError::Auth) => ProjectError::FailedDependency("Invalid git token".into()),
            ResourceError::Upstream(error) => ProjectError::FailedDependency(error.to_string()),
            error if is_out_of_space(&error) => {
                tracing::warn!(%error, "repository write failed: the data volume is full");
                ProjectError::Unavailable(
                    "the data volume is full; nothing was changed, retry once space is freed".into(),
                )
            }
            error @ (ResourceError::Git(_) | ResourceError::Io(_) | ResourceError::Join(_)) => {
                tracing::error!(%error, "repository operation failed");
                ProjectError::Internal("Internal server error".into())
            }
        }
    }
}

/// Whether a repository operation failed for want of disk space (or quota): a condition that passes,
/// unlike a damaged repository.
fn is_out_of_space(error: &ResourceError) -> bool {
    match error {
        ResourceError::Io(error) => {
            error.kind() == std::io::ErrorKind::StorageFull || error.raw_os_error().is_some_and(is_enospc)
        }
        // libgit2 reports the operating system's message.
        ResourceError::Git(error) => {
            let message = error.message();
            message.contains("No space left on device") || message.contains("Disk quota exceeded")
        }
        _ => false,
    }
}

fn is_enospc(code: i32) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    code == ENOSPC || code == EDQUOT
}

impl From<crate::store::Error> for ProjectError {
    fn from(error: crate::store::Error) -> Self {
        match error {
            crate::store::Error::Unavailable { .. } => ProjectError::Store(error),
            crate::store::Error::Corrupt { .. } => ProjectError::Internal(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_keeps_its_cause_through_the_project_error() {
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = ProjectError::from(crate::store::Error::unavailable("redis", cause));
        assert_eq!(error.status(), 503);
        assert_eq!(error.to_string(), "redis is unavailable: connection refused");
        let root =
            std::iter::successors(Some(&error as &dyn std::error::Error), |error| error.source()).last().unwrap();
        let io = root.downcast_ref::<std::io::Error>().expect("the driver's error is the root cause");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn a_full_disk_is_unavailable_not_an_internal_error() {
        let full = ResourceError::Io(std::io::Error::from_raw_os_error(28));
        assert!(matches!(ProjectError::from_resource(full), ProjectError::Unavailable(_)));
        let git = ResourceError::Git(git2::Error::from_str("failed to write: No space left on device"));
        assert!(matches!(ProjectError::from_resource(git), ProjectError::Unavailable(_)));
        let other = ResourceError::Io(std::io::Error::from_raw_os_error(13));
        assert!(matches!(ProjectError::from_resource(other), ProjectError::Internal(_)));
    }
}
