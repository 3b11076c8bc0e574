//! [`ControlPlaneAccess`] for a built-in service running as its own process (`keelson service <name>`):
//! resources, the history and subscriptions through the control plane's API; secrets and SLI providers
//! from the shared snapshot store (Redis), as Keptn's services read Kubernetes secrets and ConfigMaps.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;

use super::access::{AccessError, ControlPlaneAccess, Level, SliProviders};
use crate::model::event::CloudEvent;
use crate::model::uniform::{EventSubscription, LogEntry};
use crate::secrets::Secrets;
use crate::store::EventQuery;

pub struct RemoteAccess {
    endpoint: String,
    token: String,
    client: reqwest::Client,
    /// `None` without a shared store: services that need secrets or SLI providers then report it.
    secrets: Option<Arc<Secrets>>,
    providers: Option<SliProviders>,
}

fn unavailable(error: impl std::fmt::Display) -> AccessError {
    AccessError::Unavailable(error.to_string())
}

/// The API path of `level` of `project`.
fn scope_path(project: &str, level: Level<'_>) -> String {
    match level {
        Level::Project => format!("/project/{}", segment(project)),
        Level::Stage(stage) => format!("/project/{}/stage/{}", segment(project), segment(stage)),
        Level::Service { stage, service } => {
            format!("/project/{}/stage/{}/service/{}", segment(project), segment(stage), segment(service))
        }
    }
}

/// Percent-encodes one path segment.
fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl RemoteAccess {
    pub fn new(endpoint: &str, token: &str, secrets: Option<Arc<Secrets>>, providers: Option<SliProviders>) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("a default HTTP client builds"),
            secrets,
            providers,
        }
    }

    /// GETs `path` (under `/api`); `Ok(None)` for a 404, with its message.
    async fn get(&self, path: &str) -> Result<Result<Value, String>, AccessError> {
        let response = self
            .client
            .get(format!("{}/api{path}", self.endpoint))
            .header("x-token", &self.token)
            .send()
            .await
            .map_err(|error| unavailable(format!("control plane unreachable: {error}")))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Err(body["message"].as_str().unwrap_or("not found").to_owned()));
        }
        if !status.is_success() {
            return Err(unavailable(format!("control plane answered {status}: {}", body["message"])));
        }
        Ok(Ok(body))
    }

    fn shared<'a, T>(&self, store: &'a Option<T>) -> Result<&'a T, AccessError> {
        store.as_ref().ok_or_else(|| {
            AccessError::Unavailable("this service needs the control plane's Redis (KEELSON_REDIS_URL)".into())
        })
    }
}

#[async_trait]
impl ControlPlaneAccess for RemoteAccess {
    async fn resource(
        &self,
        project: &str,
        level: Level<'_>,
        uri: &str,
        commit: Option<&str>,
    ) -> Result<Option<String>, AccessError> {
        let mut path = format!("/resource-service/v1{}/resource/{}", scope_path(project, level), segment(uri));
        if let Some(commit) = commit.filter(|commit| !commit.is_empty() && level != Level::Project) {
            path.push_str(&format!("?gitCommitID={}", segment(commit)));
        }
        match self.get(&path).await? {
            Ok(body) => {
                let content = base64::engine::general_purpose::STANDARD
                    .decode(body["resourceContent"].as_str().unwrap_or_default())
                    .map_err(|_| unavailable("the control plane sent a resource that is not base64"))?;
                Ok(Some(String::from_utf8_lossy(&content).into_owned()))
            }
            Err(message) if message == "Resource not found" => Ok(None),
            Err(message) => Err(AccessError::NotFound(message)),
        }
    }

    async fn resources_under(
        &self,
        project: &str,
        level: Level<'_>,
        directory: &str,
        commit: Option<&str>,
    ) -> Result<Vec<String>, AccessError> {
        let mut base = format!("/resource-service/v1{}/resource?pageSize=100", scope_path(project, level));
        if let Some(commit) = commit.filter(|commit| !commit.is_empty() && level != Level::Project) {
            base.push_str(&format!("&gitCommitID={}", segment(commit)));
        }
        let prefix = format!("{}/", directory.trim_matches('/'));
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let path = match &next {
                Some(key) => format!("{base}&nextPageKey={}", segment(key)),
                None => base.clone(),
            };
            let page = self.get(&path).await?.map_err(AccessError::NotFound)?;
            let uris = page["resources"].as_array().into_iter().flatten().filter_map(|r| r["resourceURI"].as_str());
            found.extend(uris.filter(|uri| uri.trim_start_matches('/').starts_with(&prefix)).map(str::to_owned));
            next = match &page["nextPageKey"] {
                Value::String(key) if !key.is_empty() && key != "0" => Some(key.clone()),
                Value::Number(key) if key.as_u64().is_some_and(|key| key > 0) => Some(key.to_string()),
                _ => None,
            };
            if next.is_none() {
                return Ok(found);
            }
        }
    }

    async fn find_events(&self, query: &EventQuery) -> Result<Vec<CloudEvent>, AccessError> {
        let event_type = query.event_type.as_deref().ok_or_else(|| unavailable("an event type is needed"))?;
        let mut terms = Vec::new();
        for (path, value) in [
            ("data.project", &query.project),
            ("data.stage", &query.stage),
            ("data.service", &query.service),
            ("shkeptncontext", &query.keptn_context),
        ] {
            if let Some(value) = value {
                terms.push(format!("{path}:{value}"));
            }
        }
        for condition in &query.conditions {
            terms.push(format!("{}:{}", condition.path, condition.values.join(",")));
        }
        let path = format!(
            "/mongodb-datastore/event/type/{}?filter={}&excludeInvalidated={}&limit={}",
            segment(event_type),
            segment(&terms.join(" AND ")),
            query.exclude_invalidated,
            query.limit.clamp(1, 100),
        );
        let body = self.get(&path).await?.map_err(AccessError::NotFound)?;
        Ok(body["events"]
            .as_array()
            .map(|events| events.iter().filter_map(|event| serde_json::from_value(event.clone()).ok()).collect())
            .unwrap_or_default())
    }

    async fn secret(&self, name: &str, scope: &str, key: &str) -> Result<Option<String>, AccessError> {
        self.shared(&self.secrets)?.value(name, scope, key).await.map_err(unavailable)
    }

    async fn secret_keys(&self, name: &str, scope: &str) -> Result<Option<Vec<String>>, AccessError> {
        super::access::secret_keys(self.shared(&self.secrets)?, name, scope).await
    }

    async fn sli_provider(&self, project: &str) -> Result<Option<String>, AccessError> {
        self.shared(&self.providers)?.get(project).await
    }

    async fn set_sli_provider(&self, project: &str, provider: &str) -> Result<(), AccessError> {
        self.shared(&self.providers)?.set(project, provider).await
    }

    async fn remove_sli_provider(&self, project: &str) -> Result<(), AccessError> {
        self.shared(&self.providers)?.remove(project).await
    }

    async fn subscriptions(&self, integration: &str) -> Result<Vec<EventSubscription>, AccessError> {
        let body = self
            .get(&format!("/controlPlane/v1/uniform/registration?name={}", segment(integration)))
            .await?
            .map_err(AccessError::NotFound)?;
        let integrations: Vec<crate::model::uniform::Integration> =
            serde_json::from_value(body).map_err(|error| unavailable(format!("unexpected registrations: {error}")))?;
        Ok(integrations.into_iter().flat_map(|integration| integration.subscriptions).collect())
    }

    async fn log(&self, integration: &str, mut entry: LogEntry) -> Result<(), AccessError> {
        let body = self
            .get(&format!("/controlPlane/v1/uniform/registration?name={}", segment(integration)))
            .await?
            .map_err(AccessError::NotFound)?;
        let registered: Vec<crate::model::uniform::Integration> =
            serde_json::from_value(body).map_err(|error| unavailable(format!("unexpected registrations: {error}")))?;
        let Some(registered) = registered.into_iter().next() else {
            return Err(AccessError::NotFound(format!("integration {integration} is not registered")));
        };
        entry.integrationid = registered.id;
        let response = self
            .client
            .post(format!("{}/api/controlPlane/v1/log", self.endpoint))
            .header("x-token", &self.token)
            .json(&serde_json::json!({ "logs": [entry] }))
            .send()
            .await
            .map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(unavailable(format!("control plane answered {} to a log entry", response.status())));
        }
        Ok(())
    }
}
