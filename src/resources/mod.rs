//! Versioned resources (shipyard.yaml, slo.yaml, helm charts, …) in Git.
//!
//! One bare repository per project under `<data dir>/git/<project>.git`. Project-level files live on the
//! default branch, each stage is a branch, and a service's files sit under `<service>/` on every stage
//! branch — the layout Keptn's resource-service uses. With an upstream configured, every read first pulls
//! and every write is pushed before it counts.

pub mod git;
pub mod upstream;
pub mod uri;

pub use git::{GitRepos, Listing, ResourceError, Scope};
