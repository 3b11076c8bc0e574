//! Keelson's built-in execution-plane services, written with [`crate::sdk`] as any Keptn service is:
//! they receive events from the bus (in-process, or NATS when configured) and answer with events.
//!
//! | service | reacts to | sends |
//! |---|---|---|
//! | [`approval`] (`approval-service`) | `approval.triggered` | `approval.started`, and `.finished` when the strategy is automatic or the result failed |
//! | [`lighthouse`] (`lighthouse-service`) | `evaluation.triggered`, `get-sli.finished`, `monitoring.configure` | `evaluation.started`, `get-sli.triggered`, `evaluation.finished` |
//! | [`remediation`] (`remediation-service`) | `get-action.triggered` | `get-action.started`, `get-action.finished` with the next action |
//! | [`webhook`] (`webhook-service`) | events its uniform subscriptions name | HTTP requests; `.started`/`.finished` of the task |
//! | [`job`] (`job-executor-service`, only with `job_runner = process`) | events an action of `job/config.yaml` matches | local processes; `.started`/`.finished` of the task |
//!
//! Each is registered as an integration (so the Bridge and `GET /uniform/registration` list it) and
//! kept alive by pings.

pub mod access;
pub mod approval;
pub mod job;
pub mod lighthouse;
pub mod remediation;
pub mod remote;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use crate::bus::InProcessBus;
use crate::config::{Config, JobRunner, JobSettings, WebhookSettings};
use crate::integrations::Integrations;
use crate::model::uniform::{EventSubscription, Integration, Metadata};
use crate::sdk::Service;

pub use access::{AccessError, ControlPlaneAccess, Level, LocalAccess, SliProviders};

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

/// How the services appear in the control plane's integration list.
#[derive(Clone)]
pub enum Registration {
    /// Registered straight in the registry of the Keelson they run in.
    Local { integrations: Arc<Integrations>, ttl: Duration },
    /// Registered (and pinged) through the control plane's API.
    Remote { endpoint: String, token: String },
}

/// How a built-in service appears on the bus.
struct Description {
    name: &'static str,
    /// Subjects shared out among the service's instances (a NATS queue group).
    subjects: &'static [&'static str],
    /// Subjects every instance receives.
    broadcast: &'static [&'static str],
    /// Subjects registered as the integration's subscriptions.
    advertised: &'static [&'static str],
}

fn describe(name: &str) -> Option<Description> {
    let shared = |name, subjects| Description { name, subjects, broadcast: &[], advertised: subjects };
    Some(match name {
        "approval" => shared(approval::NAME, approval::SUBJECTS),
        "lighthouse" => shared(lighthouse::NAME, lighthouse::SUBJECTS),
        "remediation" => shared(remediation::NAME, remediation::SUBJECTS),
        // The webhook service's subscriptions are the users' (one per webhook).
        "webhook" => Description { advertised: &[], ..shared(webhook::NAME, webhook::SUBJECTS) },
        "job-executor" => Description { broadcast: job::BROADCAST, ..shared(job::NAME, job::SUBJECTS) },
        _ => return None,
    })
}

/// Settings of the services that have any.
#[derive(Clone, Default)]
pub struct ServiceSettings {
    pub webhook: WebhookSettings,
    pub jobs: JobSettings,
}

impl ServiceSettings {
    pub fn of(config: &Config) -> Self {
        Self { webhook: config.webhook.clone(), jobs: config.jobs.clone() }
    }
}

/// Starts the built-in services `names`, each as its own task that restarts after a failure. The job
/// executor starts only when its runner is enabled.
pub async fn start(
    names: &[String],
    transport: Transport,
    access: Arc<dyn ControlPlaneAccess>,
    registration: Registration,
    settings: &ServiceSettings,
) {
    for name in names {
        let Some(Description { name: service_name, subjects, broadcast, advertised }) = describe(name) else {
            continue;
        };
        if name == "job-executor" && settings.jobs.runner == JobRunner::Off {
            continue;
        }
        if let Registration::Local { integrations, ttl } = &registration {
            register(integrations, service_name, advertised, *ttl).await;
        }
        // One executor across restarts of the subscription: its running jobs stay reachable by aborts.
        let executor =
            (name == "job-executor").then(|| Arc::new(job::Executor::new(Arc::clone(&access), settings.jobs.clone())));
        let (transport, access, name, settings, registration) =
            (transport.clone(), Arc::clone(&access), name.clone(), settings.clone(), registration.clone());
        let build = move || {
            let mut service = transport.attach(Service::listen(service_name, subjects).broadcast(broadcast));
            if let Registration::Remote { endpoint, token } = &registration {
                service = service.register_with(endpoint.clone(), token.clone()).advertise(advertised);
            }
            service
        };
        // Subscribed before this function returns, so no event published afterwards is missed (the
        // control plane republishes open tasks right after, when it recovers).
        let mut next = Some(build());
        tokio::spawn(async move {
            loop {
                let service = next.take().unwrap_or_else(&build);
                let outcome = match (name.as_str(), &executor) {
                    (_, Some(executor)) => job::run(service, Arc::clone(executor)).await,
                    ("approval", _) => approval::run(service).await,
                    ("lighthouse", _) => lighthouse::run(service, Arc::clone(&access)).await,
                    ("remediation", _) => remediation::run(service, Arc::clone(&access)).await,
                    _ => webhook::run(service, Arc::clone(&access), settings.webhook.clone()).await,
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

/// Runs built-in services as their own process on NATS (`keelson service <name>…`), talking to the
/// control plane at `endpoint`; returns only on a start-up error.
pub async fn run_standalone(config: &Config, names: &[String], endpoint: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if names.is_empty() {
        anyhow::bail!("name at least one service: {}", crate::config::BUILTIN_SERVICES.join(", "));
    }
    if let Some(unknown) = names.iter().find(|name| describe(name).is_none()) {
        anyhow::bail!("unknown service '{unknown}' (known: {})", crate::config::BUILTIN_SERVICES.join(", "));
    }
    let nats = config
        .nats_url
        .as_ref()
        .context("a service runs on NATS: set KEELSON_NATS_URL to the control plane's NATS server")?;
    let token = config.api_token.clone().context("set KEELSON_API_TOKEN to the control plane's API token")?;
    let (secrets, providers) = match &config.redis_url {
        Some(url) => {
            let store: Arc<dyn crate::store::SnapshotStore> = Arc::new(
                crate::store::redis::RedisSnapshotStore::connect(url.as_str())
                    .await
                    .context("cannot connect to the control plane's redis")?,
            );
            let secrets = match &config.secret_key {
                Some(key) => Some(Arc::new(crate::secrets::Secrets::new(
                    Arc::clone(&store),
                    crate::secrets::SecretKey::from_base64(&key.0)?,
                    config.secret_scopes.clone(),
                ))),
                None => None,
            };
            (secrets, Some(SliProviders(store)))
        }
        None => (None, None),
    };
    let needs_store = names.iter().any(|name| name == "lighthouse" || name == "webhook" || name == "job-executor");
    if needs_store && providers.is_none() {
        anyhow::bail!("lighthouse, webhook and job-executor read the control plane's redis: set KEELSON_REDIS_URL");
    }
    if names.iter().any(|name| name == "webhook" || name == "job-executor") && secrets.is_none() {
        anyhow::bail!("webhook and job-executor read secrets: set KEELSON_SECRET_KEY to the control plane's key");
    }
    if names.iter().any(|name| name == "job-executor") && config.jobs.runner == JobRunner::Off {
        anyhow::bail!("job-executor runs tasks as local processes only when enabled: set KEELSON_JOB_RUNNER=process");
    }
    let access = Arc::new(remote::RemoteAccess::new(endpoint, &token, secrets, providers));
    let registration = Registration::Remote { endpoint: endpoint.to_owned(), token };
    start(names, Transport::Nats(nats.to_string()), access, registration, &ServiceSettings::of(config)).await;
    Ok(())
}

/// Registers a built-in service as an integration and pings it for as long as the process runs.
async fn register(integrations: &Arc<Integrations>, name: &str, advertised: &[&str], ttl: Duration) {
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
        subscriptions: advertised
            .iter()
            .map(|subject| EventSubscription { event: (*subject).to_owned(), ..Default::default() })
            .collect(),
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
    let mut known = integration;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let pinged = match &id {
                Some(id) => integrations.ping(id).await.ok(),
                None => None,
            };
            match pinged {
                // Remembered so that users' subscriptions (webhooks) survive a re-registration.
                Some(alive) => known.subscriptions = alive.subscriptions,
                // Registered again, with the subscriptions and their ids, when it expired during an
                // outage of the store.
                None => id = integrations.register(known.clone()).await.ok().map(|(id, _)| id),
            }
        }
    });
}
