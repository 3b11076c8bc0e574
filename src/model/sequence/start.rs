//! What a sequence trigger does: start an execution, be answered with Keptn's errored `.finished`, or
//! be dropped. A pure decision; the project actor performs it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{ids, Definition};
use crate::model::chaining;
use crate::model::event::CloudEvent;
use crate::model::event_type::{self, EventType};
use crate::model::project::ProjectRecord;
use crate::model::shipyard::Shipyard;
use crate::model::verdict::{TaskResult, TaskStatus};

/// What the project knows when a trigger arrives.
pub struct ProjectFacts<'a> {
    pub name: &'a str,
    pub shipyard: Option<&'a Shipyard>,
    pub record: Option<&'a ProjectRecord>,
}

/// The decision for one `<stage>.<sequence>.triggered` event.
#[derive(Debug, PartialEq)]
pub enum StartPlan {
    /// Start execution `execution_id` of `definition` for `service` in `stage`.
    Start { execution_id: String, stage: String, service: String, definition: Arc<Definition> },
    /// The sequence cannot start: `finished` (errored, result fail) answers the trigger, as in Keptn.
    Reject { execution_id: String, finished: Box<CloudEvent>, message: String },
    /// The trigger already started its execution (a redelivery): nothing to do.
    Duplicate,
    /// The trigger is ignored: `reason` says why.
    Drop { reason: &'static str },
}

/// Decides what `event` starts in `project`. `started` tells whether an execution id is already known
/// (a redelivered trigger).
pub fn plan(
    project: &ProjectFacts<'_>,
    event: &CloudEvent,
    started: impl Fn(&str) -> bool,
    now: DateTime<Utc>,
) -> StartPlan {
    let EventType::Sequence { sequence, kind: event_type::TRIGGERED, .. } = event_type::parse(&event.event_type) else {
        return StartPlan::Drop { reason: "not a sequence trigger" };
    };
    let text = |key: &str| event.data.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (stage, service) = (text("stage"), text("service"));
    if stage.is_empty() || service.is_empty() || event.id.is_empty() {
        return StartPlan::Drop { reason: "sequence trigger without stage, service or id" };
    }
    let execution_id = ids::execution_id(project.name, &event.id);
    if started(&execution_id) {
        return StartPlan::Duplicate;
    }
    match definition(project, &stage, sequence, &service) {
        Ok(definition) => StartPlan::Start { execution_id, stage, service, definition },
        Err(message) => {
            let finished = rejection(project.name, event, &execution_id, &stage, sequence, &service, &message, now);
            StartPlan::Reject { execution_id, finished: Box::new(finished), message }
        }
    }
}

fn definition(
    project: &ProjectFacts<'_>,
    stage: &str,
    sequence: &str,
    service: &str,
) -> Result<Arc<Definition>, String> {
    let shipyard = project.shipyard.ok_or_else(|| "project has no shipyard".to_owned())?;
    // A stage the record does not know is left to the shipyard's verdict below.
    let known_service =
        project.record.and_then(|record| record.stage(stage)).is_none_or(|stage| stage.service(service).is_some());
    if !known_service {
        return Err(format!("Unable to start sequence {sequence}: service {service} not found in stage {stage}"));
    }
    chaining::resolve(shipyard, stage, sequence)
}

/// Keptn's answer to a trigger that cannot start: `<stage>.<sequence>.finished`, errored, result fail,
/// with the reason as message and the trigger's labels.
#[allow(clippy::too_many_arguments)]
fn rejection(
    project: &str,
    trigger: &CloudEvent,
    execution_id: &str,
    stage: &str,
    sequence: &str,
    service: &str,
    message: &str,
    now: DateTime<Utc>,
) -> CloudEvent {
    let mut data = json!({
        "project": project, "stage": stage, "service": service,
        "status": TaskStatus::Errored, "result": TaskResult::Fail, "message": message,
    });
    if let Some(labels) = trigger.data.get("labels").filter(|labels| !labels.is_null()) {
        data["labels"] = labels.clone();
    }
    let mut finished = CloudEvent::emitted(
        &event_type::sequence(stage, sequence, event_type::FINISHED),
        ids::sequence_finished_id(execution_id),
        trigger.shkeptncontext.clone(),
        now,
        data,
    );
    finished.triggeredid = Some(trigger.id.clone());
    finished
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::shipyard;

    const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
metadata: {name: shipyard}
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks: [{name: deployment}]
        - name: empty
          tasks: []
"#;

    fn trigger(event_type: &str, data: Value, id: &str) -> CloudEvent {
        let mut event = CloudEvent::emitted(event_type, id.to_owned(), "ctx".to_owned(), Utc::now(), data);
        event.source = "cli".to_owned();
        event
    }

    fn record() -> ProjectRecord {
        serde_json::from_value(json!({
            "name": "p", "shipyard": "", "creationDate": "1",
            "stages": [{"name": "dev", "parentStages": [], "services": [{"name": "carts", "creationDate": "1"}]}]
        }))
        .unwrap()
    }

    #[test]
    fn triggers_start_reject_or_drop() {
        let shipyard = shipyard::parse(SHIPYARD).unwrap();
        let record = record();
        let facts = ProjectFacts { name: "p", shipyard: Some(&shipyard), record: Some(&record) };
        let none_started = |_: &str| false;
        let now = Utc::now();
        let data = |stage: &str, service: &str| json!({"project": "p", "stage": stage, "service": service, "labels": {"a": "b"}});
        let cases: Vec<(CloudEvent, &str)> = vec![
            (trigger("sh.keptn.event.dev.delivery.triggered", data("dev", "carts"), "1"), "start"),
            (trigger("sh.keptn.event.dev.evaluation.triggered", data("dev", "carts"), "2"), "start"),
            (
                trigger("sh.keptn.event.dev.delivery.triggered", data("dev", "orders"), "3"),
                "Unable to start sequence delivery: service orders not found in stage dev",
            ),
            (
                trigger("sh.keptn.event.prod.delivery.triggered", data("prod", "carts"), "4"),
                "Unable to start sequence delivery: no stage with name prod",
            ),
            (
                trigger("sh.keptn.event.dev.rollback.triggered", data("dev", "carts"), "5"),
                "Unable to start sequence rollback: no task sequence with name rollback found in stage dev",
            ),
            (
                trigger("sh.keptn.event.dev.empty.triggered", data("dev", "carts"), "6"),
                "Unable to start sequence empty: task sequence empty does not contain any tasks",
            ),
            (trigger("sh.keptn.event.dev.delivery.triggered", data("", "carts"), "7"), "drop"),
            (trigger("sh.keptn.event.dev.delivery.triggered", data("dev", ""), "8"), "drop"),
            (trigger("sh.keptn.event.dev.delivery.triggered", data("dev", "carts"), ""), "drop"),
            (trigger("sh.keptn.event.deployment.triggered", data("dev", "carts"), "9"), "drop"),
        ];
        for (event, expected) in cases {
            match plan(&facts, &event, none_started, now) {
                StartPlan::Start { execution_id, stage, service, definition } => {
                    assert_eq!(expected, "start", "{}", event.id);
                    assert_eq!(execution_id, ids::execution_id("p", &event.id));
                    assert_eq!((stage.as_str(), service.as_str()), ("dev", "carts"));
                    assert!(!definition.tasks.is_empty());
                }
                StartPlan::Reject { execution_id, finished, message } => {
                    assert_eq!(message, expected, "{}", event.id);
                    assert_eq!(finished.id, ids::sequence_finished_id(&execution_id));
                    assert_eq!(finished.triggeredid.as_deref(), Some(event.id.as_str()));
                    assert!(finished.event_type.ends_with(".finished"), "{}", finished.event_type);
                    assert_eq!(finished.data["status"], "errored");
                    assert_eq!(finished.data["result"], "fail");
                    assert_eq!(finished.data["message"], expected);
                    assert_eq!(finished.data["labels"], json!({"a": "b"}));
                    assert_eq!(finished.shkeptncontext, "ctx");
                }
                StartPlan::Drop { .. } => assert_eq!(expected, "drop", "{}", event.id),
                StartPlan::Duplicate => panic!("nothing started yet"),
            }
        }
    }

    #[test]
    fn a_redelivered_trigger_or_a_project_without_shipyard_starts_nothing() {
        let shipyard = shipyard::parse(SHIPYARD).unwrap();
        let facts = ProjectFacts { name: "p", shipyard: Some(&shipyard), record: None };
        let event = trigger("sh.keptn.event.dev.delivery.triggered", json!({"stage": "dev", "service": "s"}), "1");
        let known = ids::execution_id("p", "1");
        assert_eq!(plan(&facts, &event, |id| id == known, Utc::now()), StartPlan::Duplicate);
        // Without a record every service is accepted (the shipyard decides).
        assert!(matches!(plan(&facts, &event, |_| false, Utc::now()), StartPlan::Start { .. }));
        let bare = ProjectFacts { name: "p", shipyard: None, record: None };
        let StartPlan::Reject { message, .. } = plan(&bare, &event, |_| false, Utc::now()) else { panic!() };
        assert_eq!(message, "project has no shipyard");
    }
}
