//! remediation-service: answers `get-action.triggered` with the next action of the service's
//! `remediation.yaml` for the problem (by root cause, then problem title, then `default`).
//!
//! The index of the action comes from `get-action.actionIndex` of the data (0 when absent) and the
//! answer carries the next index, so a remediation sequence that re-triggers itself after a failed
//! evaluation walks through the actions one by one.

use std::sync::Arc;

use serde_json::{json, Value};

use super::access::{ControlPlaneAccess, Level};
use crate::model::event::CloudEvent;
use crate::model::remediation;
use crate::model::verdict::{TaskResult, TaskStatus};
use crate::sdk::{SdkError, Sender, Service};

pub const NAME: &str = "remediation-service";
pub const SUBJECTS: &[&str] = &["sh.keptn.event.get-action.triggered"];
const RESOURCE: &str = "remediation.yaml";

pub async fn run(service: Service, access: Arc<dyn ControlPlaneAccess>) -> Result<(), SdkError> {
    service
        .run_events(move |event, sender| {
            let access = Arc::clone(&access);
            async move { handle(event, sender, access.as_ref()).await }
        })
        .await
}

async fn handle(event: CloudEvent, sender: Sender, access: &dyn ControlPlaneAccess) {
    let started = sender.reply(&event, "sh.keptn.event.get-action.started", json!({ "status": TaskStatus::Succeeded }));
    sender.send_logged(started).await;
    let outcome = match next_action(&event, access).await {
        Ok((action, index)) => json!({
            "status": TaskStatus::Succeeded, "result": TaskResult::Pass,
            "action": action, "get-action": { "actionIndex": index + 1 },
        }),
        Err(Failure::Errored(message)) => {
            json!({ "status": TaskStatus::Errored, "result": TaskResult::Fail, "message": message })
        }
        Err(Failure::NoAction(message)) => {
            json!({ "status": TaskStatus::Succeeded, "result": TaskResult::Fail, "message": message })
        }
    };
    let finished = sender.reply(&event, "sh.keptn.event.get-action.finished", outcome);
    sender.send_logged(finished).await;
}

enum Failure {
    /// The file could not be read or parsed.
    Errored(String),
    /// The file has no (further) action for this problem.
    NoAction(String),
}

async fn next_action(
    event: &CloudEvent,
    access: &dyn ControlPlaneAccess,
) -> Result<(remediation::Action, usize), Failure> {
    let data = &event.data;
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let (project, stage, service) = (text(&data["project"]), text(&data["stage"]), text(&data["service"]));
    if project.is_empty() || stage.is_empty() || service.is_empty() {
        return Err(Failure::Errored("Could not decode input event data".into()));
    }
    let missing =
        || Failure::Errored(format!("Could not get remediation.yaml file for services {service} in stage {stage}."));
    let level = Level::Service { stage: &stage, service: &service };
    let text_of_file = access
        .resource(&project, level, RESOURCE, event.gitcommitid.as_deref())
        .await
        .map_err(|_| missing())?
        .ok_or_else(missing)?;
    let file = remediation::parse(&text_of_file).map_err(Failure::Errored)?;
    let index = data["get-action"]["actionIndex"].as_u64().unwrap_or(0) as usize;
    let action = remediation::next_action(
        &file,
        &text(&data["problem"]["rootCause"]),
        &text(&data["problem"]["problemTitle"]),
        index,
    )
    .map_err(Failure::NoAction)?;
    Ok((action, index))
}
