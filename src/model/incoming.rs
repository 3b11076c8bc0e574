//! Checks and stamps for events clients send through `POST /api/v1/event`, as Keptn's api-service does.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::event::CloudEvent;
use super::event_type::{self, EventType};

/// Largest accepted event, as Keptn's `MAX_EVENT_SIZE_KB`.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// `source` given to events whose own `source` is not a URL.
pub const DEFAULT_SOURCE: &str = "https://github.com/keptn/keptn/api";

/// Why an event was refused: `Schema` maps to 422, `Invalid` to 400.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Schema(String),
    Invalid(String),
}

/// Turns a client's JSON into the event Keelson handles: checks Keptn's rules, then stamps a new `id`,
/// the current `time`, a `shkeptncontext` and the content type.
pub fn accept(mut raw: Value, id: String, now: DateTime<Utc>) -> Result<CloudEvent, Refusal> {
    let object = raw.as_object_mut().ok_or_else(|| Refusal::Schema("event must be a JSON object".into()))?;
    for key in ["type", "source", "data"] {
        if !object.contains_key(key) {
            return Err(Refusal::Schema(format!("{key} in body is required")));
        }
    }
    // Keptn's api model calls it `shkeptnversion`; keep it rather than drop it.
    if let Some(version) = object.remove("shkeptnversion") {
        object.entry("shkeptnspecversion").or_insert(version);
    }
    for key in ["id", "time"] {
        object.remove(key);
    }
    let mut event: CloudEvent =
        serde_json::from_value(raw).map_err(|error| Refusal::Schema(format!("invalid event: {error}")))?;
    validate(&event).map_err(Refusal::Invalid)?;
    event.id = id;
    event.time = Some(now);
    event.contenttype = Some("application/json".into());
    event.shkeptncontext = keptn_context(&event.shkeptncontext);
    // The control plane's own name marks the events it emitted (stored and applied when emitted), so
    // no client may send under it.
    if !is_url_reference(&event.source) || event.source == super::event::CONTROL_PLANE_SOURCE {
        event.source = DEFAULT_SOURCE.into();
    }
    Ok(event)
}

/// Whether Go's `url.Parse` accepts `text`, which is all Keptn asks of a `source`: absolute URLs and
/// relative references such as `jenkins` or `helm-service` alike. It refuses control characters,
/// malformed percent-escapes, a colon in the first path segment that is not a scheme, and absolute
/// URLs whose authority does not parse.
pub fn is_url_reference(text: &str) -> bool {
    if text.chars().any(|c| c.is_control()) {
        return false;
    }
    let bytes = text.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        if *byte == b'%' {
            let valid = bytes.get(index + 1..index + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
            if !valid {
                return false;
            }
        }
    }
    let before_path = text.split(['/', '?', '#']).next().unwrap_or_default();
    match before_path.split_once(':') {
        None => true,
        Some((scheme, _)) => {
            let is_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            // With a scheme it must be a URL; a colon without one is refused, as Go does.
            is_scheme && url::Url::parse(text).is_ok()
        }
    }
}

fn text<'a>(event: &'a CloudEvent, key: &str) -> &'a str {
    event.data.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Keptn's api-service rules (`eventvalidation.go`).
pub fn validate(event: &CloudEvent) -> Result<(), String> {
    let event_type = event.event_type.as_str();
    if event_type == "sh.keptn.log.error" || event_type == "sh.keptn.events.problem" {
        return Ok(());
    }
    if event_type == "sh.keptn.event.monitoring.configure" {
        if text(event, "project").is_empty() || text(event, "type").is_empty() {
            return Err("mandatory field(s) 'project' or 'type' missing".into());
        }
        return Ok(());
    }
    let has_scope =
        !text(event, "project").is_empty() && !text(event, "stage").is_empty() && !text(event, "service").is_empty();
    match event_type::parse(event_type) {
        EventType::Sequence { stage, kind, .. } => {
            if kind != event_type::TRIGGERED {
                return Err(format!("unknown event type action: {kind}"));
            }
            if !has_scope {
                return Err("mandatory field(s) 'project', 'stage' or 'service' missing".into());
            }
            if text(event, "stage") != stage {
                return Err("stage name in event data and in event type does not match".into());
            }
            Ok(())
        }
        EventType::Task { kind, .. } => match kind {
            event_type::STARTED | event_type::FINISHED => {
                if !has_scope {
                    return Err("mandatory field(s) 'project', 'stage' or 'service' missing".into());
                }
                if event.triggeredid.as_deref().is_none_or(str::is_empty) {
                    return Err("mandatory field 'triggeredid' missing".into());
                }
                if kind == event_type::FINISHED {
                    if text(event, "result").is_empty() {
                        return Err("result field is not set".into());
                    }
                    if text(event, "status").is_empty() {
                        return Err("status field is not set".into());
                    }
                }
                Ok(())
            }
            "invalidated" => Ok(()),
            other => Err(format!("unknown event type action: {other}")),
        },
        EventType::Other => Err("unknown event type".into()),
    }
}

/// Keptn's context rule: a valid UUID is kept, an empty one replaced by a new one, anything else mapped
/// to a UUID made from its first 16 bytes (space-padded) with the version-4 and RFC 4122 bits set.
pub fn keptn_context(given: &str) -> String {
    if given.is_empty() {
        return Uuid::new_v4().to_string();
    }
    if let Ok(uuid) = Uuid::parse_str(given) {
        return uuid.hyphenated().to_string();
    }
    let mut bytes = [b' '; 16];
    for (slot, byte) in bytes.iter_mut().zip(given.bytes()) {
        *slot = byte;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn check(body: Value) -> Result<CloudEvent, Refusal> {
        accept(body, "new-id".into(), now())
    }

    #[test]
    fn accepts_and_stamps_a_sequence_trigger() {
        let event = check(json!({
            "type": "sh.keptn.event.dev.delivery.triggered", "source": "my-ci", "id": "client-id",
            "shkeptnversion": "0.2.4",
            "data": { "project": "p", "stage": "dev", "service": "carts" }
        }))
        .unwrap();
        assert_eq!(event.id, "new-id");
        assert_eq!(event.time, Some(now()));
        assert_eq!(event.source, "my-ci", "a relative reference is a valid source, as in Keptn");
        assert_eq!(event.shkeptnspecversion.as_deref(), Some("0.2.4"));
        assert!(Uuid::parse_str(&event.shkeptncontext).is_ok());
    }

    #[test]
    fn refusals_follow_keptn() {
        let scope = json!({ "project": "p", "stage": "dev", "service": "carts" });
        let cases = [
            (json!({ "source": "s", "data": {} }), "type in body is required"),
            (
                json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "s", "data": { "project": "p", "stage": "prod", "service": "c" } }),
                "stage name in event data and in event type does not match",
            ),
            (
                json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "s", "data": { "project": "p" } }),
                "mandatory field(s) 'project', 'stage' or 'service' missing",
            ),
            (
                json!({ "type": "sh.keptn.event.dev.delivery.finished", "source": "s", "data": scope }),
                "unknown event type action: finished",
            ),
            (
                json!({ "type": "sh.keptn.event.deployment.triggered", "source": "s", "data": scope }),
                "unknown event type action: triggered",
            ),
            (
                json!({ "type": "sh.keptn.event.deployment.finished", "source": "s", "data": scope }),
                "mandatory field 'triggeredid' missing",
            ),
            (
                json!({ "type": "sh.keptn.event.deployment.finished", "source": "s", "triggeredid": "t", "data": scope }),
                "result field is not set",
            ),
            (
                json!({ "type": "sh.keptn.event.deployment.finished", "source": "s", "triggeredid": "t", "data": { "project": "p", "stage": "dev", "service": "carts", "result": "pass" } }),
                "status field is not set",
            ),
            (json!({ "type": "nonsense", "source": "s", "data": {} }), "unknown event type"),
        ];
        for (body, expected) in cases {
            let refusal = check(body).unwrap_err();
            let message = match refusal {
                Refusal::Schema(message) | Refusal::Invalid(message) => message,
            };
            assert_eq!(message, expected);
        }
        assert!(check(json!({ "type": "sh.keptn.log.error", "source": "s", "data": {} })).is_ok());
        assert!(check(
            json!({ "type": "sh.keptn.event.deployment.started", "source": "s", "triggeredid": "t", "data": scope })
        )
        .is_ok());
    }

    #[test]
    fn context_rule() {
        let uuid = "c2a52b4f-7dbc-4c1b-9e1d-3b44d6a4a1a2";
        assert_eq!(keptn_context(uuid), uuid);
        let derived = keptn_context("my-context");
        assert_eq!(derived, keptn_context("my-context"), "deterministic");
        let parsed = Uuid::parse_str(&derived).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_ne!(keptn_context(""), keptn_context(""));
    }

    #[test]
    fn sources_are_kept_when_go_would_parse_them() {
        for kept in ["jenkins", "helm-service", "https://ci.example/job/1", "/local/path", "urn:keptn:ci", "a b", ""] {
            assert!(is_url_reference(kept), "{kept:?} should be kept");
        }
        for replaced in ["bad\u{7}bell", "50%", "%zz", "1a:b", ":nothing", "http://[::1", "line\nbreak"] {
            assert!(!is_url_reference(replaced), "{replaced:?} should be replaced");
        }
        let accepted = |source: &str| {
            let raw = json!({
                "type": "sh.keptn.event.dev.delivery.triggered", "source": source,
                "data": { "project": "p", "stage": "dev", "service": "c" },
            });
            accept(raw, "id".into(), chrono::Utc::now()).unwrap().source
        };
        assert_eq!(accepted("jenkins"), "jenkins");
        assert_eq!(accepted("%zz"), DEFAULT_SOURCE);
        assert_eq!(
            accepted(crate::model::event::CONTROL_PLANE_SOURCE),
            DEFAULT_SOURCE,
            "nobody sends as the control plane"
        );
    }
}
