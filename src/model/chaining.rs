//! Which sequence a trigger starts, and which sequences a finished one starts through `triggeredOn`.

use std::sync::Arc;

use super::duration::parse_go_duration;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::event::CloudEvent;
use super::event_type;
use super::sequence::{ids, Definition, Execution, TaskDefinition};
use super::shipyard::{Shipyard, BUILTIN_EVALUATION_SEQUENCE};
use super::verdict::TaskResult;

/// The sequence `name` of `stage`, or Keptn's explanation of why it cannot start.
pub fn resolve(shipyard: &Shipyard, stage: &str, name: &str) -> Result<Arc<Definition>, String> {
    let Some(stage_definition) = shipyard.stage(stage) else {
        return Err(format!("Unable to start sequence {name}: no stage with name {stage}"));
    };
    let Some(sequence) = stage_definition.sequences.iter().find(|sequence| sequence.name == name) else {
        if name == BUILTIN_EVALUATION_SEQUENCE {
            return Ok(Arc::new(Definition {
                name: name.to_owned(),
                tasks: vec![TaskDefinition { name: "evaluation".to_owned(), triggered_after: None, properties: None }],
            }));
        }
        return Err(format!(
            "Unable to start sequence {name}: no task sequence with name {name} found in stage {stage}"
        ));
    };
    if sequence.tasks.is_empty() {
        return Err(format!("Unable to start sequence {name}: task sequence {name} does not contain any tasks"));
    }
    let tasks = sequence
        .tasks
        .iter()
        .map(|task| TaskDefinition {
            name: task.name.clone(),
            // Validated when the shipyard was accepted.
            triggered_after: task.triggered_after.as_deref().and_then(|text| parse_go_duration(text).ok()),
            properties: task.properties.clone(),
        })
        .collect();
    Ok(Arc::new(Definition { name: sequence.name.clone(), tasks }))
}

/// A sequence to start because another finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTarget {
    pub stage: String,
    pub sequence: String,
}

/// Every sequence whose `triggeredOn` names `<stage>.<sequence>.finished` and whose selector accepts
/// `result` (with `last_task` the task that ended the finished sequence), in shipyard order.
///
/// Without `selector.match` a sequence follows on `pass` and `warning`. With it, `result` must equal
/// `match.result` or `match.<last_task>.result`. Keelson reads `failed` as `fail`, which Keptn's own
/// shipyard documentation uses but its controller never matches.
pub fn chained(
    shipyard: &Shipyard,
    stage: &str,
    sequence: &str,
    result: TaskResult,
    last_task: Option<&str>,
) -> Vec<ChainTarget> {
    let result = result.as_str();
    let event = format!("{stage}.{sequence}.finished");
    let mut targets = Vec::new();
    for target_stage in &shipyard.spec.stages {
        for target in &target_stage.sequences {
            let fires =
                target.triggered_on.iter().filter(|trigger| trigger.event == event).any(|trigger| {
                    match trigger.selector.as_ref().and_then(|selector| selector.r#match.as_ref()) {
                        None => result == "pass" || result == "warning",
                        Some(conditions) => {
                            let expected = |key: &str| conditions.get(key).map(|value| normalise(value));
                            expected("result") == Some(result)
                                || last_task.is_some_and(|task| expected(&format!("{task}.result")) == Some(result))
                        }
                    }
                });
            if fires {
                targets.push(ChainTarget { stage: target_stage.name.clone(), sequence: target.name.clone() });
            }
        }
    }
    targets
}

/// The triggers of the sequences an ended `execution` starts through `triggeredOn`: each carries the
/// payload accumulated by the execution, with the follower's stage, in the execution's Keptn context.
/// Their ids are derived from the execution, so starting them again after a crash starts nothing twice.
pub fn follower_triggers(shipyard: &Shipyard, execution: &Execution, now: DateTime<Utc>) -> Vec<CloudEvent> {
    let targets = chained(
        shipyard,
        &execution.scope.stage,
        &execution.definition.name,
        execution.chaining_result(),
        execution.last_task_name(),
    );
    if targets.is_empty() {
        return Vec::new();
    }
    let payload = execution.accumulated_payload();
    targets
        .into_iter()
        .map(|target| {
            let mut data = payload.clone();
            data["stage"] = json!(target.stage);
            CloudEvent::emitted(
                &event_type::sequence(&target.stage, &target.sequence, event_type::TRIGGERED),
                ids::chained_trigger_id(&execution.id, &target.stage, &target.sequence),
                execution.scope.keptn_context.clone(),
                now,
                data,
            )
        })
        .collect()
}

fn normalise(result: &str) -> &str {
    match result {
        "failed" => "fail",
        "passed" => "pass",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::shipyard;

    const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.2
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks: [{ name: deployment }, { name: test, triggeredAfter: 10s }]
        - name: rollback
          triggeredOn:
            - event: dev.delivery.finished
              selector: { match: { result: fail } }
          tasks: [{ name: rollback }]
        - name: empty
          tasks: []
    - name: hardening
      sequences:
        - name: delivery
          triggeredOn: [{ event: dev.delivery.finished }]
          tasks: [{ name: deployment }]
        - name: notify
          triggeredOn:
            - event: dev.delivery.finished
              selector: { match: { test.result: failed } }
          tasks: [{ name: notify }]
"#;

    fn parsed() -> Shipyard {
        shipyard::parse(SHIPYARD).unwrap()
    }

    fn targets(result: &str, last_task: Option<&str>) -> Vec<String> {
        chained(&parsed(), "dev", "delivery", TaskResult::from_reported(result), last_task)
            .into_iter()
            .map(|target| format!("{}.{}", target.stage, target.sequence))
            .collect()
    }

    #[test]
    fn selectors_decide_follow_ups() {
        assert_eq!(targets("pass", Some("test")), ["hardening.delivery"]);
        assert_eq!(targets("warning", Some("test")), ["hardening.delivery"]);
        assert_eq!(targets("fail", Some("deployment")), ["dev.rollback"]);
        assert_eq!(targets("fail", Some("test")), ["dev.rollback", "hardening.notify"]);
        assert!(chained(&parsed(), "hardening", "delivery", TaskResult::Pass, None).is_empty());
    }

    #[test]
    fn followers_carry_the_accumulated_payload_into_their_stage() {
        let shipyard = parsed();
        let definition = resolve(&shipyard, "dev", "delivery").unwrap();
        let scope = crate::model::sequence::Scope {
            project: "p".into(),
            stage: "dev".into(),
            service: "carts".into(),
            keptn_context: "ctx".into(),
            triggered_id: "t".into(),
            gitcommitid: None,
        };
        let now = chrono::Utc::now();
        let input =
            std::sync::Arc::new(json!({"project": "p", "stage": "dev", "service": "carts", "labels": {"l": "1"}}));
        let (execution, _) = Execution::new("e".into(), definition, scope, input, now, false);
        // Not ended yet: no task completed, so the result is `pass` and the default follower fires.
        let triggers = follower_triggers(&shipyard, &execution, now);
        assert_eq!(triggers.len(), 1);
        let trigger = &triggers[0];
        assert_eq!(trigger.event_type, "sh.keptn.event.hardening.delivery.triggered");
        assert_eq!(trigger.id, ids::chained_trigger_id("e", "hardening", "delivery"));
        assert_eq!(trigger.shkeptncontext, "ctx");
        assert_eq!(trigger.data["stage"], "hardening");
        assert_eq!(trigger.data["service"], "carts");
        assert_eq!(trigger.data["labels"]["l"], "1");
        assert!(follower_triggers(&shipyard, &execution, now).iter().map(|t| &t.id).eq(triggers.iter().map(|t| &t.id)));
    }

    #[test]
    fn resolving_sequences() {
        let shipyard = parsed();
        let delivery = resolve(&shipyard, "dev", "delivery").unwrap();
        assert_eq!(delivery.tasks.len(), 2);
        assert_eq!(delivery.tasks[1].triggered_after, Some(std::time::Duration::from_secs(10)));
        let evaluation = resolve(&shipyard, "hardening", "evaluation").unwrap();
        assert_eq!(evaluation.tasks[0].name, "evaluation", "built-in evaluation sequence");
        assert_eq!(
            resolve(&shipyard, "prod", "delivery").unwrap_err(),
            "Unable to start sequence delivery: no stage with name prod"
        );
        assert_eq!(
            resolve(&shipyard, "dev", "canary").unwrap_err(),
            "Unable to start sequence canary: no task sequence with name canary found in stage dev"
        );
        assert_eq!(
            resolve(&shipyard, "dev", "empty").unwrap_err(),
            "Unable to start sequence empty: task sequence empty does not contain any tasks"
        );
    }
}
