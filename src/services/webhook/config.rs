//! `webhook/webhook.yaml`: its two versions (`v1beta1` with structured requests, `v1alpha1` with raw
//! `curl …` command lines), validated when the file is read so that a misspelt key or a missing field
//! is reported instead of changing what the webhook does.

use serde::Deserialize;
use thiserror::Error;

/// `apiVersion` of webhook files whose requests are structured objects.
pub const API_VERSION_V1BETA1: &str = "webhookconfig.keptn.sh/v1beta1";
/// `apiVersion` of webhook files whose requests are raw `curl …` command strings.
pub const API_VERSION_V1ALPHA1: &str = "webhookconfig.keptn.sh/v1alpha1";

/// `webhook/webhook.yaml` (apiVersion `webhookconfig.keptn.sh/v1beta1` or `v1alpha1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub webhooks: Vec<Webhook>,
}

/// One webhook: the requests to send for the events of one uniform subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The yaml `type`. Required, but (as in Keptn) never matched against the incoming event type:
    /// the subscription decides which events arrive.
    pub event_type: String,
    pub subscription_id: String,
    pub send_started: bool,
    pub send_finished: bool,
    pub env_from: Vec<EnvFrom>,
    pub requests: Vec<RequestSpec>,
}

/// A secret value exposed to templates as `{{.env.<name>}}`; yaml `{name, secretRef: {name, key}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFrom {
    pub name: String,
    pub secret_name: String,
    pub secret_key: String,
}

/// One request of a webhook, as written in the file (untemplated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestSpec {
    /// v1beta1: the request's parts as separate fields.
    Structured {
        url: String,
        method: String,
        headers: Vec<(String, String)>,
        /// `None` when absent or empty: Keptn adds `--data` only for a non-empty payload.
        payload: Option<String>,
        /// Extra curl flags; `None` when absent or empty.
        options: Option<String>,
    },
    /// v1alpha1: a raw `curl …` command line.
    Curl(String),
}

/// Why a webhook file was rejected. Keptn skips such files while looking for a config, so callers can
/// keep doing that; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("webhook.yaml is not valid: {0}")]
    Yaml(String),
    #[error("webhook.yaml has apiVersion {0:?}; expected {API_VERSION_V1BETA1:?} or {API_VERSION_V1ALPHA1:?}")]
    ApiVersion(String),
    #[error("webhook.yaml: webhooks[{index}]: {message}")]
    Webhook { index: usize, message: String },
}

// The raw file shapes. Unknown keys are rejected below `spec` because a misspelt `sendFinished` or
// `payload` would otherwise silently change what the webhook does (Keptn ignores them). `metadata` is
// left free-form: nothing reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFile {
    #[serde(default)]
    api_version: String,
    // `kind` and `metadata` are accepted and ignored, like Keptn does (it never checks `kind`).
    #[serde(default)]
    #[allow(dead_code)]
    kind: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    spec: Option<RawSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    webhooks: Option<Vec<RawWebhook>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWebhook {
    #[serde(default, rename = "type")]
    event_type: Option<String>,
    #[serde(default, rename = "subscriptionID")]
    subscription_id: Option<String>,
    #[serde(default)]
    send_started: Option<bool>,
    #[serde(default)]
    send_finished: Option<bool>,
    #[serde(default)]
    env_from: Option<Vec<RawEnvFrom>>,
    // Kept as yaml values: their shape depends on the apiVersion, and decoding them per request gives
    // messages that name the request.
    #[serde(default)]
    requests: Option<Vec<serde_yaml_ng::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEnvFrom {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret_ref: RawSecretRef,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    url: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    headers: Option<Vec<RawHeader>>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    options: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

/// Parses and validates a `webhook.yaml`.
pub fn parse(text: &str) -> Result<WebhookConfig, ConfigError> {
    let raw: RawFile = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
    let structured = match raw.api_version.as_str() {
        API_VERSION_V1BETA1 => true,
        API_VERSION_V1ALPHA1 => false,
        other => return Err(ConfigError::ApiVersion(other.to_string())),
    };
    let raw_webhooks = raw.spec.and_then(|s| s.webhooks).unwrap_or_default();
    let mut webhooks = Vec::with_capacity(raw_webhooks.len());
    for (index, w) in raw_webhooks.into_iter().enumerate() {
        let fail = |message: String| ConfigError::Webhook { index, message };
        let event_type = w.event_type.unwrap_or_default();
        if event_type.trim().is_empty() {
            return Err(fail("`type` is required and must not be empty".into()));
        }
        let subscription_id = w.subscription_id.unwrap_or_default();
        if subscription_id.trim().is_empty() {
            return Err(fail("`subscriptionID` is required and must not be empty".into()));
        }
        let raw_requests = w.requests.unwrap_or_default();
        if raw_requests.is_empty() {
            return Err(fail("`requests` must contain at least one request".into()));
        }
        let mut requests = Vec::with_capacity(raw_requests.len());
        for (r, value) in raw_requests.into_iter().enumerate() {
            let request = if structured { structured_request(value) } else { curl_request(value) };
            requests.push(request.map_err(|m| fail(format!("requests[{r}]: {m}")))?);
        }
        let env_from = w
            .env_from
            .unwrap_or_default()
            .into_iter()
            .map(|e| EnvFrom { name: e.name, secret_name: e.secret_ref.name, secret_key: e.secret_ref.key })
            .collect();
        webhooks.push(Webhook {
            event_type,
            subscription_id,
            // Keptn's defaults: a `.started` event unless told otherwise, and the called system is
            // expected to send `.finished` itself unless `sendFinished` is set.
            send_started: w.send_started.unwrap_or(true),
            send_finished: w.send_finished.unwrap_or(false),
            env_from,
            requests,
        });
    }
    Ok(WebhookConfig { webhooks })
}

fn structured_request(value: serde_yaml_ng::Value) -> Result<RequestSpec, String> {
    if !value.is_mapping() {
        return Err(format!("{API_VERSION_V1BETA1} requests must be objects with `url` and `method`"));
    }
    let raw: RawRequest = serde_yaml_ng::from_value(value).map_err(|e| e.to_string())?;
    if raw.url.trim().is_empty() {
        return Err("`url` is required and must not be empty".into());
    }
    if raw.method.trim().is_empty() {
        return Err("`method` is required and must not be empty".into());
    }
    let mut headers = Vec::new();
    for (h, header) in raw.headers.unwrap_or_default().into_iter().enumerate() {
        if header.key.trim().is_empty() {
            return Err(format!("headers[{h}]: `key` must not be empty"));
        }
        if header.value.trim().is_empty() {
            return Err(format!("headers[{h}] ({:?}): `value` must not be empty", header.key));
        }
        headers.push((header.key, header.value));
    }
    Ok(RequestSpec::Structured {
        url: raw.url,
        method: raw.method,
        headers,
        payload: raw.payload.filter(|p| !p.is_empty()),
        options: raw.options.filter(|o| !o.trim().is_empty()),
    })
}

fn curl_request(value: serde_yaml_ng::Value) -> Result<RequestSpec, String> {
    match value {
        serde_yaml_ng::Value::String(command) if !command.trim().is_empty() => Ok(RequestSpec::Curl(command)),
        serde_yaml_ng::Value::String(_) => Err("the curl command must not be empty".into()),
        _ => Err(format!("{API_VERSION_V1ALPHA1} requests must be strings holding a `curl …` command")),
    }
}

impl WebhookConfig {
    /// The first webhook for `subscription_id` (Keptn also takes the first one).
    pub fn for_subscription(&self, subscription_id: &str) -> Option<&Webhook> {
        self.webhooks.iter().find(|w| w.subscription_id == subscription_id)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
