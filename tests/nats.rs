//! The control plane on NATS JetStream: events published while Keelson is down wait in the stream and
//! are handled after a restart; hand-written JSON from other clients is understood; malformed messages
//! are dropped without stopping the router.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::process::{spawn_keelson, ProcessApi};
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

/// What this file's tests ask of the API.
impl ProcessApi {
    async fn wait_for_open(&self, task: &str, context: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(25);
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
    let api = ProcessApi::new(&first, TOKEN);
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
    let second = spawn_keelson(data_dir.path(), &vars);
    let api = ProcessApi::new(&second, TOKEN);
    // The answers waiting in the stream complete the deployment, and the sequence moves on. (NATS may
    // have handed some of them to the killed process's open pull request; those come again after the
    // 10 s ack wait.)
    let test = api.wait_for_open("test", &context).await;
    assert_eq!(test["data"]["service"], "carts");
    let (status, body) =
        api.get(&format!("/api/mongodb-datastore/event?project=shop&keptnContext={context}&source=helm-service")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalCount"], 2, "both executor events stored once: {body}");
    // Poison, one at a time while Keelson runs: each is counted and acknowledged, and the router goes on.
    let malformed = || async {
        let metrics = reqwest::get(format!("{}/metrics", api.base)).await.unwrap().text().await.unwrap();
        metrics
            .lines()
            .find(|line| line.starts_with("keelson_bus_malformed_events_total"))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut huge =
        serde_json::to_vec(&json!({ "type": "sh.keptn.event.test.finished", "id": "huge", "data": {} })).unwrap();
    huge.resize(10 * 1024 * 1024, b' ');
    let poisons: [Vec<u8>; 3] =
        [b"{not json".to_vec(), br#"{"type":"sh.keptn.event.test.finished","data":{}}"#.to_vec(), huge];
    for (index, poison) in poisons.into_iter().enumerate() {
        publish_stored(&client, "sh.keptn.event.test.finished", poison).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while malformed().await < (index + 1) as f64 {
            assert!(Instant::now() < deadline, "malformed message {index} not counted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(malformed().await, 3.0, "each malformed message counted once");
    let finished = json!({
        "specversion": "1.0", "id": "go-test-finished", "source": "jmeter-service",
        "type": "sh.keptn.event.test.finished", "shkeptncontext": context, "triggeredid": test["id"],
        "data": { "project": "shop", "stage": "dev", "service": "carts", "result": "pass", "status": "succeeded" },
    });
    publish_stored(&client, "sh.keptn.event.test.finished", serde_json::to_vec(&finished).unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = api
            .get(&format!("/api/mongodb-datastore/event?project=shop&keptnContext={context}&type=sh.keptn.event.dev.delivery.finished"))
            .await;
        if body["events"].as_array().is_some_and(|events| !events.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the sequence did not finish after the poison messages");
        tokio::time::sleep(Duration::from_millis(50)).await;
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
    let api = ProcessApi::new(&keelson, TOKEN);
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
    let api = ProcessApi::new(&keelson, TOKEN);
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

/// One project's backlog does not hold up another's events: the router queues per project.
#[actix_rt::test]
async fn a_backed_up_project_does_not_stall_the_others() {
    let nats = servers::nats();
    let url = nats.url.parse().unwrap();
    let keelson = support::TestKeelson::start_with(|config| config.nats_url = Some(url)).await;
    for project in ["slow", "fast"] {
        assert_eq!(keelson.create_project(project, SHIPYARD).await.0, 201);
        assert_eq!(keelson.create_service(project, "carts").await.0, 200);
    }
    let control = keelson.server.control_plane.state.control.clone();
    let freeze = Duration::from_secs(5);
    control.freeze_project("slow", freeze).await;
    let frozen_until = Instant::now() + freeze;

    // More triggers for the frozen project than its mailbox holds, then one for another project.
    let client = async_nats::connect(&nats.url).await.unwrap();
    let trigger = |project: &str| {
        let event = json!({
            "specversion": "1.0", "id": uuid::Uuid::new_v4().to_string(), "source": "ci",
            "type": "sh.keptn.event.dev.delivery.triggered", "shkeptncontext": uuid::Uuid::new_v4().to_string(),
            "data": { "project": project, "stage": "dev", "service": "carts" },
        });
        serde_json::to_vec(&event).unwrap()
    };
    let backlog = 1500;
    for _ in 0..backlog {
        client.publish("sh.keptn.event.dev.delivery.triggered", trigger("slow").into()).await.unwrap();
    }
    client.publish("sh.keptn.event.dev.delivery.triggered", trigger("fast").into()).await.unwrap();
    client.flush().await.unwrap();

    loop {
        let (status, body) =
            send(keelson.get("/api/controlPlane/v1/event/triggered/sh.keptn.event.deployment.triggered?project=fast"))
                .await;
        assert_eq!(status, 200, "{body}");
        if !body["events"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < frozen_until, "the other project waited for the frozen one");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(Instant::now() < frozen_until, "served while the slow project was still frozen");

    // Once it thaws, the backed-up project gets every one of its events.
    let deadline = frozen_until + Duration::from_secs(30);
    while control.executions("slow").len() < backlog {
        assert!(Instant::now() < deadline, "only {} of {backlog} sequences started", control.executions("slow").len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An in-process Keelson on a fresh nats-server with the project `shop` and its service `carts`, and a
/// NATS client of that server.
async fn shop_on_nats() -> (servers::ChildServer, support::TestKeelson, async_nats::Client) {
    let nats = servers::nats();
    let url = nats.url.parse().unwrap();
    let keelson = support::TestKeelson::start_with(|config| config.nats_url = Some(url)).await;
    assert_eq!(keelson.create_project("shop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("shop", "carts").await.0, 200);
    let client = async_nats::connect(&nats.url).await.unwrap();
    (nats, keelson, client)
}

/// On NATS too, an event posted over HTTP is recorded once and routed once: it is published for other
/// subscribers, and the control plane's JetStream consumer, which receives it as well, leaves it alone.
#[actix_rt::test]
async fn an_event_posted_over_http_is_stored_once_and_routed_once_on_nats() {
    let (_nats, keelson, client) = shop_on_nats().await;
    let context = keelson.trigger_delivery("shop", "carts").await;
    let triggered = keelson.wait_for_open("shop", "deployment", &context).await;
    let mut subscriber = client.subscribe("sh.keptn.event.deployment.started").await.unwrap();
    client.flush().await.unwrap();
    let control = keelson.server.control_plane.state.control.clone();
    let (recorded, delivered) = control.routing_counts();

    let started = json!({
        "type": "sh.keptn.event.deployment.started", "source": "test-executor",
        "shkeptncontext": context, "triggeredid": triggered["id"],
        "data": { "project": "shop", "stage": "dev", "service": "carts" },
    });
    let (status, body) = send(keelson.post("/api/v1/event").json(&started)).await;
    assert_eq!(status, 200, "{body}");
    use futures_util::StreamExt as _;
    let message = tokio::time::timeout(Duration::from_secs(5), subscriber.next())
        .await
        .expect("other subscribers receive the event")
        .unwrap();
    let forwarded: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!((&forwarded["source"], &forwarded["triggeredid"]), (&json!("test-executor"), &triggered["id"]));
    // The stream keeps it and the consumer receives it; give it time to (not) route it again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (recorded_after, delivered_after) = control.routing_counts();
    assert_eq!(recorded_after - recorded, 1, "history inserts for one event");
    assert_eq!(delivered_after - delivered, 1, "deliveries to actors for one event");
}

#[actix_rt::test]
async fn a_stream_from_an_earlier_release_gets_the_current_subjects() {
    let nats = support::servers::nats();
    let client = async_nats::connect(&nats.url).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: keelson::bus::nats::STREAM.to_owned(),
            subjects: vec!["sh.keptn.event.*.finished".to_owned()],
            retention: async_nats::jetstream::stream::RetentionPolicy::Interest,
            ..Default::default()
        })
        .await
        .unwrap();
    let url = nats.url.parse().unwrap();
    let _keelson = support::TestKeelson::start_with(|config| config.nats_url = Some(url)).await;
    let mut stream = jetstream.get_stream(keelson::bus::nats::STREAM).await.unwrap();
    let subjects = stream.info().await.unwrap().config.subjects.clone();
    let expected: Vec<String> = keelson::bus::nats::STREAM_SUBJECTS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(subjects, expected);
}

/// The control plane's own events are marked as stored and applied, so its consumer acknowledges them
/// without reading them; other clients' events are not marked.
#[actix_rt::test]
async fn own_events_are_marked_routed_and_consumed_unread() {
    let (_nats, keelson, client) = shop_on_nats().await;
    let mut triggered = client.subscribe("sh.keptn.event.deployment.triggered").await.unwrap();
    client.flush().await.unwrap();
    let control = keelson.server.control_plane.state.control.clone();
    let (recorded, _) = control.routing_counts();
    let context = keelson.trigger_delivery("shop", "carts").await;
    use futures_util::StreamExt as _;
    let message =
        tokio::time::timeout(Duration::from_secs(5), triggered.next()).await.expect("a task is triggered").unwrap();
    let headers = message.headers.expect("the control plane's event carries headers");
    assert_eq!(headers.get("Keelson-Routed").map(|value| value.as_str()), Some("true"));
    let event: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(event["shkeptncontext"], json!(context));
    // An executor's answer is not marked, and is routed; the control plane's own events are not routed.
    let answer = json!({
        "type": "sh.keptn.event.deployment.started", "source": "test-executor", "specversion": "1.0",
        "id": "exec-started-1", "shkeptncontext": context, "triggeredid": event["id"],
        "data": { "project": "shop", "stage": "dev", "service": "carts" },
    });
    publish_stored(&client, "sh.keptn.event.deployment.started", serde_json::to_vec(&answer).unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while control.routing_counts().0 - recorded < 2 {
        assert!(Instant::now() < deadline, "the executor's event was not routed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The trigger (taken in over HTTP) and the executor's answer: nothing the control plane emitted.
    assert_eq!(control.routing_counts().0 - recorded, 2);
}
