//! Sequence orchestration end to end, black-box over HTTP: the test plays the execution plane, polling
//! `GET /event/triggered/{type}` and answering through `POST /api/v1/event`.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{assert_error, send, TestKeelson};

const DELIVERY_SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
              properties: { deploymentstrategy: direct }
            - name: test
              properties: { teststrategy: functional }
            - name: evaluation
        - name: rollback
          triggeredOn:
            - event: dev.delivery.finished
              selector: { match: { result: fail } }
          tasks:
            - name: rollback
    - name: hardening
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
            - name: release
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: hardening.delivery.finished
          tasks:
            - name: approval
            - name: release
";

async fn keelson_with_project(adjust: impl FnOnce(&mut keelson::config::Config)) -> TestKeelson {
    let keelson = TestKeelson::start_with(adjust).await;
    assert_eq!(keelson.create_project("sockshop", DELIVERY_SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    assert_eq!(keelson.create_service("sockshop", "orders").await.0, 200);
    keelson
}

/// Triggers `<stage>.<sequence>` for `service`; returns the keptn context.
async fn trigger(keelson: &TestKeelson, stage: &str, sequence: &str, service: &str, extra: Value) -> String {
    let mut data = json!({ "project": "sockshop", "stage": stage, "service": service });
    support::merge_into(&mut data, extra);
    let body =
        json!({ "type": format!("sh.keptn.event.{stage}.{sequence}.triggered"), "source": "tests", "data": data });
    let (status, response) = send(keelson.post("/api/v1/event").json(&body)).await;
    assert_eq!(status, 200, "{response}");
    response["keptnContext"].as_str().unwrap().to_owned()
}

/// Open `.triggered` events of `task` for `context`, polled until `count` are there.
async fn wait_for_triggered(keelson: &TestKeelson, task: &str, context: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = send(
            keelson
                .get(&format!("/api/controlPlane/v1/event/triggered/sh.keptn.event.{task}.triggered?project=sockshop")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let events: Vec<Value> =
            body["events"].as_array().unwrap().iter().filter(|e| e["shkeptncontext"] == context).cloned().collect();
        if events.len() >= count {
            return events;
        }
        assert!(Instant::now() < deadline, "no {task}.triggered for context {context} within 10s (probably stalled)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that no `.triggered` of `task` is open for `context` for a little while.
async fn assert_not_triggered(keelson: &TestKeelson, task: &str, context: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) =
        send(keelson.get(&format!("/api/controlPlane/v1/event/triggered/sh.keptn.event.{task}.triggered"))).await;
    let open = body["events"].as_array().unwrap().iter().filter(|e| e["shkeptncontext"] == context).count();
    assert_eq!(open, 0, "{task}.triggered must not be open for {context}");
}

/// Answers a task `.triggered` event as an executor: `.started`, then `.finished`.
async fn answer(keelson: &TestKeelson, triggered: &Value, result: &str, status: &str, extra: Value) {
    let task = triggered["type"]
        .as_str()
        .unwrap()
        .trim_start_matches("sh.keptn.event.")
        .trim_end_matches(".triggered")
        .to_owned();
    let scope = json!({ "project": triggered["data"]["project"], "stage": triggered["data"]["stage"], "service": triggered["data"]["service"] });
    let started = json!({
        "type": format!("sh.keptn.event.{task}.started"), "source": "test-executor",
        "shkeptncontext": triggered["shkeptncontext"], "triggeredid": triggered["id"], "data": scope,
    });
    assert_eq!(send(keelson.post("/api/v1/event").json(&started)).await.0, 200);
    let mut data = scope.clone();
    data["result"] = json!(result);
    data["status"] = json!(status);
    support::merge_into(&mut data, extra);
    let finished = json!({
        "type": format!("sh.keptn.event.{task}.finished"), "source": "test-executor",
        "shkeptncontext": triggered["shkeptncontext"], "triggeredid": triggered["id"], "data": data,
    });
    let (status, body) = send(keelson.post("/api/v1/event").json(&finished)).await;
    assert_eq!(status, 200, "{body}");
}

async fn run_task(keelson: &TestKeelson, task: &str, context: &str, result: &str, extra: Value) -> Value {
    let triggered = wait_for_triggered(keelson, task, context, 1).await.remove(0);
    answer(keelson, &triggered, result, "succeeded", extra).await;
    triggered
}

async fn executions(keelson: &TestKeelson, context: &str) -> Vec<Value> {
    let (status, body) =
        send(keelson.get(&format!("/api/controlPlane/v1/sequence-execution?project=sockshop&keptnContext={context}")))
            .await;
    assert_eq!(status, 200, "{body}");
    body["sequenceExecutions"].as_array().unwrap().clone()
}

/// Waits until an execution of `stage` in `context` reaches `state`.
async fn wait_for_state(keelson: &TestKeelson, context: &str, stage: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = executions(keelson, context)
            .await
            .into_iter()
            .find(|e| e["scope"]["stage"] == stage && e["status"]["state"] == state);
        if let Some(execution) = found {
            return execution;
        }
        assert!(Instant::now() < deadline, "execution of {stage} in {context} did not reach {state} within 10s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn multi_stage_delivery_runs_through_every_stage() {
    let keelson = keelson_with_project(|_| {}).await;
    let context = trigger(
        &keelson,
        "dev",
        "delivery",
        "carts",
        json!({ "configurationChange": { "values": { "image": "carts:0.2" } }, "labels": { "build": "7" } }),
    )
    .await;

    let deployment = run_task(
        &keelson,
        "deployment",
        &context,
        "pass",
        json!({ "deployment": { "deploymentURIsPublic": ["http://carts.dev"] } }),
    )
    .await;
    assert_eq!(deployment["data"]["deployment"]["deploymentstrategy"], "direct", "task properties under the task name");
    assert_eq!(deployment["data"]["configurationChange"]["values"]["image"], "carts:0.2");
    assert_eq!(deployment["data"]["labels"]["build"], "7");
    assert_eq!(deployment["gitcommitid"].as_str().map(str::len), Some(40), "stage branch head as gitcommitid");

    let test = run_task(&keelson, "test", &context, "pass", json!({})).await;
    assert_eq!(test["data"]["deployment"]["deploymentURIsPublic"][0], "http://carts.dev", "earlier results flow on");
    assert_eq!(test["data"]["test"]["teststrategy"], "functional");
    assert_eq!(test["data"]["result"], "pass");
    run_task(&keelson, "evaluation", &context, "pass", json!({ "evaluation": { "score": 95 } })).await;

    // dev finished with pass: hardening runs, dev.rollback does not.
    let hardening_deployment = run_task(&keelson, "deployment", &context, "pass", json!({})).await;
    assert_eq!(hardening_deployment["data"]["stage"], "hardening");
    assert_eq!(hardening_deployment["data"]["evaluation"]["score"], 95, "the accumulated payload is promoted");
    run_task(&keelson, "release", &context, "pass", json!({})).await;

    // production waits for an approval, then releases.
    let approval = wait_for_triggered(&keelson, "approval", &context, 1).await.remove(0);
    assert_eq!(approval["data"]["stage"], "production");
    wait_for_state(&keelson, &context, "production", "waitingForApproval").await;
    answer(&keelson, &approval, "pass", "succeeded", json!({})).await;
    run_task(&keelson, "release", &context, "pass", json!({})).await;

    for stage in ["dev", "hardening", "production"] {
        let execution = wait_for_state(&keelson, &context, stage, "finished").await;
        assert_eq!(execution["scope"]["result"], "pass");
        assert_eq!(execution["scope"]["status"], "succeeded");
    }
    assert!(
        executions(&keelson, &context).await.iter().all(|e| e["sequence"]["name"] == "delivery"),
        "no rollback ran"
    );

    let (status, states) =
        send(keelson.get(&format!("/api/controlPlane/v1/sequence/sockshop?keptnContext={context}"))).await;
    assert_eq!(status, 200);
    let state = &states["states"][0];
    assert_eq!(state["state"], "finished");
    assert_eq!(state["result"], "pass");
    assert!(state["stages"].as_array().unwrap().iter().all(|stage| stage["result"] == "pass"), "{state}");
    assert_eq!(state["name"], "delivery");
    assert_eq!(state["stages"].as_array().unwrap().len(), 3);
    assert_eq!(state["stages"][0]["image"], "carts:0.2");
    assert_eq!(state["stages"][0]["latestEvaluation"]["score"], 95);

    let metrics = keelson.client.get(keelson.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let finished_count = metrics
        .lines()
        .find(|line| line.starts_with("keelson_sequences{state=\"finished\"}"))
        .and_then(|line| line.split_whitespace().last()?.parse::<f64>().ok());
    assert!(finished_count.is_some_and(|count| count >= 3.0), "sequences by state:\n{metrics}");
    for name in [
        "keelson_task_duration_seconds_bucket",
        "keelson_dispatch_latency_seconds_bucket",
        "keelson_sequences_finished_total",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
}

#[actix_rt::test]
async fn deleting_a_project_ends_its_sequences() {
    let keelson = keelson_with_project(|_| {}).await;
    let mut bus = keelson.server.control_plane.in_process_bus.as_ref().unwrap().subscribe();
    let context = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    wait_for_triggered(&keelson, "deployment", &context, 1).await;
    assert_eq!(send(keelson.delete("/api/controlPlane/v1/project/sockshop")).await.0, 200);
    let finished = next_event(&mut bus, "sh.keptn.event.dev.delivery.finished").await;
    assert_eq!(finished.data["status"], "aborted");
    assert_eq!(keelson.create_project("sockshop", DELIVERY_SHIPYARD).await.0, 201);
    let (status, body) = send(keelson.get("/api/controlPlane/v1/sequence-execution?project=sockshop")).await;
    assert_eq!(status, 200);
    assert_eq!(body["sequenceExecutions"], json!([]), "a re-created project starts without history");
    let (_, open) = send(keelson.get("/api/controlPlane/v1/event/triggered/sh.keptn.event.deployment.triggered")).await;
    assert!(open["events"].as_array().unwrap().is_empty());
}

#[actix_rt::test]
async fn a_failing_task_stops_the_sequence_and_triggers_rollback() {
    let keelson = keelson_with_project(|_| {}).await;
    let context = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    run_task(&keelson, "deployment", &context, "pass", json!({})).await;
    run_task(&keelson, "test", &context, "fail", json!({})).await;
    let dev = wait_for_state(&keelson, &context, "dev", "finished").await;
    assert_eq!(dev["scope"]["result"], "fail");
    assert_eq!(dev["status"]["previousTasks"].as_array().unwrap().len(), 2, "evaluation was skipped");
    run_task(&keelson, "rollback", &context, "pass", json!({})).await;
    let rollback =
        executions(&keelson, &context).await.into_iter().find(|e| e["sequence"]["name"] == "rollback").unwrap();
    assert_eq!(rollback["scope"]["stage"], "dev");
    assert_not_triggered(&keelson, "release", &context).await;
    assert!(
        executions(&keelson, &context).await.iter().all(|e| e["scope"]["stage"] == "dev"),
        "hardening not started on fail"
    );
    let (_, states) =
        send(keelson.get(&format!("/api/controlPlane/v1/sequence/sockshop?keptnContext={context}"))).await;
    let stages = states["states"][0]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 1, "one entry per stage even with a same-stage rollback: {stages:?}");
    assert_eq!(states["states"][0]["name"], "delivery", "named after the first sequence of the context");
    // The state says how it ended: the status of the failed delivery is `succeeded`, its result `fail`.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut state = states["states"][0].clone();
    while state["state"] != "finished" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, states) =
            send(keelson.get(&format!("/api/controlPlane/v1/sequence/sockshop?keptnContext={context}"))).await;
        state = states["states"][0].clone();
    }
    assert_eq!(state["state"], "finished", "{state}");
    assert_eq!(state["result"], "fail", "{state}");
    assert_eq!(state["stages"][0]["result"], "pass", "the rollback, latest in dev, passed: {state}");
}

#[actix_rt::test]
async fn sequences_of_one_service_queue_and_the_next_starts_when_the_first_ends() {
    let keelson = keelson_with_project(|_| {}).await;
    let first = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    wait_for_triggered(&keelson, "deployment", &first, 1).await;
    let second = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    let other_service = trigger(&keelson, "dev", "delivery", "orders", json!({})).await;
    wait_for_triggered(&keelson, "deployment", &other_service, 1).await;
    assert_not_triggered(&keelson, "deployment", &second).await;
    wait_for_state(&keelson, &second, "dev", "triggered").await;

    run_task(&keelson, "deployment", &first, "pass", json!({})).await;
    run_task(&keelson, "test", &first, "pass", json!({})).await;
    assert_not_triggered(&keelson, "deployment", &second).await;
    run_task(&keelson, "evaluation", &first, "pass", json!({})).await;
    // The moment the first sequence ends in dev, the queued one starts.
    wait_for_triggered(&keelson, "deployment", &second, 1).await;
}

#[actix_rt::test]
async fn aborting_a_running_sequence_starts_the_queued_one() {
    let keelson = keelson_with_project(|_| {}).await;
    let first = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    wait_for_triggered(&keelson, "deployment", &first, 1).await;
    let second = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    assert_not_triggered(&keelson, "deployment", &second).await;

    let (status, body) = send(
        keelson
            .post(&format!("/api/controlPlane/v1/sequence/sockshop/{first}/control"))
            .json(&json!({ "state": "abort" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let aborted = wait_for_state(&keelson, &first, "dev", "finished").await;
    assert_eq!(aborted["scope"]["status"], "aborted");
    assert_eq!(aborted["scope"]["result"], "pass");
    wait_for_triggered(&keelson, "deployment", &second, 1).await;
    assert_not_triggered(&keelson, "deployment", &first).await;
    let (_, states) = send(keelson.get(&format!("/api/controlPlane/v1/sequence/sockshop?keptnContext={first}"))).await;
    assert_eq!(states["states"][0]["state"], "aborted");

    let (status, body) = send(
        keelson
            .post("/api/controlPlane/v1/sequence/sockshop/00000000-0000-4000-8000-000000000000/control")
            .json(&json!({ "state": "abort" })),
    )
    .await;
    assert_error(status, &body, 404);
    let (status, body) = send(
        keelson
            .post(&format!("/api/controlPlane/v1/sequence/sockshop/{first}/control"))
            .json(&json!({ "state": "stop" })),
    )
    .await;
    assert_error(status, &body, 400);
}

#[actix_rt::test]
async fn pause_holds_the_next_task_until_resume() {
    let keelson = keelson_with_project(|_| {}).await;
    let context = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    let deployment = wait_for_triggered(&keelson, "deployment", &context, 1).await.remove(0);
    let control = format!("/api/controlPlane/v1/sequence/sockshop/{context}/control");
    assert_eq!(send(keelson.post(&control).json(&json!({ "state": "pause" }))).await.0, 200);
    answer(&keelson, &deployment, "pass", "succeeded", json!({})).await;
    wait_for_state(&keelson, &context, "dev", "paused").await;
    assert_not_triggered(&keelson, "test", &context).await;
    assert_eq!(send(keelson.post(&control).json(&json!({ "state": "resume", "stage": "dev" }))).await.0, 200);
    wait_for_triggered(&keelson, "test", &context, 1).await;
}

#[actix_rt::test]
async fn a_task_nobody_answers_times_the_sequence_out() {
    // Time is stepped, not waited for: the timeout is Keptn's default ten minutes.
    let clock = keelson::clock::ManualClock::new(chrono::Utc::now());
    let keelson = TestKeelson::start_with_clock(
        |config| config.task_started_timeout = Duration::from_secs(600),
        std::sync::Arc::clone(&clock) as std::sync::Arc<dyn keelson::clock::Clock>,
    )
    .await;
    assert_eq!(keelson.create_project("sockshop", DELIVERY_SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    let mut bus = keelson.server.control_plane.in_process_bus.as_ref().unwrap().subscribe();
    let context = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    wait_for_triggered(&keelson, "deployment", &context, 1).await;
    clock.advance(chrono::Duration::seconds(599));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(executions(&keelson, &context).await[0]["status"]["state"], "started", "not timed out a second early");
    clock.advance(chrono::Duration::seconds(2));
    let timed_out = wait_for_state(&keelson, &context, "dev", "timedOut").await;
    assert_eq!(timed_out["scope"]["status"], "errored");
    let finished = next_event(&mut bus, "sh.keptn.event.dev.delivery.finished").await;
    assert_eq!(finished.data["result"], "fail");
    assert_eq!(
        finished.data["message"],
        "sequence timed out while waiting for task sh.keptn.event.deployment.triggered to receive a correlating .started or .finished event"
    );
    assert_not_triggered(&keelson, "deployment", &context).await;
}

async fn next_event(
    bus: &mut tokio::sync::mpsc::Receiver<std::sync::Arc<keelson::model::event::CloudEvent>>,
    event_type: &str,
) -> keelson::model::event::CloudEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(remaining, bus.recv())
            .await
            .unwrap_or_else(|_| panic!("no {event_type} on the bus within 10s"))
            .expect("bus open");
        if event.event_type == event_type {
            return (*event).clone();
        }
    }
}

#[actix_rt::test]
async fn unknown_sequences_end_at_once_with_an_errored_finished() {
    let keelson = keelson_with_project(|_| {}).await;
    let mut bus = keelson.server.control_plane.in_process_bus.as_ref().unwrap().subscribe();
    trigger(&keelson, "dev", "canary", "carts", json!({ "labels": { "k": "v" } })).await;
    let finished = next_event(&mut bus, "sh.keptn.event.dev.canary.finished").await;
    assert_eq!(finished.data["status"], "errored");
    assert_eq!(finished.data["result"], "fail");
    assert_eq!(finished.data["labels"]["k"], "v");
    assert_eq!(
        finished.data["message"],
        "Unable to start sequence canary: no task sequence with name canary found in stage dev"
    );
    assert!(finished.triggeredid.is_some());

    // The built-in evaluation sequence exists in every stage.
    let context = trigger(&keelson, "production", "evaluation", "carts", json!({})).await;
    wait_for_triggered(&keelson, "evaluation", &context, 1).await;
}

#[actix_rt::test]
async fn several_executors_share_a_task() {
    let keelson = keelson_with_project(|_| {}).await;
    let context = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    let deployment = wait_for_triggered(&keelson, "deployment", &context, 1).await.remove(0);
    let scope = json!({ "project": "sockshop", "stage": "dev", "service": "carts" });
    for source in ["helm", "notifier"] {
        let started = json!({ "type": "sh.keptn.event.deployment.started", "source": source, "shkeptncontext": context, "triggeredid": deployment["id"], "data": scope });
        assert_eq!(send(keelson.post("/api/v1/event").json(&started)).await.0, 200);
    }
    let mut data = scope.clone();
    data["result"] = json!("pass");
    data["status"] = json!("succeeded");
    let finished = json!({ "type": "sh.keptn.event.deployment.finished", "source": "helm", "shkeptncontext": context, "triggeredid": deployment["id"], "data": data });
    assert_eq!(send(keelson.post("/api/v1/event").json(&finished)).await.0, 200);
    assert_not_triggered(&keelson, "test", &context).await;
    let mut data = scope.clone();
    data["result"] = json!("warning");
    data["status"] = json!("succeeded");
    let finished = json!({ "type": "sh.keptn.event.deployment.finished", "source": "notifier", "shkeptncontext": context, "triggeredid": deployment["id"], "data": data });
    assert_eq!(send(keelson.post("/api/v1/event").json(&finished)).await.0, 200);
    let test = wait_for_triggered(&keelson, "test", &context, 1).await.remove(0);
    assert_eq!(test["data"]["result"], "warning", "aggregate of both executors");
}

#[actix_rt::test]
async fn duplicate_event_ids_change_nothing() {
    let keelson = keelson_with_project(|_| {}).await;
    let bus = keelson.server.control_plane.in_process_bus.clone().unwrap();
    use keelson::bus::Bus as _;
    let trigger_event: keelson::model::event::CloudEvent = serde_json::from_value(json!({
        "type": "sh.keptn.event.dev.delivery.triggered", "source": "tests", "id": "fixed-trigger-id",
        "shkeptncontext": "11111111-2222-4333-8444-555555555555",
        "data": { "project": "sockshop", "stage": "dev", "service": "carts" }
    }))
    .unwrap();
    bus.publish(&trigger_event).await.unwrap();
    bus.publish(&trigger_event).await.unwrap();
    let context = "11111111-2222-4333-8444-555555555555";
    let deployment = wait_for_triggered(&keelson, "deployment", context, 1).await.remove(0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(executions(&keelson, context).await.len(), 1, "one execution for a redelivered trigger");

    let started: keelson::model::event::CloudEvent = serde_json::from_value(json!({
        "type": "sh.keptn.event.deployment.started", "source": "a", "id": "started-1", "shkeptncontext": context,
        "triggeredid": deployment["id"], "data": { "project": "sockshop", "stage": "dev", "service": "carts" }
    }))
    .unwrap();
    bus.publish(&started).await.unwrap();
    bus.publish(&started).await.unwrap();
    let finished: keelson::model::event::CloudEvent = serde_json::from_value(json!({
        "type": "sh.keptn.event.deployment.finished", "source": "a", "id": "finished-1", "shkeptncontext": context,
        "triggeredid": deployment["id"],
        "data": { "project": "sockshop", "stage": "dev", "service": "carts", "result": "pass", "status": "succeeded" }
    }))
    .unwrap();
    bus.publish(&finished).await.unwrap();
    // Had the duplicate .started counted twice, one .finished would not complete the task.
    wait_for_triggered(&keelson, "test", context, 1).await;
    bus.publish(&finished).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let execution = executions(&keelson, context).await.remove(0);
    assert_eq!(execution["status"]["previousTasks"].as_array().unwrap().len(), 1);
}

/// Makes the next step of the (only) execution of `context` panic, and lets the supervisor restart it.
async fn inject_panic(keelson: &TestKeelson, context: &str) {
    let control = &keelson.server.control_plane.state.control;
    let execution = control
        .executions("sockshop")
        .into_iter()
        .find(|execution| execution.scope.keptn_context == context)
        .map(|execution| execution.id.clone())
        .unwrap();
    assert!(control.panic_execution("sockshop", &execution).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[actix_rt::test]
async fn a_panicking_sequence_actor_restarts_and_others_carry_on() {
    let keelson = keelson_with_project(|_| {}).await;
    let victim = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    let bystander = trigger(&keelson, "dev", "delivery", "orders", json!({})).await;
    wait_for_triggered(&keelson, "deployment", &victim, 1).await;
    wait_for_triggered(&keelson, "deployment", &bystander, 1).await;

    inject_panic(&keelson, &victim).await;

    // Both sequences go on: the victim from its last state, the bystander untouched.
    for context in [&victim, &bystander] {
        run_task(&keelson, "deployment", context, "pass", json!({})).await;
        run_task(&keelson, "test", context, "pass", json!({})).await;
        run_task(&keelson, "evaluation", context, "pass", json!({})).await;
        wait_for_state(&keelson, context, "dev", "finished").await;
    }
    let metrics = keelson.client.get(keelson.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("keelson_actor_panics_total"), "panics are counted");
}

#[actix_rt::test]
async fn evaluation_endpoint_triggers_the_evaluation_sequence() {
    let keelson = keelson_with_project(|_| {}).await;
    let (status, body) = send(
        keelson
            .post("/api/controlPlane/v1/project/sockshop/stage/hardening/service/carts/evaluation")
            .json(&json!({ "timeframe": "10m", "labels": { "run": "1" } })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let context = body["keptnContext"].as_str().unwrap();
    // Answered once the trigger is durable, like any event: its execution exists already.
    assert_eq!(executions(&keelson, context).await.len(), 1, "the sequence started before the answer");
    let evaluation = wait_for_triggered(&keelson, "evaluation", context, 1).await.remove(0);
    assert_eq!(evaluation["data"]["stage"], "hardening");
    assert_eq!(evaluation["data"]["labels"]["run"], "1");
    assert!(evaluation["data"]["evaluation"]["start"].as_str().is_some());

    let (status, body) = send(
        keelson.post("/api/controlPlane/v1/project/sockshop/stage/hardening/service/nope/evaluation").json(&json!({})),
    )
    .await;
    assert_error(status, &body, 400);
    let (status, body) = send(
        keelson
            .post("/api/controlPlane/v1/project/sockshop/stage/hardening/service/carts/evaluation")
            .json(&json!({ "timeframe": "5m", "end": "2024-01-01T00:00:00Z" })),
    )
    .await;
    assert_error(status, &body, 400);
}

/// An executor's event posted over HTTP is recorded in the history once and reaches its execution once,
/// although it is also published on the bus, where other subscribers receive it.
#[actix_rt::test]
async fn an_event_posted_over_http_is_stored_once_and_routed_once() {
    let keelson = keelson_with_project(|_| {}).await;
    let context = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    let triggered = wait_for_triggered(&keelson, "deployment", &context, 1).await.remove(0);
    let mut subscriber = keelson.server.control_plane.in_process_bus.as_ref().unwrap().subscribe();
    let control = &keelson.server.control_plane.state.control;
    let (recorded, delivered) = control.routing_counts();

    let started = json!({
        "type": "sh.keptn.event.deployment.started", "source": "test-executor",
        "shkeptncontext": context, "triggeredid": triggered["id"],
        "data": { "project": "sockshop", "stage": "dev", "service": "carts" },
    });
    let (status, body) = send(keelson.post("/api/v1/event").json(&started)).await;
    assert_eq!(status, 200, "{body}");
    let forwarded = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = subscriber.recv().await.unwrap();
            if event.source == "test-executor" && event.triggeredid.as_deref() == triggered["id"].as_str() {
                return event;
            }
        }
    })
    .await
    .expect("other subscribers receive the event");
    assert_eq!(forwarded.event_type, "sh.keptn.event.deployment.started");
    // Time for a second pass through the control plane, had the bus fed it back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (recorded_after, delivered_after) = control.routing_counts();
    assert_eq!(recorded_after - recorded, 1, "history inserts for one event");
    assert_eq!(delivered_after - delivered, 1, "deliveries to actors for one event");
}

#[actix_rt::test]
async fn the_event_api_refuses_what_keptn_refuses() {
    let keelson = keelson_with_project(|_| {}).await;
    let scope = json!({ "project": "sockshop", "stage": "dev", "service": "carts" });
    let cases = [
        (json!({ "type": "sh.keptn.event.deployment.triggered", "source": "x", "data": scope }), 400),
        (
            json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "x", "data": { "project": "sockshop", "stage": "prod", "service": "carts" } }),
            400,
        ),
        (json!({ "type": "sh.keptn.event.deployment.finished", "source": "x", "data": scope }), 400),
        (json!({ "source": "x", "data": scope }), 422),
    ];
    for (body, expected) in cases {
        let (status, response) = send(keelson.post("/api/v1/event").json(&body)).await;
        assert_error(status, &response, expected);
    }
    let huge = json!({ "type": "sh.keptn.log.error", "source": "x", "data": { "blob": "x".repeat(70 * 1024) } });
    let (status, response) = send(keelson.post("/api/v1/event").json(&huge)).await;
    assert_error(status, &response, 400);
    let (status, response) = send(keelson.get("/api/controlPlane/v1/sequence-execution")).await;
    assert_error(status, &response, 400);
    let (status, response) =
        send(keelson.get("/api/controlPlane/v1/event/triggered/sh.keptn.event.deployment.triggered?project=nope"))
            .await;
    assert_error(status, &response, 404);
}

#[actix_rt::test]
async fn ended_contexts_are_forgotten_after_the_retention() {
    // Thirty days pass on a manual clock.
    let clock = keelson::clock::ManualClock::new(chrono::Utc::now());
    let retention = Duration::from_secs(30 * 24 * 3600);
    let keelson = TestKeelson::start_with_clock(
        |config| config.execution_retention = Some(retention),
        std::sync::Arc::clone(&clock) as std::sync::Arc<dyn keelson::clock::Clock>,
    )
    .await;
    assert_eq!(keelson.create_project("sockshop", DELIVERY_SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    assert_eq!(keelson.create_service("sockshop", "orders").await.0, 200);
    let ended = trigger(&keelson, "production", "evaluation", "carts", json!({})).await;
    run_task(&keelson, "evaluation", &ended, "pass", json!({})).await;
    let running = trigger(&keelson, "dev", "delivery", "orders", json!({})).await;
    wait_for_triggered(&keelson, "deployment", &running, 1).await;
    let listed = |body: &Value, context: &str| {
        body["states"].as_array().unwrap().iter().any(|state| state["shkeptncontext"] == context)
    };
    let (_, states) = send(keelson.get("/api/controlPlane/v1/sequence/sockshop")).await;
    assert!(listed(&states, &ended) && listed(&states, &running), "{states}");
    clock.advance(chrono::Duration::days(29));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, states) = send(keelson.get("/api/controlPlane/v1/sequence/sockshop")).await;
    assert!(listed(&states, &ended), "kept within its retention: {states}");
    // Past the retention: the next check (a quarter of it later at most) forgets the ended context.
    clock.advance(chrono::Duration::days(2));
    tokio::time::sleep(Duration::from_millis(50)).await;
    clock.advance(chrono::Duration::days(8));

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, states) = send(keelson.get("/api/controlPlane/v1/sequence/sockshop")).await;
        if !listed(&states, &ended) {
            assert!(listed(&states, &running), "a running sequence is kept: {states}");
            break;
        }
        assert!(Instant::now() < deadline, "the ended context was never forgotten");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = keelson.server.control_plane.storage.snapshots.scan_prefix("execution/sockshop/").await.unwrap();
    assert_eq!(stored.len(), 1, "only the running execution is still stored");
    let metrics = keelson.client.get(keelson.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("keelson_executions_forgotten_total"), "forgotten executions are counted");
    let (_, events) =
        send(keelson.get(&format!("/api/mongodb-datastore/event?project=sockshop&keptnContext={ended}"))).await;
    assert!(events["events"].as_array().unwrap().len() >= 3, "the events stay in the history: {events}");
}

#[actix_rt::test]
async fn a_sequence_whose_step_keeps_panicking_ends_errored_instead_of_looping() {
    let keelson = keelson_with_project(|_| {}).await;
    let victim = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    wait_for_triggered(&keelson, "deployment", &victim, 1).await;
    for _ in 0..3 {
        inject_panic(&keelson, &victim).await;
    }
    let execution = wait_for_state(&keelson, &victim, "dev", "finished").await;
    let (_, body) = send(keelson.get(&format!(
        "/api/mongodb-datastore/event?project=sockshop&keptnContext={victim}&type=sh.keptn.event.dev.delivery.finished"
    )))
    .await;
    let finished = &body["events"][0]["data"];
    assert_eq!(finished["status"], "errored", "{execution}");
    assert_eq!(finished["result"], "fail");
    let message = finished["message"].as_str().unwrap();
    assert!(message.contains("failed 3 times in a row") && message.contains("injected fault"), "{message}");
    // The service's slot is free again: the next delivery runs.
    let next = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    wait_for_triggered(&keelson, "deployment", &next, 1).await;
}

/// A sequence whose every step panics — ending it included — is quarantined: it takes no more input
/// and gives back its service's slot and its open task, so nothing waits for it.
#[actix_rt::test]
async fn a_sequence_that_cannot_even_be_ended_gives_back_its_slot_and_its_task() {
    let keelson = keelson_with_project(|_| {}).await;
    let victim = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    wait_for_triggered(&keelson, "deployment", &victim, 1).await;
    let queued = trigger(&keelson, "dev", "delivery", "carts", json!({})).await;
    let control = &keelson.server.control_plane.state.control;
    let id = control.executions("sockshop").into_iter().find(|e| e.scope.keptn_context == victim).unwrap().id.clone();
    assert!(control.break_execution("sockshop", &id).await);
    for _ in 0..3 {
        inject_panic(&keelson, &victim).await;
    }
    // Its open task is withdrawn and the queued delivery of the same service gets the slot.
    wait_for_triggered(&keelson, "deployment", &queued, 1).await;
    assert_not_triggered(&keelson, "deployment", &victim).await;
    // It was not ended (its stored state stays as it was) and takes no more input.
    let execution = executions(&keelson, &victim).await.remove(0);
    assert_eq!(execution["status"]["state"], "started", "{execution}");
    let (status, _) = send(
        keelson
            .post(&format!("/api/controlPlane/v1/sequence/sockshop/{victim}/control"))
            .json(&json!({ "state": "abort" })),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(executions(&keelson, &victim).await[0]["status"]["state"], "started");
    // The control plane goes on: the queued sequence runs to its end.
    run_task(&keelson, "deployment", &queued, "pass", json!({})).await;
}

#[actix_rt::test]
async fn durations_beyond_the_bound_are_refused_where_they_enter() {
    let keelson = keelson_with_project(|_| {}).await;
    let shipyard = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
              triggeredAfter: \"100000000000h\"
";
    let (status, body) = keelson.create_project("forever", shipyard).await;
    assert_error(status, &body, 400);
    assert!(body["message"].as_str().unwrap().contains("longer than the maximum"), "{body}");

    for body in [
        json!({ "timeframe": "100000000000h" }),
        json!({ "start": "2024-01-01T00:00:00Z", "timeframe": "100000000000h" }),
    ] {
        let (status, answer) = send(
            keelson.post("/api/controlPlane/v1/project/sockshop/stage/hardening/service/carts/evaluation").json(&body),
        )
        .await;
        assert_error(status, &answer, 400);
        assert!(answer["message"].as_str().unwrap().contains("invalid timeframe"), "{answer}");
    }
    // Far, but within the bound: accepted.
    let (status, body) = send(
        keelson
            .post("/api/controlPlane/v1/project/sockshop/stage/hardening/service/carts/evaluation")
            .json(&json!({ "start": "9999-12-31T00:00:00Z", "timeframe": "87840h" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[actix_rt::test]
async fn made_up_http_methods_cannot_grow_the_metrics() {
    let keelson = TestKeelson::start().await;
    for index in 0..200 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{index}").as_bytes()).unwrap();
        let _ = keelson.client.request(method, keelson.url("/health")).send().await.unwrap();
    }
    let metrics = keelson.client.get(keelson.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("MADEUP"), "a client-chosen method became a label");
    assert!(metrics.contains("method=\"other\""), "made-up methods are counted as other");
}

#[actix_rt::test]
async fn services_show_their_deployed_image_and_last_events_and_keep_them_across_a_restart() {
    let keelson = keelson_with_project(|_| {}).await;
    let image = json!({ "configurationChange": { "values": { "image": "docker.io/keptn/carts:0.13.2" } } });
    let context = trigger(&keelson, "dev", "delivery", "carts", image).await;
    let service = |stage: &str| format!("/api/controlPlane/v1/project/sockshop/stage/{stage}/service/carts");

    let deployment = wait_for_triggered(&keelson, "deployment", &context, 1).await.remove(0);
    let (_, before) = send(keelson.get(&service("dev"))).await;
    assert!(before.get("deployedImage").is_none(), "nothing is deployed before the deployment finished: {before}");
    assert_eq!(before["lastEventTypes"]["sh.keptn.event.deployment.triggered"]["eventId"], deployment["id"]);
    answer(&keelson, &deployment, "pass", "succeeded", json!({})).await;

    let (_, dev) = send(keelson.get(&service("dev"))).await;
    assert_eq!(dev["deployedImage"], "docker.io/keptn/carts:0.13.2", "{dev}");
    let finished = &dev["lastEventTypes"]["sh.keptn.event.deployment.finished"];
    assert_eq!(finished["keptnContext"], context.as_str());
    assert!(finished["eventId"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(finished["time"].as_str().is_some_and(|time| time.parse::<u128>().is_ok()), "unix nanos: {finished}");
    assert!(dev["lastEventTypes"].get("sh.keptn.event.dev.delivery.triggered").is_none(), "no sequence events");
    // Other stages and the expanded project agree.
    let (_, hardening) = send(keelson.get(&service("hardening"))).await;
    assert!(hardening.get("deployedImage").is_none(), "not deployed in hardening: {hardening}");
    let (_, project) = send(keelson.get("/api/controlPlane/v1/project/sockshop")).await;
    let carts_in_dev = project["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|stage| stage["stageName"] == "dev")
        .and_then(|stage| stage["services"].as_array().unwrap().iter().find(|s| s["serviceName"] == "carts"))
        .cloned()
        .unwrap();
    assert_eq!(carts_in_dev["deployedImage"], "docker.io/keptn/carts:0.13.2");

    // The executor's own source is kept, as Keptn keeps it.
    let (_, events) = send(keelson.get(&format!(
        "/api/mongodb-datastore/event?project=sockshop&keptnContext={context}&type=sh.keptn.event.deployment.finished"
    )))
    .await;
    assert_eq!(events["events"][0]["source"], "test-executor");

    // Activity is stored every second; store it now rather than wait.
    keelson.server.control_plane.state.projects.store_activity().await;
    let config = support::test_config(keelson.data_dir.path());
    let data_dir = keelson.stop().await;
    let keelson = TestKeelson::start_in(data_dir, config).await;
    let (_, after) = send(keelson.get(&service("dev"))).await;
    assert_eq!(after["deployedImage"], "docker.io/keptn/carts:0.13.2", "kept across a restart: {after}");
    assert_eq!(after["lastEventTypes"], dev["lastEventTypes"]);
    // A deleted service takes its activity with it.
    let (status, _) = send(keelson.delete("/api/controlPlane/v1/project/sockshop/service/carts")).await;
    assert_eq!(status, 200);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    let (_, fresh) = send(keelson.get(&service("dev"))).await;
    assert!(fresh.get("deployedImage").is_none() && fresh["lastEventTypes"] == json!({}), "{fresh}");
}
