//! Sequences over HTTP: control, executions, sequence states, open triggered events, evaluation trigger.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::AppState;
use crate::actors::handle::ControlFailure;
use crate::actors::protocol::{ControlCommand, ControlError};
use crate::model::clock::{keptn_time, parse_keptn_time};
use crate::model::duration;
use crate::model::evaluation_window::{self, WindowError};
use crate::model::event::CloudEvent;
use crate::model::event_type;
use crate::model::paging::PageQuery;
use crate::model::sequence::{Execution, Phase};
use crate::model::verdict::{TaskResult, TaskStatus};
use crate::projects::ProjectError;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/sequence/{project}/{keptn_context}/control", web::post().to(control))
        .route("/sequence/{project}", web::get().to(sequence_states))
        .route("/sequence-execution", web::get().to(sequence_executions))
        .route("/event/triggered/{event_type}", web::get().to(triggered_events))
        .route("/project/{project}/stage/{stage}/service/{service}/evaluation", web::post().to(trigger_evaluation));
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct ControlBody {
    /// `pause`, `resume` or `abort`.
    #[serde(default)]
    state: String,
    /// Only this stage (pause and resume); empty for every stage.
    #[serde(default)]
    stage: String,
}

#[utoipa::path(post, path = "/api/controlPlane/v1/sequence/{project}/{keptnContext}/control", tag = "sequence", operation_id = "controlSequence",
    summary = "Pauses, resumes or aborts a sequence",
    params(("project" = String, Path, description = "The project"), ("keptnContext" = String, Path, description = "The sequence's Keptn context")),
    request_body = ControlBody,
    responses(
        (status = 200, description = "Done (empty object)", body = super::schemas::Empty),
        (status = 400, description = "Unknown state", body = super::error::ErrorBody),
        (status = 404, description = "No such project or context", body = super::error::ErrorBody),
    ))]
pub(super) async fn control(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<ControlBody>,
) -> Result<HttpResponse, ApiError> {
    let (project, keptn_context) = path.into_inner();
    let command = match body.state.as_str() {
        "pause" => ControlCommand::Pause,
        "resume" => ControlCommand::Resume,
        "abort" => ControlCommand::Abort,
        "" => return Err(ApiError::bad_request("state is required: pause, resume or abort")),
        other => return Err(ApiError::bad_request(format!("unknown state '{other}': use pause, resume or abort"))),
    };
    let stage = Some(body.stage.clone()).filter(|stage| !stage.is_empty());
    match state.control.control(&project, keptn_context, stage, command).await {
        Ok(()) => Ok(HttpResponse::Ok().json(super::schemas::Empty {})),
        Err(ControlFailure::UnknownProject(project)) => Err(ProjectError::project_not_found(&project).into()),
        Err(ControlFailure::Refused(error @ ControlError::UnknownContext(_))) => {
            Err(ApiError::not_found(error.to_string()))
        }
        Err(error @ (ControlFailure::Unavailable | ControlFailure::Refused(ControlError::Moved))) => {
            Err(ApiError::new(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, error.to_string()))
        }
    }
}

/// Whether an optional query filter lets `value` through: an absent or empty filter accepts anything.
fn accepts(filter: &Option<String>, value: Option<&str>) -> bool {
    filter.as_deref().is_none_or(|wanted| wanted.is_empty() || Some(wanted) == value)
}

/// Keptn's "family C" paging: integer offset, no default limit.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct IntegerPage {
    page_size: Option<String>,
    next_page_key: Option<String>,
}

impl IntegerPage {
    fn cut<T>(&self, items: Vec<T>) -> Result<(Vec<T>, usize, usize), ApiError> {
        let parse = |raw: &Option<String>, name: &str| -> Result<usize, ApiError> {
            match raw.as_deref() {
                None | Some("") => Ok(0),
                Some(raw) => raw.parse().map_err(|_| ApiError::bad_request(format!("invalid {name} '{raw}'"))),
            }
        };
        let size = parse(&self.page_size, "pageSize")?;
        let offset = parse(&self.next_page_key, "nextPageKey")?;
        let total = items.len();
        let end = if size == 0 { total } else { offset.saturating_add(size).min(total) };
        let next = if end < total { end } else { 0 };
        let page = items.into_iter().skip(offset).take(end.saturating_sub(offset)).collect();
        Ok((page, next, total))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExecutionQuery {
    #[serde(default)]
    project: String,
    stage: Option<String>,
    service: Option<String>,
    name: Option<String>,
    status: Option<String>,
    keptn_context: Option<String>,
    #[serde(flatten)]
    page: IntegerPage,
}

#[utoipa::path(get, path = "/api/controlPlane/v1/sequence-execution", tag = "sequence", operation_id = "getSequenceExecutions",
    summary = "Sequence executions (one per sequence run and stage), newest first",
    params(
        ("project" = String, Query, description = "The project"),
        ("stage" = Option<String>, Query), ("service" = Option<String>, Query), ("name" = Option<String>, Query, description = "Sequence name"),
        ("status" = Option<String>, Query, description = "`triggered`, `started`, `paused`, `waitingForApproval`, `finished`, `timedOut`…"),
        ("keptnContext" = Option<String>, Query),
        ("pageSize" = Option<u32>, Query, description = "How many to return (all when absent)"),
        ("nextPageKey" = Option<u32>, Query, description = "Offset from the previous page"),
    ),
    responses(
        (status = 200, description = "A page of executions", body = super::schemas::SequenceExecutions),
        (status = 400, description = "No project, or an invalid page parameter", body = super::error::ErrorBody),
        (status = 404, description = "No such project", body = super::error::ErrorBody),
    ))]
pub(super) async fn sequence_executions(
    state: web::Data<AppState>,
    query: web::Query<ExecutionQuery>,
) -> Result<HttpResponse, ApiError> {
    if query.project.is_empty() {
        return Err(ApiError::bad_request("project name must not be empty"));
    }
    if state.projects.get(&query.project).is_none() {
        return Err(ProjectError::project_not_found(&query.project).into());
    }
    let mut executions: Vec<Arc<Execution>> = state
        .control
        .executions(&query.project)
        .into_iter()
        .filter(|e| {
            accepts(&query.stage, Some(&e.scope.stage))
                && accepts(&query.service, Some(&e.scope.service))
                && accepts(&query.name, Some(&e.definition.name))
                && accepts(&query.status, Some(e.state_name()))
                && accepts(&query.keptn_context, Some(&e.scope.keptn_context))
        })
        .collect();
    executions.sort_by(|a, b| b.triggered_at.cmp(&a.triggered_at).then_with(|| a.id.cmp(&b.id)));
    let (page, next, total) = query.page.cut(executions)?;
    let mut body = json!({
        "sequenceExecutions": page.iter().map(|e| e.to_wire()).collect::<Vec<_>>(),
        "totalCount": total,
        "pageSize": page.len(),
    });
    if next > 0 {
        body["nextPageKey"] = json!(next);
    }
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StateQuery {
    name: Option<String>,
    state: Option<String>,
    from_time: Option<String>,
    before_time: Option<String>,
    keptn_context: Option<String>,
    #[serde(flatten)]
    page: IntegerPage,
}

/// `GET /sequence/{project}`: one state document per Keptn context, newest first.
#[utoipa::path(get, path = "/api/controlPlane/v1/sequence/{project}", tag = "sequence", operation_id = "getSequenceStates",
    summary = "The state of each sequence (Keptn context) of a project, newest first",
    params(
        ("project" = String, Path, description = "The project"),
        ("name" = Option<String>, Query, description = "Sequence name"), ("state" = Option<String>, Query),
        ("fromTime" = Option<String>, Query, description = "Only sequences triggered after this time"),
        ("beforeTime" = Option<String>, Query, description = "Only sequences triggered before this time"),
        ("keptnContext" = Option<String>, Query, description = "Comma-separated contexts"),
        ("pageSize" = Option<u32>, Query), ("nextPageKey" = Option<u32>, Query),
    ),
    responses(
        (status = 200, description = "A page of sequence states", body = super::schemas::SequenceStates),
        (status = 400, description = "Invalid page parameter", body = super::error::ErrorBody),
        (status = 404, description = "No such project", body = super::error::ErrorBody),
    ))]
pub(super) async fn sequence_states(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<StateQuery>,
) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    if state.projects.get(&project).is_none() {
        return Err(ProjectError::project_not_found(&project).into());
    }
    let mut by_context: BTreeMap<String, Vec<Arc<Execution>>> = BTreeMap::new();
    for execution in state.control.executions(&project) {
        by_context.entry(execution.scope.keptn_context.clone()).or_default().push(execution);
    }
    let contexts: Option<Vec<&str>> =
        query.keptn_context.as_deref().map(|list| list.split(',').map(str::trim).collect());
    let mut states: Vec<Value> = by_context
        .into_values()
        .map(|mut executions| {
            executions.sort_by_key(|e| e.triggered_at);
            sequence_state(&executions)
        })
        .filter(|document| {
            let field = |key: &str| document[key].as_str().unwrap_or_default();
            query.name.as_deref().is_none_or(|name| field("name") == name)
                && query.state.as_deref().is_none_or(|wanted| field("state") == wanted)
                && query.from_time.as_deref().is_none_or(|from| field("time") > from)
                && query.before_time.as_deref().is_none_or(|before| field("time") < before)
                && contexts.as_ref().is_none_or(|list| list.contains(&field("shkeptncontext")))
        })
        .collect();
    states.sort_by(|a, b| b["time"].as_str().cmp(&a["time"].as_str()));
    let (page, next, total) = query.page.cut(states)?;
    let mut body = json!({ "states": page, "totalCount": total });
    if next > 0 {
        body["nextPageKey"] = json!(next);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// The Bridge's view of one context: overall state and one entry per stage.
fn sequence_state(executions: &[Arc<Execution>]) -> Value {
    let first = &executions[0];
    let any_live = executions.iter().any(|e| !e.phase.is_terminal());
    let outcome_status = |e: &Execution| e.outcome.as_ref().map(|o| o.status.as_str()).unwrap_or_default().to_owned();
    let overall = if any_live {
        if executions.iter().any(|e| e.paused && !e.phase.is_terminal()) {
            "paused"
        } else if executions.iter().all(|e| e.phase == Phase::Queued) {
            "waiting"
        } else {
            "started"
        }
    } else if executions.iter().any(|e| outcome_status(e) == "aborted") {
        "aborted"
    } else if executions.iter().any(|e| e.phase == Phase::TimedOut) {
        "timedOut"
    } else {
        "finished"
    };
    // One entry per stage, from the stage's latest execution (a same-stage follow-up such as a rollback
    // replaces the entry of the sequence it followed), in the order the stages were first reached.
    let mut latest_per_stage: Vec<&Arc<Execution>> = Vec::new();
    for execution in executions {
        match latest_per_stage.iter_mut().find(|seen| seen.scope.stage == execution.scope.stage) {
            Some(seen) => *seen = execution,
            None => latest_per_stage.push(execution),
        }
    }
    let stages: Vec<Value> = latest_per_stage
        .into_iter()
        .map(|execution| {
            let mut stage = json!({
                "name": execution.scope.stage,
                "state": if execution.phase.is_terminal() { outcome_status(execution) } else { execution.state_name().to_owned() },
            });
            // Keelson's addition: how the stage's sequence ended, so that a failed gate is not shown as
            // a success because its status is `succeeded`.
            if let Some(outcome) = execution.outcome.as_ref().filter(|_| execution.phase.is_terminal()) {
                stage["result"] = json!(outcome.result);
            }
            if let Some(image) = execution.input.pointer("/configurationChange/values/image").and_then(Value::as_str) {
                stage["image"] = json!(image);
            }
            if let Some(event) = execution.open_triggered_event() {
                stage["latestEvent"] = json!({ "type": event.event_type, "id": event.id, "time": event.time.map(keptn_time) });
            } else if let Some(task) = execution.previous_tasks.last() {
                stage["latestEvent"] = json!({ "type": event_type::task(&task.name, event_type::FINISHED), "id": task.triggered_id });
            }
            if let Some(evaluation) = execution.previous_tasks.iter().rev().find(|task| task.name == "evaluation") {
                stage["latestEvaluation"] = json!({
                    "result": evaluation.result,
                    "score": evaluation.properties.pointer("/evaluation/score").cloned().unwrap_or(json!(0)),
                });
            }
            if let Some(failed) = execution.previous_tasks.iter().rev().find(|task| task.result == TaskResult::Fail || task.status == TaskStatus::Errored) {
                stage["latestFailedEvent"] = json!({ "type": event_type::task(&failed.name, event_type::FINISHED), "id": failed.triggered_id });
            }
            stage
        })
        .collect();
    let mut document = json!({
        "name": first.definition.name,
        "service": first.scope.service,
        "project": first.scope.project,
        "time": keptn_time(first.triggered_at),
        "shkeptncontext": first.scope.keptn_context,
        "state": overall,
        "stages": stages,
    });
    if !any_live {
        let results = executions.iter().filter_map(|e| e.outcome.as_ref()).map(|o| o.result);
        document["result"] = json!(crate::model::sequence::aggregate::worst(results));
    }
    if let Some(title) = first.input.pointer("/problem/problemTitle").and_then(Value::as_str) {
        document["problemTitle"] = json!(title);
    }
    document
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TriggeredQuery {
    project: Option<String>,
    stage: Option<String>,
    service: Option<String>,
    #[serde(rename = "eventID")]
    event_id: Option<String>,
    /// Keelson extension: only events the subscriptions of this registered integration accept.
    #[serde(rename = "integrationId")]
    integration_id: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// `GET /event/triggered/{type}`: task `.triggered` events still waiting for executors — what a remote
/// execution plane polls, and how open approvals are listed.
#[utoipa::path(get, path = "/api/controlPlane/v1/event/triggered/{eventType}", tag = "sequence", operation_id = "getTriggeredEvents",
    summary = "Open task `.triggered` events of a type, oldest first",
    params(
        ("eventType" = String, Path, description = "e.g. `sh.keptn.event.approval.triggered`"),
        ("project" = Option<String>, Query), ("stage" = Option<String>, Query), ("service" = Option<String>, Query),
        ("eventID" = Option<String>, Query),
        ("integrationId" = Option<String>, Query, description = "Only events the subscriptions of this integration accept (Keelson's addition)"),
        PageQuery,
    ),
    responses(
        (status = 200, description = "A page of events", body = TriggeredEvents),
        (status = 400, description = "Invalid page parameter", body = super::error::ErrorBody),
        (status = 404, description = "No such project or integration", body = super::error::ErrorBody),
    ))]
pub(super) async fn triggered_events(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<TriggeredQuery>,
) -> Result<HttpResponse, ApiError> {
    let event_type = path.into_inner();
    if let Some(project) = query.project.as_deref().filter(|p| !p.is_empty()) {
        if state.projects.get(project).is_none() {
            return Err(ProjectError::project_not_found(project).into());
        }
    }
    let subscriptions = match query.integration_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => Some(state.integrations.subscriptions(id).await?),
        None => None,
    };
    let text =
        |event: &CloudEvent, key: &str| event.data.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let subscribed = |event: &CloudEvent| {
        subscriptions.as_ref().is_none_or(|subscriptions| {
            let (project, stage, service) = (text(event, "project"), text(event, "stage"), text(event, "service"));
            subscriptions.iter().any(|subscription| subscription.accepts(&event.event_type, &project, &stage, &service))
        })
    };
    let open = match (&state.cluster, query.project.as_deref().filter(|project| !project.is_empty())) {
        // Without a project, every member's tasks (with one, the request was sent to the owner).
        (Some(cluster), None) => super::cluster::gather_open_tasks(&state, cluster, &event_type).await,
        _ => state.control.open_tasks(&event_type),
    };
    let mut events: Vec<Arc<CloudEvent>> = open
        .into_iter()
        .filter(|event| {
            accepts(&query.project, event.project())
                && accepts(&query.stage, event.data.get("stage").and_then(Value::as_str))
                && accepts(&query.service, event.data.get("service").and_then(Value::as_str))
                && accepts(&query.event_id, Some(&event.id))
                && subscribed(event)
        })
        .collect();
    events.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    let page = query.page.paginate(events).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(HttpResponse::Ok().json(TriggeredEvents {
        events: page.items,
        next_page_key: page.next_page_key,
        total_count: page.total_count,
    }))
}

/// A family-A page of open events.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TriggeredEvents {
    #[schema(value_type = Vec<CloudEvent>)]
    events: Vec<Arc<CloudEvent>>,
    next_page_key: String,
    #[serde(skip_serializing_if = "crate::model::paging::is_zero")]
    total_count: usize,
}

/// The evaluation window: `start` with `end` or `timeframe`, or a `timeframe` ending now.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct EvaluationBody {
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    timeframe: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    gitcommitid: String,
}

/// The evaluation window of a request, by the rules lighthouse applies too, worded as Keptn's API does.
fn evaluation_window(body: &EvaluationBody, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let wording = |error: WindowError| match error {
        WindowError::EndAndTimeframe => "timeframe and end time specifications are mutually exclusive".to_owned(),
        WindowError::EndWithoutStart => "end time requires a start time".to_owned(),
        WindowError::StartAlone => {
            format!("start time {} requires either an end time or a timeframe", body.start)
        }
        WindowError::TooShort => {
            "the evaluation window must be at least one minute long (end must be after start)".to_owned()
        }
        WindowError::OutOfRange => "the evaluation window is beyond the dates Keelson can represent".to_owned(),
    };
    let given = |text: &str| !text.is_empty();
    evaluation_window::shape(given(&body.start), given(&body.end), given(&body.timeframe)).map_err(wording)?;
    let time = |text: &str, what: &str| {
        given(text).then(|| parse_keptn_time(text).ok_or_else(|| format!("invalid {what} time '{text}'"))).transpose()
    };
    let timeframe = given(&body.timeframe)
        .then(|| {
            duration::parse_go_duration(&body.timeframe)
                .map_err(|error| format!("invalid timeframe '{}': {error}", body.timeframe))
                .map(|frame| chrono::TimeDelta::from_std(frame).unwrap_or(chrono::TimeDelta::MAX))
        })
        .transpose()?;
    let start = time(&body.start, "start")?;
    let end = time(&body.end, "end")?;
    evaluation_window::bounds(start, end, timeframe, now).map_err(wording)
}

#[utoipa::path(post, path = "/api/controlPlane/v1/project/{project}/stage/{stage}/service/{service}/evaluation", tag = "sequence", operation_id = "triggerEvaluation",
    summary = "Starts an evaluation sequence for a service",
    params(("project" = String, Path), ("stage" = String, Path), ("service" = String, Path)),
    request_body(content = Option<EvaluationBody>),
    responses(
        (status = 200, description = "Triggered", body = super::events::EventAccepted),
        (status = 202, description = "Accepted, stored once a slow store answers", body = super::events::EventAccepted),
        (status = 400, description = "Unknown service or invalid window", body = super::error::ErrorBody),
        (status = 404, description = "No such project", body = super::error::ErrorBody),
    ))]
pub(super) async fn trigger_evaluation(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: Option<web::Json<EvaluationBody>>,
) -> Result<HttpResponse, ApiError> {
    let (project, stage, service) = path.into_inner();
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let record =
        state.projects.get(&project).ok_or_else(|| ApiError::from(ProjectError::project_not_found(&project)))?;
    let known = record.stage(&stage).is_some_and(|s| s.service(&service).is_some());
    if !known {
        return Err(ApiError::bad_request(format!(
            "service {service} not found in stage {stage} of project {project}"
        )));
    }
    let now = state.control.now();
    let (start, end) = evaluation_window(&body, now).map_err(ApiError::bad_request)?;
    let keptn_context = uuid::Uuid::new_v4().to_string();
    let mut data = json!({
        "project": project, "stage": stage, "service": service,
        "evaluation": { "start": keptn_time(start), "end": keptn_time(end) },
    });
    if let Some(labels) = body.labels {
        data["labels"] = json!(labels);
    }
    let mut event = CloudEvent::emitted(
        &event_type::sequence(&stage, "evaluation", event_type::TRIGGERED),
        uuid::Uuid::new_v4().to_string(),
        keptn_context.clone(),
        now,
        data,
    );
    event.source = crate::model::incoming::DEFAULT_SOURCE.to_owned();
    if !body.gitcommitid.is_empty() {
        event.gitcommitid = Some(body.gitcommitid);
    }
    // Through the one door in, like any event: answered once the trigger is durable.
    super::events::take_in(&state, event).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(start: &str, end: &str, timeframe: &str) -> EvaluationBody {
        EvaluationBody { start: start.into(), end: end.into(), timeframe: timeframe.into(), ..Default::default() }
    }

    #[test]
    fn evaluation_windows_follow_keptn() {
        let now = parse_keptn_time("2024-01-01T12:00:00Z").unwrap();
        assert_eq!(
            evaluation_window(&body("", "", ""), now).unwrap().0,
            parse_keptn_time("2024-01-01T11:55:00Z").unwrap()
        );
        assert_eq!(
            evaluation_window(&body("", "", "1h"), now).unwrap().0,
            parse_keptn_time("2024-01-01T11:00:00Z").unwrap()
        );
        let (start, end) = evaluation_window(&body("2024-01-01T10:00:00", "", "10m"), now).unwrap();
        assert_eq!(
            (start, end),
            (parse_keptn_time("2024-01-01T10:00:00Z").unwrap(), parse_keptn_time("2024-01-01T10:10:00Z").unwrap())
        );
        assert!(evaluation_window(&body("2024-01-01T10:00:00", "2024-01-01T10:00:30", ""), now).is_err());
        assert!(evaluation_window(&body("", "2024-01-01T10:00:00Z", ""), now).is_err());
        assert!(evaluation_window(&body("2024-01-01T10:00:00Z", "", ""), now).is_err());
        assert!(evaluation_window(&body("x", "", "5m"), now).is_err());
        assert!(evaluation_window(&body("", "2024-01-01T10:00:00Z", "5m"), now).is_err());
    }

    #[test]
    fn huge_timeframes_and_far_times_are_refused_without_overflow() {
        let now = parse_keptn_time("2024-01-01T12:00:00Z").unwrap();
        let refused = evaluation_window(&body("", "", "100000000000h"), now).unwrap_err();
        assert!(refused.contains("longer than the maximum"), "{refused}");
        assert!(evaluation_window(&body("2024-01-01T10:00:00Z", "", "100000000000h"), now).is_err());
        let (start, end) = evaluation_window(&body("9999-12-31T00:00:00Z", "", "87840h"), now).unwrap();
        assert!(end > start);
    }
}
