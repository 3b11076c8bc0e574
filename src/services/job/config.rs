//! `job/config.yaml` in the job-executor-service's format (`apiVersion: v2`): which events run which
//! tasks, and how each task is run. Read strictly, as that service reads it: an unknown key, a missing
//! `apiVersion`, an event name that is no regular expression or a JSONPath that does not parse is an
//! error naming what to fix, not a silently different job.
//!
//! Fields that only mean something to a Kubernetes Job (`image`, `namespace`, `resources`, …) are
//! accepted so that existing files keep working; the process runner notes in the task log that it
//! ignored them.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use serde_json_path::JsonPath;
use thiserror::Error;

/// The only `apiVersion` the format has.
pub const API_VERSION: &str = "v2";
/// How long a task may run when its `maxPollDuration` says nothing (the job-executor-service's default).
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("job/config.yaml is not valid: {0}")]
    Yaml(String),
    #[error("job/config.yaml: apiVersion must be specified")]
    MissingApiVersion,
    #[error("job/config.yaml: apiVersion {0} is not supported, use v2")]
    UnsupportedApiVersion(String),
    #[error("job/config.yaml: action '{action}': event name '{name}' is not a regular expression: {reason}")]
    EventName { action: String, name: String, reason: String },
    #[error("job/config.yaml: action '{action}': '{path}' is not a JSONPath: {reason}")]
    JsonPath { action: String, path: String, reason: String },
    #[error("job/config.yaml: task '{task}': env {name}: {reason}")]
    Env { task: String, name: String, reason: String },
}

/// A parsed `job/config.yaml`.
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone)]
pub struct Action {
    pub name: String,
    pub events: Vec<EventMatcher>,
    /// Runs without sending `.started` / `.finished` (for actions on events that are not tasks to answer).
    pub silent: bool,
    pub tasks: Vec<Task>,
}

/// One `events[]` entry: an event type pattern and an optional condition on the event's content.
#[derive(Debug, Clone)]
pub struct EventMatcher {
    /// The type pattern: a regular expression, unanchored (as in the job-executor-service, where
    /// `sh.keptn.event.*.triggered` is a regular expression too).
    pub name: Regex,
    pub condition: Option<(JsonPath, String)>,
}

/// One task: a command run in a fresh working directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Task {
    pub name: String,
    /// Service-level resources copied into the working directory, each to its own path (a directory
    /// brings every file under it).
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Relative to the task's working directory (the job-executor-service's paths under `/keptn` map to it).
    pub working_dir: Option<String>,
    /// Seconds the task may run.
    pub max_poll_duration: Option<u64>,
    // Kubernetes Job settings: accepted, not used by the process runner.
    pub image: Option<String>,
    pub image_pull_policy: Option<String>,
    pub namespace: Option<String>,
    pub resources: Option<serde_yaml_ng::Value>,
    pub security_context: Option<serde_yaml_ng::Value>,
    pub service_account: Option<String>,
    pub ttl_seconds_after_finished: Option<i64>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// One `env[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
    pub value_from: ValueFrom,
    /// For `valueFrom: event`: `json` or `yaml` rendering of a non-text value (`string`: the default).
    #[serde(rename = "as")]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ValueFrom {
    /// `value` is a JSONPath into the event.
    Event,
    /// `name` is a secret; each of its keys becomes a variable of that name.
    Secret,
    /// `value` is the value.
    String,
}

impl Task {
    /// The time limit: `maxPollDuration` seconds, else five minutes.
    pub fn max_duration(&self) -> Duration {
        self.max_poll_duration.map_or(DEFAULT_MAX_DURATION, Duration::from_secs)
    }

    /// The Kubernetes-only settings this task sets, which the process runner does not apply.
    pub fn ignored_settings(&self) -> Vec<&'static str> {
        let set = [
            ("image", self.image.is_some()),
            ("imagePullPolicy", self.image_pull_policy.is_some()),
            ("namespace", self.namespace.is_some()),
            ("resources", self.resources.is_some()),
            ("securityContext", self.security_context.is_some()),
            ("serviceAccount", self.service_account.is_some()),
            ("ttlSecondsAfterFinished", self.ttl_seconds_after_finished.is_some()),
            ("annotations", self.annotations.is_some()),
        ];
        set.into_iter().filter(|(_, present)| *present).map(|(name, _)| name).collect()
    }
}

/// The file as written, before the patterns are compiled.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    api_version: Option<String>,
    #[serde(default)]
    actions: Vec<RawAction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    name: String,
    #[serde(default)]
    events: Vec<RawEvent>,
    #[serde(default)]
    silent: bool,
    #[serde(default)]
    tasks: Vec<Task>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    name: String,
    jsonpath: Option<RawCondition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    property: String,
    #[serde(rename = "match")]
    matches: String,
}

/// Parses and checks `job/config.yaml`.
pub fn parse(text: &str) -> Result<JobConfig, ConfigError> {
    let raw: RawConfig = serde_yaml_ng::from_str(text).map_err(|error| ConfigError::Yaml(error.to_string()))?;
    match raw.api_version.as_deref() {
        None | Some("") => return Err(ConfigError::MissingApiVersion),
        Some(API_VERSION) => {}
        Some(other) => return Err(ConfigError::UnsupportedApiVersion(other.to_owned())),
    }
    let actions = raw
        .actions
        .into_iter()
        .map(|action| {
            let events = action
                .events
                .into_iter()
                .map(|event| compile_event(&action.name, event))
                .collect::<Result<Vec<_>, _>>()?;
            for task in &action.tasks {
                check_env(task)?;
            }
            Ok(Action { name: action.name, events, silent: action.silent, tasks: action.tasks })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    Ok(JobConfig { actions })
}

/// `valueFrom: event` paths and formats are checked when the file is read, not when a task runs.
fn check_env(task: &Task) -> Result<(), ConfigError> {
    for variable in task.env.iter().filter(|variable| variable.value_from == ValueFrom::Event) {
        let error = |reason: String| ConfigError::Env { task: task.name.clone(), name: variable.name.clone(), reason };
        JsonPath::parse(&variable.value).map_err(|e| error(format!("'{}' is not a JSONPath: {e}", variable.value)))?;
        format_of(variable.format.as_deref()).map_err(error)?;
    }
    Ok(())
}

/// How a `valueFrom: event` value is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Text as it is, anything else as JSON.
    Plain,
    Json,
    Yaml,
}

fn format_of(format: Option<&str>) -> Result<Format, String> {
    match format.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("string") => Ok(Format::Plain),
        Some("json") => Ok(Format::Json),
        Some("yaml") => Ok(Format::Yaml),
        Some(other) => Err(format!("'as: {other}' is not known (json, yaml or string)")),
    }
}

fn compile_event(action: &str, event: RawEvent) -> Result<EventMatcher, ConfigError> {
    let name = Regex::new(&event.name).map_err(|error| ConfigError::EventName {
        action: action.to_owned(),
        name: event.name.clone(),
        reason: error.to_string(),
    })?;
    let condition = match event.jsonpath {
        Some(condition) => {
            let path = JsonPath::parse(&condition.property).map_err(|error| ConfigError::JsonPath {
                action: action.to_owned(),
                path: condition.property.clone(),
                reason: error.to_string(),
            })?;
            Some((path, condition.matches))
        }
        None => None,
    };
    Ok(EventMatcher { name, condition })
}

impl JobConfig {
    /// The first action one of whose `events` matches `event` (the event as JSON: `type`, `data`, …).
    /// Only silent actions run for events that are not `.triggered` (`triggered` false): an action that
    /// answers would otherwise also run for the `.started` and `.finished` events of its own task.
    pub fn action_for(&self, event: &Value, triggered: bool) -> Option<&Action> {
        let event_type = event.get("type").and_then(Value::as_str).unwrap_or_default();
        self.actions
            .iter()
            .filter(|action| triggered || action.silent)
            .find(|action| action.events.iter().any(|matcher| matcher.matches(event_type, event)))
    }
}

/// Whether a file that is not a valid configuration may have been meant for events of `event_type`
/// (task `task`): some `events[].name` in it matches the type, or — when it is not even YAML — it
/// names the task. Only such tasks fail because of the file; others are not the job executor's.
pub fn may_concern(raw: &str, event_type: &str, task: &str) -> bool {
    let Ok(document) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(raw) else {
        return raw.contains(task);
    };
    let names = document
        .get("actions")
        .and_then(serde_yaml_ng::Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|action| action.get("events").and_then(serde_yaml_ng::Value::as_sequence))
        .flatten()
        .filter_map(|event| event.get("name").and_then(serde_yaml_ng::Value::as_str));
    let mut names = names.peekable();
    if names.peek().is_none() {
        return raw.contains(task);
    }
    names
        .into_iter()
        .any(|name| Regex::new(name).map_or_else(|_| name.contains(task), |pattern| pattern.is_match(event_type)))
}

impl EventMatcher {
    fn matches(&self, event_type: &str, event: &Value) -> bool {
        if !self.name.is_match(event_type) {
            return false;
        }
        match &self.condition {
            None => true,
            Some((path, expected)) => path.query(event).first().is_some_and(|found| equals_text(found, expected)),
        }
    }
}

/// Whether a condition's `match` text equals `value`: strings as they are, numbers and booleans as
/// written in JSON; objects, arrays and null never match.
fn equals_text(value: &Value, expected: &str) -> bool {
    match value {
        Value::String(text) => text == expected,
        Value::Number(number) => number.to_string() == expected,
        Value::Bool(flag) => flag.to_string() == expected,
        _ => false,
    }
}

/// The value of a `valueFrom: event` variable: the first match of `path` in `event`, rendered as text
/// (strings as they are, other values as JSON, or as YAML with `as: yaml`).
pub fn event_value(path: &str, format: Option<&str>, event: &Value) -> Result<String, String> {
    let parsed = JsonPath::parse(path).map_err(|error| format!("'{path}' is not a JSONPath: {error}"))?;
    let found = parsed.query(event).first().ok_or_else(|| format!("'{path}' matches nothing in the event"))?;
    match (found, format_of(format)?) {
        (_, Format::Yaml) => serde_yaml_ng::to_string(found).map_err(|error| error.to_string()),
        (Value::String(text), Format::Plain) => Ok(text.clone()),
        (_, _) => Ok(found.to_string()),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
