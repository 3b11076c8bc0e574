//! What every handler can reach.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use super::token;
use crate::projects::ProjectManager;

/// What every handler can reach.
pub struct AppState {
    pub projects: Arc<ProjectManager>,
    /// Registered integrations and their logs.
    pub integrations: Arc<crate::integrations::Integrations>,
    /// The event history behind the datastore API.
    pub events: Arc<dyn crate::store::EventStore>,
    /// The sequences' control plane: taking in events, control, executions, open tasks.
    pub control: crate::actors::ControlHandle,
    pub token: token::ApiToken,
    pub auth_limiter: token::AuthLimiter,
    pub metrics: PrometheusHandle,
    /// Secrets for webhooks, encrypted at rest.
    pub secrets: Arc<crate::secrets::Secrets>,
    /// Largest accepted request body, in bytes.
    pub max_request_body_bytes: usize,
    /// How long a client may take to send a request body.
    pub request_body_timeout: std::time::Duration,
    /// Set in cluster mode: where each project is served.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Set on NATS: the bus whose consumer lag `/metrics` reports.
    pub nats: Option<crate::bus::nats::NatsBus>,
}
