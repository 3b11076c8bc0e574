//! webhook-service: for each event one of its uniform subscriptions accepts, runs the HTTP requests of
//! the matching webhook in `webhook/webhook.yaml` (service, else stage, else project level, at the
//! event's commit), with event data and secrets templated in, and reports on `.triggered` tasks with
//! `.started` / `.finished` as the webhook's `sendStarted` / `sendFinished` say.
//!
//! Requests are made with reqwest, never by running curl. Every destination is checked before the
//! request: the host against the deny list, then every address it resolves to (loopback, link-local,
//! metadata and unspecified addresses are refused unless allowed in the configuration); the request is
//! pinned to the checked address so a second DNS answer cannot redirect it, and redirects are not
//! followed.
//!
//! The rules the service applies are pure and live beside it: [`config`] reads `webhook.yaml`,
//! [`templates`] renders event data and secrets into requests, [`requests`] builds and checks the HTTP
//! request (with [`curl`] translating curl syntax), and [`destinations`] decides where a request may go;
//! [`crate::model::redaction`] hides secret values in what the service reports.

pub mod config;
pub mod curl;
pub mod destinations;
pub mod http_request;
pub mod requests;
pub mod templates;
#[cfg(test)]
mod test_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::access::{ControlPlaneAccess, Level};
use crate::config::WebhookSettings;
use crate::model::event::CloudEvent;
use crate::model::event_type;
use crate::model::host_policy::HostPolicy;
use crate::model::redaction;
use crate::model::verdict::{TaskResult, TaskStatus};
use crate::sdk::{SdkError, Sender, Service};
use config::Webhook;
use destinations::Destination;
use http_request::HttpRequest;

pub const NAME: &str = crate::model::uniform::WEBHOOK_SERVICE;
/// Task events: `sh.keptn.event.<task>.<kind>` (sequence events never reach webhooks, as in Keptn).
pub const SUBJECTS: &[&str] = &["sh.keptn.event.*.*"];
const CONFIG_FILE: &str = "webhook/webhook.yaml";
/// The only secret scope webhooks read, as Keptn's webhook service.
pub const WEBHOOK_SECRET_SCOPE: &str = "keptn-webhook-service";

/// What every webhook execution shares.
struct Runner {
    access: Arc<dyn ControlPlaneAccess>,
    policy: HostPolicy,
    settings: WebhookSettings,
}

pub async fn run(
    service: Service,
    access: Arc<dyn ControlPlaneAccess>,
    settings: WebhookSettings,
) -> Result<(), SdkError> {
    let policy = destinations::policy(&settings);
    let runner = Arc::new(Runner { access, policy, settings });
    service
        .run_events(move |event, sender| {
            let runner = Arc::clone(&runner);
            async move { runner.handle(event, sender).await }
        })
        .await
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// `(task, kind)` of a task event type.
fn task_and_kind(event_type: &str) -> Option<(&str, &str)> {
    let rest = event_type.strip_prefix("sh.keptn.event.")?;
    let (task, kind) = rest.split_once('.')?;
    (!kind.contains('.')).then_some((task, kind))
}

impl Runner {
    async fn handle(&self, event: CloudEvent, sender: Sender) {
        let data = &event.data;
        let (project, stage, service) = (text(&data["project"]), text(&data["stage"]), text(&data["service"]));
        if project.is_empty() || stage.is_empty() || service.is_empty() {
            return;
        }
        let subscriptions = match self.access.subscriptions(NAME).await {
            Ok(subscriptions) => subscriptions,
            Err(error) => {
                tracing::warn!(%error, "cannot read the webhook subscriptions");
                return;
            }
        };
        for subscription in subscriptions {
            if subscription.accepts(&event.event_type, project, stage, service) {
                self.execute(&event, &sender, &subscription.id).await;
            }
        }
    }

    /// The webhook of `subscription_id`, looked up service → stage → project; the first file that
    /// parses and names the subscription wins.
    async fn find_webhook(&self, event: &CloudEvent, subscription_id: &str) -> Option<Webhook> {
        let data = &event.data;
        let (project, stage, service) = (text(&data["project"]), text(&data["stage"]), text(&data["service"]));
        let levels = [Level::Service { stage, service }, Level::Stage(stage), Level::Project];
        for level in levels {
            let Ok(Some(raw)) = self.access.resource(project, level, CONFIG_FILE, event.gitcommitid.as_deref()).await
            else {
                continue;
            };
            match config::parse(&raw) {
                Ok(config) => {
                    if let Some(found) = config.for_subscription(subscription_id) {
                        return Some(found.clone());
                    }
                }
                Err(error) => tracing::debug!(project, ?level, %error, "webhook config skipped"),
            }
        }
        None
    }

    async fn execute(&self, event: &CloudEvent, sender: &Sender, subscription_id: &str) {
        let Some((task, kind)) = task_and_kind(&event.event_type) else { return };
        let triggered = kind == "triggered";
        let started_type = event_type::task(task, event_type::STARTED);
        let finished_type = event_type::task(task, event_type::FINISHED);
        let Some(hook) = self.find_webhook(event, subscription_id).await else {
            if triggered {
                sender
                    .send_logged(sender.reply(event, &started_type, json!({ "status": TaskStatus::Succeeded })))
                    .await;
                let failed = json!({
                    "status": TaskStatus::Errored, "result": TaskResult::Fail,
                    "message": "could not retrieve Webhook config: no valid webhook config found",
                });
                sender.send_logged(sender.reply(event, &finished_type, failed)).await;
            }
            return;
        };
        if triggered && hook.send_started {
            // Without sendFinished the called systems finish the task, one `.finished` per request.
            let count = if hook.send_finished { 1 } else { hook.requests.len() };
            for _ in 0..count {
                sender
                    .send_logged(sender.reply(event, &started_type, json!({ "status": TaskStatus::Succeeded })))
                    .await;
            }
        }
        let mut secrets = Vec::new();
        let outcome = self.run_requests(event, &hook, &mut secrets).await;
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        if !triggered {
            if let Err((message, _)) = outcome {
                let message = redaction::redact(&message, &secrets);
                tracing::warn!(event_type = %event.event_type, %message, "webhook failed");
            }
            return;
        }
        match outcome {
            Ok(mut responses) if hook.send_finished => {
                // A called system may echo what it was sent: no secret value leaves in the event.
                for response in &mut responses {
                    redaction::redact_value(response, &secrets);
                }
                let mut data = json!({ "status": TaskStatus::Succeeded, "result": TaskResult::Pass });
                data[task] = json!({ "responses": responses });
                sender.send_logged(sender.reply(event, &finished_type, data)).await;
            }
            Ok(_) => {}
            Err((message, succeeded)) => {
                let message = redaction::redact(&message, &secrets);
                let count = if hook.send_finished { 1 } else { hook.requests.len().saturating_sub(succeeded) };
                for _ in 0..count {
                    let failed =
                        json!({ "status": TaskStatus::Errored, "result": TaskResult::Fail, "message": message });
                    sender.send_logged(sender.reply(event, &finished_type, failed)).await;
                }
            }
        }
    }

    /// Runs the requests in order; stops at the first failure, returning its message and how many
    /// requests succeeded before it. `secrets` collects the values read, for redaction.
    async fn run_requests(
        &self,
        event: &CloudEvent,
        hook: &Webhook,
        secrets: &mut Vec<String>,
    ) -> Result<Vec<Value>, (String, usize)> {
        let mut env = Map::new();
        for source in &hook.env_from {
            let value = match self.access.secret(&source.secret_name, WEBHOOK_SECRET_SCOPE, &source.secret_key).await {
                Ok(Some(value)) => value,
                Ok(None) | Err(_) => {
                    return Err((
                        format!(
                            "could not read secret {}.{} (webhooks read secrets of scope {WEBHOOK_SECRET_SCOPE} only)",
                            source.secret_name, source.secret_key
                        ),
                        0,
                    ));
                }
            };
            if !value.is_empty() {
                secrets.push(value.clone());
            }
            env.insert(source.name.clone(), Value::String(value));
        }
        let mut context = serde_json::to_value(event).unwrap_or_else(|_| json!({}));
        context["env"] = Value::Object(env);
        let mut responses = Vec::with_capacity(hook.requests.len());
        for (index, spec) in hook.requests.iter().enumerate() {
            let request = requests::prepare(spec, &context).map_err(|error| {
                metrics::counter!("keelson_webhook_requests_total", "outcome" => "invalid").increment(1);
                (error.to_string(), index)
            })?;
            let body = self.send(request).await.map_err(|message| {
                metrics::counter!("keelson_webhook_requests_total", "outcome" => "failed").increment(1);
                (message, index)
            })?;
            metrics::counter!("keelson_webhook_requests_total", "outcome" => "succeeded").increment(1);
            responses.push(match serde_json::from_str::<Value>(&body) {
                Ok(object @ Value::Object(_)) => object,
                _ => Value::String(body),
            });
        }
        Ok(responses)
    }

    /// Checks the destination, sends the request (retrying connection failures and 429/502/503/504),
    /// and returns the response body.
    async fn send(&self, request: HttpRequest) -> Result<String, String> {
        self.policy.check_url(&request.url)?;
        let Destination { host, port, lookup } = Destination::of(&request.url, &self.policy);
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((lookup.as_str(), port))
            .await
            .map_err(|error| format!("cannot resolve {host}: {error}"))?
            .collect();
        if addresses.is_empty() {
            return Err(format!("cannot resolve {host}: no addresses"));
        }
        for address in &addresses {
            self.policy.check_address(&request.url, address.ip())?;
        }
        let timeout = request.max_time.map_or(self.settings.timeout, |max| max.min(self.settings.timeout));
        let (insecure, connect_timeout) = (request.insecure, request.connect_timeout);
        let pinned_host = host.clone();
        // Building a TLS client reads the system's certificates: off the async threads.
        let client = tokio::task::spawn_blocking(move || {
            let mut client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // A proxy would resolve the name itself and bypass the checked addresses.
                .no_proxy()
                .timeout(timeout)
                .resolve_to_addrs(&pinned_host, &addresses)
                .danger_accept_invalid_certs(insecure);
            if let Some(connect) = connect_timeout {
                client = client.connect_timeout(connect);
            }
            client.build()
        })
        .await
        .map_err(|error| format!("cannot build the HTTP client: {error}"))?
        .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("method {} is not allowed", request.method))?;
        let mut attempt = 0;
        loop {
            let mut builder = client.request(method.clone(), request.url.clone());
            for (key, value) in &request.headers {
                builder = builder.header(key, value);
            }
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            let retryable = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry = matches!(status.as_u16(), 429 | 502 | 503 | 504);
                    if !retry || attempt >= self.settings.retries {
                        let body = self.read_body(response).await?;
                        if status.is_client_error() || status.is_server_error() {
                            return Err(format!(
                                "request to {host} failed with status {}: {}",
                                status.as_u16(),
                                truncated(&body)
                            ));
                        }
                        return Ok(body);
                    }
                    format!("status {}", status.as_u16())
                }
                Err(error) if error.is_connect() && attempt < self.settings.retries => without_url(&error),
                Err(error) if error.is_timeout() => {
                    return Err(format!("request to {host} timed out after {}", humantime::format_duration(timeout)));
                }
                Err(error) => return Err(format!("request to {host} failed: {}", without_url(&error))),
            };
            attempt += 1;
            tracing::debug!(%host, attempt, reason = %retryable, "retrying webhook request");
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
        }
    }

    /// Reads at most the configured number of bytes of a response.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<String, String> {
        let limit = self.settings.max_response_bytes;
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|error| format!("cannot read the response: {}", without_url(&error)))?
        {
            if body.len() + chunk.len() > limit {
                return Err(format!("response larger than {limit} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// At most this much of a failed response's body goes into the `.finished` message.
const MESSAGE_BODY_LIMIT: usize = 4096;

/// `body` cut to [`MESSAGE_BODY_LIMIT`] bytes (on a character boundary).
fn truncated(body: &str) -> String {
    if body.len() <= MESSAGE_BODY_LIMIT {
        return body.to_owned();
    }
    format!("{}… ({} bytes)", crate::model::text::char_prefix(body, MESSAGE_BODY_LIMIT), body.len())
}

/// A reqwest error's text without the URL, which may carry a secret.
fn without_url(error: &reqwest::Error) -> String {
    let mut message = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    if message.is_empty() {
        "connection error".to_owned()
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bodies_are_cut_in_messages() {
        assert_eq!(truncated("short"), "short");
        let long = "é".repeat(3000);
        let cut = truncated(&long);
        assert!(cut.len() < 4200 && cut.ends_with("(6000 bytes)"), "{}", cut.len());
    }

    #[test]
    fn only_task_events_have_a_task_and_kind() {
        assert_eq!(task_and_kind("sh.keptn.event.mytask.triggered"), Some(("mytask", "triggered")));
        assert_eq!(task_and_kind("sh.keptn.event.evaluation.finished"), Some(("evaluation", "finished")));
        assert_eq!(task_and_kind("sh.keptn.event.dev.delivery.triggered"), None);
        assert_eq!(task_and_kind("sh.keptn.log.error"), None);
    }
}
