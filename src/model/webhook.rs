//! The data side of the webhook service: `webhook/webhook.yaml`, template rendering, turning a request
//! description into an HTTP request, and secret redaction.
//!
//! Keptn's webhook-service renders a curl command line and runs curl. Keelson sends requests itself, so
//! curl syntax is only *translated* into an [`HttpRequest`]; nothing here executes a process, touches the
//! network or reads a file. The flags Keelson understands are the ones that describe a request
//! (method, headers, body, URL, timeouts, TLS verification); flags that would make curl read or write
//! local files are refused by name so users learn why their webhook stopped working, and every other
//! flag is refused too, because silently ignoring a flag would send a request the user did not ask for.
//!
//! Everything that can end up in a `.finished` event (error messages) is built from the *untemplated*
//! configuration text, because rendered text may carry secret values from `envFrom`.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;
use url::Url;

/// `apiVersion` of webhook files whose requests are structured objects.
pub const API_VERSION_V1BETA1: &str = "webhookconfig.keptn.sh/v1beta1";
/// `apiVersion` of webhook files whose requests are raw `curl …` command strings.
pub const API_VERSION_V1ALPHA1: &str = "webhookconfig.keptn.sh/v1alpha1";

/// HTTP methods a webhook may use. Keptn's UI offers GET, HEAD, POST and PUT; PATCH and DELETE are
/// added because they are ordinary API verbs and carry no risk the others do not.
pub const ALLOWED_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// Stands in for an argument in error messages when it came out of a template (and so may hold a secret).
const TEMPLATED: &str = "<templated value>";

// ---------------------------------------------------------------------------------------------------------
// webhook.yaml
// ---------------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------------------

/// Why a template could not be rendered. Messages quote only template text, never rendered values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    #[error("template: unclosed action at line {line}")]
    Unclosed { line: usize },
    #[error("template: unclosed comment at line {line}")]
    UnclosedComment { line: usize },
    #[error("template: empty action at line {line}")]
    Empty { line: usize },
    #[error("unsupported template action: {action}")]
    Unsupported { action: String },
    #[error("template: map has no entry for key {key:?} (evaluating {path})")]
    MissingKey { key: String, path: String },
    #[error("template: can't evaluate field {key} in {found} (evaluating {path})")]
    NotAMap { key: String, found: &'static str, path: String },
}

/// Go's template whitespace, the set the trim markers remove.
fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte].matches('\n').count() + 1
}

/// Renders Go `text/template` field references (`{{.a.b.c}}`) against `context`, which is the incoming
/// event envelope as a JSON object plus `env` (the secret values).
///
/// Supported: field paths, whitespace inside the braces, the trim markers `{{- ` and ` -}}`, and
/// comments `{{/* … */}}`. Everything else Go offers (`if`, `range`, pipes, functions, variables, `.`)
/// is an error rather than being passed through, so a webhook never sends a literal `{{if …}}`.
/// Rendering is one pass: a value containing `{{` is output as it is.
///
/// As with Keptn's `missingkey=error`, a missing key is an error. Values differ from Go where Go's
/// output is unhelpful: JSON `null` renders as the empty string (Go: `<no value>`), objects and arrays as
/// compact JSON (Go: `map[…]` / `[…]`), and integers with all their digits (Go decodes JSON numbers to
/// float64 and prints `1e+06`). Other numbers follow Go's `%v` (`92.5`, `1e-05`).
pub fn render(template: &str, context: &Value) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut pos = 0;
    // Set by a ` -}}`: the following text loses its leading whitespace.
    let mut trim_next = false;
    loop {
        let Some(offset) = template[pos..].find("{{") else {
            let text = &template[pos..];
            out.push_str(if trim_next { text.trim_start_matches(is_go_space) } else { text });
            return Ok(out);
        };
        let open = pos + offset;
        let mut text = &template[pos..open];
        if trim_next {
            text = text.trim_start_matches(is_go_space);
        }
        let mut inner_start = open + 2;
        // Go's left trim marker is a dash followed by whitespace; `{{-3}}` would be a number.
        if template[inner_start..].starts_with('-')
            && template[inner_start + 1..].chars().next().is_some_and(is_go_space)
        {
            text = text.trim_end_matches(is_go_space);
            inner_start += 2;
        }
        out.push_str(text);

        // A comment must start right at the delimiter (after the trim marker) and runs to the first
        // `*/`, which may be followed only by the closing delimiter: Go's rules.
        if template[inner_start..].starts_with("/*") {
            let line = line_of(template, open);
            let end = template[inner_start + 2..].find("*/").ok_or(TemplateError::UnclosedComment { line })?;
            let after = inner_start + 2 + end + 2;
            let rest = &template[after..];
            if rest.starts_with("}}") {
                trim_next = false;
                pos = after + 2;
            } else if rest.chars().next().is_some_and(is_go_space) && rest[1..].starts_with("-}}") {
                trim_next = true;
                pos = after + 4;
            } else {
                return Err(TemplateError::UnclosedComment { line });
            }
            continue;
        }

        // Only field paths are supported, and they cannot contain `}}`, so the first `}}` closes the
        // action; anything that Go would parse differently (strings holding `}}`) is unsupported anyway.
        let close = inner_start
            + template[inner_start..].find("}}").ok_or(TemplateError::Unclosed { line: line_of(template, open) })?;
        let mut inner = &template[inner_start..close];
        trim_next = false;
        if let Some(before_dash) = inner.strip_suffix('-') {
            if before_dash.ends_with(is_go_space) {
                inner = before_dash;
                trim_next = true;
            }
        }
        let action = inner.trim_matches(is_go_space);
        if action.is_empty() {
            return Err(TemplateError::Empty { line: line_of(template, open) });
        }
        let Some(segments) = field_path(action) else {
            return Err(TemplateError::Unsupported { action: template[open..close + 2].to_string() });
        };
        let value = lookup(context, &segments, action)?;
        write_value(&mut out, value);
        pos = close + 2;
    }
}

/// The keys of a `.a.b.c` field chain, or `None` if `action` is anything else.
fn field_path(action: &str) -> Option<Vec<&str>> {
    let path = action.strip_prefix('.')?;
    let segments: Vec<&str> = path.split('.').collect();
    let identifier = |s: &&str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_alphabetic()) && chars.all(|c| c == '_' || c.is_alphanumeric())
    };
    // `{{ . }}` (the whole context) is deliberately not supported: it would print every secret.
    segments.iter().all(identifier).then_some(segments)
}

fn lookup<'v>(context: &'v Value, segments: &[&str], path: &str) -> Result<&'v Value, TemplateError> {
    let mut current = context;
    for key in segments {
        current = match current {
            Value::Object(map) => map
                .get(*key)
                .ok_or_else(|| TemplateError::MissingKey { key: key.to_string(), path: path.to_string() })?,
            other => {
                let found = match other {
                    Value::Null => "a nil value",
                    Value::Bool(_) => "a bool",
                    Value::Number(_) => "a number",
                    Value::String(_) => "a string",
                    Value::Array(_) => "a list",
                    Value::Object(_) => unreachable!("objects are handled above"),
                };
                return Err(TemplateError::NotAMap { key: key.to_string(), found, path: path.to_string() });
            }
        };
    }
    Ok(current)
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => out.push_str(s),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&go_float(f));
            }
        }
        Value::Array(_) | Value::Object(_) => out.push_str(&value.to_string()),
    }
}

/// Formats a float like Go's `%v` (shortest `%g`) with one difference: Go already writes `1e+06` for a
/// million, Keelson writes integral values in full up to 1e21 (as it does integers, see [`render`]).
/// Below 1e-4 both use the exponent form (`1e-05`).
fn go_float(f: f64) -> String {
    let magnitude = f.abs();
    if f.is_finite() && magnitude != 0.0 && !(1e-4..1e21).contains(&magnitude) {
        // Rust writes `1e-5`; Go writes `1e-05` (sign always, at least two exponent digits).
        let formatted = format!("{f:e}");
        let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        format!("{mantissa}e{sign}{digits:0>2}")
    } else {
        // Shortest round-trip digits, no `.0` for integral values: Go's `%v` in this range.
        f.to_string()
    }
}

// ---------------------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------------------

/// A request ready to send, built from a [`RequestSpec`] after templating.
///
/// Its `Debug` output leaves out header values, the body and everything of the URL but scheme, host and
/// port, since those usually carry secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: Url,
    /// In order; a body without a `Content-Type` header gets curl's `application/x-www-form-urlencoded`.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// curl's `--max-time`: a limit on the whole exchange. `None` means no limit was asked for.
    pub max_time: Option<Duration>,
    /// curl's `--connect-timeout`.
    pub connect_timeout: Option<Duration>,
    /// curl's `--insecure`: skip TLS certificate verification.
    pub insecure: bool,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("scheme", &self.url.scheme())
            .field("host", &self.url.host_str())
            .field("port", &self.url.port_or_known_default())
            .field("header_names", &header_names)
            .field("body_len", &self.body.as_ref().map(String::len))
            .field("max_time", &self.max_time)
            .field("connect_timeout", &self.connect_timeout)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Why a request could not be prepared. Messages quote untemplated configuration text only; a value
/// that came out of a template is shown as `<templated value>`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("could not render the {what}: {source}")]
    Template {
        what: String,
        #[source]
        source: TemplateError,
    },
    #[error("could not split the {what} into words: {reason}")]
    Tokenize { what: &'static str, reason: String },
    #[error("not a curl command: the first word must be `curl`")]
    NotCurl,
    #[error("method {0} is not allowed; use one of GET, HEAD, POST, PUT, PATCH, DELETE (uppercase)")]
    Method(String),
    #[error("curl option {flag} is refused: {reason}")]
    RefusedOption { flag: String, reason: &'static str },
    #[error("unsupported curl option {0}")]
    UnsupportedOption(String),
    #[error("curl option {flag} cannot be used in `options`; use the request's {field} field instead")]
    OptionNotInOptions { flag: String, field: &'static str },
    #[error("curl option {0} needs a value")]
    MissingValue(String),
    #[error("invalid value {value} for curl option {flag}: {reason}")]
    InvalidOptionValue { flag: String, value: String, reason: &'static str },
    #[error("unexpected argument {0} in `options`: the URL belongs in the request's url field")]
    ArgumentInOptions(String),
    #[error("the curl command names more than one URL ({0}); a webhook request sends to one URL")]
    SecondUrl(String),
    #[error("the curl command names no URL")]
    NoUrl,
    #[error("invalid request URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid header {header}: {reason}")]
    InvalidHeader { header: String, reason: &'static str },
}

/// Builds the request a [`RequestSpec`] describes, rendering its templates against `context`.
///
/// Structured requests render the URL, each header name and value and the payload separately, so a
/// templated value can never add curl flags, whatever quotes it contains. Their `options` are split into
/// words before rendering, for the same reason. Raw curl commands are rendered as a whole and then split
/// into words, as Keptn does; the flag parsing below still refuses anything that would read or write
/// files. Method must be one of [`ALLOWED_METHODS`]; the URL must be http or https.
pub fn prepare(spec: &RequestSpec, context: &Value) -> Result<HttpRequest, RequestError> {
    match spec {
        RequestSpec::Structured { url, method, headers, payload, options } => {
            prepare_structured(url, method, headers, payload.as_deref(), options.as_deref(), context)
        }
        RequestSpec::Curl(command) => prepare_curl(command, context),
    }
}

fn prepare_structured(
    url: &str,
    method: &str,
    headers: &[(String, String)],
    payload: Option<&str>,
    options: Option<&str>,
    context: &Value,
) -> Result<HttpRequest, RequestError> {
    check_method(method, || format!("{method:?}"))?;
    let what_url = format!("URL {url:?}");
    let rendered_url =
        render(url, context).map_err(|source| RequestError::Template { what: what_url.clone(), source })?;
    let url = parse_url(&rendered_url, format!("{url:?}"))?;

    let mut out_headers = Vec::with_capacity(headers.len() + 1);
    for (key, value) in headers {
        let what = format!("header {key:?}");
        let name =
            render(key, context).map_err(|source| RequestError::Template { what: format!("{what} name"), source })?;
        let value = render(value, context)
            .map_err(|source| RequestError::Template { what: format!("{what} value"), source })?;
        if let Some(header) = checked_header(name.trim(), &value, || format!("{key:?}"))? {
            out_headers.push(header);
        }
    }

    let body = payload
        .map(|p| render(p, context))
        .transpose()
        .map_err(|source| RequestError::Template { what: "payload".into(), source })?;

    let mut flags = CurlFlags::default();
    if let Some(options) = options {
        let words = shell_words::split(options)
            .map_err(|e| RequestError::Tokenize { what: "options", reason: e.to_string() })?;
        let args = words
            .iter()
            .map(|word| {
                render(word, context)
                    .map_err(|source| RequestError::Template { what: format!("option {word:?}"), source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        flags.parse(&args, options, Place::Options)?;
    }

    Ok(finish(method.to_string(), url, out_headers, body, flags))
}

fn prepare_curl(command: &str, context: &Value) -> Result<HttpRequest, RequestError> {
    let rendered =
        render(command, context).map_err(|source| RequestError::Template { what: "curl command".into(), source })?;
    let words = shell_words::split(&rendered)
        .map_err(|e| RequestError::Tokenize { what: "curl command", reason: e.to_string() })?;
    match words.first() {
        Some(first) if first == "curl" => {}
        _ => return Err(RequestError::NotCurl),
    }
    let mut flags = CurlFlags::default();
    flags.parse(&words[1..], command, Place::Command)?;
    let url_arg = flags.url.take().ok_or(RequestError::NoUrl)?;
    let url = parse_url(&url_arg, shown(&url_arg, command))?;
    // curl's rule: a body turns the default GET into a POST.
    let method = match flags.method.take() {
        Some(m) => m,
        None if flags.data.is_some() => "POST".to_string(),
        None => "GET".to_string(),
    };
    let headers = std::mem::take(&mut flags.headers);
    let body = flags.data.take();
    Ok(finish(method, url, headers, body, flags))
}

fn finish(
    method: String,
    url: Url,
    mut headers: Vec<(String, String)>,
    body: Option<String>,
    flags: CurlFlags,
) -> HttpRequest {
    // curl labels `--data` bodies as form data unless told otherwise; receivers that look at the
    // content type see the same request Keptn would have sent.
    if body.is_some() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
    }
    HttpRequest {
        method,
        url,
        headers,
        body,
        max_time: flags.max_time,
        connect_timeout: flags.connect_timeout,
        insecure: flags.insecure,
    }
}

/// How an argument appears in an error message: as written if the untemplated `source` contains it
/// literally (so it holds nothing a template put there), otherwise as a placeholder.
fn shown(argument: &str, source: &str) -> String {
    if !argument.is_empty() && source.contains(argument) {
        format!("{argument:?}")
    } else {
        TEMPLATED.to_string()
    }
}

fn check_method(method: &str, display: impl FnOnce() -> String) -> Result<(), RequestError> {
    if ALLOWED_METHODS.contains(&method) {
        Ok(())
    } else {
        Err(RequestError::Method(display()))
    }
}

fn parse_url(rendered: &str, display: String) -> Result<Url, RequestError> {
    let url = Url::parse(rendered.trim())
        .map_err(|e| RequestError::InvalidUrl { url: display.clone(), reason: e.to_string() })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RequestError::InvalidUrl { url: display, reason: "only http and https URLs are allowed".into() });
    }
    if url.host().is_none() {
        return Err(RequestError::InvalidUrl { url: display, reason: "the URL has no host".into() });
    }
    Ok(url)
}

/// RFC 9110 token characters, the only ones a header name may hold.
fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Validates one header. An empty value drops the header, as curl does for `-H 'Name:'` (and so for
/// Keptn's `--header 'Name: <empty>'`). Control characters are refused: they would let a templated value
/// start a new header line.
fn checked_header(
    name: &str,
    value: &str,
    display: impl Fn() -> String,
) -> Result<Option<(String, String)>, RequestError> {
    if !is_token(name) {
        return Err(RequestError::InvalidHeader {
            header: display(),
            reason: "the name must be a non-empty HTTP token (letters, digits and !#$%&'*+-.^_`|~)",
        });
    }
    let value = value.trim_matches(is_go_space);
    if value.chars().any(|c| (c.is_control() && c != '\t') || c == '\u{7f}') {
        return Err(RequestError::InvalidHeader { header: display(), reason: "the value contains control characters" });
    }
    Ok((!value.is_empty()).then(|| (name.to_string(), value.to_string())))
}

/// Where curl flags are being read: a whole v1alpha1 command, or a v1beta1 `options` field (where the
/// request itself is already described by the other fields).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Command,
    Options,
}

/// The flags Keelson understands.
#[derive(Clone, Copy)]
enum Flag {
    Method,
    Header,
    /// `-d`, `--data`, `--data-binary`: `@file` reads a file and is refused.
    Data,
    /// `--data-raw`: never reads files, so `@` is literal.
    DataRaw,
    Url,
    MaxTime,
    ConnectTimeout,
    Insecure,
    /// Flags that only change curl's console output or how it reports failures; Keelson always treats
    /// HTTP errors as failures (Keptn appends `--fail-with-body`).
    NoOp,
}

impl Flag {
    fn takes_value(self) -> bool {
        !matches!(self, Flag::Insecure | Flag::NoOp)
    }
}

fn short_flag(c: char) -> Option<Flag> {
    Some(match c {
        'X' => Flag::Method,
        'H' => Flag::Header,
        'd' => Flag::Data,
        'm' => Flag::MaxTime,
        'k' => Flag::Insecure,
        's' | 'S' | 'f' => Flag::NoOp,
        _ => return None,
    })
}

fn long_flag(name: &str) -> Option<Flag> {
    Some(match name {
        "--request" => Flag::Method,
        "--header" => Flag::Header,
        "--data" | "--data-binary" => Flag::Data,
        "--data-raw" => Flag::DataRaw,
        "--url" => Flag::Url,
        "--max-time" => Flag::MaxTime,
        "--connect-timeout" => Flag::ConnectTimeout,
        "--insecure" => Flag::Insecure,
        "--silent" | "--show-error" | "--fail" | "--fail-with-body" => Flag::NoOp,
        _ => return None,
    })
}

/// Flags refused by name because curl would read or write local files with them. Any argument starting
/// with the long forms is refused (`--output-dir`, `--form-string`, `--config=x`, …).
const REFUSED_LONG: &[(&str, &str)] = &[
    ("--output", "it writes the response to a local file"),
    ("--form", "multipart forms can read local files"),
    ("--upload-file", "it uploads a local file"),
    ("--config", "it reads options from a local file"),
];

fn refused_short(c: char) -> Option<&'static str> {
    match c {
        'o' => Some(REFUSED_LONG[0].1),
        'F' => Some(REFUSED_LONG[1].1),
        'T' => Some(REFUSED_LONG[2].1),
        'K' => Some(REFUSED_LONG[3].1),
        _ => None,
    }
}

#[derive(Default)]
struct CurlFlags {
    method: Option<String>,
    headers: Vec<(String, String)>,
    data: Option<String>,
    url: Option<String>,
    max_time: Option<Duration>,
    connect_timeout: Option<Duration>,
    insecure: bool,
}

impl CurlFlags {
    /// Reads `args` (the words after `curl`, or the words of `options`). `source` is the untemplated
    /// text they came from, used only to decide what error messages may quote.
    fn parse(&mut self, args: &[String], source: &str, place: Place) -> Result<(), RequestError> {
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            if arg.len() > 2 && arg.starts_with("--") {
                let long = arg.as_str();
                if let Some((prefix, reason)) = REFUSED_LONG.iter().find(|(p, _)| long.starts_with(p)) {
                    return Err(RequestError::RefusedOption { flag: prefix.to_string(), reason });
                }
                let (name, inline) = match long.split_once('=') {
                    Some((name, value)) => (name, Some(value)),
                    None => (long, None),
                };
                let flag = long_flag(name).ok_or_else(|| RequestError::UnsupportedOption(shown_flag(name, source)))?;
                let value = if flag.takes_value() {
                    match inline {
                        Some(v) => Some(v.to_string()),
                        None => {
                            let v = args.get(i).ok_or_else(|| RequestError::MissingValue(name.to_string()))?;
                            i += 1;
                            Some(v.clone())
                        }
                    }
                } else if let Some(v) = inline {
                    return Err(RequestError::InvalidOptionValue {
                        flag: name.to_string(),
                        value: shown(v, source),
                        reason: "this option takes no value",
                    });
                } else {
                    None
                };
                self.apply(flag, name, value, source, place)?;
            } else if arg.len() > 1 && arg.starts_with('-') {
                // A cluster of short flags (`-sSk`); a flag taking a value takes the rest of the word
                // (`-XPOST`) or the next word, as in curl.
                let cluster = &arg[1..];
                for (at, c) in cluster.char_indices() {
                    let name = format!("-{c}");
                    if let Some(reason) = refused_short(c) {
                        return Err(RequestError::RefusedOption { flag: name, reason });
                    }
                    let flag =
                        short_flag(c).ok_or_else(|| RequestError::UnsupportedOption(shown_flag(&name, source)))?;
                    if flag.takes_value() {
                        let rest = &cluster[at + c.len_utf8()..];
                        let value = if rest.is_empty() {
                            let v = args.get(i).ok_or_else(|| RequestError::MissingValue(name.clone()))?;
                            i += 1;
                            v.clone()
                        } else {
                            rest.to_string()
                        };
                        self.apply(flag, &name, Some(value), source, place)?;
                        break;
                    }
                    self.apply(flag, &name, None, source, place)?;
                }
            } else {
                if place == Place::Options {
                    return Err(RequestError::ArgumentInOptions(shown(arg, source)));
                }
                self.set_url(arg, source)?;
            }
        }
        Ok(())
    }

    fn set_url(&mut self, url: &str, source: &str) -> Result<(), RequestError> {
        if self.url.is_some() {
            return Err(RequestError::SecondUrl(shown(url, source)));
        }
        self.url = Some(url.to_string());
        Ok(())
    }

    fn apply(
        &mut self,
        flag: Flag,
        name: &str,
        value: Option<String>,
        source: &str,
        place: Place,
    ) -> Result<(), RequestError> {
        if place == Place::Options {
            let field = match flag {
                Flag::Method => Some("method"),
                Flag::Header => Some("headers"),
                Flag::Data | Flag::DataRaw => Some("payload"),
                Flag::Url => Some("url"),
                _ => None,
            };
            if let Some(field) = field {
                return Err(RequestError::OptionNotInOptions { flag: name.to_string(), field });
            }
        }
        let value = value.unwrap_or_default();
        match flag {
            Flag::Method => {
                check_method(&value, || shown(&value, source))?;
                self.method = Some(value);
            }
            Flag::Header => {
                let display = || shown(&value, source);
                let header = match value.split_once(':') {
                    Some((k, v)) => checked_header(k.trim(), v, display)?,
                    // curl's way of sending a header with an empty value: `-H 'Name;'`.
                    None => match value.trim().strip_suffix(';') {
                        Some(k) if is_token(k.trim()) => Some((k.trim().to_string(), String::new())),
                        _ => {
                            return Err(RequestError::InvalidHeader {
                                header: display(),
                                reason: "curl headers are written as 'Name: value'",
                            })
                        }
                    },
                };
                self.headers.extend(header);
            }
            Flag::Data | Flag::DataRaw => {
                if matches!(flag, Flag::Data) && value.starts_with('@') {
                    return Err(RequestError::RefusedOption {
                        flag: name.to_string(),
                        reason: "a value starting with '@' reads a local file (use --data-raw for a literal '@')",
                    });
                }
                // Repeated data flags are joined with '&', as curl does.
                self.data = Some(match self.data.take() {
                    Some(existing) => format!("{existing}&{value}"),
                    None => value,
                });
            }
            Flag::Url => self.set_url(&value, source)?,
            Flag::MaxTime => self.max_time = seconds(name, &value, source)?,
            Flag::ConnectTimeout => self.connect_timeout = seconds(name, &value, source)?,
            Flag::Insecure => self.insecure = true,
            Flag::NoOp => {}
        }
        Ok(())
    }
}

fn shown_flag(name: &str, source: &str) -> String {
    if source.contains(name) {
        name.to_string()
    } else {
        TEMPLATED.to_string()
    }
}

/// curl's fractional seconds. Zero means "no limit" in curl, so it maps to `None`.
fn seconds(flag: &str, value: &str, source: &str) -> Result<Option<Duration>, RequestError> {
    let invalid =
        |reason| RequestError::InvalidOptionValue { flag: flag.to_string(), value: shown(value, source), reason };
    let secs: f64 = value.trim().parse().map_err(|_| invalid("expected a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(invalid("expected a non-negative number of seconds"));
    }
    if secs == 0.0 {
        return Ok(None);
    }
    Duration::try_from_secs_f64(secs).map(Some).map_err(|_| invalid("the number of seconds is too large"))
}

// ---------------------------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------------------------

/// Replaces every secret value inside the strings of `value` (a response kept in an event).
pub fn redact_value(value: &mut Value, secrets: &[&str]) {
    if secrets.iter().all(|secret| secret.is_empty()) {
        return;
    }
    match value {
        Value::String(text) if secrets.iter().any(|secret| !secret.is_empty() && text.contains(secret)) => {
            *text = redact(text, secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact_value(item, secrets)),
        Value::Object(fields) => {
            let keys_with_secrets: Vec<String> = fields
                .keys()
                .filter(|key| secrets.iter().any(|secret| !secret.is_empty() && key.contains(secret)))
                .cloned()
                .collect();
            for key in keys_with_secrets {
                if let Some(field) = fields.remove(&key) {
                    fields.insert(redact(&key, secrets), field);
                }
            }
            fields.values_mut().for_each(|field| redact_value(field, secrets));
        }
        _ => {}
    }
}

/// Replaces every occurrence of each non-empty secret value in `text` with `***`.
///
/// All occurrences of all secrets are marked first and each run of marked text becomes one `***`, so
/// secrets that overlap or contain one another are hidden completely (replacing one secret after another
/// could leave the tail of an overlapping one visible).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut hidden = vec![false; text.len()];
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let mut from = 0;
        while let Some(found) = text[from..].find(secret) {
            let start = from + found;
            hidden[start..start + secret.len()].iter_mut().for_each(|h| *h = true);
            // Step one character, not the whole match, so overlapping occurrences are found too.
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut in_secret = false;
    for (i, c) in text.char_indices() {
        if hidden[i] {
            if !in_secret {
                out.push_str("***");
            }
            in_secret = true;
        } else {
            in_secret = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // ---- parse -------------------------------------------------------------------------------------

    const V1BETA1: &str = r#"
apiVersion: webhookconfig.keptn.sh/v1beta1
kind: WebhookConfig
metadata:
  name: webhook-configuration
  labels: {anything: goes}
spec:
  webhooks:
    - type: sh.keptn.event.mytask.triggered
      subscriptionID: "0123456987"
      sendFinished: true
      envFrom:
        - name: secretKey
          secretRef: {name: my-webhook-secret, key: my-key}
      requests:
        - url: https://hooks.example.com/services/{{.env.secretKey}}
          method: POST
          headers: [{key: Content-Type, value: application/json}]
          payload: '{"text":"{{.data.evaluation.result}}"}'
          options: "--max-time 10"
        - url: https://example.com/ping
          method: GET
          payload: ""
          options: ""
    - type: sh.keptn.event.evaluation.finished
      subscriptionID: other
      sendStarted: false
      requests:
        - {url: "https://example.com", method: PUT}
"#;

    #[test]
    fn parses_v1beta1_with_defaults() {
        let config = parse(V1BETA1).unwrap();
        assert_eq!(config.webhooks.len(), 2);
        let first = &config.webhooks[0];
        assert_eq!(first.event_type, "sh.keptn.event.mytask.triggered");
        assert_eq!(first.subscription_id, "0123456987");
        assert!(first.send_started, "sendStarted defaults to true");
        assert!(first.send_finished);
        assert_eq!(
            first.env_from,
            vec![EnvFrom {
                name: "secretKey".into(),
                secret_name: "my-webhook-secret".into(),
                secret_key: "my-key".into()
            }]
        );
        assert_eq!(
            first.requests[0],
            RequestSpec::Structured {
                url: "https://hooks.example.com/services/{{.env.secretKey}}".into(),
                method: "POST".into(),
                headers: vec![("Content-Type".into(), "application/json".into())],
                payload: Some(r#"{"text":"{{.data.evaluation.result}}"}"#.into()),
                options: Some("--max-time 10".into()),
            }
        );
        // Empty payload and options mean "none", as Keptn only adds them when non-empty.
        assert_eq!(
            first.requests[1],
            RequestSpec::Structured {
                url: "https://example.com/ping".into(),
                method: "GET".into(),
                headers: vec![],
                payload: None,
                options: None,
            }
        );
        let second = &config.webhooks[1];
        assert!(!second.send_started);
        assert!(!second.send_finished, "sendFinished defaults to false");
        assert!(second.env_from.is_empty());
    }

    #[test]
    fn parses_v1alpha1_curl_requests() {
        let text = r#"
apiVersion: webhookconfig.keptn.sh/v1alpha1
kind: WebhookConfig
spec:
  webhooks:
    - type: sh.keptn.event.webhook.triggered
      subscriptionID: abc
      requests:
        - "curl --request POST https://example.com/{{.data.project}}"
"#;
        let config = parse(text).unwrap();
        let webhook = &config.webhooks[0];
        assert!(webhook.send_started);
        assert!(!webhook.send_finished);
        assert_eq!(
            webhook.requests,
            vec![RequestSpec::Curl("curl --request POST https://example.com/{{.data.project}}".into())]
        );
    }

    #[test]
    fn unquoted_numeric_subscription_id_stays_text() {
        let text = "apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n    - type: t\n      subscriptionID: 0123456987\n      requests: [\"curl https://example.com\"]\n";
        assert_eq!(parse(text).unwrap().webhooks[0].subscription_id, "0123456987");
    }

    fn webhook_error(text: &str) -> (usize, String) {
        match parse(text) {
            Err(ConfigError::Webhook { index, message }) => (index, message),
            other => panic!("expected a webhook error, got {other:?}"),
        }
    }

    fn beta(webhooks: &str) -> String {
        format!("apiVersion: webhookconfig.keptn.sh/v1beta1\nspec:\n  webhooks:\n{webhooks}")
    }

    const GOOD_BETA: &str = "    - {type: t, subscriptionID: s, requests: [{url: 'https://e.com', method: GET}]}\n";

    #[test]
    fn rejects_wrong_or_missing_api_version() {
        let err = parse("apiVersion: webhookconfig.keptn.sh/v2\nspec: {webhooks: []}").unwrap_err();
        assert_eq!(err, ConfigError::ApiVersion("webhookconfig.keptn.sh/v2".into()));
        assert!(err.to_string().contains("expected \"webhookconfig.keptn.sh/v1beta1\""));
        assert_eq!(parse("spec: {webhooks: []}").unwrap_err(), ConfigError::ApiVersion(String::new()));
    }

    #[test]
    fn rejects_missing_type_subscription_and_requests() {
        let (index, message) = webhook_error(&beta("    - {subscriptionID: s, requests: [{url: u, method: GET}]}\n"));
        assert_eq!((index, message.as_str()), (0, "`type` is required and must not be empty"));
        let (index, message) = webhook_error(&beta(&format!(
            "{GOOD_BETA}    - {{type: t, subscriptionID: '', requests: [{{url: u, method: GET}}]}}\n"
        )));
        assert_eq!((index, message.as_str()), (1, "`subscriptionID` is required and must not be empty"));
        let (_, message) = webhook_error(&beta("    - {type: t, subscriptionID: s}\n"));
        assert_eq!(message, "`requests` must contain at least one request");
        let (_, message) = webhook_error(&beta("    - {type: t, subscriptionID: s, requests: []}\n"));
        assert_eq!(message, "`requests` must contain at least one request");
    }

    #[test]
    fn rejects_incomplete_v1beta1_requests() {
        let cases = [
            ("{url: '', method: GET}", "requests[0]: `url` is required and must not be empty"),
            ("{url: u}", "requests[0]: `method` is required and must not be empty"),
            (
                "{url: u, method: GET, headers: [{key: '', value: v}]}",
                "requests[0]: headers[0]: `key` must not be empty",
            ),
            (
                "{url: u, method: GET, headers: [{key: A, value: b}, {key: X-Token}]}",
                "requests[0]: headers[1] (\"X-Token\"): `value` must not be empty",
            ),
            (
                "'curl https://e.com'",
                "requests[0]: webhookconfig.keptn.sh/v1beta1 requests must be objects with `url` and `method`",
            ),
        ];
        for (request, expected) in cases {
            let (index, message) = webhook_error(&beta(&format!(
                "{GOOD_BETA}    - {{type: t, subscriptionID: s2, requests: [{request}]}}\n"
            )));
            assert_eq!((index, message.as_str()), (1, expected), "for {request}");
        }
        let ok = parse(&beta("    - {type: t, subscriptionID: s, requests: [{url: u, method: GET}]}\n")).unwrap();
        assert_eq!(ok.webhooks.len(), 1);
    }

    #[test]
    fn rejects_bad_v1alpha1_requests() {
        let alpha = |request: &str| {
            format!("apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n    - {{type: t, subscriptionID: s, requests: [{request}]}}\n")
        };
        let (_, message) = webhook_error(&alpha("{url: u, method: GET}"));
        assert_eq!(
            message,
            "requests[0]: webhookconfig.keptn.sh/v1alpha1 requests must be strings holding a `curl …` command"
        );
        let (_, message) = webhook_error(&alpha("'  '"));
        assert_eq!(message, "requests[0]: the curl command must not be empty");
    }

    #[test]
    fn rejects_misspelt_keys_and_bad_yaml() {
        let err =
            parse(&beta("    - {type: t, subscriptionID: s, sendfinished: true, requests: [{url: u, method: GET}]}\n"))
                .unwrap_err();
        assert!(matches!(&err, ConfigError::Yaml(m) if m.contains("unknown field `sendfinished`")), "{err}");
        let (_, message) =
            webhook_error(&beta("    - {type: t, subscriptionID: s, requests: [{url: u, method: GET, body: x}]}\n"));
        assert!(message.starts_with("requests[0]: unknown field `body`"), "{message}");
        assert!(matches!(parse("apiVersion: [unclosed"), Err(ConfigError::Yaml(_))));
    }

    #[test]
    fn finds_the_first_webhook_of_a_subscription() {
        let text = beta(
            "    - {type: a, subscriptionID: s1, requests: [{url: u, method: GET}]}\n    - {type: b, subscriptionID: s2, requests: [{url: u, method: GET}]}\n    - {type: c, subscriptionID: s2, requests: [{url: u, method: GET}]}\n",
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.for_subscription("s2").unwrap().event_type, "b");
        assert_eq!(config.for_subscription("s1").unwrap().event_type, "a");
        assert!(config.for_subscription("s3").is_none());
        assert!(config.for_subscription("").is_none());
    }

    // ---- render ------------------------------------------------------------------------------------

    fn context() -> Value {
        json!({
            "id": "e1",
            "type": "sh.keptn.event.evaluation.finished",
            "data": {
                "project": "sockshop",
                "evaluation": {"result": "pass", "score": 92.5, "count": 3, "big": 1_000_000, "tiny": 0.00001,
                               "ok": true, "none": null, "labels": {"a": "b"}, "list": [1, "x"]},
                "injected": "{{.env.token}}"
            },
            "env": {"token": "s3cr3t"}
        })
    }

    #[test]
    fn renders_nested_paths_and_values() {
        let ctx = context();
        assert_eq!(render("p={{.data.project}}, r={{ .data.evaluation.result }}", &ctx).unwrap(), "p=sockshop, r=pass");
        assert_eq!(render("{{.data.evaluation.score}}", &ctx).unwrap(), "92.5");
        assert_eq!(render("{{.data.evaluation.count}}", &ctx).unwrap(), "3");
        assert_eq!(render("{{.data.evaluation.big}}", &ctx).unwrap(), "1000000");
        assert_eq!(render("{{.data.evaluation.tiny}}", &ctx).unwrap(), "1e-05");
        assert_eq!(render("{{.data.evaluation.ok}}", &ctx).unwrap(), "true");
        assert_eq!(render("[{{.data.evaluation.none}}]", &ctx).unwrap(), "[]");
        assert_eq!(render("{{.data.evaluation.labels}}", &ctx).unwrap(), r#"{"a":"b"}"#);
        assert_eq!(render("{{.data.evaluation.list}}", &ctx).unwrap(), r#"[1,"x"]"#);
        assert_eq!(render("no actions } }} here", &ctx).unwrap(), "no actions } }} here");
        assert_eq!(render("", &ctx).unwrap(), "");
    }

    #[test]
    fn formats_floats_like_go() {
        assert_eq!(go_float(92.5), "92.5");
        assert_eq!(go_float(100.0), "100");
        assert_eq!(go_float(-0.25), "-0.25");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.000012), "1.2e-05");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e300), "1.5e+300");
        assert_eq!(go_float(0.0), "0");
    }

    #[test]
    fn does_not_render_values_twice() {
        assert_eq!(render("x={{.data.injected}}", &context()).unwrap(), "x={{.env.token}}");
    }

    #[test]
    fn honours_trim_markers_and_comments() {
        let ctx = context();
        assert_eq!(render("a  \n {{- .data.project -}} \n\t b", &ctx).unwrap(), "asockshopb");
        assert_eq!(render("a  {{- .data.project}}  b", &ctx).unwrap(), "asockshop  b");
        assert_eq!(render("a  {{.data.project -}}  b", &ctx).unwrap(), "a  sockshopb");
        assert_eq!(render("a {{/* note {{ }} */}}b", &ctx).unwrap(), "a b");
        assert_eq!(render("a {{- /* note */ -}} b", &ctx).unwrap(), "ab");
        assert_eq!(render("a {{/* never closed", &ctx).unwrap_err(), TemplateError::UnclosedComment { line: 1 });
        // Without the whitespace, `-` is not a trim marker, and Go would read a number.
        assert!(matches!(render("{{-3}}", &ctx), Err(TemplateError::Unsupported { .. })));
    }

    #[test]
    fn missing_keys_are_errors() {
        let ctx = context();
        let err = render("x {{.data.nope}}", &ctx).unwrap_err();
        assert_eq!(err, TemplateError::MissingKey { key: "nope".into(), path: ".data.nope".into() });
        assert_eq!(err.to_string(), r#"template: map has no entry for key "nope" (evaluating .data.nope)"#);
        let err = render("{{.data.project.name}}", &ctx).unwrap_err();
        assert_eq!(err.to_string(), "template: can't evaluate field name in a string (evaluating .data.project.name)");
        let err = render("{{.data.evaluation.none.x}}", &ctx).unwrap_err();
        assert_eq!(
            err,
            TemplateError::NotAMap { key: "x".into(), found: "a nil value", path: ".data.evaluation.none.x".into() }
        );
    }

    #[test]
    fn other_actions_are_unsupported() {
        let ctx = context();
        for action in [
            "{{if .data.project}}",
            "{{ range .data.evaluation.list }}",
            "{{end}}",
            "{{.data.project | printf \"%s\"}}",
            "{{printf \"%s\" .data.project}}",
            "{{$x := .data.project}}",
            "{{$x}}",
            "{{ . }}",
            "{{.data.my-key}}",
            "{{.data..project}}",
            "{{.data.project.}}",
            "{{data.project}}",
        ] {
            let err = render(&format!("a {action} b"), &ctx).unwrap_err();
            assert_eq!(err, TemplateError::Unsupported { action: action.to_string() }, "for {action}");
            assert_eq!(err.to_string(), format!("unsupported template action: {action}"));
        }
    }

    #[test]
    fn unclosed_and_empty_actions_are_errors() {
        let ctx = context();
        assert_eq!(render("abc {{ .data.project", &ctx).unwrap_err(), TemplateError::Unclosed { line: 1 });
        assert_eq!(render("line1\nline2 {{", &ctx).unwrap_err(), TemplateError::Unclosed { line: 2 });
        assert_eq!(render("x {{ }}", &ctx).unwrap_err(), TemplateError::Empty { line: 1 });
        assert_eq!(render("x {{ }}", &ctx).unwrap_err().to_string(), "template: empty action at line 1");
    }

    // ---- prepare: structured -----------------------------------------------------------------------

    fn structured(
        url: &str,
        method: &str,
        headers: &[(&str, &str)],
        payload: Option<&str>,
        options: Option<&str>,
    ) -> RequestSpec {
        RequestSpec::Structured {
            url: url.into(),
            method: method.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            payload: payload.map(Into::into),
            options: options.map(Into::into),
        }
    }

    #[test]
    fn prepares_structured_requests() {
        let spec = structured(
            "https://hooks.example.com/services/{{.env.token}}",
            "POST",
            &[("Content-Type", "application/json"), ("X-Project", "{{.data.project}}")],
            Some(r#"{"text":"{{.data.evaluation.result}} {{.data.evaluation.score}}"}"#),
            Some("--max-time 10 -k --connect-timeout=2.5 -s"),
        );
        let request = prepare(&spec, &context()).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.url.as_str(), "https://hooks.example.com/services/s3cr3t");
        assert_eq!(
            request.headers,
            vec![("Content-Type".to_string(), "application/json".to_string()), ("X-Project".into(), "sockshop".into())]
        );
        assert_eq!(request.body.as_deref(), Some(r#"{"text":"pass 92.5"}"#));
        assert_eq!(request.max_time, Some(Duration::from_secs(10)));
        assert_eq!(request.connect_timeout, Some(Duration::from_millis(2500)));
        assert!(request.insecure);
        // Debug output must not show the secret in the URL path.
        assert!(!format!("{request:?}").contains("s3cr3t"));
    }

    #[test]
    fn structured_defaults_without_options() {
        let request =
            prepare(&structured("http://example.com:8080/x?a=1", "GET", &[], None, None), &context()).unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.url.port(), Some(8080));
        assert!(request.headers.is_empty());
        assert_eq!(request.body, None);
        assert_eq!((request.max_time, request.connect_timeout, request.insecure), (None, None, false));
        // A body without a content type gets curl's default one.
        let request = prepare(&structured("https://e.com", "PUT", &[], Some("a=b"), Some("-m 0")), &context()).unwrap();
        assert_eq!(
            request.headers,
            vec![("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string())]
        );
        assert_eq!(request.max_time, None, "0 means no limit in curl");
    }

    #[test]
    fn structured_method_must_be_allowed() {
        for method in ["post", "OPTIONS", "TRACE", " GET", "{{.data.method}}"] {
            let err = prepare(&structured("https://e.com", method, &[], None, None), &context()).unwrap_err();
            assert_eq!(err, RequestError::Method(format!("{method:?}")));
        }
        for method in ALLOWED_METHODS {
            assert_eq!(
                prepare(&structured("https://e.com", method, &[], None, None), &context()).unwrap().method,
                *method
            );
        }
        let err = prepare(&structured("https://e.com", "post", &[], None, None), &context()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"method "post" is not allowed; use one of GET, HEAD, POST, PUT, PATCH, DELETE (uppercase)"#
        );
    }

    #[test]
    fn structured_options_are_limited() {
        let ctx = context();
        let options_err =
            |options: &str| prepare(&structured("https://e.com", "GET", &[], None, Some(options)), &ctx).unwrap_err();
        assert_eq!(
            options_err("-o /tmp/x"),
            RequestError::RefusedOption { flag: "-o".into(), reason: "it writes the response to a local file" }
        );
        assert_eq!(
            options_err("--output=x").to_string(),
            "curl option --output is refused: it writes the response to a local file"
        );
        assert_eq!(
            options_err("-F a=@/etc/passwd").to_string(),
            "curl option -F is refused: multipart forms can read local files"
        );
        assert_eq!(options_err("--verbose"), RequestError::UnsupportedOption("--verbose".into()));
        assert_eq!(options_err("--verbose").to_string(), "unsupported curl option --verbose");
        assert_eq!(
            options_err("-H 'X-A: b'").to_string(),
            "curl option -H cannot be used in `options`; use the request's headers field instead"
        );
        assert_eq!(
            options_err("--request PUT"),
            RequestError::OptionNotInOptions { flag: "--request".into(), field: "method" }
        );
        assert_eq!(options_err("-d x"), RequestError::OptionNotInOptions { flag: "-d".into(), field: "payload" });
        assert_eq!(
            options_err("https://other.example.com"),
            RequestError::ArgumentInOptions("\"https://other.example.com\"".into())
        );
        assert_eq!(options_err("--max-time"), RequestError::MissingValue("--max-time".into()));
        assert_eq!(
            options_err("--max-time ten").to_string(),
            r#"invalid value "ten" for curl option --max-time: expected a number of seconds"#
        );
        assert!(matches!(
            options_err("-m -1"),
            RequestError::InvalidOptionValue { reason: "expected a non-negative number of seconds", .. }
        ));
        assert!(matches!(options_err("-m inf"), RequestError::InvalidOptionValue { .. }));
        assert!(matches!(
            options_err("--insecure=yes"),
            RequestError::InvalidOptionValue { reason: "this option takes no value", .. }
        ));
        assert_eq!(
            options_err("--max-time '10"),
            RequestError::Tokenize { what: "options", reason: "missing closing quote".into() }
        );
    }

    #[test]
    fn structured_templates_cannot_inject_flags() {
        let ctx = json!({"data": {"x": "x' -o /etc/passwd '"}, "env": {}});
        let spec = structured(
            "https://e.com/hook",
            "POST",
            &[("X-Value", "{{.data.x}}")],
            Some(r#"{"v":"{{.data.x}}"}"#),
            Some("--max-time 5"),
        );
        let request = prepare(&spec, &ctx).unwrap();
        assert_eq!(request.body.as_deref(), Some(r#"{"v":"x' -o /etc/passwd '"}"#));
        assert_eq!(request.headers[0], ("X-Value".to_string(), "x' -o /etc/passwd '".to_string()));
        assert_eq!(request.max_time, Some(Duration::from_secs(5)));
    }

    #[test]
    fn structured_header_values_cannot_add_lines() {
        let ctx = json!({"env": {"token": "abc\r\nX-Evil: 1"}});
        let spec = structured("https://e.com", "GET", &[("Authorization", "Bearer {{.env.token}}")], None, None);
        let err = prepare(&spec, &ctx).unwrap_err();
        assert_eq!(err.to_string(), r#"invalid header "Authorization": the value contains control characters"#);
        let spec = structured("https://e.com", "GET", &[("Bad Name", "v")], None, None);
        assert!(matches!(prepare(&spec, &ctx), Err(RequestError::InvalidHeader { .. })));
        // An empty rendered value drops the header, as curl would.
        let ctx = json!({"env": {"token": ""}});
        let spec = structured("https://e.com", "GET", &[("X-Token", "{{.env.token}}")], None, None);
        assert!(prepare(&spec, &ctx).unwrap().headers.is_empty());
    }

    #[test]
    fn structured_errors_never_echo_rendered_text() {
        let ctx = json!({"env": {"token": "s3cr3t"}, "data": {}});
        let err = prepare(&structured("{{.env.token}}/x", "GET", &[], None, None), &ctx).unwrap_err();
        assert_eq!(err.to_string(), r#"invalid request URL "{{.env.token}}/x": relative URL without a base"#);
        let err = prepare(&structured("ftp://e.com/{{.env.token}}", "GET", &[], None, None), &ctx).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid request URL "ftp://e.com/{{.env.token}}": only http and https URLs are allowed"#
        );
        let err = prepare(&structured("https://e.com/{{.data.missing}}", "GET", &[], None, None), &ctx).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"could not render the URL "https://e.com/{{.data.missing}}": template: map has no entry for key "missing" (evaluating .data.missing)"#
        );
        let err = prepare(&structured("https://e.com", "GET", &[], None, Some("{{.env.token}}")), &ctx).unwrap_err();
        assert_eq!(err, RequestError::ArgumentInOptions(TEMPLATED.into()));
        let err = prepare(&structured("https://e.com", "GET", &[], Some("{{if .x}}"), None), &ctx).unwrap_err();
        assert_eq!(err.to_string(), "could not render the payload: unsupported template action: {{if .x}}");
    }

    // ---- prepare: curl -----------------------------------------------------------------------------

    fn curl(command: &str) -> Result<HttpRequest, RequestError> {
        prepare(&RequestSpec::Curl(command.into()), &context())
    }

    #[test]
    fn translates_curl_commands() {
        let request = curl(
            r#"curl -X POST -H 'Content-Type: application/json' --header "X-Project: {{.data.project}}" -d '{"text": "score {{.data.evaluation.score}}"}' https://hooks.example.com/{{.env.token}}"#,
        )
        .unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.url.as_str(), "https://hooks.example.com/s3cr3t");
        assert_eq!(
            request.headers,
            vec![("Content-Type".to_string(), "application/json".to_string()), ("X-Project".into(), "sockshop".into())]
        );
        assert_eq!(request.body.as_deref(), Some(r#"{"text": "score 92.5"}"#));
        assert_eq!((request.max_time, request.connect_timeout, request.insecure), (None, None, false));
    }

    #[test]
    fn curl_method_defaults_follow_curl() {
        let request = curl("curl https://e.com/a").unwrap();
        assert_eq!((request.method.as_str(), request.body.clone()), ("GET", None));
        let request = curl("curl -d x=1 --data y=2 --data-raw @literal https://e.com").unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.body.as_deref(), Some("x=1&y=2&@literal"));
        assert_eq!(
            request.headers,
            vec![("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string())]
        );
        let request = curl("curl -XPUT -d x https://e.com").unwrap();
        assert_eq!(request.method, "PUT");
    }

    #[test]
    fn curl_long_forms_clusters_and_options() {
        let request =
            curl("curl --request=PATCH --url=https://e.com/x -sSk --max-time 2.5 --connect-timeout=1 --fail-with-body -HX-A:b")
                .unwrap();
        assert_eq!(request.method, "PATCH");
        assert_eq!(request.url.as_str(), "https://e.com/x");
        assert!(request.insecure);
        assert_eq!(request.max_time, Some(Duration::from_millis(2500)));
        assert_eq!(request.connect_timeout, Some(Duration::from_secs(1)));
        assert_eq!(request.headers, vec![("X-A".to_string(), "b".to_string())]);
        let request = curl("curl -m5 -H 'X-Empty;' -H 'Accept:' \\\n  https://e.com").unwrap();
        assert_eq!(request.max_time, Some(Duration::from_secs(5)));
        assert_eq!(request.headers, vec![("X-Empty".to_string(), String::new())]);
    }

    #[test]
    fn curl_refuses_file_access() {
        let refused = |command: &str| match curl(command) {
            Err(RequestError::RefusedOption { flag, .. }) => flag,
            other => panic!("{command}: expected a refusal, got {other:?}"),
        };
        assert_eq!(refused("curl -d @/etc/passwd https://e.com"), "-d");
        assert_eq!(refused("curl --data @file https://e.com"), "--data");
        assert_eq!(refused("curl --data-binary=@file https://e.com"), "--data-binary");
        assert_eq!(refused("curl -o /tmp/out https://e.com"), "-o");
        assert_eq!(refused("curl -o/tmp/out https://e.com"), "-o");
        assert_eq!(refused("curl -so out https://e.com"), "-o");
        assert_eq!(refused("curl --output out https://e.com"), "--output");
        assert_eq!(refused("curl --output-dir /tmp https://e.com"), "--output");
        assert_eq!(refused("curl -F f=@x https://e.com"), "-F");
        assert_eq!(refused("curl --form-string a=b https://e.com"), "--form");
        assert_eq!(refused("curl -T x https://e.com"), "-T");
        assert_eq!(refused("curl --upload-file x https://e.com"), "--upload-file");
        assert_eq!(refused("curl -K cfg https://e.com"), "-K");
        assert_eq!(refused("curl --config=cfg https://e.com"), "--config");
        assert_eq!(
            curl("curl -d @/etc/passwd https://e.com").unwrap_err().to_string(),
            "curl option -d is refused: a value starting with '@' reads a local file (use --data-raw for a literal '@')"
        );
    }

    #[test]
    fn curl_rejects_other_flags_and_malformed_commands() {
        assert_eq!(curl("curl -v https://e.com").unwrap_err(), RequestError::UnsupportedOption("-v".into()));
        assert_eq!(
            curl("curl --location https://e.com").unwrap_err().to_string(),
            "unsupported curl option --location"
        );
        assert_eq!(curl("wget https://e.com").unwrap_err(), RequestError::NotCurl);
        assert_eq!(curl("/usr/bin/curl https://e.com").unwrap_err(), RequestError::NotCurl);
        assert_eq!(curl("   ").unwrap_err(), RequestError::NotCurl);
        assert_eq!(
            curl("curl -d 'unclosed https://e.com").unwrap_err(),
            RequestError::Tokenize { what: "curl command", reason: "missing closing quote".into() }
        );
        assert_eq!(curl("curl -X POST").unwrap_err(), RequestError::NoUrl);
        assert_eq!(curl("curl https://e.com -H").unwrap_err(), RequestError::MissingValue("-H".into()));
        assert_eq!(
            curl("curl https://a.com https://b.com").unwrap_err(),
            RequestError::SecondUrl("\"https://b.com\"".into())
        );
        assert_eq!(curl("curl -X post https://e.com").unwrap_err(), RequestError::Method("\"post\"".into()));
        assert_eq!(
            curl("curl -H NoColon https://e.com").unwrap_err().to_string(),
            r#"invalid header "NoColon": curl headers are written as 'Name: value'"#
        );
    }

    #[test]
    fn curl_urls_must_be_http() {
        assert_eq!(
            curl("curl example.com/path").unwrap_err().to_string(),
            r#"invalid request URL "example.com/path": relative URL without a base"#
        );
        assert_eq!(
            curl("curl ftp://e.com/file").unwrap_err().to_string(),
            r#"invalid request URL "ftp://e.com/file": only http and https URLs are allowed"#
        );
        assert!(matches!(curl("curl file:///etc/passwd"), Err(RequestError::InvalidUrl { .. })));
        assert!(matches!(curl("curl 'http://[::1'"), Err(RequestError::InvalidUrl { .. })));
    }

    #[test]
    fn curl_errors_hide_templated_arguments() {
        let ctx = json!({"env": {"flag": "--s3cr3t", "url": "s3cr3t-host/x"}});
        let err = prepare(&RequestSpec::Curl("curl {{.env.flag}} https://e.com".into()), &ctx).unwrap_err();
        assert_eq!(err.to_string(), "unsupported curl option <templated value>");
        let err = prepare(&RequestSpec::Curl("curl {{.env.url}}".into()), &ctx).unwrap_err();
        assert_eq!(err.to_string(), "invalid request URL <templated value>: relative URL without a base");
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn curl_quote_breakout_is_still_refused() {
        // In a raw command a templated value can break out of its quotes (the whole line is rendered
        // first, as in Keptn); the flag checks still stop it from writing files.
        let ctx = json!({"data": {"x": "x' -o /etc/passwd '"}});
        let err = prepare(&RequestSpec::Curl("curl -d '{{.data.x}}' https://e.com".into()), &ctx).unwrap_err();
        assert_eq!(
            err,
            RequestError::RefusedOption { flag: "-o".into(), reason: "it writes the response to a local file" }
        );
    }

    // ---- redact ------------------------------------------------------------------------------------

    #[test]
    fn redacts_secret_values() {
        assert_eq!(redact("token s3cr3t in s3cr3t", &["s3cr3t"]), "token *** in ***");
        assert_eq!(redact("my password and pass", &["pass", "password"]), "my *** and ***");
        assert_eq!(redact("xabcdy", &["abc", "bcd"]), "x***y");
        assert_eq!(redact("aaaa-b", &["aa"]), "***-b");
        assert_eq!(redact("nothing here", &["", "zzz"]), "nothing here");
        assert_eq!(redact("clé=ünïcode!", &["ünïcode"]), "clé=***!");
        assert_eq!(redact("", &["x"]), "");
    }

    #[test]
    fn redacts_secret_values_anywhere_in_a_response() {
        let mut response = serde_json::json!({
            "echo": "Bearer s3cr3t", "headers": ["a", "x-s3cr3t-y"], "nested": { "s3cr3t": 1, "n": 5 }
        });
        redact_value(&mut response, &["s3cr3t"]);
        assert_eq!(
            response,
            serde_json::json!({ "echo": "Bearer ***", "headers": ["a", "x-***-y"], "nested": { "***": 1, "n": 5 } })
        );
        assert!(!response.to_string().contains("s3cr3t"));
    }
}
