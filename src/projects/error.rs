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
    /// A store is unreachable; nothing was changed (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
}

impl ProjectError {
    pub fn project_not_found(project: &str) -> Self {
        ProjectError::NotFound(format!("Project not found: {project}"))
    }

    pub fn status(&self) -> u16 {
        match self {
            ProjectError::BadRequest(_) => 400,
            ProjectError::NotFound(_) => 404,
            ProjectError::Conflict(_) => 409,
            ProjectError::Unprocessable(_) => 422,
            ProjectError::FailedDependency(_) => 424,
            ProjectError::Unavailable(_) => 503,
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
            error @ (ResourceError::Git(_) | ResourceError::Io(_) | ResourceError::Join(_)) => {
                tracing::error!(%error, "repository operation failed");
                ProjectError::Internal("Internal server error".into())
            }
        }
    }
}

impl From<crate::store::Error> for ProjectError {
    fn from(error: crate::store::Error) -> Self {
        match error {
            crate::store::Error::Unavailable { .. } => ProjectError::Unavailable(error.to_string()),
            crate::store::Error::Corrupt { .. } => ProjectError::Internal(error.to_string()),
        }
    }
}
