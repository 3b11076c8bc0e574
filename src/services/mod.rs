//! Keelson's built-in execution-plane services, written with [`crate::sdk`] as any Keptn service is:
//! they receive events from the bus (in-process, or NATS when configured) and answer with events.
//!
//! | service | reacts to | sends |
//! |---|---|---|
//! | [`approval`] (`approval-service`) | `approval.triggered` | `approval.started`, and `.finished` when the strategy is automatic or the result failed |
//! | [`lighthouse`] (`lighthouse-service`) | `evaluation.triggered`, `get-sli.finished`, `monitoring.configure` | `evaluation.started`, `get-sli.triggered`, `evaluation.finished` |
//! | [`remediation`] (`remediation-service`) | `get-action.triggered` | `get-action.started`, `get-action.finished` with the next action |
//! | [`webhook`] (`webhook-service`) | events its uniform subscriptions name | HTTP requests; `.started`/`.finished` of the task |
//!
//! Each is registered as an integration (so the Bridge and `GET /uniform/registration` list it) and
//! kept alive by pings.

pub mod access;
pub mod approval;
pub mod lighthouse;
pub mod remediation;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use crate::bus::InProcessBus;
use crate::config::Config;
use crate::integrations::Integrations;
use crate::model::uniform::{EventSubscription, Integration, Metadata};
use crate::sdk::Service;

pub use access::{AccessError, ControlPlaneAccess, Level, LocalAccess};

/// How the built-in services reach the bus.
#[derive(Clone)]
pub enum Transport {
    InProcess(InProcessBus),
    Nats(String),
}

impl Transport {
    fn attach(&self, service: Service) -> Service {
        match self {
            Transport::InProcess(bus) => service.in_process(bus.clone()),
            Transport::Nats(url) => service.over_nats(url.clone()),
        }
    }
}

/// Starts the services named in `config.services`, each as its own task that restarts after a
/// failure.
pub async fn start(
    config: &Config,
    transport: Transport,
    access: Arc<dyn ControlPlaneAccess>,
    integrations: Arc<Integrations>,
) {
    for name in &config.services {
        let (service_name, subjects): (&str, &[&str]) = match name.as_str() {
            "approval" => (approval::NAME, approval::SUBJECTS),
            "lighthouse" => (lighthouse::NAME, lighthouse::SUBJECTS),
            "remediation" => (remediation::NAME, remediation::SUBJECTS),
            "webhook" => (webhook::NAME, webhook::SUBJECTS),
            _ => continue,
        };
        register(&integrations, service_name, subjects, config.uniform_integration_ttl).await;
        let (transport, access, name, webhook_settings) =
            (transport.clone(), Arc::clone(&access), name.clone(), config.webhook.clone());
        tokio::spawn(async move {
            loop {
                let service = transport.attach(Service::listen(service_name, subjects));
                let outcome = match name.as_str() {
                    "approval" => approval::run(service).await,
                    "lighthouse" => lighthouse::run(service, Arc::clone(&access)).await,
                    "remediation" => remediation::run(service, Arc::clone(&access)).await,
                    _ => webhook::run(service, Arc::clone(&access), webhook_settings.clone()).await,
                };
                match outcome {
                    // The bus went away: the process is shutting down.
                    Ok(()) => return,
                    Err(error) => {
                        tracing::error!(service = service_name, %error, "built-in service stopped; restarting it");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}

/// Registers a built-in service as an integration and pings it for as long as the process runs.
async fn register(integrations: &Arc<Integrations>, name: &str, subjects: &[&str], ttl: Duration) {
    let hostname = "keelson".to_owned();
    let integration = Integration {
        name: name.to_owned(),
        metadata: Metadata {
            hostname: hostname.clone(),
            integrationversion: env!("CARGO_PKG_VERSION").to_owned(),
            distributorversion: format!("keelson-{}", env!("CARGO_PKG_VERSION")),
            location: "control-plane".to_owned(),
            kubernetesmetadata: crate::model::uniform::KubernetesMetadata {
                namespace: "keelson".to_owned(),
                podname: hostname,
                deploymentname: name.to_owned(),
            },
            ..Default::default()
        },
        // The webhook service's subscriptions are the users' (one per webhook); the others subscribe
        // to their fixed event types.
        subscriptions: if name == webhook::NAME {
            Vec::new()
        } else {
            subjects
                .iter()
                .map(|subject| EventSubscription { event: (*subject).to_owned(), ..Default::default() })
                .collect()
        },
        ..Default::default()
    };
    let mut id = match integrations.register(integration.clone()).await {
        Ok((id, _)) => Some(id),
        Err(error) => {
            tracing::warn!(service = name, %error, "cannot register built-in service as an integration; retrying");
            None
        }
    };
    let integrations = Arc::clone(integrations);
    let interval = (ttl / 3).min(Duration::from_secs(15));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let alive = match &id {
                Some(id) => integrations.ping(id).await.is_ok(),
                None => false,
            };
            // Registered again when the store lost it or it expired during an outage.
            if !alive {
                id = integrations.register(integration.clone()).await.ok().map(|(id, _)| id);
            }
        }
    });
}
