//! What the event history can be asked: the filters of Keptn's datastore API, one type for every backend.

use serde_json::Value;

use crate::model::event::CloudEvent;

/// Which events to read back. Every set field must match; results are newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub project: Option<String>,
    pub stage: Option<String>,
    pub service: Option<String>,
    pub keptn_context: Option<String>,
    pub event_type: Option<String>,
    pub source: Option<String>,
    pub triggered_id: Option<String>,
    pub event_id: Option<String>,
    /// Only events whose `time` is later than this (compared as text, as Keptn's datastore does).
    pub from_time: Option<String>,
    /// Only events whose `time` is earlier than this (compared as text).
    pub before_time: Option<String>,
    /// Only the first event stored for each Keptn context.
    pub root_only: bool,
    /// Leave out events answering a `.triggered` event that an `*.invalidated` event withdrew.
    pub exclude_invalidated: bool,
    /// Conditions on any JSON path of the event (the datastore's `filter` grammar).
    pub conditions: Vec<Condition>,
    /// Matching events to skip (paging).
    pub offset: usize,
    /// At most this many events.
    pub limit: usize,
}

/// `path` (e.g. `data.result`) holds one of `values` (text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub path: String,
    pub values: Vec<String>,
}

/// The indexed event fields a condition path can name directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexedField {
    Id,
    Project,
    Stage,
    Service,
    KeptnContext,
    Type,
    Source,
    TriggeredId,
}

impl IndexedField {
    pub fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "id" => Self::Id,
            "data.project" => Self::Project,
            "data.stage" => Self::Stage,
            "data.service" => Self::Service,
            "shkeptncontext" => Self::KeptnContext,
            "type" => Self::Type,
            "source" => Self::Source,
            "triggeredid" => Self::TriggeredId,
            _ => return None,
        })
    }

    /// The event's JSON path for this field.
    pub fn path(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Project => "data.project",
            Self::Stage => "data.stage",
            Self::Service => "data.service",
            Self::KeptnContext => "shkeptncontext",
            Self::Type => "type",
            Self::Source => "source",
            Self::TriggeredId => "triggeredid",
        }
    }
}

impl EventQuery {
    /// Every equality the query asks for, as conditions: the named fields first, then `conditions`.
    pub fn all_conditions(&self) -> Vec<Condition> {
        let named = [
            (IndexedField::Project, &self.project),
            (IndexedField::Stage, &self.stage),
            (IndexedField::Service, &self.service),
            (IndexedField::KeptnContext, &self.keptn_context),
            (IndexedField::Type, &self.event_type),
            (IndexedField::Source, &self.source),
            (IndexedField::TriggeredId, &self.triggered_id),
            (IndexedField::Id, &self.event_id),
        ];
        named
            .into_iter()
            .filter_map(|(field, value)| {
                value.as_ref().map(|value| Condition { path: field.path().to_owned(), values: vec![value.clone()] })
            })
            .chain(self.conditions.iter().cloned())
            .collect()
    }

    /// The project the query is confined to, from `project` or a single-valued `data.project` condition.
    pub fn confined_project(&self) -> Option<&str> {
        self.project.as_deref().or_else(|| {
            self.conditions
                .iter()
                .find(|condition| condition.path == "data.project" && condition.values.len() == 1)
                .map(|condition| condition.values[0].as_str())
        })
    }

    /// The Keptn context the query is confined to, if any.
    pub fn confined_context(&self) -> Option<&str> {
        self.keptn_context.as_deref().or_else(|| {
            self.conditions
                .iter()
                .find(|condition| condition.path == "shkeptncontext" && condition.values.len() == 1)
                .map(|condition| condition.values[0].as_str())
        })
    }
}

impl Condition {
    /// Whether `event` satisfies this condition: the value at the path is text equal to one of the values.
    pub fn matches(&self, event: &Value) -> bool {
        let mut current = event;
        for part in self.path.split('.') {
            match current.get(part) {
                Some(next) => current = next,
                None => return false,
            }
        }
        current.as_str().is_some_and(|text| self.values.iter().any(|value| value == text))
    }
}

/// Parses the datastore's `filter` grammar: clauses `path:value` joined by ` AND `, a comma-separated
/// value meaning "any of".
pub fn parse_filter(text: &str) -> Result<Vec<Condition>, String> {
    text.split(" AND ")
        .map(str::trim)
        .filter(|clause| !clause.is_empty())
        .map(|clause| {
            let (path, values) = clause
                .split_once(':')
                .ok_or_else(|| format!("invalid filter clause '{clause}': expected path:value"))?;
            let path = path.trim();
            if path.split('.').any(|part| part.is_empty() || part.starts_with('$')) {
                return Err(format!("invalid filter path '{path}'"));
            }
            let values: Vec<String> = values.split(',').map(|value| value.trim().to_owned()).collect();
            Ok(Condition { path: path.to_owned(), values })
        })
        .collect()
}

/// Whether `event` is an `*.invalidated` event, whose `triggeredid` names the withdrawn result.
pub fn is_invalidation(event: &CloudEvent) -> bool {
    event.event_type.ends_with(".invalidated") && event.triggeredid.as_deref().is_some_and(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_follow_paths_and_accept_any_listed_value() {
        let event = json!({ "data": { "result": "warning", "score": 3 }, "source": "lighthouse" });
        let condition = |path: &str, values: &[&str]| Condition {
            path: path.into(),
            values: values.iter().map(|value| (*value).to_owned()).collect(),
        };
        assert!(condition("data.result", &["pass", "warning"]).matches(&event));
        assert!(!condition("data.result", &["pass"]).matches(&event));
        assert!(!condition("data.missing", &["pass"]).matches(&event));
        // Only text matches, as the filter's values are text.
        assert!(!condition("data.score", &["3"]).matches(&event));
        assert!(condition("source", &["lighthouse"]).matches(&event));
    }

    #[test]
    fn filters_parse_clauses_and_value_lists() {
        let conditions = parse_filter("data.project:sockshop AND data.result:pass,warning").unwrap();
        assert_eq!(
            conditions,
            vec![
                Condition { path: "data.project".into(), values: vec!["sockshop".into()] },
                Condition { path: "data.result".into(), values: vec!["pass".into(), "warning".into()] },
            ]
        );
        assert!(parse_filter("data.project").unwrap_err().contains("expected path:value"));
        assert!(parse_filter("$where:1").is_err(), "operators are not paths");
        assert!(parse_filter("data..x:1").is_err());
        assert!(parse_filter("data.$gt:1").is_err());
        assert_eq!(parse_filter("").unwrap(), vec![]);
    }

    #[test]
    fn confinement_comes_from_fields_or_single_valued_conditions() {
        let query = EventQuery {
            conditions: vec![Condition { path: "data.project".into(), values: vec!["sockshop".into()] }],
            ..Default::default()
        };
        assert_eq!(query.confined_project(), Some("sockshop"));
        let query = EventQuery {
            conditions: vec![Condition { path: "data.project".into(), values: vec!["a".into(), "b".into()] }],
            ..Default::default()
        };
        assert_eq!(query.confined_project(), None);
    }
}
