//! The control plane on NATS JetStream: events published while Keelson is down wait in the stream and
//! are handled after a restart; hand-written JSON from other clients is understood; malformed messages
//! are dropped without stopping the router.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::process::spawn_keelson;
use support::{b64, send, servers};

const TOKEN: &str = "nats-token";

const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
metadata:
  name: on-nats
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: test
";

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        send(self.client.get(format!("{}{path}", self.base)).header("x-token", TOKEN)).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        send(self.client.post(format!("{}{path}", self.base)).header("x-token", TOKEN).json(body)).await
    }

    async fn wait_for_open(&self, task: &str, context: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self
                .get(&format!("/api/controlPlane/v1/event/triggered/sh.keptn.event.{task}.triggered?project=shop"))
                .await;
            assert_eq!(status, 200, "{body}");
            if let Some(event) = body["events"].as_array().unwrap().iter().find(|e| e["shkeptncontext"] == context) {
                return event.clone();
            }
            assert!(Instant::now() < deadline, "no {task}.triggered for {context}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Publishes `payload` on `subject` through JetStream, waiting until the stream has stored it.
async fn publish_stored(nats: &async_nats::Client, subject: &str, payload: Vec<u8>) {
    let context = async_nats::jetstream::new(nats.clone());
    context.publish(subject.to_owned(), payload.into()).await.unwrap().await.expect("stored in the keptn stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_keelson_is_down_are_handled_after_restart() {
    // A raised `max_payload` so that a 10 MiB message reaches Keelson at all.
    let nats = servers::nats_with_config("max_payload: 12MB");
    let data_dir = tempfile::tempdir().unwrap();
    let vars = [("KEELSON_NATS_URL", nats.url.clone()), ("KEELSON_API_TOKEN", TOKEN.to_owned())];
    let first = spawn_keelson(data_dir.path(), &vars);
    let api = Api { base: first.base.clone(), client: reqwest::Client::new() };
    let (status, body) =
        api.post("/api/controlPlane/v1/project", &json!({ "name": "shop", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = api.post("/api/controlPlane/v1/project/shop/service", &json!({ "serviceName": "carts" })).await;
    assert_eq!(status, 200);
    let (status, body) = api
        .post(
            "/api/v1/event",
            &json!({
                "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci",
                "data": { "project": "shop", "stage": "dev", "service": "carts" },
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let context = body["keptnContext"].as_str().unwrap().to_owned();
    let deployment = api.wait_for_open("deployment", &context).await;
    first.kill_hard();

    // A Go service answers while Keelson is down: hand-written JSON, Go's time format, `datacontenttype`.
    let client = async_nats::connect(&nats.url).await.unwrap();
    for (kind, extra) in [("started", json!({})), ("finished", json!({ "result": "pass", "status": "succeeded" }))] {
        let mut data = json!({ "project": "shop", "stage": "dev", "service": "carts" });
        data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let event = json!({
            "specversion": "1.0", "id": format!("go-{kind}-1"), "source": "helm-service",
            "type": format!("sh.keptn.event.deployment.{kind}"), "datacontenttype": "application/json",
            "time": "2026-01-02T03:04:05.123456Z", "shkeptncontext": context, "triggeredid": deployment["id"],
            "shkeptnspecversion": "0.2.4", "data": data,
        });
        publish_stored(&client, &format!("sh.keptn.event.deployment.{kind}"), serde_json::to_vec(&event).unwrap())
            .await;
    }
    // Poison: not JSON, JSON without an id, 10 MiB.
    publish_stored(&client, "sh.keptn.event.deployment.finished", b"{not json".to_vec()).await;
    publish_stored(
        &client,
        "sh.keptn.event.deployment.finished",
        br#"{"type":"sh.keptn.event.deployment.finished"}"#.to_vec(),
    )
    .await;
    let mut huge =
        serde_json::to_vec(&json!({ "type": "sh.keptn.event.deployment.finished", "id": "huge", "data": {} })).unwrap();
    huge.resize(10 * 1024 * 1024, b' ');
    publish_stored(&client, "sh.keptn.event.deployment.finished", huge).await;

    let second = spawn_keelson(data_dir.path(), &vars);
    let api = Api { base: second.base.clone(), client: reqwest::Client::new() };
    // The answers waiting in the stream complete the deployment, and the sequence moves on.
    let test = api.wait_for_open("test", &context).await;
    assert_eq!(test["data"]["service"], "carts");
    let (status, body) =
        api.get(&format!("/api/mongodb-datastore/event?project=shop&keptnContext={context}&source=helm-service")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalCount"], 2, "both executor events stored once: {body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = api.client.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
        let malformed: f64 = metrics
            .lines()
            .find(|line| line.starts_with("keelson_bus_malformed_events_total"))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0);
        assert!(malformed <= 3.0, "each malformed message counted once: {malformed}");
        if malformed == 3.0 {
            break;
        }
        assert!(Instant::now() < deadline, "malformed messages not all counted: {malformed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everything published was delivered (events the killed process held unacknowledged come back after
    // the ack wait).
    let jetstream = async_nats::jetstream::new(client.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            jetstream.get_consumer_from_stream("keelson-control-plane", "keptn").await.unwrap();
        let info = consumer.info().await.unwrap();
        if info.num_pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "messages left undelivered: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_sequence_loses_nothing() {
    let mut nats = servers::nats();
    let data_dir = tempfile::tempdir().unwrap();
    let vars = [("KEELSON_NATS_URL", nats.url.clone()), ("KEELSON_API_TOKEN", TOKEN.to_owned())];
    let keelson = spawn_keelson(data_dir.path(), &vars);
    let api = Api { base: keelson.base.clone(), client: reqwest::Client::new() };
    let (status, _) =
        api.post("/api/controlPlane/v1/project", &json!({ "name": "shop", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(status, 201);
    let (status, _) = api.post("/api/controlPlane/v1/project/shop/service", &json!({ "serviceName": "carts" })).await;
    assert_eq!(status, 200);
    let trigger = json!({
        "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci",
        "data": { "project": "shop", "stage": "dev", "service": "carts" },
    });
    let (status, body) = api.post("/api/v1/event", &trigger).await;
    assert_eq!(status, 200, "{body}");
    let context = body["keptnContext"].as_str().unwrap().to_owned();
    let deployment = api.wait_for_open("deployment", &context).await;

    nats.kill();
    // While NATS is away the API refuses events instead of accepting what it cannot forward.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = api.post("/api/v1/event", &trigger).await;
        if status == 503 {
            assert!(body["message"].as_str().unwrap().contains("nats"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "events still accepted with nats down: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nats.restart();

    // The executor answers over NATS once it is back; Keelson has reconnected and carries on.
    let client = async_nats::connect(&nats.url).await.unwrap();
    let finished = json!({
        "specversion": "1.0", "id": "after-restart-1", "source": "helm-service",
        "type": "sh.keptn.event.deployment.finished", "shkeptncontext": context, "triggeredid": deployment["id"],
        "data": { "project": "shop", "stage": "dev", "service": "carts", "result": "pass", "status": "succeeded" },
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let context_for_publish = async_nats::jetstream::new(client.clone());
        let stored = context_for_publish
            .publish("sh.keptn.event.deployment.finished", serde_json::to_vec(&finished).unwrap().into())
            .await;
        if let Ok(ack) = stored {
            if ack.await.is_ok() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the keptn stream did not come back with nats");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let test = api.wait_for_open("test", &context).await;
    assert_eq!(test["shkeptncontext"], context.as_str());
    let (status, body) = api.post("/api/v1/event", &trigger).await;
    assert_eq!(status, 200, "events are accepted again: {body}");
}

/// Two services written with `keelson::sdk`, one on NATS and one polling the HTTP API, run a sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_services_on_nats_and_http_run_a_sequence_together() {
    use keelson::sdk::{Service, TaskError};
    let nats = servers::nats();
    let data_dir = tempfile::tempdir().unwrap();
    let vars = [("KEELSON_NATS_URL", nats.url.clone()), ("KEELSON_API_TOKEN", TOKEN.to_owned())];
    let keelson = spawn_keelson(data_dir.path(), &vars);
    let api = Api { base: keelson.base.clone(), client: reqwest::Client::new() };
    let (status, _) =
        api.post("/api/controlPlane/v1/project", &json!({ "name": "shop", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(status, 201);
    for service in ["carts", "orders"] {
        let (status, _) =
            api.post("/api/controlPlane/v1/project/shop/service", &json!({ "serviceName": service })).await;
        assert_eq!(status, 200);
    }

    let deployer = Service::new("sdk-deployer", "deployment")
        .over_nats(nats.url.clone())
        .register_with(keelson.base.clone(), TOKEN)
        .filter(&["shop"], &[], &[])
        .run(|task| async move { Ok(json!({ "deployment": { "deployedBy": "nats", "service": task.service() } })) });
    let tester = Service::new("sdk-tester", "test").over_http(keelson.base.clone(), TOKEN).run(|task| async move {
        match task.service() {
            "orders" => Err(TaskError::new("orders tests failed")),
            _ => Ok(json!({ "result": "warning", "test": { "deployedBy": task.data()["deployment"]["deployedBy"] } })),
        }
    });
    let services = [tokio::spawn(deployer), tokio::spawn(tester)];
    // Both are ready once registered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.get("/api/controlPlane/v1/uniform/registration").await.1.as_array().map_or(0, Vec::len) < 2 {
        assert!(Instant::now() < deadline, "the services did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut contexts = Vec::new();
    for service in ["carts", "orders"] {
        let trigger = json!({
            "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci",
            "data": { "project": "shop", "stage": "dev", "service": service },
        });
        let (status, body) = api.post("/api/v1/event", &trigger).await;
        assert_eq!(status, 200, "{body}");
        contexts.push(body["keptnContext"].as_str().unwrap().to_owned());
    }
    let finished = |context: String| {
        let api = &api;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (_, body) = api
                    .get(&format!(
                        "/api/mongodb-datastore/event?project=shop&keptnContext={context}&type=sh.keptn.event.dev.delivery.finished"
                    ))
                    .await;
                if let Some(event) = body["events"].as_array().and_then(|events| events.first()) {
                    return event.clone();
                }
                if Instant::now() > deadline {
                    let (_, all) =
                        api.get(&format!("/api/mongodb-datastore/event?project=shop&keptnContext={context}")).await;
                    let types: Vec<&str> =
                        all["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
                    panic!("sequence {context} did not finish: {types:?}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let carts = finished(contexts[0].clone()).await;
    assert_eq!(carts["data"]["result"], "warning", "{carts}");
    let (_, tests) = api
        .get(&format!(
            "/api/mongodb-datastore/event?project=shop&keptnContext={}&type=sh.keptn.event.test.finished",
            contexts[0]
        ))
        .await;
    let test_finished = &tests["events"][0];
    assert_eq!(
        test_finished["data"]["test"]["deployedBy"], "nats",
        "data from the NATS service reached the HTTP one: {test_finished}"
    );
    let orders = finished(contexts[1].clone()).await;
    assert_eq!(orders["data"]["result"], "fail", "{orders}");
    assert_eq!(orders["data"]["status"], "errored", "{orders}");
    assert_eq!(orders["data"]["message"], "orders tests failed", "{orders}");

    let (_, integrations) = api.get("/api/controlPlane/v1/uniform/registration").await;
    let mut names: Vec<&str> = integrations.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["sdk-deployer", "sdk-tester"]);
    for service in services {
        service.abort();
    }
}
