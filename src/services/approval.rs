//! approval-service: answers `approval.triggered` by the strategy the shipyard task names for the
//! result so far (`approval.pass` / `approval.warning`: `automatic` or `manual`).
//!
//! Automatic approvals finish at once; a failed result is declined at once; anything else waits for
//! a user's `sh.keptn.event.approval.finished` (API, CLI or Bridge), while the open approval is listed
//! by `GET /api/controlPlane/v1/event/triggered/sh.keptn.event.approval.triggered`.

use serde_json::{json, Value};

use crate::model::event::CloudEvent;
use crate::model::verdict::{TaskResult, TaskStatus};
use crate::sdk::{SdkError, Sender, Service};

pub const NAME: &str = "approval-service";
pub const SUBJECTS: &[&str] = &["sh.keptn.event.approval.triggered"];

/// What the service does with one approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The result being approved (`pass`, `warning`, `fail`, or whatever came).
    pub result: String,
    /// The strategy applied: `automatic` or `manual`.
    pub strategy: String,
    /// `Some(result)` when the approval finishes at once.
    pub finish_with: Option<TaskResult>,
}

/// Decides on the data of an `approval.triggered` event.
pub fn decide(data: &Value) -> Decision {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let mut result = text(&data["result"]);
    if result.is_empty() {
        result = text(&data["evaluation"]["result"]);
    }
    // Keptn: an empty strategy means manual.
    let strategy_for = |key: &str| {
        let strategy = text(&data["approval"][key]);
        if strategy.is_empty() {
            "manual".to_owned()
        } else {
            strategy
        }
    };
    let strategy = match result.as_str() {
        "pass" => strategy_for("pass"),
        "warning" => strategy_for("warning"),
        "fail" => "automatic".to_owned(),
        _ => "manual".to_owned(),
    };
    let finish_with = match (result.as_str(), strategy.as_str()) {
        ("pass" | "warning", "automatic") => Some(TaskResult::Pass),
        ("fail", _) => Some(TaskResult::Fail),
        _ => None,
    };
    Decision { result, strategy, finish_with }
}

pub async fn run(service: Service) -> Result<(), SdkError> {
    service.run_events(handle).await
}

async fn handle(event: CloudEvent, sender: Sender) {
    let decision = decide(&event.data);
    let message = format!("Approval strategy for result '{}': {}", decision.result, decision.strategy);
    let started = sender.reply(
        &event,
        "sh.keptn.event.approval.started",
        json!({ "status": TaskStatus::Succeeded, "message": message }),
    );
    sender.send_logged(started).await;
    let outcome = match decision.finish_with {
        Some(TaskResult::Pass) => "approved",
        Some(_) => "declined",
        None => "manual",
    };
    metrics::counter!("keelson_approvals_total", "decision" => outcome).increment(1);
    if let Some(result) = decision.finish_with {
        let finished = sender.reply(
            &event,
            "sh.keptn.event.approval.finished",
            json!({ "status": TaskStatus::Succeeded, "result": result, "message": "" }),
        );
        sender.send_logged(finished).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(data: Value) -> (String, String, Option<TaskResult>) {
        let decision = decide(&data);
        (decision.result, decision.strategy, decision.finish_with)
    }

    #[test]
    fn the_approval_matrix() {
        let approval = json!({ "pass": "automatic", "warning": "manual" });
        assert_eq!(
            decision(json!({ "result": "pass", "approval": approval })),
            ("pass".into(), "automatic".into(), Some(TaskResult::Pass))
        );
        assert_eq!(
            decision(json!({ "result": "warning", "approval": approval })),
            ("warning".into(), "manual".into(), None)
        );
        let approval = json!({ "pass": "manual", "warning": "automatic" });
        assert_eq!(decision(json!({ "result": "pass", "approval": approval })), ("pass".into(), "manual".into(), None));
        assert_eq!(
            decision(json!({ "result": "warning", "approval": approval })),
            ("warning".into(), "automatic".into(), Some(TaskResult::Pass))
        );
        assert_eq!(
            decision(json!({ "result": "fail", "approval": approval })),
            ("fail".into(), "automatic".into(), Some(TaskResult::Fail))
        );
    }

    #[test]
    fn missing_strategies_and_results_wait_for_a_person() {
        assert_eq!(decision(json!({ "result": "pass" })), ("pass".into(), "manual".into(), None));
        assert_eq!(decision(json!({ "result": "", "approval": { "pass": "automatic" } })).2, None);
        // The evaluation's result counts when the data carries no result of its own.
        assert_eq!(
            decision(json!({ "evaluation": { "result": "pass" }, "approval": { "pass": "automatic" } })).2,
            Some(TaskResult::Pass)
        );
    }
}
