//! The built-in services end to end on an embedded Keelson: quality gates (lighthouse with an SLI
//! provider written with the SDK), approvals, a remediation loop, webhooks with secrets, and the
//! secrets API.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keelson::sdk::Service;
use serde_json::{json, Value};
use support::{assert_error, b64, send, TestKeelson};

const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
spec:
  stages:
    - name: production
      sequences:
        - name: delivery
          tasks:
            - name: approval
              properties: { pass: automatic, warning: manual }
            - name: release
        - name: careful
          tasks:
            - name: approval
              properties: { pass: manual, warning: automatic }
            - name: release
        - name: remediation
          triggeredOn:
            - event: production.remediation.finished
              selector: { match: { evaluation.result: fail } }
          tasks:
            - name: get-action
            - name: action
            - name: evaluation
              properties: { timeframe: 5m }
        - name: notification
          tasks:
            - name: notify
        - name: forbidden
          tasks:
            - name: notify-denied
        - name: handover
          tasks:
            - name: notify-async
";

const SLO: &str = r#"spec_version: "1.0"
comparison:
  compare_with: single_result
  include_result_with_score: pass
  number_of_comparison_results: 1
  aggregate_function: avg
objectives:
  - sli: response_time_p95
    displayName: Response time P95
    pass:
      - criteria: ["<=+10%", "<600"]
    warning:
      - criteria: ["<=800"]
  - sli: error_rate
    key_sli: true
    pass:
      - criteria: ["<=1"]
total_score:
  pass: "90%"
  warning: "50%"
"#;

async fn keelson() -> TestKeelson {
    let keelson = TestKeelson::start_with(|config| {
        config.services = keelson::config::BUILTIN_SERVICES.iter().map(|s| (*s).to_owned()).collect();
    })
    .await;
    assert_eq!(keelson.create_project("shop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("shop", "carts").await.0, 200);
    keelson
}

async fn post_event(keelson: &TestKeelson, event: Value) -> String {
    let (status, body) = send(keelson.post("/api/v1/event").json(&event)).await;
    assert_eq!(status, 200, "{body}");
    body["keptnContext"].as_str().unwrap_or_default().to_owned()
}

async fn trigger(keelson: &TestKeelson, sequence: &str, extra: Value) -> String {
    let mut data = json!({ "project": "shop", "stage": "production", "service": "carts" });
    support::merge_into(&mut data, extra);
    post_event(
        keelson,
        json!({ "type": format!("sh.keptn.event.production.{sequence}.triggered"), "source": "tests", "data": data }),
    )
    .await
}

async fn upload(keelson: &TestKeelson, path: &str, files: &[(&str, &str)]) {
    let resources: Vec<Value> =
        files.iter().map(|(uri, content)| json!({ "resourceURI": uri, "resourceContent": b64(content) })).collect();
    let (status, body) = send(
        keelson
            .post(&format!("/api/resource-service/v1/project/shop{path}/resource"))
            .json(&json!({ "resources": resources })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// Events of `event_type` in `context`, oldest first, polled until there are `count`.
async fn events(keelson: &TestKeelson, context: &str, event_type: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = send(keelson.get(&format!(
            "/api/mongodb-datastore/event?project=shop&keptnContext={context}&type={event_type}&pageSize=100"
        )))
        .await;
        assert_eq!(status, 200, "{body}");
        let mut found = body["events"].as_array().cloned().unwrap_or_default();
        if found.len() >= count {
            found.reverse();
            return found;
        }
        if Instant::now() > deadline {
            let (_, all) = send(
                keelson.get(&format!("/api/mongodb-datastore/event?project=shop&keptnContext={context}&pageSize=100")),
            )
            .await;
            let types: Vec<&Value> = all["events"].as_array().unwrap().iter().map(|e| &e["type"]).collect();
            let (_, state) =
                send(keelson.get(&format!("/api/controlPlane/v1/sequence/shop?keptnContext={context}"))).await;
            panic!(
                "state {state} waited for {count} {event_type} in {context}, have {}; the context has {types:?}",
                found.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Triggers the built-in evaluation for the last five minutes; returns the context.
async fn evaluate(keelson: &TestKeelson) -> String {
    let (status, body) = send(
        keelson
            .post("/api/controlPlane/v1/project/shop/stage/production/service/carts/evaluation")
            .json(&json!({ "timeframe": "5m" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["keptnContext"].as_str().unwrap().to_owned()
}

async fn evaluation_of(keelson: &TestKeelson, context: &str) -> Value {
    events(keelson, context, "sh.keptn.event.evaluation.finished", 1).await.remove(0)
}

type Shared<T> = Arc<Mutex<T>>;

/// An SLI provider written with the SDK: answers each `get-sli.triggered` with the next values queued
/// (and records the requests).
fn start_sli_provider(keelson: &TestKeelson) -> (Shared<VecDeque<Value>>, Shared<Vec<Value>>) {
    let answers: Shared<VecDeque<Value>> = Arc::default();
    let requests: Shared<Vec<Value>> = Arc::default();
    let bus = keelson.server.control_plane.in_process_bus.clone().expect("embedded bus");
    let (queued, seen) = (Arc::clone(&answers), Arc::clone(&requests));
    tokio::spawn(Service::new("test-sli-provider", "get-sli").in_process(bus).filter(&["shop"], &[], &[]).run(
        move |task| {
            let (queued, seen) = (Arc::clone(&queued), Arc::clone(&seen));
            async move {
                seen.lock().unwrap().push(task.data().clone());
                let values = queued.lock().unwrap().pop_front().unwrap_or(json!([]));
                if values == json!("error") {
                    return Err(keelson::sdk::TaskError::new("prometheus is down"));
                }
                let window = &task.data()["get-sli"];
                if values["result"] == "fail" {
                    // A provider that ran but reports a failed query.
                    return Ok(json!({ "result": "fail", "message": values["message"],
                        "get-sli": { "start": window["start"], "end": window["end"], "indicatorValues": values["values"] } }));
                }
                Ok(json!({ "get-sli": { "start": window["start"], "end": window["end"], "indicatorValues": values } }))
            }
        },
    ));
    (answers, requests)
}

fn values(response_time: f64, error_rate: f64) -> Value {
    json!([
        { "metric": "response_time_p95", "value": response_time, "success": true },
        { "metric": "error_rate", "value": error_rate, "success": true },
    ])
}

#[actix_rt::test]
async fn quality_gates_score_compare_and_honour_invalidation_and_key_slis() {
    let keelson = keelson().await;

    // Without an SLI provider there is nothing to evaluate.
    let context = evaluate(&keelson).await;
    let unconfigured = evaluation_of(&keelson, &context).await;
    assert_eq!(unconfigured["data"]["result"], "pass");
    assert!(unconfigured["data"]["message"].as_str().unwrap().contains("no SLI-provider configured for project shop"));

    // `keptn configure monitoring` sends monitoring.configure; the provider then gets the SLIs of slo.yaml.
    post_event(
        &keelson,
        json!({ "type": "sh.keptn.event.monitoring.configure", "source": "tests",
                "data": { "project": "shop", "service": "carts", "type": "test-provider" } }),
    )
    .await;
    let (answers, requests) = start_sli_provider(&keelson);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // No SLO file yet: the provider is asked for nothing, the evaluation passes with a message.
    answers.lock().unwrap().push_back(json!([]));
    let context = evaluate(&keelson).await;
    let without_slo = evaluation_of(&keelson, &context).await;
    assert_eq!(without_slo["data"]["result"], "pass", "{without_slo}");
    assert!(without_slo["data"]["message"].as_str().unwrap().contains("no SLO file configured"));
    assert_eq!(requests.lock().unwrap()[0]["get-sli"]["sliProvider"], "test-provider");
    assert_eq!(requests.lock().unwrap()[0]["get-sli"]["indicators"], json!([]));

    upload(&keelson, "/stage/production/service/carts", &[("slo.yaml", SLO)]).await;

    // 1: both objectives pass; nothing to compare with yet.
    answers.lock().unwrap().push_back(values(400.0, 0.0));
    let first_context = evaluate(&keelson).await;
    let first = evaluation_of(&keelson, &first_context).await;
    let evaluation = &first["data"]["evaluation"];
    assert_eq!(
        (first["data"]["result"].as_str(), evaluation["score"].as_f64()),
        (Some("pass"), Some(100.0)),
        "{first}"
    );
    assert_eq!(first["source"], "lighthouse-service");
    assert_eq!(support::unb64(evaluation["sloFileContent"].as_str().unwrap()), SLO.as_bytes());
    // Compared with the newest passed evaluation, which had no indicator values: nothing to compare.
    assert_eq!(evaluation["comparedEvents"], json!([without_slo["id"]]), "{evaluation}");
    assert_eq!(evaluation["indicatorResults"][0]["passTargets"][0]["targetValue"], 0.0, "skipped comparison");
    assert_eq!(
        requests.lock().unwrap().last().unwrap()["get-sli"]["indicators"],
        json!(["response_time_p95", "error_rate"])
    );
    let triggered = events(&keelson, &first_context, "sh.keptn.event.evaluation.triggered", 1).await.remove(0);
    assert_eq!(first["triggeredid"], triggered["id"]);

    // 2: 25 % slower than the passed evaluation: the relative criterion fails, the warning holds.
    answers.lock().unwrap().push_back(values(500.0, 0.0));
    let second = evaluation_of(&keelson, &evaluate(&keelson).await).await;
    let evaluation = &second["data"]["evaluation"];
    assert_eq!(
        (second["data"]["result"].as_str(), evaluation["score"].as_f64()),
        (Some("warning"), Some(75.0)),
        "{second}"
    );
    assert_eq!(evaluation["comparedEvents"], json!([first["id"]]));
    let response_time = &evaluation["indicatorResults"][0];
    assert_eq!(response_time["status"], "warning");
    assert_eq!(response_time["value"]["comparedValue"], 400.0);
    assert_eq!(
        response_time["passTargets"][0],
        json!({ "criteria": "<=+10%", "targetValue": 440.0, "violated": true })
    );

    // Invalidating the first evaluation leaves nothing passed to compare with: the relative criterion
    // is skipped and the same values pass.
    post_event(
        &keelson,
        json!({ "type": "sh.keptn.event.evaluation.invalidated", "source": "tests", "shkeptncontext": first_context,
                "triggeredid": triggered["id"], "data": { "project": "shop", "stage": "production", "service": "carts" } }),
    )
    .await;
    events(&keelson, &first_context, "sh.keptn.event.evaluation.invalidated", 1).await;
    answers.lock().unwrap().push_back(values(500.0, 0.0));
    let third = evaluation_of(&keelson, &evaluate(&keelson).await).await;
    assert_eq!(third["data"]["result"], "pass", "{third}");
    assert_eq!(third["data"]["evaluation"]["comparedEvents"], json!([without_slo["id"]]), "{third}");

    // A failing key SLI fails the gate whatever the score.
    answers.lock().unwrap().push_back(values(500.0, 5.0));
    let fourth = evaluation_of(&keelson, &evaluate(&keelson).await).await;
    assert_eq!(fourth["data"]["result"], "fail", "{fourth}");
    assert_eq!(fourth["data"]["evaluation"]["score"], 50.0);
    assert!(fourth["data"]["message"].as_str().unwrap().contains("key_sli"), "{fourth}");
    let metrics = keelson.client.get(keelson.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("keelson_evaluations_total{result=\"warning\"}"), "evaluations are counted");

    // A provider that reports an error makes the evaluation errored (and failed).
    answers.lock().unwrap().push_back(json!("error"));
    let errored = evaluation_of(&keelson, &evaluate(&keelson).await).await;
    assert_eq!(
        (errored["data"]["status"].as_str(), errored["data"]["result"].as_str()),
        (Some("errored"), Some("fail"))
    );
    assert_eq!(errored["data"]["evaluation"]["result"], "fail");
    assert!(errored["data"]["message"].as_str().unwrap().contains("unexpected error: prometheus is down"), "{errored}");
}

#[actix_rt::test]
async fn evaluation_edge_cases_end_the_gate_with_the_right_result() {
    let keelson = keelson().await;
    post_event(
        &keelson,
        json!({ "type": "sh.keptn.event.monitoring.configure", "source": "tests",
                "data": { "project": "shop", "service": "carts", "type": "test-provider" } }),
    )
    .await;
    let (answers, _) = start_sli_provider(&keelson);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // An evaluation sequence triggered without any window.
    let context = trigger(&keelson, "evaluation", json!({})).await;
    let finished = evaluation_of(&keelson, &context).await;
    assert_eq!(
        (finished["data"]["status"].as_str(), finished["data"]["result"].as_str()),
        (Some("errored"), Some("fail"))
    );
    assert_eq!(finished["data"]["message"], "evaluation.triggered event does not contain evaluation timeframe");
    let sequence = events(&keelson, &context, "sh.keptn.event.production.evaluation.finished", 1).await.remove(0);
    assert_eq!(sequence["data"]["result"], "fail", "the gate fails the sequence");

    // (slo.yaml, the provider's answer — none when the provider is never asked, status, result, message)
    let cases: [(&str, Option<Value>, &str, &str, &str); 5] = [
        ("objectives: [", None, "errored", "fail", "Could not parse SLO file for service carts in stage production in project shop"),
        ("objectives: []\ntotal_score: {pass: '90%'}\n", Some(json!([])), "succeeded", "fail", "lighthouse failed because no SLO objective was provided"),
        ("objectives:\n  - sli: error_rate\n    pass: [{criteria: ['<=1']}]\n", Some(values(1.0, 0.0)), "errored", "fail", "no target score defined"),
        (SLO, Some(json!({ "result": "fail", "message": "query timed out", "values": values(400.0, 0.0) })), "succeeded", "fail", "lighthouse failed because SLI failed with message query timed out"),
        ("objectives:\n  - sli: error_rate\n    displayName: Errors\n    pass: [{criteria: ['<<1']}]\ntotal_score: {pass: '90%'}\n", Some(values(1.0, 0.0)), "succeeded", "fail", "error with Errors: "),
    ];
    for (slo, answer, status, result, message) in cases {
        upload(&keelson, "/stage/production/service/carts", &[("slo.yaml", slo)]).await;
        answers.lock().unwrap().extend(answer);
        let finished = evaluation_of(&keelson, &evaluate(&keelson).await).await;
        let data = &finished["data"];
        assert_eq!(
            (data["status"].as_str(), data["result"].as_str()),
            (Some(status), Some(result)),
            "{slo}: {finished}"
        );
        assert!(data["message"].as_str().unwrap().starts_with(message), "{slo}: {finished}");
    }

    // Deleting the project forgets its SLI provider.
    let snapshots = keelson.server.control_plane.storage.snapshots.clone();
    assert!(snapshots.get("lighthouse-config/shop").await.unwrap().is_some());
    let (status, _) = send(keelson.delete("/api/controlPlane/v1/project/shop")).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while snapshots.get("lighthouse-config/shop").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the SLI provider of the deleted project was removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn approvals_follow_the_strategy_matrix() {
    let keelson = keelson().await;
    // Releases are done at once, so each sequence frees the service for the next.
    let bus = keelson.server.control_plane.in_process_bus.clone().unwrap();
    tokio::spawn(Service::new("test-releaser", "release").in_process(bus).run(|_| async { Ok(json!({})) }));
    tokio::time::sleep(Duration::from_millis(100)).await;

    // pass × automatic: approved by the service, release follows.
    let context = trigger(&keelson, "delivery", json!({ "result": "pass" })).await;
    let approval = events(&keelson, &context, "sh.keptn.event.approval.finished", 1).await.remove(0);
    assert_eq!(
        (approval["source"].as_str(), approval["data"]["result"].as_str()),
        (Some("approval-service"), Some("pass"))
    );
    events(&keelson, &context, "sh.keptn.event.release.triggered", 1).await;

    // fail: declined at once, the sequence ends without a release.
    let context = trigger(&keelson, "delivery", json!({ "result": "fail" })).await;
    let approval = events(&keelson, &context, "sh.keptn.event.approval.finished", 1).await.remove(0);
    assert_eq!(approval["data"]["result"], "fail");
    let finished = events(&keelson, &context, "sh.keptn.event.production.delivery.finished", 1).await.remove(0);
    assert_eq!(finished["data"]["result"], "fail");

    // warning × automatic (careful sequence): approved.
    let context = trigger(&keelson, "careful", json!({ "result": "warning" })).await;
    assert_eq!(events(&keelson, &context, "sh.keptn.event.approval.finished", 1).await[0]["data"]["result"], "pass");

    // warning × manual and pass × manual: started with the strategy, then open until a person decides.
    for (sequence, result) in [("delivery", "warning"), ("careful", "pass")] {
        let context = trigger(&keelson, sequence, json!({ "result": result })).await;
        let started = events(&keelson, &context, "sh.keptn.event.approval.started", 1).await.remove(0);
        assert_eq!(started["data"]["message"], format!("Approval strategy for result '{result}': manual"));
        let (_, open) = send(keelson.get(
            "/api/controlPlane/v1/event/triggered/sh.keptn.event.approval.triggered?project=shop&stage=production",
        ))
        .await;
        let open: Vec<Value> =
            open["events"].as_array().unwrap().iter().filter(|e| e["shkeptncontext"] == context).cloned().collect();
        assert_eq!(open.len(), 1, "the approval is listed as open");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, finished) = send(keelson.get(&format!(
            "/api/mongodb-datastore/event?project=shop&keptnContext={context}&type=sh.keptn.event.approval.finished"
        )))
        .await;
        assert_eq!(finished["events"], json!([]), "nobody approved yet");
        post_event(
            &keelson,
            json!({ "type": "sh.keptn.event.approval.finished", "source": "tests", "shkeptncontext": context,
                    "triggeredid": open[0]["id"], "data": { "project": "shop", "stage": "production", "service": "carts",
                    "status": "succeeded", "result": "pass" } }),
        )
        .await;
        events(&keelson, &context, "sh.keptn.event.release.triggered", 1).await;
    }
    let metrics = keelson.client.get(keelson.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for decision in ["approved", "declined", "manual"] {
        assert!(metrics.contains(&format!("keelson_approvals_total{{decision=\"{decision}\"}}")), "{decision} counted");
    }
}

#[actix_rt::test]
async fn remediation_runs_actions_until_the_evaluation_passes() {
    let keelson = keelson().await;
    upload(
        &keelson,
        "/stage/production/service/carts",
        &[
            ("slo.yaml", SLO),
            (
                "remediation.yaml",
                "apiVersion: spec.keptn.sh/0.1.4
kind: Remediation
metadata: {name: remediation-configuration}
spec:
  remediations:
    - problemType: Response time degradation
      actionsOnOpen:
        - {name: Toggle feature flag, action: togglefeature, value: {EnablePromotion: 'off'}}
        - {name: Scale up, action: scaling, value: '1'}
    - problemType: default
      actionsOnOpen:
        - {name: Page someone, action: page}
",
            ),
        ],
    )
    .await;
    post_event(
        &keelson,
        json!({ "type": "sh.keptn.event.monitoring.configure", "source": "tests",
                "data": { "project": "shop", "service": "carts", "type": "test-provider" } }),
    )
    .await;
    let (answers, _requests) = start_sli_provider(&keelson);
    // The first action does not help, the second does.
    answers.lock().unwrap().extend([values(900.0, 5.0), values(400.0, 0.0)]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The test is the action provider.
    let bus = keelson.server.control_plane.in_process_bus.clone().unwrap();
    let executed: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = Arc::clone(&executed);
    tokio::spawn(Service::new("test-action-provider", "action").in_process(bus).run(move |task| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(task.data()["action"].clone());
            Ok(json!({}))
        }
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let context = trigger(
        &keelson,
        "remediation",
        json!({ "problem": { "problemTitle": "Response time degradation", "rootCause": "unknown" } }),
    )
    .await;
    let finished = events(&keelson, &context, "sh.keptn.event.production.remediation.finished", 2).await;
    assert_eq!(finished[0]["data"]["result"], "fail", "the first round's evaluation failed");
    assert_eq!(finished[1]["data"]["result"], "pass", "the second round resolved it: {}", finished[1]);
    let actions: Vec<Value> = executed.lock().unwrap().iter().map(|action| action["action"].clone()).collect();
    assert_eq!(actions, [json!("togglefeature"), json!("scaling")]);
    let get_actions = events(&keelson, &context, "sh.keptn.event.get-action.finished", 2).await;
    assert_eq!(get_actions[0]["data"]["get-action"]["actionIndex"], 1);
    assert_eq!(get_actions[1]["data"]["get-action"]["actionIndex"], 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = events(&keelson, &context, "sh.keptn.event.production.remediation.triggered", 2).await;
    assert_eq!(again.len(), 2, "no third round after the evaluation passed");
}

/// A tiny HTTP server on 127.0.0.1 that records each request and answers with a JSON body.
struct Recorder {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

async fn start_recorder() -> Recorder {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = Arc::clone(&requests);
    // The first request to /flaky is answered 503, as by a service being restarted.
    let flaked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (recorded, flaked) = (Arc::clone(&recorded), Arc::clone(&flaked));
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                let mut read = 0;
                // Headers, then as much body as Content-Length says.
                loop {
                    let n = stream.read(&mut buffer[read..]).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|line| {
                                line.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if read >= end + 4 + length {
                            break;
                        }
                    }
                }
                let request = String::from_utf8_lossy(&buffer[..read]).to_string();
                let unavailable =
                    request.contains(" /flaky ") && !flaked.swap(true, std::sync::atomic::Ordering::SeqCst);
                recorded.lock().unwrap().push(request.clone());
                // Hooks echo the authorization they were sent, as careless targets do.
                let authorization = request.lines().find_map(|line| {
                    line.to_ascii_lowercase().starts_with("authorization:").then(|| line[14..].trim().to_owned())
                });
                let echo = match authorization {
                    Some(value) if request.contains(" /hooks/") => {
                        json!({ "ok": true, "id": "remote-1", "echo": value }).to_string()
                    }
                    _ => r#"{"ok":true,"id":"remote-1"}"#.to_owned(),
                };
                let (status, body) =
                    if unavailable { ("503 Service Unavailable", "restarting".to_owned()) } else { ("200 OK", echo) };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Recorder { port, requests }
}

#[actix_rt::test]
async fn webhooks_call_allowed_hosts_with_secrets_and_refuse_denied_ones() {
    let recorder = start_recorder().await;
    let port = recorder.port;
    let keelson = TestKeelson::start_with(|config| {
        config.services = vec!["webhook".to_owned()];
        config.webhook.allowed_hosts = vec![format!("127.0.0.1:{port}")];
    })
    .await;
    assert_eq!(keelson.create_project("shop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("shop", "carts").await.0, 200);

    let (status, body) =
        send(keelson.post("/api/secrets/v1/secret").json(
            &json!({ "name": "hook-token", "scope": "keptn-webhook-service", "data": { "token": "s3cr3t-value" } }),
        ))
        .await;
    assert_eq!(status, 201, "{body}");

    // Subscriptions of the webhook service, as the Bridge creates them.
    let (_, integrations) = send(keelson.get("/api/controlPlane/v1/uniform/registration?name=webhook-service")).await;
    let integration_id = integrations[0]["id"].as_str().expect("the webhook service is registered").to_owned();
    let mut subscription_ids = Vec::new();
    for task in ["notify", "notify-denied", "notify-async"] {
        let (status, body) = send(
            keelson.post(&format!("/api/controlPlane/v1/uniform/registration/{integration_id}/subscription")).json(
                &json!({ "event": format!("sh.keptn.event.{task}.triggered"), "filter": { "projects": ["shop"] } }),
            ),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        subscription_ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let webhook_yaml = format!(
        r#"apiVersion: webhookconfig.keptn.sh/v1beta1
kind: WebhookConfig
metadata: {{name: webhook-configuration}}
spec:
  webhooks:
    - type: sh.keptn.event.notify.triggered
      subscriptionID: {allowed}
      sendFinished: true
      envFrom:
        - name: token
          secretRef: {{name: hook-token, key: token}}
      requests:
        - url: http://127.0.0.1:{port}/hooks/{{{{.data.project}}}}
          method: POST
          headers:
            - {{key: Authorization, value: "Bearer {{{{.env.token}}}}"}}
            - {{key: Content-Type, value: application/json}}
          payload: '{{"service": "{{{{.data.service}}}}", "context": "{{{{.shkeptncontext}}}}"}}'
        - url: http://127.0.0.1:{port}/flaky
          method: GET
    - type: sh.keptn.event.notify-denied.triggered
      subscriptionID: {denied}
      sendFinished: true
      requests:
        - url: http://169.254.169.254/latest/meta-data
          method: GET
    - type: sh.keptn.event.notify-async.triggered
      subscriptionID: {handover}
      requests:
        - url: http://127.0.0.1:{port}/start-job
          method: POST
        - url: http://127.0.0.1:{port}/start-other-job
          method: POST
"#,
        allowed = subscription_ids[0],
        denied = subscription_ids[1],
        handover = subscription_ids[2],
    );
    upload(&keelson, "", &[("webhook/webhook.yaml", &webhook_yaml)]).await;

    let context = trigger(&keelson, "notification", json!({})).await;
    let finished = events(&keelson, &context, "sh.keptn.event.notify.finished", 1).await.remove(0);
    assert_eq!(
        (finished["data"]["status"].as_str(), finished["data"]["result"].as_str()),
        (Some("succeeded"), Some("pass")),
        "{finished}"
    );
    assert_eq!(finished["source"], "webhook-service");
    assert_eq!(
        finished["data"]["notify"]["responses"],
        json!([{ "ok": true, "id": "remote-1", "echo": "Bearer ***" }, { "ok": true, "id": "remote-1" }]),
        "the 503 was retried, and the echoed secret is not kept"
    );
    let requests = recorder.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].starts_with("POST /hooks/shop HTTP/1.1"), "{}", requests[0]);
    assert!(requests[0].to_ascii_lowercase().contains("authorization: bearer s3cr3t-value"), "{}", requests[0]);
    assert!(requests[0].contains(&format!(r#"{{"service": "carts", "context": "{context}"}}"#)), "{}", requests[0]);
    events(&keelson, &context, "sh.keptn.event.notify.started", 1).await;

    let context = trigger(&keelson, "forbidden", json!({})).await;
    let refused = events(&keelson, &context, "sh.keptn.event.notify-denied.finished", 1).await.remove(0);
    assert_eq!(
        (refused["data"]["status"].as_str(), refused["data"]["result"].as_str()),
        (Some("errored"), Some("fail"))
    );
    let message = refused["data"]["message"].as_str().unwrap();
    assert!(message.contains("169.254.169.254") && message.contains("refused"), "{message}");
    let sequence = events(&keelson, &context, "sh.keptn.event.production.forbidden.finished", 1).await.remove(0);
    assert_eq!(sequence["data"]["result"], "fail");
    assert_eq!(recorder.requests.lock().unwrap().len(), 3, "the denied request was never sent");
    let metrics = keelson.client.get(keelson.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for outcome in ["succeeded", "failed"] {
        assert!(
            metrics.contains(&format!("keelson_webhook_requests_total{{outcome=\"{outcome}\"}}")),
            "{outcome} counted"
        );
    }

    // Without sendFinished the called systems finish the task: one .started per request, no .finished.
    let context = trigger(&keelson, "handover", json!({})).await;
    let started = events(&keelson, &context, "sh.keptn.event.notify-async.started", 2).await;
    assert_eq!(started.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorder.requests.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "both jobs were started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, none) = send(keelson.get(&format!(
        "/api/mongodb-datastore/event?project=shop&keptnContext={context}&type=sh.keptn.event.notify-async.finished"
    )))
    .await;
    assert_eq!(none["events"], json!([]));
    let triggered = events(&keelson, &context, "sh.keptn.event.notify-async.triggered", 1).await.remove(0);
    for _ in 0..2 {
        post_event(
            &keelson,
            json!({ "type": "sh.keptn.event.notify-async.finished", "source": "job-runner", "shkeptncontext": context,
                    "triggeredid": triggered["id"], "data": { "project": "shop", "stage": "production", "service": "carts",
                    "status": "succeeded", "result": "pass" } }),
        )
        .await;
    }
    let sequence = events(&keelson, &context, "sh.keptn.event.production.handover.finished", 1).await.remove(0);
    assert_eq!(sequence["data"]["result"], "pass");

    // No secret value anywhere in the history.
    let (_, all) = send(keelson.get("/api/mongodb-datastore/event?project=shop&pageSize=100")).await;
    assert!(!all.to_string().contains("s3cr3t-value"));
}

#[actix_rt::test]
async fn secrets_api_keeps_values_to_itself() {
    let keelson = TestKeelson::start().await;
    let secret = json!({ "name": "slack", "data": { "webhook": "https://hooks.example/abc", "channel": "ops" } });
    let (status, created) = send(keelson.post("/api/secrets/v1/secret").json(&secret)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created, json!({ "name": "slack", "scope": "keptn-default", "keys": ["channel", "webhook"] }));
    let (status, body) = send(keelson.post("/api/secrets/v1/secret").json(&secret)).await;
    assert_error(status, &body, 409);

    let (status, listed) = send(keelson.get("/api/secrets/v1/secret")).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed,
        json!({ "Secrets": [{ "name": "slack", "scope": "keptn-default", "keys": ["channel", "webhook"] }] })
    );
    assert!(!listed.to_string().contains("hooks.example"));
    let (_, scoped) = send(keelson.get("/api/secrets/v1/secret?scope=keptn-webhook-service")).await;
    assert_eq!(scoped, json!({ "Secrets": [] }));

    let update =
        json!({ "name": "slack", "scope": "keptn-default", "data": { "webhook": "https://hooks.example/new" } });
    let (status, updated) = send(keelson.put("/api/secrets/v1/secret").json(&update)).await;
    assert_eq!((status, updated["keys"].clone()), (200, json!(["webhook"])));
    let (status, body) = send(keelson.put("/api/secrets/v1/secret").json(&json!({ "name": "nope", "data": {} }))).await;
    assert_error(status, &body, 404);

    for bad in [json!({ "data": {} }), json!({ "name": "Bad Name" }), json!({ "name": "ok", "scope": "elsewhere" })] {
        let (status, body) = send(keelson.post("/api/secrets/v1/secret").json(&bad)).await;
        assert_error(status, &body, 400);
    }
    let (status, body) =
        send(keelson.post("/api/secrets/v1/secret").json(&json!({ "name": "typo", "data": "hunter2-value" }))).await;
    assert_error(status, &body, 400);
    assert!(!body.to_string().contains("hunter2"), "a malformed secret is not echoed: {body}");
    let (_, scopes) = send(keelson.get("/api/secrets/v1/scope")).await;
    assert!(scopes["scopes"].as_array().unwrap().contains(&json!("keptn-webhook-service")));

    let (status, body) = send(keelson.delete("/api/secrets/v1/secret?name=slack&scope=other")).await;
    assert_error(status, &body, 404);
    let (status, _) = send(keelson.delete("/api/secrets/v1/secret?name=slack&scope=keptn-default")).await;
    assert_eq!(status, 200);
    let (_, listed) = send(keelson.get("/api/secrets/v1/secret")).await;
    assert_eq!(listed, json!({ "Secrets": [] }));

    // Values on disk are sealed: the data dir holds no plain value.
    let (status, _) = send(
        keelson.post("/api/secrets/v1/secret").json(&json!({ "name": "disk", "data": { "k": "plain-text-marker" } })),
    )
    .await;
    assert_eq!(status, 201);
    let data_dir = keelson.stop().await;
    for entry in std::fs::read_dir(data_dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("plain-text-marker"),
                "{} holds a plain value",
                path.display()
            );
        }
    }
}

#[actix_rt::test]
async fn services_run_as_their_own_process_on_nats() {
    use std::io::{BufRead as _, BufReader};
    let nats = support::servers::nats();
    let redis = support::servers::redis();
    let key = keelson::secrets::SecretKey::generate_text();
    let keelson = TestKeelson::start_for_service_processes(&nats.url, &redis.url, &key).await;
    assert_eq!(keelson.create_project("shop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("shop", "carts").await.0, 200);
    upload(&keelson, "/stage/production/service/carts", &[("slo.yaml", SLO)]).await;

    let mut child = std::process::Command::new(support::process::BINARY)
        .args(["service", "approval", "lighthouse"])
        .env_clear()
        .env("KEELSON_NATS_URL", &nats.url)
        .env("KEELSON_REDIS_URL", &redis.url)
        .env("KEELSON_SECRET_KEY", &key)
        .env("KEELSON_API_URL", &keelson.base)
        .env("KEELSON_API_TOKEN", &keelson.token)
        .env("KEELSON_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Everything it says goes to stderr: read on a thread (so the pipe never fills) until it runs.
    let stderr = child.stderr.take().unwrap();
    let (running, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("Running ") {
                let _ = running.send(line);
            }
        }
    });
    let first_line = started.recv_timeout(std::time::Duration::from_secs(30)).expect("the services start");
    assert!(first_line.starts_with("Running approval, lighthouse"), "{first_line}");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _services = Kill(child);

    // Both register through the API.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, listed) = send(keelson.get("/api/controlPlane/v1/uniform/registration")).await;
        let names: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|i| i["name"].as_str()).collect();
        if names.contains(&"approval-service") && names.contains(&"lighthouse-service") {
            break;
        }
        assert!(Instant::now() < deadline, "services did not register: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The SLI provider is another NATS client.
    tokio::spawn(Service::new("nats-sli-provider", "get-sli").over_nats(nats.url.clone()).run(|task| async move {
        let window = &task.data()["get-sli"];
        Ok(json!({ "get-sli": { "start": window["start"], "end": window["end"], "indicatorValues": values(400.0, 0.0) } }))
    }));
    post_event(
        &keelson,
        json!({ "type": "sh.keptn.event.monitoring.configure", "source": "tests",
                "data": { "project": "shop", "service": "carts", "type": "prometheus" } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let evaluation = evaluation_of(&keelson, &evaluate(&keelson).await).await;
    assert_eq!(evaluation["data"]["result"], "pass", "{evaluation}");
    assert_eq!(evaluation["data"]["evaluation"]["score"], 100.0);
    assert_eq!(evaluation["source"], "lighthouse-service");

    let context = trigger(&keelson, "delivery", json!({ "result": "pass" })).await;
    let approval = events(&keelson, &context, "sh.keptn.event.approval.finished", 1).await.remove(0);
    assert_eq!(
        (approval["source"].as_str(), approval["data"]["result"].as_str()),
        (Some("approval-service"), Some("pass"))
    );
}

#[actix_rt::test]
async fn a_service_process_refuses_an_incomplete_configuration() {
    let run = |args: &[&str], vars: &[(&str, &str)]| {
        let mut command = std::process::Command::new(support::process::BINARY);
        command.args(args).env_clear();
        for (key, value) in vars {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).to_string())
    };
    let (code, stderr) = run(&["service", "lighthouse"], &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("KEELSON_NATS_URL"), "{stderr}");
    let (code, stderr) = run(&["service", "helm"], &[("KEELSON_NATS_URL", "nats://127.0.0.1:1")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("unknown service 'helm'"), "{stderr}");
    let (code, stderr) =
        run(&["service", "webhook"], &[("KEELSON_NATS_URL", "nats://127.0.0.1:1"), ("KEELSON_API_TOKEN", "t")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("KEELSON_REDIS_URL"), "{stderr}");
}
