//! The CloudEvent envelope Keptn uses (`KeptnContextExtendedCE`) and the event types Keelson emits for
//! project and service lifecycle changes.

use super::verdict::{TaskResult, TaskStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `source` of every event the control plane itself emits.
pub const CONTROL_PLANE_SOURCE: &str = "shipyard-controller";
/// CloudEvents spec version written on emitted events.
pub const SPEC_VERSION: &str = "1.0";
/// Keptn spec version written on emitted events.
pub const KEPTN_SPEC_VERSION: &str = "0.2.4";

pub const PROJECT_CREATE_STARTED: &str = "sh.keptn.event.project.create.started";
pub const PROJECT_CREATE_FINISHED: &str = "sh.keptn.event.project.create.finished";
pub const PROJECT_DELETE_FINISHED: &str = "sh.keptn.event.project.delete.finished";
pub const SERVICE_CREATE_STARTED: &str = "sh.keptn.event.service.create.started";
pub const SERVICE_CREATE_FINISHED: &str = "sh.keptn.event.service.create.finished";
pub const SERVICE_DELETE_STARTED: &str = "sh.keptn.event.service.delete.started";
pub const SERVICE_DELETE_FINISHED: &str = "sh.keptn.event.service.delete.finished";

/// A Keptn CloudEvent in structured JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CloudEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contenttype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(default)]
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Value>,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub shkeptncontext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shkeptnspecversion: Option<String>,
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specversion: Option<String>,
    /// Written with nine fraction digits so that stored times compare correctly as strings.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "fixed_nanos")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggeredid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitcommitid: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
}

impl CloudEvent {
    /// An event emitted by the control plane. Ids and time are inputs so that callers decide them.
    pub fn emitted(event_type: &str, id: String, keptn_context: String, time: DateTime<Utc>, data: Value) -> Self {
        Self {
            contenttype: Some("application/json".to_owned()),
            datacontenttype: Some("application/json".to_owned()),
            data,
            extensions: None,
            id,
            shkeptncontext: keptn_context,
            shkeptnspecversion: Some(KEPTN_SPEC_VERSION.to_owned()),
            source: CONTROL_PLANE_SOURCE.to_owned(),
            specversion: Some(SPEC_VERSION.to_owned()),
            time: Some(time),
            triggeredid: None,
            gitcommitid: None,
            event_type: event_type.to_owned(),
        }
    }

    /// `data.project`, when present.
    pub fn project(&self) -> Option<&str> {
        self.data.get("project").and_then(Value::as_str)
    }
}

/// RFC 3339 with a fixed nine-digit fraction, e.g. `2024-01-02T03:04:05.678000000Z`.
mod fixed_nanos {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Nanos, true)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        match text.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map(|time| Some(time.with_timezone(&Utc)))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A required time as RFC 3339 with nine fraction digits; reads any RFC 3339 time (Go's zero time
/// included).
pub mod keptn_time_serde {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Nanos, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Ok(DateTime::<Utc>::UNIX_EPOCH);
        }
        DateTime::parse_from_rfc3339(&text).map(|time| time.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}

/// Outcome fields of a `.finished` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Errored,
}

impl Outcome {
    pub fn status(self) -> TaskStatus {
        match self {
            Outcome::Succeeded => TaskStatus::Succeeded,
            Outcome::Errored => TaskStatus::Errored,
        }
    }

    pub fn result(self) -> TaskResult {
        match self {
            Outcome::Succeeded => TaskResult::Pass,
            Outcome::Errored => TaskResult::Fail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_keptn_keys_and_reads_foreign_events() {
        let time = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.678Z").unwrap().with_timezone(&Utc);
        let event = CloudEvent::emitted(
            PROJECT_CREATE_STARTED,
            "id-1".into(),
            "ctx-1".into(),
            time,
            serde_json::json!({"project": "sockshop"}),
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], PROJECT_CREATE_STARTED);
        assert_eq!(json["shkeptncontext"], "ctx-1");
        assert_eq!(json["source"], CONTROL_PLANE_SOURCE);
        assert!(json.get("triggeredid").is_none());
        assert_eq!(json["time"], "2024-01-02T03:04:05.678000000Z");
        assert_eq!(event.project(), Some("sockshop"));

        let foreign: CloudEvent = serde_json::from_str(
            r#"{"type":"sh.keptn.event.deployment.finished","source":"helm","data":{"project":"p"},
                "triggeredid":"t1","unknown":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(foreign.triggeredid.as_deref(), Some("t1"));
        assert_eq!(foreign.project(), Some("p"));
    }
}
