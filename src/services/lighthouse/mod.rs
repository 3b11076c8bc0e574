//! lighthouse-service: quality gates. `evaluation.triggered` → `get-sli.triggered` to the project's SLI
//! provider → on `get-sli.finished`, `slo.yaml` is scored ([`scoring`]) against the values and
//! earlier evaluations → `evaluation.finished`. `monitoring.configure` sets a project's SLI provider.
//!
//! The rules are pure and live beside the service: [`evaluation_window`] reads the window an event asks
//! for, [`slo`] reads `slo.yaml`, and [`scoring`] evaluates the provider's values against it.

pub mod evaluation_window;
pub mod scoring;
pub mod slo;

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};

use super::access::{AccessError, ControlPlaneAccess, Level};
use crate::model::event::CloudEvent;
use crate::model::verdict::{TaskResult, TaskStatus};
use crate::sdk::{SdkError, Sender, Service};
use crate::store::{Condition, EventQuery};
use scoring::{EvaluationError, IndicatorResult, SliValue};
use slo::Slo;

pub const NAME: &str = "lighthouse-service";
pub const EVALUATION_TRIGGERED: &str = "sh.keptn.event.evaluation.triggered";
pub const EVALUATION_FINISHED: &str = "sh.keptn.event.evaluation.finished";
pub const GET_SLI_FINISHED: &str = "sh.keptn.event.get-sli.finished";
pub const MONITORING_CONFIGURE: &str = "sh.keptn.event.monitoring.configure";
/// A deleted project's SLI provider is forgotten, so a project created again with the name starts clean.
pub const PROJECT_DELETED: &str = "sh.keptn.event.project.delete.finished";
pub const SUBJECTS: &[&str] = &[EVALUATION_TRIGGERED, GET_SLI_FINISHED, MONITORING_CONFIGURE, PROJECT_DELETED];
const SLO_FILE: &str = "slo.yaml";

/// Most earlier evaluations compared with, whatever `number_of_comparison_results` says.
const MAX_COMPARED: usize = 100;
/// Evaluations waiting for their SLI values that this instance remembers.
const MAX_PENDING: usize = 10_000;

/// Which `evaluation.triggered` each `get-sli.triggered` this instance sent belongs to, so the answer
/// finds its evaluation without asking the history (which may not hold the trigger yet, and which
/// another replica's evaluations are looked up in).
#[derive(Default)]
struct Pending {
    by_get_sli: std::collections::HashMap<String, String>,
    order: std::collections::VecDeque<String>,
}

impl Pending {
    fn insert(&mut self, get_sli: String, evaluation: String) {
        if self.order.len() >= MAX_PENDING {
            if let Some(oldest) = self.order.pop_front() {
                self.by_get_sli.remove(&oldest);
            }
        }
        self.order.push_back(get_sli.clone());
        self.by_get_sli.insert(get_sli, evaluation);
    }

    fn take(&mut self, get_sli: &str) -> Option<String> {
        self.by_get_sli.remove(get_sli)
    }
}

pub async fn run(service: Service, access: Arc<dyn ControlPlaneAccess>) -> Result<(), SdkError> {
    let pending: Arc<std::sync::Mutex<Pending>> = Arc::default();
    service
        .run_events(move |event, sender| {
            let (access, pending) = (Arc::clone(&access), Arc::clone(&pending));
            async move {
                match event.event_type.as_str() {
                    EVALUATION_TRIGGERED => start_evaluation(event, sender, access.as_ref(), &pending).await,
                    GET_SLI_FINISHED => finish_evaluation(event, sender, access.as_ref(), &pending).await,
                    MONITORING_CONFIGURE => configure_monitoring(event, access.as_ref()).await,
                    PROJECT_DELETED => forget_project(event, access.as_ref()).await,
                    _ => {}
                }
            }
        })
        .await
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The project, stage and service an event is about.
struct Target {
    project: String,
    stage: String,
    service: String,
}

impl Target {
    fn of(event: &CloudEvent) -> Option<Self> {
        let data = &event.data;
        let target =
            Target { project: text(&data["project"]), stage: text(&data["stage"]), service: text(&data["service"]) };
        (!target.project.is_empty() && !target.stage.is_empty() && !target.service.is_empty()).then_some(target)
    }

    fn level(&self) -> Level<'_> {
        Level::Service { stage: &self.stage, service: &self.service }
    }
}

/// The `evaluation` block of a finished event that carries no scores.
fn empty_evaluation(start: &str, end: &str, result: TaskResult, slo_text: &str) -> Value {
    json!({
        "timeStart": start, "timeEnd": end, "result": result, "score": 0,
        "sloFileContent": base64::engine::general_purpose::STANDARD.encode(slo_text), "indicatorResults": null,
    })
}

/// Reads and parses the service's SLO file: `Ok(None)` when there is none.
async fn load_slo(
    access: &dyn ControlPlaneAccess,
    target: &Target,
    commit: Option<&str>,
) -> Result<Option<(Slo, String)>, String> {
    let found =
        access.resource(&target.project, target.level(), SLO_FILE, commit).await.map_err(|error| match error {
            AccessError::NotFound(message) | AccessError::Unavailable(message) => {
                format!("error retrieving SLO file: {message}")
            }
        })?;
    let Some(raw) = found else { return Ok(None) };
    let parsed = slo::parse(&raw).map_err(|_| {
        format!(
            "Could not parse SLO file for service {} in stage {} in project {}",
            target.service, target.stage, target.project
        )
    })?;
    Ok(Some((parsed, raw)))
}

async fn start_evaluation(
    event: CloudEvent,
    sender: Sender,
    access: &dyn ControlPlaneAccess,
    pending: &std::sync::Mutex<Pending>,
) {
    let started = sender.reply(&event, "sh.keptn.event.evaluation.started", json!({ "status": TaskStatus::Succeeded }));
    sender.send_logged(started).await;
    let finish = |status: TaskStatus, result: TaskResult, message: String, evaluation: Value| {
        sender.reply(
            &event,
            EVALUATION_FINISHED,
            json!({ "status": status, "result": result, "message": message, "evaluation": evaluation }),
        )
    };
    let fail = |message: String, start: &str, end: &str, slo_text: &str| {
        finish(TaskStatus::Errored, TaskResult::Fail, message, empty_evaluation(start, end, TaskResult::Fail, slo_text))
    };
    let Some(target) = Target::of(&event) else {
        // Answered all the same, so the sequence does not wait for a timeout.
        let message = "evaluation.triggered must name project, stage and service".to_owned();
        sender.send_logged(fail(message, "", "", "")).await;
        return;
    };

    let (start, end) = match evaluation_window::window(&event.data, chrono::Utc::now()) {
        Ok(window) => window,
        Err(message) => {
            sender.send_logged(fail(message, "", "", "")).await;
            return;
        }
    };
    let slo = match load_slo(access, &target, event.gitcommitid.as_deref()).await {
        Ok(slo) => slo,
        Err(message) => {
            sender.send_logged(fail(message, &start, &end, "")).await;
            return;
        }
    };
    let provider = match access.sli_provider(&target.project).await {
        Ok(Some(provider)) => provider,
        Ok(None) => {
            let message = format!(
                "no evaluation performed by lighthouse because no SLI-provider configured for project {}",
                target.project
            );
            let raw = slo.as_ref().map(|(_, raw)| raw.as_str()).unwrap_or_default();
            sender
                .send_logged(finish(
                    TaskStatus::Succeeded,
                    TaskResult::Pass,
                    message,
                    empty_evaluation(&start, &end, TaskResult::Pass, raw),
                ))
                .await;
            return;
        }
        Err(error) => {
            let message = format!("cannot read the SLI provider of project {}: {error}", target.project);
            sender.send_logged(fail(message, &start, &end, "")).await;
            return;
        }
    };
    let (indicators, filters) = match &slo {
        Some((slo, _)) => (
            slo.indicators(),
            slo.filter.iter().map(|(key, value)| json!({ "key": key, "value": value })).collect::<Vec<_>>(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let deployment = text(&event.data["deployment"]["deploymentNames"][0]);
    let get_sli = sender.event(
        &event,
        "sh.keptn.event.get-sli.triggered",
        json!({
            "get-sli": { "sliProvider": provider, "start": start, "end": end, "indicators": indicators, "customFilters": filters },
            "deployment": deployment,
        }),
    );
    pending.lock().expect("pending evaluations poisoned").insert(get_sli.id.clone(), event.id.clone());
    sender.send_logged(get_sli).await;
}

async fn finish_evaluation(
    event: CloudEvent,
    sender: Sender,
    access: &dyn ControlPlaneAccess,
    pending: &std::sync::Mutex<Pending>,
) {
    let Some(target) = Target::of(&event) else {
        tracing::debug!(event_id = %event.id, "get-sli.finished without project, stage and service ignored");
        return;
    };
    let data = &event.data;
    let (start, end) = (text(&data["get-sli"]["start"]), text(&data["get-sli"]["end"]));
    let remembered = event
        .triggeredid
        .as_deref()
        .and_then(|get_sli| pending.lock().expect("pending evaluations poisoned").take(get_sli));
    let triggered = match remembered {
        Some(id) => Some(id),
        None => find_evaluation_trigger(access, &target, &event.shkeptncontext).await,
    };
    let labels = data.get("labels").cloned().unwrap_or(Value::Null);
    let finished = |status: TaskStatus, result: TaskResult, message: String, evaluation: Value| {
        let mut finished = sender.event(
            &event,
            EVALUATION_FINISHED,
            json!({ "status": status, "result": result, "message": message, "evaluation": evaluation }),
        );
        if !labels.is_null() {
            finished.data["labels"] = labels.clone();
        }
        finished.triggeredid = triggered.clone();
        finished
    };
    let failed = |message: String, start: &str, end: &str, slo_text: &str| {
        finished(
            TaskStatus::Errored,
            TaskResult::Fail,
            message,
            empty_evaluation(start, end, TaskResult::Fail, slo_text),
        )
    };

    if triggered.is_none() {
        let message = format!("Could not retrieve evaluation.triggered event for context {}", event.shkeptncontext);
        sender.send_logged(failed(message, &start, &end, "")).await;
        return;
    }
    match TaskStatus::from_reported(&text(&data["status"])) {
        TaskStatus::Aborted => {
            let message = "evaluation performed by lighthouse was aborted".to_owned();
            sender.send_logged(failed(message, &start, &end, "")).await;
            return;
        }
        TaskStatus::Errored => {
            let message =
                format!("evaluation performed by lighthouse received an unexpected error: {}", text(&data["message"]));
            sender.send_logged(failed(message, &start, &end, "")).await;
            return;
        }
        _ => {}
    }
    let (slo, raw) = match load_slo(access, &target, event.gitcommitid.as_deref()).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            let message = format!(
                "no evaluation performed by lighthouse because no SLO file configured for project {}",
                target.project
            );
            sender
                .send_logged(finished(
                    TaskStatus::Succeeded,
                    TaskResult::Pass,
                    message,
                    empty_evaluation(&start, &end, TaskResult::Pass, ""),
                ))
                .await;
            return;
        }
        Err(message) => {
            sender.send_logged(failed(message, &start, &end, "")).await;
            return;
        }
    };
    let (previous, compared_events) = match previous_evaluations(access, &target, &slo).await {
        Ok(found) => found,
        Err(message) => {
            sender.send_logged(failed(message, &start, &end, &raw)).await;
            return;
        }
    };
    let values: Vec<SliValue> = data["get-sli"]["indicatorValues"]
        .as_array()
        .map(|values| values.iter().filter_map(|value| serde_json::from_value(value.clone()).ok()).collect())
        .unwrap_or_default();
    let slo_content = base64::engine::general_purpose::STANDARD.encode(&raw);
    let mut evaluation = json!({ "timeStart": start, "timeEnd": end, "sloFileContent": slo_content });
    if !compared_events.is_empty() {
        evaluation["comparedEvents"] = json!(compared_events);
    }
    let (status, mut result, mut message) = match scoring::evaluate(&slo, values, &previous) {
        Ok(outcome) => {
            evaluation["result"] = json!(outcome.result);
            evaluation["score"] = json!(outcome.score);
            evaluation["indicatorResults"] = json!(outcome.indicator_results);
            (TaskStatus::Succeeded, outcome.result, outcome.message)
        }
        Err(EvaluationError::Criteria { objective, cause }) => {
            evaluation["result"] = json!(TaskResult::Fail);
            evaluation["score"] = json!(0);
            evaluation["indicatorResults"] = Value::Null;
            (TaskStatus::Succeeded, TaskResult::Fail, format!("error with {objective}: {cause}"))
        }
        Err(EvaluationError::TotalScore(message)) => {
            sender.send_logged(failed(message, &start, &end, &raw)).await;
            return;
        }
    };
    if slo.objectives.is_empty() {
        result = TaskResult::Fail;
        message = "lighthouse failed because no SLO objective was provided".to_owned();
    } else if text(&data["result"]) == TaskResult::Fail.as_str() {
        result = TaskResult::Fail;
        message = format!("lighthouse failed because SLI failed with message {}", text(&data["message"]));
    }
    metrics::counter!("keelson_evaluations_total", "result" => result.as_str()).increment(1);
    sender.send_logged(finished(status, result, message, evaluation)).await;
}

/// The id of the newest `evaluation.triggered` of this context in the history. The control plane
/// stores a trigger while it publishes it, so it is looked for a few times before giving up.
async fn find_evaluation_trigger(access: &dyn ControlPlaneAccess, target: &Target, context: &str) -> Option<String> {
    let query = EventQuery {
        project: Some(target.project.clone()),
        stage: Some(target.stage.clone()),
        service: Some(target.service.clone()),
        keptn_context: Some(context.to_owned()),
        event_type: Some(EVALUATION_TRIGGERED.to_owned()),
        limit: 1,
        ..Default::default()
    };
    for attempt in 0..10u32 {
        match access.find_events(&query).await {
            Ok(found) if !found.is_empty() => return found.into_iter().next().map(|event| event.id),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot look up the evaluation trigger; retrying"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt + 1))).await;
    }
    None
}

/// The indicator results of earlier evaluations to compare with (newest first) and their event ids.
async fn previous_evaluations(
    access: &dyn ControlPlaneAccess,
    target: &Target,
    slo: &Slo,
) -> Result<(Vec<Vec<IndicatorResult>>, Vec<String>), String> {
    let conditions = slo
        .comparison_result_filter()
        .map(|results| Condition {
            path: "data.result".to_owned(),
            values: results.split(',').map(str::to_owned).collect(),
        })
        .into_iter()
        .collect();
    let events = access
        .find_events(&EventQuery {
            project: Some(target.project.clone()),
            stage: Some(target.stage.clone()),
            service: Some(target.service.clone()),
            event_type: Some(EVALUATION_FINISHED.to_owned()),
            exclude_invalidated: true,
            conditions,
            limit: slo.comparison_count().min(MAX_COMPARED),
            ..Default::default()
        })
        .await
        .map_err(|error| format!("could not retrieve previous evaluations: {error}"))?;
    let mut results = Vec::with_capacity(events.len());
    let mut ids = Vec::with_capacity(events.len());
    for event in events {
        let indicators: Vec<IndicatorResult> = event.data["evaluation"]["indicatorResults"]
            .as_array()
            .map(|items| items.iter().filter_map(|item| serde_json::from_value(item.clone()).ok()).collect())
            .unwrap_or_default();
        results.push(indicators);
        ids.push(event.id);
    }
    Ok((results, ids))
}

async fn configure_monitoring(event: CloudEvent, access: &dyn ControlPlaneAccess) {
    let (project, provider) = (text(&event.data["project"]), text(&event.data["type"]));
    if project.is_empty() {
        tracing::warn!(event_id = %event.id, "monitoring.configure without a project ignored");
        return;
    }
    match access.set_sli_provider(&project, &provider).await {
        Ok(()) => tracing::info!(project, provider, "SLI provider configured"),
        Err(error) => tracing::error!(project, provider, %error, "cannot store the SLI provider"),
    }
}

async fn forget_project(event: CloudEvent, access: &dyn ControlPlaneAccess) {
    let project = text(&event.data["project"]);
    if project.is_empty() {
        return;
    }
    if let Err(error) = access.remove_sli_provider(&project).await {
        tracing::warn!(project, %error, "cannot remove the SLI provider of a deleted project");
    }
}
