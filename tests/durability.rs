//! Durable state: sequences survive `kill -9` of the binary (on Redis + a MongoDB-compatible server, and
//! on the embedded store), and a Redis outage mid-sequence loses nothing.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::process::{spawn_keelson, Process, ProcessApi};
use support::{b64, send, servers, TestKeelson};

const TOKEN: &str = "durability-token";

/// Two stages chained; the dev sequence has two tasks so a crash can fall between them.
const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
metadata:
  name: durable
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: test
    - name: staging
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
";

const SERVICES: [&str; 3] = ["carts", "orders", "users"];
/// Sequences per service: the second of each queues behind the first.
const PER_SERVICE: usize = 2;

/// What this file's executor asks of the API.
impl ProcessApi {
    /// Open `.triggered` events of `task` in the project.
    async fn open_tasks(&self, task: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!(
                "/api/controlPlane/v1/event/triggered/sh.keptn.event.{task}.triggered?project=shop&pageSize=100"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().cloned().unwrap_or_default()
    }

    /// Answers `triggered` as an executor would: `.started`, then a passing `.finished`.
    async fn answer(&self, triggered: &Value) {
        let task =
            triggered["type"].as_str().unwrap().trim_start_matches("sh.keptn.event.").trim_end_matches(".triggered");
        let scope =
            json!({ "project": "shop", "stage": triggered["data"]["stage"], "service": triggered["data"]["service"] });
        for (kind, extra) in [("started", json!({})), ("finished", json!({ "result": "pass", "status": "succeeded" }))]
        {
            let mut data = scope.clone();
            data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let event = json!({
                "type": format!("sh.keptn.event.{task}.{kind}"), "source": "executor",
                "shkeptncontext": triggered["shkeptncontext"], "triggeredid": triggered["id"], "data": data,
            });
            let (status, body) = self.post("/api/v1/event", &event).await;
            assert_eq!(status, 200, "{body}");
        }
    }

    async fn context_events(&self, context: &str) -> Vec<Value> {
        let (status, body) =
            self.get(&format!("/api/mongodb-datastore/event?project=shop&keptnContext={context}&pageSize=100")).await;
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().cloned().unwrap_or_default()
    }
}

fn set_up(api_vars: &[(&str, String)], data_dir: &std::path::Path) -> Process {
    let mut vars = api_vars.to_vec();
    vars.push(("KEELSON_API_TOKEN", TOKEN.to_owned()));
    spawn_keelson(data_dir, &vars)
}

/// Every `(context, stage, task)` answered so far, with the `.triggered` id the executor saw.
type Answered = HashMap<(String, String, String), String>;

/// Answers open tasks until `done` says stop; checks no task is triggered twice with different ids.
async fn answer_until(api: &ProcessApi, answered: &mut Answered, done: impl Fn(&Answered) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(answered) {
        assert!(Instant::now() < deadline, "sequences stalled; answered so far: {}", answered.len());
        let mut progressed = false;
        let mut open = Vec::new();
        for task in ["deployment", "test"] {
            open.extend(api.open_tasks(task).await);
        }
        // One running sequence per service and stage, before and after the restart.
        let mut running = HashSet::new();
        for triggered in &open {
            let slot = (triggered["data"]["stage"].as_str().unwrap(), triggered["data"]["service"].as_str().unwrap());
            assert!(running.insert(slot), "two sequences run at once for {slot:?}");
        }
        for task in ["deployment", "test"] {
            for triggered in open.iter().filter(|event| event["type"] == format!("sh.keptn.event.{task}.triggered")) {
                let key = (
                    triggered["shkeptncontext"].as_str().unwrap().to_owned(),
                    triggered["data"]["stage"].as_str().unwrap().to_owned(),
                    task.to_owned(),
                );
                let id = triggered["id"].as_str().unwrap().to_owned();
                if let Some(previous) = answered.get(&key) {
                    assert_eq!(previous, &id, "task {key:?} triggered again with a new id");
                }
                answered.insert(key, id);
                api.answer(triggered).await;
                progressed = true;
                if done(answered) {
                    return;
                }
            }
        }
        if !progressed {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs sequences half-way, kills the process hard, restarts it on the same stores and finishes them.
async fn sequences_survive_a_hard_kill(vars: &[(&str, String)]) {
    let data_dir = tempfile::tempdir().unwrap();
    let first = set_up(vars, data_dir.path());
    let api = ProcessApi::new(&first, TOKEN);
    let (status, body) =
        api.post("/api/controlPlane/v1/project", &json!({ "name": "shop", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(status, 201, "{body}");
    for service in SERVICES {
        let (status, body) =
            api.post("/api/controlPlane/v1/project/shop/service", &json!({ "serviceName": service })).await;
        assert_eq!(status, 200, "{body}");
    }
    let mut contexts = Vec::new();
    for round in 0..PER_SERVICE {
        for service in SERVICES {
            let trigger = json!({
                "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci",
                "data": { "project": "shop", "stage": "dev", "service": service, "round": round },
            });
            let (status, body) = api.post("/api/v1/event", &trigger).await;
            assert_eq!(status, 200, "{body}");
            contexts.push(body["keptnContext"].as_str().unwrap().to_owned());
        }
    }
    // Half-way: the first sequence of each service has deployed and waits in `test`; one is paused.
    let mut answered = Answered::new();
    answer_until(&api, &mut answered, |answered| answered.len() >= SERVICES.len()).await;
    let paused = contexts[0].clone();
    let (status, body) =
        api.post(&format!("/api/controlPlane/v1/sequence/shop/{paused}/control"), &json!({ "state": "pause" })).await;
    assert_eq!(status, 200, "{body}");
    first.kill_hard();

    let second = set_up(vars, data_dir.path());
    let api = ProcessApi::new(&second, TOKEN);
    // The pause survived: the paused context's test task is not dispatched again, and its state says so.
    let (status, body) = api.get(&format!("/api/controlPlane/v1/sequence/shop?keptnContext={paused}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["states"][0]["state"], "paused", "{body}");
    let every_context_finished = |answered: &Answered| {
        contexts
            .iter()
            .filter(|context| **context != paused)
            .all(|context| answered.contains_key(&(context.clone(), "staging".into(), "deployment".into())))
    };
    answer_until(&api, &mut answered, every_context_finished).await;
    let (status, body) =
        api.post(&format!("/api/controlPlane/v1/sequence/shop/{paused}/control"), &json!({ "state": "resume" })).await;
    assert_eq!(status, 200, "{body}");
    answer_until(&api, &mut answered, |answered| {
        contexts.iter().all(|context| answered.contains_key(&(context.clone(), "staging".into(), "deployment".into())))
    })
    .await;

    // Every sequence finished in both stages, and the history holds each event once: no `.triggered`
    // was emitted twice with different ids.
    let deadline = Instant::now() + Duration::from_secs(30);
    for context in &contexts {
        loop {
            let events = api.context_events(context).await;
            let types: Vec<&str> = events.iter().filter_map(|event| event["type"].as_str()).collect();
            if types.contains(&"sh.keptn.event.staging.delivery.finished") {
                let mut ids = HashSet::new();
                let mut triggered_per_task: HashMap<(String, String), usize> = HashMap::new();
                for event in &events {
                    assert!(ids.insert(event["id"].as_str().unwrap().to_owned()), "event stored twice: {event}");
                    let event_type = event["type"].as_str().unwrap();
                    if event_type.ends_with(".triggered") {
                        let stage = event["data"]["stage"].as_str().unwrap_or_default().to_owned();
                        *triggered_per_task.entry((event_type.to_owned(), stage)).or_default() += 1;
                    }
                }
                for (task, count) in &triggered_per_task {
                    assert_eq!(*count, 1, "{task:?} triggered {count} times in context {context}");
                }
                assert!(types.contains(&"sh.keptn.event.dev.delivery.finished"), "{types:?}");
                for task in ["deployment", "test"] {
                    let finished = format!("sh.keptn.event.{task}.finished");
                    assert!(types.contains(&finished.as_str()), "{finished} missing in {types:?}");
                }
                break;
            }
            assert!(Instant::now() < deadline, "context {context} did not finish: {types:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, body) = api.get(&format!("/api/controlPlane/v1/sequence/shop?keptnContext={context}")).await;
        assert_eq!(status, 200);
        let states: Vec<&str> = body["states"].as_array().unwrap().iter().filter_map(|s| s["state"].as_str()).collect();
        assert_eq!(states, ["finished"], "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_survive_kill_9_on_redis_and_mongodb() {
    let redis = servers::redis();
    let mongo = servers::secantus();
    sequences_survive_a_hard_kill(&[
        ("KEELSON_REDIS_URL", redis.url.clone()),
        ("KEELSON_MONGODB_URL", mongo.url.clone()),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_survive_kill_9_on_the_embedded_store() {
    sequences_survive_a_hard_kill(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_deadline_fires_after_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let vars = [("KEELSON_TASK_STARTED_TIMEOUT", "2s".to_owned())];
    let first = set_up(&vars, data_dir.path());
    let api = ProcessApi::new(&first, TOKEN);
    let (status, body) =
        api.post("/api/controlPlane/v1/project", &json!({ "name": "shop", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = api.post("/api/controlPlane/v1/project/shop/service", &json!({ "serviceName": "carts" })).await;
    assert_eq!(status, 200);
    let trigger = json!({
        "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci",
        "data": { "project": "shop", "stage": "dev", "service": "carts" },
    });
    let (status, body) = api.post("/api/v1/event", &trigger).await;
    assert_eq!(status, 200, "{body}");
    let context = body["keptnContext"].as_str().unwrap().to_owned();
    first.kill_hard();
    // Down for longer than the timeout: the deadline passed while nothing ran.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let second = set_up(&vars, data_dir.path());
    let api = ProcessApi::new(&second, TOKEN);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = api.get(&format!("/api/controlPlane/v1/sequence/shop?keptnContext={context}")).await;
        assert_eq!(status, 200, "{body}");
        if body["states"][0]["state"] == "timedOut" {
            break;
        }
        assert!(Instant::now() < deadline, "the stored deadline did not fire after the restart: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = api.context_events(&context).await;
    let finished: Vec<&Value> =
        events.iter().filter(|event| event["type"] == "sh.keptn.event.dev.delivery.finished").collect();
    assert_eq!(finished.len(), 1, "one .finished for the timed-out sequence");
    assert_eq!(finished[0]["data"]["result"], "fail", "{}", finished[0]);
}

#[actix_rt::test]
async fn a_redis_outage_mid_sequence_answers_202_then_503_and_loses_nothing() {
    let mut redis = servers::redis_persistent();
    let (keelson, context, deployment) = delivery_on_redis(&redis).await;
    let store = keelson::store::redis::RedisSnapshotStore::connect(&redis.url).await.unwrap();
    let stored_record = || async {
        use keelson::store::SnapshotStore as _;
        // The test's own connection fails once after the restart, then reconnects.
        let mut attempts = 0;
        let records = loop {
            match store.scan_prefix("execution/shop/").await {
                Ok(records) => break records,
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    eprintln!("reading redis: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("redis unreadable: {error}"),
            }
        };
        assert_eq!(records.len(), 1, "one execution stored");
        serde_json::from_slice::<Value>(&records[0].1).unwrap()
    };
    // Settled: the published `.triggered` has left the stored outbox, so no write is pending.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stored_record().await["outbox"] != json!([]) {
        assert!(Instant::now() < deadline, "outbox never confirmed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    redis.kill();
    let started = json!({
        "type": "sh.keptn.event.deployment.started", "source": "executor", "shkeptncontext": context,
        "triggeredid": deployment["id"], "data": { "project": "shop", "stage": "dev", "service": "carts" },
    });
    let (status, body) = send(keelson.post("/api/v1/event").json(&started)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["keptnContext"], context);
    // The store was healthy when it arrived: accepted, applied in memory, stored once Redis is back.
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("event accepted but not yet stored (redis is unavailable"), "{body}");
    // Now that the outage is known, new work is refused at once, with the same clear message.
    let finished = json!({
        "type": "sh.keptn.event.deployment.finished", "source": "executor", "shkeptncontext": context,
        "triggeredid": deployment["id"],
        "data": { "project": "shop", "stage": "dev", "service": "carts", "result": "pass", "status": "succeeded" },
    });
    let refused_at = Instant::now();
    let (status, body) = send(keelson.post("/api/v1/event").json(&finished)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("event not accepted: redis is unavailable"), "{body}");
    assert!(refused_at.elapsed() < Duration::from_secs(2), "refused without waiting");
    let (status, body) = keelson.create_service("shop", "orders").await;
    assert_eq!(status, 503, "{body}");

    redis.restart();
    // Work resumes by itself: the `.started` accepted during the outage reaches Redis…
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let record = stored_record().await;
        assert_eq!(record["schemaVersion"], 1);
        let events = &record["execution"]["current_task"]["events"];
        if events[0]["event_type"] == "sh.keptn.event.deployment.started" {
            break;
        }
        assert!(Instant::now() < deadline, "the accepted .started never reached redis: {record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // …and new events are accepted again once the store answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = send(keelson.post("/api/v1/event").json(&finished)).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "still refused 20s after redis came back: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let test = keelson.wait_for_open("shop", "test", &context).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let record = stored_record().await;
        if record["execution"]["current_task"]["triggered_event"]["id"] == test["id"] {
            break;
        }
        assert!(Instant::now() < deadline, "stored record not current: {record}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Keelson on `redis` with project `shop`, a running delivery for `carts`, and its open deployment.
async fn delivery_on_redis(redis: &servers::ChildServer) -> (TestKeelson, String, Value) {
    let url = redis.url.parse().unwrap();
    let keelson = TestKeelson::start_with(|config| config.redis_url = Some(url)).await;
    assert_eq!(keelson.create_project("shop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("shop", "carts").await.0, 200);
    let context = keelson.trigger_delivery("shop", "carts").await;
    let deployment = keelson.wait_for_open("shop", "deployment", &context).await;
    (keelson, context, deployment)
}

#[actix_rt::test]
async fn a_retried_finished_waits_for_the_close_it_repeats() {
    let redis = servers::redis();
    let (keelson, context, deployment) = delivery_on_redis(&redis).await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Redis stalls: the step that closes the task cannot become durable.
    redis.pause();
    let finished = json!({
        "id": "finished-1", "type": "sh.keptn.event.deployment.finished", "source": "executor",
        "shkeptncontext": context, "triggeredid": deployment["id"],
        "data": { "project": "shop", "stage": "dev", "service": "carts", "result": "pass", "status": "succeeded" },
    });
    let first = tokio::spawn(send(keelson.post("/api/v1/event").json(&finished)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The client's retry (same event) must not be told "done" while the close is not durable.
    let retry = tokio::time::timeout(Duration::from_secs(3), send(keelson.post("/api/v1/event").json(&finished))).await;
    if let Ok((status, body)) = &retry {
        assert_ne!(*status, 200, "a retry answered 200 while its effect was not durable: {body}");
    }
    redis.resume();
    let (status, body) = first.await.unwrap();
    assert!(status == 200 || status == 202, "{status} {body}");
    // The close went through once: the next task is open, exactly once.
    let test = keelson.wait_for_open("shop", "test", &context).await;
    // The history confirms the `.triggered` shortly after it is published.
    let path =
        format!("/api/mongodb-datastore/event?project=shop&keptnContext={context}&type=sh.keptn.event.test.triggered");
    let deadline = Instant::now() + Duration::from_secs(5);
    let history = loop {
        let (_, history) = send(keelson.get(&path)).await;
        if history["events"].as_array().is_some_and(|events| !events.is_empty()) || Instant::now() > deadline {
            break history;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(history["events"].as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!(history["events"][0]["id"], test["id"]);
    let (status, body) = send(keelson.post("/api/v1/event").json(&finished)).await;
    assert_eq!(status, 200, "a late duplicate of a durable close is harmless: {body}");
}

#[actix_rt::test]
async fn a_sequence_is_stored_only_after_its_trigger_is_in_the_history() {
    let redis = servers::redis();
    let mongo = servers::secantus();
    let (redis_url, mongo_url) = (redis.url.parse().unwrap(), mongo.url.clone());
    let keelson = TestKeelson::start_with(|config| {
        config.redis_url = Some(redis_url);
        config.mongodb_url = Some(mongo_url);
    })
    .await;
    assert_eq!(keelson.create_project("shop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("shop", "carts").await.0, 200);
    let store = keelson::store::redis::RedisSnapshotStore::connect(&redis.url).await.unwrap();
    let executions = || async {
        use keelson::store::SnapshotStore as _;
        store.scan_prefix("execution/shop/").await.unwrap().len()
    };

    // The history stalls: a trigger cannot reach it, so its sequence must not become durable either
    // (a crash now would leave a sequence whose trigger the history never had).
    mongo.pause();
    let trigger = json!({
        "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci",
        "data": { "project": "shop", "stage": "dev", "service": "carts" },
    });
    let posted = tokio::spawn(send(keelson.post("/api/v1/event").json(&trigger)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(executions().await, 0, "the execution was stored before its trigger");
    mongo.resume();
    let (status, body) = posted.await.unwrap();
    assert!(status == 200 || status == 202, "{status} {body}");
    let context = body["keptnContext"].as_str().unwrap().to_owned();
    keelson.wait_for_open("shop", "deployment", &context).await;
    assert_eq!(executions().await, 1);
    let (_, history) = send(keelson.get(&format!(
        "/api/mongodb-datastore/event?project=shop&keptnContext={context}&type=sh.keptn.event.dev.delivery.triggered"
    )))
    .await;
    assert_eq!(history["events"].as_array().map(Vec::len), Some(1), "{history}");
}

/// The short crash and fault loop: one kill, one Redis outage (clients retry after 503) and one pause,
/// under steady load on NATS + Redis; then every acknowledged sequence must have finished exactly once.
#[actix_rt::test]
async fn acknowledged_sequences_finish_exactly_once_through_a_kill_an_outage_and_a_pause() {
    use support::chaos::{self, Backends, Fault, Plan};
    let report = chaos::run(Plan {
        binary: support::process::BINARY.into(),
        backends: Backends::NatsRedis,
        script: Some(vec![Fault::Kill, Fault::RestartRedis, Fault::Pause]),
        random_faults: Vec::new(),
        duration: Duration::ZERO,
        gap: (Duration::from_secs(3), Duration::from_secs(3)),
        trigger_clients: 3,
        volume_mib: None,
        drain_timeout: Duration::from_secs(60),
    })
    .await;
    eprintln!("{report:?}");
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert!(report.acknowledged >= 20, "too little load to mean anything: {report:?}");
    assert_eq!(report.audited_ok, report.acknowledged);
    assert!(
        report.statuses.get(&503).copied().unwrap_or(0) + report.statuses.get(&0).copied().unwrap_or(0) > 0,
        "the faults were felt: {report:?}"
    );
    assert!(report.retries_after_503 > 0, "clients retried: {report:?}");
}
