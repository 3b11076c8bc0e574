//! The datastore API (`/api/mongodb-datastore`) over HTTP, on the embedded store and on a
//! MongoDB-compatible server.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{assert_error, send, servers, TestKeelson, SHIPYARD};

async fn keelson_with(mongodb: Option<&servers::ChildServer>) -> TestKeelson {
    let url = mongodb.map(|server| server.url.clone());
    let keelson = TestKeelson::start_with(|config| config.mongodb_url = url).await;
    assert_eq!(keelson.create_project("sockshop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    keelson
}

async fn post_event(keelson: &TestKeelson, event: Value) -> String {
    let (status, body) = send(keelson.post("/api/v1/event").json(&event)).await;
    assert_eq!(status, 200, "{body}");
    body["keptnContext"].as_str().unwrap().to_owned()
}

async fn get(keelson: &TestKeelson, path: &str) -> (u16, Value) {
    send(keelson.get(&format!("/api/mongodb-datastore{path}"))).await
}

/// Polls `path` until it lists `count` events (the history is written in batches).
async fn wait_for_events(keelson: &TestKeelson, path: &str, count: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(keelson, path).await;
        assert_eq!(status, 200, "{body}");
        if body["events"].as_array().unwrap().len() >= count {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} did not reach {count} events: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn evaluation_finished(context: &str, triggered_id: &str, result: &str) -> Value {
    json!({
        "type": "sh.keptn.event.evaluation.finished", "source": "lighthouse-service",
        "shkeptncontext": context, "triggeredid": triggered_id,
        "data": { "project": "sockshop", "stage": "dev", "service": "carts", "result": result, "status": "succeeded" },
    })
}

async fn datastore_answers_as_keptn(keelson: TestKeelson) {
    // Empty: Keptn's exact body.
    let (status, body) = get(&keelson, "/event?project=sockshop&type=sh.keptn.event.none").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "events": [], "pageSize": 20 }));

    // Five evaluation results in one context, paged two at a time, newest first.
    let context = "5f8c2c4e-1b1a-4c39-a8f4-3d1a7e1f0a01";
    let results = ["pass", "warning", "fail", "pass", "pass"];
    for (index, result) in results.iter().enumerate() {
        post_event(&keelson, evaluation_finished(context, &format!("trigger-{index}"), result)).await;
    }
    let path = format!("/event?project=sockshop&keptnContext={context}&type=sh.keptn.event.evaluation.finished");
    wait_for_events(&keelson, &format!("{path}&pageSize=5"), 5).await;
    let (_, first) = get(&keelson, &format!("{path}&pageSize=2")).await;
    assert_eq!(first["pageSize"], 2);
    assert_eq!(first["totalCount"], 5);
    assert_eq!(first["nextPageKey"], "2");
    let triggered = |page: &Value| -> Vec<String> {
        page["events"].as_array().unwrap().iter().map(|e| e["triggeredid"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(triggered(&first), ["trigger-4", "trigger-3"]);
    let (_, last) = get(&keelson, &format!("{path}&pageSize=2&nextPageKey=4")).await;
    assert_eq!(triggered(&last), ["trigger-0"]);
    assert!(last.get("nextPageKey").is_none(), "the last page has no key: {last}");
    let (_, by_id) = get(&keelson, &format!("{path}&triggeredid=trigger-2")).await;
    assert_eq!(by_id["events"][0]["data"]["result"], "fail");

    // Root events: the first event of each context.
    let (_, roots) = get(&keelson, &format!("/event?project=sockshop&keptnContext={context}&root=")).await;
    assert_eq!(triggered(&roots), ["trigger-0"]);

    // Time bounds accept any RFC 3339 precision.
    let (_, future) = get(&keelson, &format!("{path}&fromTime=2999-01-01T00:00:00Z")).await;
    assert_eq!(future["events"], json!([]));
    let (_, past) = get(&keelson, &format!("{path}&beforeTime=2999-01-01T00:00:00.000Z&pageSize=10")).await;
    assert_eq!(past["events"].as_array().unwrap().len(), 5);

    // Events of a type by filter, with a result list and invalidation.
    let by_type = "/event/type/sh.keptn.event.evaluation.finished";
    let filter = "filter=data.project:sockshop%20AND%20data.service:carts%20AND%20data.result:pass,warning";
    let (status, body) = get(&keelson, &format!("{by_type}?{filter}&limit=10")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(triggered(&body), ["trigger-4", "trigger-3", "trigger-1", "trigger-0"]);
    assert!(body.get("nextPageKey").is_none() && body.get("totalCount").is_none(), "no paging here: {body}");
    post_event(
        &keelson,
        json!({
            "type": "sh.keptn.event.evaluation.invalidated", "source": "bridge", "shkeptncontext": context,
            "triggeredid": "trigger-4", "data": { "project": "sockshop", "stage": "dev", "service": "carts" },
        }),
    )
    .await;
    wait_for_events(&keelson, "/event?project=sockshop&type=sh.keptn.event.evaluation.invalidated", 1).await;
    let (_, valid) = get(&keelson, &format!("{by_type}?{filter}&excludeInvalidated=true&limit=2")).await;
    assert_eq!(triggered(&valid), ["trigger-3", "trigger-1"], "the invalidated result is left out");
    let (_, all) = get(&keelson, &format!("{by_type}?{filter}&limit=1")).await;
    assert_eq!(triggered(&all), ["trigger-4"], "and kept without excludeInvalidated");

    // Bad input: Keptn's statuses and messages.
    let (status, body) = get(&keelson, &format!("{by_type}?filter=data.stage:dev")).await;
    assert_error(status, &body, 400);
    assert_eq!(body["message"], "either 'shkeptncontext' or 'data.project' must be set");
    let (status, body) = get(&keelson, &format!("{by_type}?limit=5")).await;
    assert_error(status, &body, 400);
    let (status, body) = get(&keelson, &format!("{by_type}?filter=data.project")).await;
    assert_error(status, &body, 400);
    for bad in ["pageSize=0", "pageSize=101", "pageSize=ten"] {
        let (status, body) = get(&keelson, &format!("/event?project=sockshop&{bad}")).await;
        assert_error(status, &body, 422);
    }
    let (status, body) = get(&keelson, &format!("{by_type}?{filter}&limit=1000")).await;
    assert_error(status, &body, 422);
    let (status, body) = get(&keelson, "/event?project=sockshop&fromTime=yesterday").await;
    assert_error(status, &body, 400);
    let (status, body) = get(&keelson, "/event?project=sockshop&nextPageKey=abc").await;
    assert_error(status, &body, 400);
    let (status, _) = send(keelson.client.get(keelson.url("/api/mongodb-datastore/event"))).await;
    assert_eq!(status, 401, "the token is required");
}

#[actix_rt::test]
async fn datastore_api_on_the_embedded_store() {
    datastore_answers_as_keptn(keelson_with(None).await).await;
}

#[actix_rt::test]
async fn datastore_api_on_a_mongodb_compatible_server() {
    let mongo = servers::secantus();
    datastore_answers_as_keptn(keelson_with(Some(&mongo)).await).await;
}
