//! trigger, send event, approve, get event, sequence control and configure monitoring.

use std::io::IsTerminal as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::args::{
    ApproveArgs, ConfigureMonitoringArgs, Format, GetEventArgs, SendEventArgs, SequenceControlArgs, Trigger,
    TriggerDeliveryArgs, TriggerEvaluationArgs, TriggerSequenceArgs, WatchArgs,
};
use super::client::ApiClient;
use super::error::CliError;
use super::input::{dotted_values, encode, full_event_type, key_values};
use super::output::Printer;
use super::output::{formatted, table, text};
use super::watch;
use crate::model::event_type;

/// `source` of the events the CLI sends, as Keptn's CLI names it.
const SOURCE: &str = "https://github.com/keptn/keptn/cli";
const APPROVAL_TRIGGERED: &str = "sh.keptn.event.approval.triggered";

fn not_found(message: String) -> CliError {
    CliError::Api { status: 404, message }
}

/// Checks that the project, stage and service exist, with Keptn's "… not found" messages; returns
/// the stage (the first one when none is given).
async fn check_target(
    client: &ApiClient,
    project: &str,
    stage: Option<&str>,
    service: &str,
) -> Result<String, CliError> {
    let record = match client.get(&format!("/controlPlane/v1/project/{}", encode(project))).await {
        Err(CliError::Api { status: 404, .. }) => return Err(not_found(format!("project not found: {project}"))),
        other => other?,
    };
    let stages = record["stages"].as_array().cloned().unwrap_or_default();
    let stage_record = match stage {
        Some(stage) => stages.iter().find(|candidate| candidate["stageName"] == stage),
        None => stages.first(),
    }
    .ok_or_else(|| not_found(format!("stage not found: {}", stage.unwrap_or("(the project has no stages)"))))?;
    let known =
        stage_record["services"].as_array().into_iter().flatten().any(|candidate| candidate["serviceName"] == service);
    let stage_name = text(&stage_record["stageName"]);
    if !known {
        return Err(not_found(format!("service not found: {service} in stage {stage_name} of project {project}")));
    }
    Ok(stage_name)
}

/// Sends `event` to `POST /v1/event`; returns the Keptn context.
async fn send(client: &ApiClient, event: &Value) -> Result<String, CliError> {
    let answer = client.post("/v1/event", event).await?;
    Ok(text(&answer["keptnContext"]))
}

async fn report_context(
    client: &ApiClient,
    project: &str,
    context: &str,
    watch_args: &WatchArgs,
    out: &Printer,
) -> Result<(), CliError> {
    // Watched with -o, only the events are printed, one per line (JSON) or document (YAML), as Keptn's
    // CLI does, so that `| jq` works.
    match (watch_args.output, watch_args.watch) {
        (Some(_), true) => {}
        (Some(format), false) => out.data(formatted(&json!({ "keptnContext": context }), format)?),
        (None, _) => out.line(format!("ID of Keptn context: {context}")),
    }
    if watch_args.watch {
        let watch_time = Duration::from_secs(watch_args.watch_time);
        watch::follow(client, project, context, watch_time, watch_args.output, out).await?;
    }
    Ok(())
}

pub async fn trigger(client: &ApiClient, what: Trigger, out: &Printer) -> Result<(), CliError> {
    match what {
        Trigger::Delivery(args) => trigger_delivery(client, args, out).await,
        Trigger::Evaluation(args) => trigger_evaluation(client, args, out).await,
        Trigger::Sequence(args) => trigger_sequence(client, args, out).await,
    }
}

async fn trigger_delivery(client: &ApiClient, args: TriggerDeliveryArgs, out: &Printer) -> Result<(), CliError> {
    let stage = check_target(client, &args.project, args.stage.as_deref(), &args.service).await?;
    let mut values = dotted_values("--values", &args.values)?;
    values["image"] = json!(args.image);
    let event = json!({
        "specversion": "1.0",
        "type": event_type::sequence(&stage, &args.sequence, event_type::TRIGGERED),
        "source": format!("{SOURCE}#configuration-change"),
        "datacontenttype": "application/json",
        "data": {
            "project": args.project, "stage": stage, "service": args.service,
            "labels": key_values("--labels", &args.labels)?,
            "configurationChange": { "values": values },
        },
    });
    let context = send(client, &event).await?;
    report_context(client, &args.project, &context, &args.watch, out).await
}

async fn trigger_evaluation(client: &ApiClient, args: TriggerEvaluationArgs, out: &Printer) -> Result<(), CliError> {
    check_target(client, &args.project, Some(&args.stage), &args.service).await?;
    let mut body = json!({ "labels": key_values("--labels", &args.labels)? });
    for (key, value) in [
        ("timeframe", &args.timeframe),
        ("start", &args.start),
        ("end", &args.end),
        ("gitcommitid", &args.git_commit_id),
    ] {
        if let Some(value) = value {
            body[key] = json!(value);
        }
    }
    if args.end.is_some() && args.start.is_none() {
        return Err(CliError::Usage("--end needs --start".into()));
    }
    // Keptn's default window: the last five minutes, or five minutes from --start.
    if args.timeframe.is_none() && args.end.is_none() {
        body["timeframe"] = json!("5m");
    }
    let path = format!(
        "/controlPlane/v1/project/{}/stage/{}/service/{}/evaluation",
        encode(&args.project),
        encode(&args.stage),
        encode(&args.service)
    );
    let answer = client.post(&path, &body).await?;
    report_context(client, &args.project, &text(&answer["keptnContext"]), &args.watch, out).await
}

async fn trigger_sequence(client: &ApiClient, args: TriggerSequenceArgs, out: &Printer) -> Result<(), CliError> {
    check_target(client, &args.project, Some(&args.stage), &args.service).await?;
    let mut data = dotted_values("--data", &args.data)?;
    data["project"] = json!(args.project);
    data["stage"] = json!(args.stage);
    data["service"] = json!(args.service);
    data["labels"] = json!(key_values("--labels", &args.labels)?);
    let event = json!({
        "specversion": "1.0",
        "type": event_type::sequence(&args.stage, &args.sequence, event_type::TRIGGERED),
        "source": SOURCE,
        "datacontenttype": "application/json",
        "data": data,
    });
    let context = send(client, &event).await?;
    report_context(client, &args.project, &context, &args.watch, out).await
}

pub async fn send_event(client: &ApiClient, args: SendEventArgs, yes: bool, out: &Printer) -> Result<(), CliError> {
    match (args.kind.as_deref(), &args.file) {
        (Some("approval.finished"), None) => {
            // As Keptn's CLI: the approval is named by its id or its service.
            if args.approval.id.is_some() == args.approval.service.is_some() {
                return Err(CliError::Usage(
                    "send event approval.finished needs exactly one of --id and --service".into(),
                ));
            }
            approve(client, args.approval, yes, out).await
        }
        (Some(other), None) => {
            Err(CliError::Usage(format!("unknown event '{other}': send a file with --file, or approval.finished")))
        }
        (_, Some(file)) => {
            let raw = std::fs::read(file)
                .map_err(|error| CliError::Usage(format!("cannot read {}: {error}", file.display())))?;
            let event: Value = serde_json::from_slice(&raw)
                .map_err(|error| CliError::Usage(format!("{} is not a JSON CloudEvent: {error}", file.display())))?;
            if !event.is_object() {
                return Err(CliError::Usage(format!("{} is not a JSON CloudEvent object", file.display())));
            }
            let context = send(client, &event).await?;
            out.line(format!("ID of Keptn context: {context}"));
            Ok(())
        }
        (None, None) => Err(CliError::Usage("keptn send event needs --file FILE (or approval.finished)".into())),
    }
}

/// Open approvals of a project's stage (and service).
async fn open_approvals(
    client: &ApiClient,
    project: &str,
    stage: &str,
    service: Option<&str>,
) -> Result<Vec<Value>, CliError> {
    let mut path = format!(
        "/controlPlane/v1/event/triggered/{APPROVAL_TRIGGERED}?project={}&stage={}&pageSize=100",
        encode(project),
        encode(stage)
    );
    if let Some(service) = service {
        path.push_str(&format!("&service={}", encode(service)));
    }
    client.pages(&path, "events", usize::MAX).await
}

/// Asks which of several open approvals to decide on (terminal only).
fn choose(approvals: &[Value]) -> Result<Value, CliError> {
    let rows = approvals
        .iter()
        .enumerate()
        .map(|(index, approval)| {
            let data = &approval["data"];
            vec![
                (index + 1).to_string(),
                text(&data["service"]),
                text(&data["configurationChange"]["values"]["image"]),
                text(&data["evaluation"]["score"]),
                text(&approval["shkeptncontext"]),
            ]
        })
        .collect();
    println!("{}", table(&["OPTION", "SERVICE", "IMAGE", "EVALUATION SCORE", "KEPTN CONTEXT"], rows));
    print!("Select the option to decide on: ");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|error| CliError::Io(error.to_string()))?;
    let index: usize =
        line.trim().parse().map_err(|_| CliError::Usage(format!("'{}' is not an option", line.trim())))?;
    approvals.get(index.wrapping_sub(1)).cloned().ok_or_else(|| CliError::Usage(format!("there is no option {index}")))
}

fn approval_summary(approval: &Value) -> String {
    let data = &approval["data"];
    let image = text(&data["configurationChange"]["values"]["image"]);
    format!(
        "{} in stage {}{} (keptn context {})",
        text(&data["service"]),
        text(&data["stage"]),
        if image.is_empty() { String::new() } else { format!(", image {image}") },
        text(&approval["shkeptncontext"])
    )
}

/// Asks whether to approve or decline (terminal only); `true` means decline.
fn ask_decision(summary: String) -> Result<bool, CliError> {
    use std::io::Write as _;
    print!("{summary}\n(a)pprove or (d)ecline: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|error| CliError::Io(error.to_string()))?;
    match line.trim().to_ascii_lowercase().as_str() {
        "a" | "approve" => Ok(false),
        "d" | "decline" => Ok(true),
        other => Err(CliError::Usage(format!("'{other}' is neither a(pprove) nor d(ecline); nothing was sent"))),
    }
}

/// `keptn approve` and `keptn send event approval.finished`.
pub async fn approve(client: &ApiClient, args: ApproveArgs, yes: bool, out: &Printer) -> Result<(), CliError> {
    let (Some(project), Some(stage)) = (args.project.as_deref(), args.stage.as_deref()) else {
        return Err(CliError::Usage("approving needs --project and --stage".into()));
    };
    let open = open_approvals(client, project, stage, args.service.as_deref()).await?;
    let approval = match &args.id {
        Some(id) => open
            .into_iter()
            .find(|approval| approval["id"] == id.as_str())
            .ok_or_else(|| not_found(format!("no open approval with id {id} in stage {stage} of project {project}")))?,
        None => match open.len() {
            0 => return Err(not_found(format!("No open approval found in stage {stage} of project {project}"))),
            1 => open.into_iter().next().expect("one approval"),
            _ if std::io::stdin().is_terminal() && !yes => choose(&open)?,
            _ => {
                let ids: Vec<String> = open.iter().map(|approval| text(&approval["id"])).collect();
                return Err(CliError::Usage(format!(
                    "{} approvals are open; name one with --id ({})",
                    ids.len(),
                    ids.join(", ")
                )));
            }
        },
    };
    let data = &approval["data"];
    let decline =
        if std::io::stdin().is_terminal() && !yes { ask_decision(approval_summary(&approval))? } else { args.decline };
    let mut labels = data["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (key, value) in key_values("--labels", &args.labels)? {
        labels[key] = value;
    }
    let result = if decline { "fail" } else { "pass" };
    let event = json!({
        "specversion": "1.0",
        "type": "sh.keptn.event.approval.finished",
        "source": format!("{SOURCE}#sh.keptn.event.approval.finished"),
        "datacontenttype": "application/json",
        "shkeptncontext": approval["shkeptncontext"],
        "triggeredid": approval["id"],
        "data": {
            "project": project, "stage": stage, "service": data["service"], "labels": labels,
            "status": "succeeded", "result": result,
        },
    });
    let context = send(client, &event).await?;
    let verb = if decline { "Declined" } else { "Approved" };
    out.line(format!("{verb} {} in stage {stage}", text(&data["service"])));
    out.line(format!("ID of Keptn context: {context}"));
    Ok(())
}

pub async fn get_event(client: &ApiClient, args: GetEventArgs, out: &Printer) -> Result<(), CliError> {
    let event_type = full_event_type(&args.event_type);
    let format = args.output.output.unwrap_or(Format::Json);
    if event_type == APPROVAL_TRIGGERED {
        let (Some(project), Some(stage)) = (args.project.as_deref(), args.stage.as_deref()) else {
            return Err(CliError::Usage("keptn get event approval.triggered needs --project and --stage".into()));
        };
        let open = open_approvals(client, project, stage, args.service.as_deref()).await?;
        if open.is_empty() {
            out.data("No approval.triggered events have been found");
            return Ok(());
        }
        out.data(formatted(&Value::Array(open), format)?);
        return Ok(());
    }
    if args.project.is_none() && args.keptn_context.is_none() {
        return Err(CliError::Usage("keptn get event needs --project or --keptn-context".into()));
    }
    let mut query = format!("type={}", encode(&event_type));
    for (key, value) in [
        ("project", &args.project),
        ("stage", &args.stage),
        ("service", &args.service),
        ("keptnContext", &args.keptn_context),
    ] {
        if let Some(value) = value {
            query.push_str(&format!("&{key}={}", encode(value)));
        }
    }
    let path = format!("/mongodb-datastore/event?{query}&pageSize=20");
    let events = client.pages(&path, "events", args.num_of_pages as usize).await?;
    match events.len() {
        0 => out.data("No event returned"),
        1 => out.data(formatted(&events[0], format)?),
        _ => out.data(formatted(&Value::Array(events), format)?),
    }
    Ok(())
}

pub async fn control(
    client: &ApiClient,
    state: &str,
    args: SequenceControlArgs,
    out: &Printer,
) -> Result<(), CliError> {
    let path = format!("/controlPlane/v1/sequence/{}/{}/control", encode(&args.project), encode(&args.keptn_context));
    let mut body = json!({ "state": state });
    if let Some(stage) = &args.stage {
        body["stage"] = json!(stage);
    }
    client.post(&path, &body).await?;
    let done = match state {
        "abort" => "aborted",
        "pause" => "paused",
        _ => "resumed",
    };
    out.line(format!("Successfully {done} sequence"));
    Ok(())
}

pub async fn configure_monitoring(
    client: &ApiClient,
    args: ConfigureMonitoringArgs,
    out: &Printer,
) -> Result<(), CliError> {
    if matches!(args.provider.as_str(), "prometheus" | "datadog") && args.service.is_none() {
        return Err(CliError::Usage(format!("configuring {} needs --service", args.provider)));
    }
    let event = json!({
        "specversion": "1.0",
        "type": "sh.keptn.event.monitoring.configure",
        "source": SOURCE,
        "datacontenttype": "application/json",
        "data": { "type": args.provider, "project": args.project, "service": args.service.clone().unwrap_or_default() },
    });
    let context = send(client, &event).await?;
    out.line(format!("ID of Keptn context: {context}"));
    out.line(format!("Monitoring of project {} uses the SLI provider {}", args.project, args.provider));
    Ok(())
}
