//! The uniform API: integrations register, ping, expire and manage subscriptions; their logs.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{assert_error, send, TestKeelson};

const REGISTRATION: &str = "/api/controlPlane/v1/uniform/registration";

fn integration(name: &str, events: &[&str]) -> Value {
    json!({
        "name": name,
        "metadata": {
            "hostname": "node-1", "integrationversion": "1.0.0", "distributorversion": "1.4.5",
            "kubernetesmetadata": { "namespace": "keptn", "podname": format!("{name}-abc"), "deploymentname": name },
        },
        "subscriptions": events.iter().map(|event| json!({
            "event": event, "filter": { "projects": ["shop"], "stages": ["dev"], "services": ["carts"] },
        })).collect::<Vec<_>>(),
    })
}

fn sha1_id(text: &str) -> String {
    use sha1::Digest as _;
    sha1::Sha1::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[actix_rt::test]
async fn integrations_register_subscribe_and_unregister() {
    let keelson = TestKeelson::start().await;
    let (status, body) =
        send(keelson.post(REGISTRATION).json(&integration("helm-service", &["sh.keptn.event.deployment.triggered"])))
            .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id, sha1_id("helm-service-keptn-node-1"), "Keptn's id: sha1 of name-namespace-hostname");

    // Registering again is idempotent: same id, 200, new subscriptions merged in.
    let again =
        integration("helm-service", &["sh.keptn.event.deployment.triggered", "sh.keptn.event.rollback.triggered"]);
    let (status, body) = send(keelson.post(REGISTRATION).json(&again)).await;
    assert_eq!((status, body["id"].as_str()), (200, Some(id.as_str())));
    let (status, subscriptions) = send(keelson.get(&format!("{REGISTRATION}/{id}/subscription"))).await;
    assert_eq!(status, 200);
    let events: Vec<&str> = subscriptions.as_array().unwrap().iter().map(|s| s["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["sh.keptn.event.deployment.triggered", "sh.keptn.event.rollback.triggered"]);
    assert!(subscriptions.as_array().unwrap().iter().all(|s| uuid::Uuid::parse_str(s["id"].as_str().unwrap()).is_ok()));

    // Listing filters by id, name and the subscriptions' filters.
    send(keelson.post(REGISTRATION).json(&integration("jmeter-service", &["sh.keptn.event.test.triggered"]))).await;
    let names = |body: &Value| -> Vec<String> {
        body.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect()
    };
    let (_, all) = send(keelson.get(REGISTRATION)).await;
    assert_eq!(names(&all), ["helm-service", "jmeter-service"]);
    let (_, by_name) = send(keelson.get(&format!("{REGISTRATION}?name=jmeter-service"))).await;
    assert_eq!(names(&by_name), ["jmeter-service"]);
    let (_, by_project) = send(keelson.get(&format!("{REGISTRATION}?project=shop&stage=dev&service=carts"))).await;
    assert_eq!(names(&by_project).len(), 2);
    let (_, other) = send(keelson.get(&format!("{REGISTRATION}?project=other"))).await;
    assert_eq!(other, json!([]));
    let (_, by_id) = send(keelson.get(&format!("{REGISTRATION}?id={id}"))).await;
    assert_eq!(names(&by_id), ["helm-service"]);
    assert_eq!(by_id[0]["metadata"]["kubernetesmetadata"]["namespace"], "keptn");

    // Subscriptions: create, read, upsert, delete.
    let subscription = json!({ "event": "sh.keptn.event.approval.triggered", "filter": { "projects": ["shop"] } });
    let (status, body) = send(keelson.post(&format!("{REGISTRATION}/{id}/subscription")).json(&subscription)).await;
    assert_eq!(status, 201, "{body}");
    let subscription_id = body["id"].as_str().unwrap().to_owned();
    let (status, body) = send(keelson.get(&format!("{REGISTRATION}/{id}/subscription/{subscription_id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["event"], "sh.keptn.event.approval.triggered");
    let replaced = json!({ "event": "sh.keptn.event.approval.finished", "filter": { "projects": ["shop"] } });
    let (status, body) =
        send(keelson.put(&format!("{REGISTRATION}/{id}/subscription/{subscription_id}")).json(&replaced)).await;
    assert_eq!((status, body["id"].as_str()), (201, Some(subscription_id.as_str())));
    let (_, body) = send(keelson.get(&format!("{REGISTRATION}/{id}/subscription/{subscription_id}"))).await;
    assert_eq!(body["event"], "sh.keptn.event.approval.finished");
    let (status, _) = send(keelson.delete(&format!("{REGISTRATION}/{id}/subscription/{subscription_id}"))).await;
    assert_eq!(status, 200);
    let (status, body) = send(keelson.get(&format!("{REGISTRATION}/{id}/subscription/{subscription_id}"))).await;
    assert_error(status, &body, 404);

    // Bad input.
    let mut incomplete = integration("x", &[]);
    incomplete["metadata"]["hostname"] = json!("");
    let (status, body) = send(keelson.post(REGISTRATION).json(&incomplete)).await;
    assert_error(status, &body, 400);
    assert!(body["message"].as_str().unwrap().starts_with("incomplete integration ID"), "{body}");
    let (status, body) = send(keelson.post(REGISTRATION).json(&integration("x", &[""]))).await;
    assert_error(status, &body, 400);
    let services_only = json!({ "event": "sh.keptn.event.test.triggered", "filter": { "services": ["carts"] } });
    let (status, body) = send(keelson.post(&format!("{REGISTRATION}/{id}/subscription")).json(&services_only)).await;
    assert_error(status, &body, 400);
    let (status, body) = send(keelson.post(REGISTRATION).json(&integration("webhook-service", &[]))).await;
    assert_eq!(status, 201, "a webhook service without subscriptions is fine: {body}");
    let webhook_id = body["id"].as_str().unwrap().to_owned();
    let two_projects = json!({ "event": "sh.keptn.event.webhook.triggered", "filter": { "projects": ["a", "b"] } });
    let (status, body) =
        send(keelson.post(&format!("{REGISTRATION}/{webhook_id}/subscription")).json(&two_projects)).await;
    assert_error(status, &body, 400);
    let (status, body) = send(keelson.put(&format!("{REGISTRATION}/unknown/ping"))).await;
    assert_error(status, &body, 404);
    assert_eq!(body["message"], "uniform integration not found");
    let (status, body) =
        send(keelson.post(REGISTRATION).body("{not json").header("content-type", "application/json")).await;
    assert_error(status, &body, 400);

    // Unregister.
    let (status, body) = send(keelson.delete(&format!("{REGISTRATION}/{id}"))).await;
    assert_eq!((status, body), (200, json!({})));
    let (_, all) = send(keelson.get(REGISTRATION)).await;
    assert_eq!(names(&all), ["jmeter-service", "webhook-service"]);
}

#[actix_rt::test]
async fn registrations_expire_without_pings_and_survive_restarts() {
    let keelson = TestKeelson::start_with(|config| config.uniform_integration_ttl = Duration::from_millis(800)).await;
    let (_, body) =
        send(keelson.post(REGISTRATION).json(&integration("pinged", &["sh.keptn.event.test.triggered"]))).await;
    let pinged = body["id"].as_str().unwrap().to_owned();
    send(keelson.post(REGISTRATION).json(&integration("silent", &[]))).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (status, body) = send(keelson.put(&format!("{REGISTRATION}/{pinged}/ping"))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["subscriptions"][0]["event"], "sh.keptn.event.test.triggered",
            "the ping returns subscriptions"
        );
    }
    let (_, all) = send(keelson.get(REGISTRATION)).await;
    let names: Vec<&str> = all.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pinged"], "the silent integration expired after the TTL");

    // Stored: a restart within the TTL still knows the pinged one.
    let (status, _) = send(keelson.put(&format!("{REGISTRATION}/{pinged}/ping"))).await;
    assert_eq!(status, 200);
    let data_dir = keelson.stop().await;
    let config = support::test_config(data_dir.path());
    let config = keelson::config::Config { uniform_integration_ttl: Duration::from_secs(60), ..config };
    let restarted = TestKeelson::start_in(data_dir, config).await;
    let (status, body) = send(restarted.put(&format!("{REGISTRATION}/{pinged}/ping"))).await;
    assert_eq!(status, 200, "{body}");
}

#[actix_rt::test]
async fn integration_logs_are_stored_and_paged() {
    let keelson = TestKeelson::start().await;
    let mut ids = Vec::new();
    for name in ["helm-service", "jmeter-service"] {
        let (status, body) = send(keelson.post(REGISTRATION).json(&integration(name, &[]))).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let (int_1, int_2) = (ids[0].clone(), ids[1].clone());
    // Within the log TTL (120 h): an hour ago, a second apart.
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    let at =
        |second: i64| (base + chrono::Duration::seconds(second)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let entries: Vec<Value> = (0..5)
        .map(|index| {
            json!({
                "integrationid": int_1, "message": format!("failure {index}"),
                "time": at(index), "task": "deployment",
                "shkeptncontext": "ctx", "triggeredid": format!("t{index}"),
            })
        })
        .chain([json!({ "integrationid": int_2, "message": "no time given" })])
        .collect();
    let (status, body) = send(keelson.post("/api/controlPlane/v1/log").json(&json!({ "logs": entries }))).await;
    assert_eq!((status, body), (200, json!({})));
    let (status, page) = send(keelson.get(&format!("/api/controlPlane/v1/log?integrationId={int_1}&pageSize=2"))).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["totalCount"], 5);
    assert_eq!(page["nextPageKey"], 2);
    let messages = |page: &Value| -> Vec<String> {
        page["logs"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(messages(&page), ["failure 4", "failure 3"]);
    let (_, last) =
        send(keelson.get(&format!("/api/controlPlane/v1/log?integrationId={int_1}&pageSize=2&nextPageKey=4"))).await;
    assert_eq!(messages(&last), ["failure 0"]);
    assert!(last.get("nextPageKey").is_none());
    let window_path = format!(
        "/api/controlPlane/v1/log?integrationId={int_1}&fromTime={}&beforeTime={}",
        at(1).replace('+', "%2B"),
        at(4).replace('+', "%2B")
    );
    let (_, window) = send(keelson.get(&window_path)).await;
    assert_eq!(messages(&window), ["failure 3", "failure 2"]);
    let (_, now) = send(keelson.get(&format!("/api/controlPlane/v1/log?integrationId={int_2}"))).await;
    let stored = chrono::DateTime::parse_from_rfc3339(now["logs"][0]["time"].as_str().unwrap()).unwrap();
    assert!(
        (chrono::Utc::now() - stored.with_timezone(&chrono::Utc)).num_seconds() < 60,
        "a missing time becomes now: {now}"
    );
    let (status, body) = send(keelson.get("/api/controlPlane/v1/log?fromTime=yesterday")).await;
    assert_error(status, &body, 400);
    let (status, body) =
        send(keelson.post("/api/controlPlane/v1/log").json(&json!({ "logs": [{ "message": "x" }] }))).await;
    assert_error(status, &body, 400);

    // Bounded: unknown integrations are refused, future times become now, long messages are cut, and an
    // unpaged read returns at most a page.
    let (status, body) = send(
        keelson
            .post("/api/controlPlane/v1/log")
            .json(&json!({ "logs": [{ "integrationid": "made-up", "message": "x" }] })),
    )
    .await;
    assert_error(status, &body, 400);
    assert!(body["message"].as_str().unwrap().contains("unknown integration"), "{body}");
    let future = (chrono::Utc::now() + chrono::Duration::days(3650)).to_rfc3339();
    let many: Vec<Value> = (0..1_100)
        .map(|index| json!({ "integrationid": int_2, "message": "m".repeat(if index == 0 { 10_000 } else { 10 }), "time": future }))
        .collect();
    let (status, body) = send(keelson.post("/api/controlPlane/v1/log").json(&json!({ "logs": many }))).await;
    assert_eq!(status, 200, "{body}");
    let (_, all) = send(keelson.get(&format!("/api/controlPlane/v1/log?integrationId={int_2}"))).await;
    assert_eq!(all["totalCount"], 1_000, "kept per integration");
    assert_eq!(all["logs"].as_array().unwrap().len(), 1_000);
    for entry in all["logs"].as_array().unwrap() {
        let time = chrono::DateTime::parse_from_rfc3339(entry["time"].as_str().unwrap()).unwrap();
        assert!(time.with_timezone(&chrono::Utc) <= chrono::Utc::now(), "no entry from the future: {entry}");
        assert!(entry["message"].as_str().unwrap().len() <= 4100);
    }
}

/// Polling with `integrationId` returns only what that integration's subscriptions accept.
#[actix_rt::test]
async fn polling_honours_the_integrations_subscription_filters() {
    let keelson = TestKeelson::start().await;
    assert_eq!(keelson.create_project("sockshop", support::SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    let trigger = json!({
        "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci",
        "data": { "project": "sockshop", "stage": "dev", "service": "carts" },
    });
    let (status, body) = send(keelson.post("/api/v1/event").json(&trigger)).await;
    assert_eq!(status, 200, "{body}");
    let register = |name: &str, stages: &[&str]| {
        let mut registration = integration(name, &[]);
        registration["subscriptions"] = json!([{
            "event": "sh.keptn.event.deployment.triggered",
            "filter": { "projects": ["sockshop"], "stages": stages },
        }]);
        registration
    };
    let (_, body) = send(keelson.post(REGISTRATION).json(&register("dev-deployer", &["dev"]))).await;
    let dev = body["id"].as_str().unwrap().to_owned();
    let (_, body) = send(keelson.post(REGISTRATION).json(&register("prod-deployer", &["production"]))).await;
    let prod = body["id"].as_str().unwrap().to_owned();
    let poll = |id: String| {
        let keelson = &keelson;
        async move {
            let path =
                format!("/api/controlPlane/v1/event/triggered/sh.keptn.event.deployment.triggered?integrationId={id}");
            send(keelson.get(&path)).await
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = poll(dev.clone()).await;
        assert_eq!(status, 200, "{body}");
        if body["events"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the dev deployer never saw its event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = poll(prod).await;
    assert_eq!(status, 200);
    assert_eq!(body["events"], json!([]), "a production-only integration is not offered dev work");
    let (status, body) = poll("unknown".into()).await;
    assert_error(status, &body, 404);
}
