//! Traces over OTLP/HTTP: a `keelson` process exports its spans to a small OTLP receiver run by this
//! test, and a delivery's event and sequence-step spans share the trace named by its Keptn context.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use support::process::{spawn_keelson, ProcessApi};
use support::{b64, SHIPYARD};

/// An OTLP/HTTP trace receiver (JSON encoding) on a free loopback port; what it received.
fn start_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = Arc::clone(&received);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let store = Arc::clone(&store);
                App::new().app_data(web::PayloadConfig::new(64 * 1024 * 1024)).route(
                    "/v1/traces",
                    web::post().to(move |body: web::Bytes| {
                        let store = Arc::clone(&store);
                        async move {
                            match serde_json::from_slice::<Value>(&body) {
                                Ok(request) => {
                                    store.lock().unwrap().push(request);
                                    HttpResponse::Ok().json(json!({}))
                                }
                                Err(_) => HttpResponse::BadRequest().finish(),
                            }
                        }
                    }),
                )
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    (url, received)
}

/// Every span received: (trace id, name, attributes as key → value).
fn spans(received: &[Value]) -> Vec<(String, String, serde_json::Map<String, Value>)> {
    let mut spans = Vec::new();
    for request in received {
        for resource in request["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let attributes = span["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|attribute| {
                            let value = attribute["value"].as_object().and_then(|v| v.values().next().cloned());
                            (attribute["key"].as_str().unwrap_or_default().to_owned(), value.unwrap_or(Value::Null))
                        })
                        .collect();
                    spans.push((
                        span["traceId"].as_str().unwrap_or_default().to_lowercase(),
                        span["name"].as_str().unwrap_or_default().to_owned(),
                        attributes,
                    ));
                }
            }
        }
    }
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliverys_spans_share_the_trace_of_its_keptn_context() {
    let (collector, received) = start_receiver();
    let data_dir = tempfile::tempdir().unwrap();
    let vars = [("KEELSON_API_TOKEN", "trace-token".to_owned()), ("KEELSON_OTLP_ENDPOINT", collector)];
    let mut process = spawn_keelson(data_dir.path(), &vars);
    let api = ProcessApi::new(&process, "trace-token");
    let (status, body) =
        api.post("/api/controlPlane/v1/project", &json!({ "name": "shop", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        api.post("/api/controlPlane/v1/project/shop/service", &json!({ "serviceName": "carts" })).await;
    assert_eq!(status, 200, "{body}");
    let trigger = json!({
        "specversion": "1.0", "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci",
        "data": { "project": "shop", "stage": "dev", "service": "carts" },
    });
    let (status, body) = api.post("/api/v1/event", &trigger).await;
    assert_eq!(status, 200, "{body}");
    let context = body["keptnContext"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let open = loop {
        let (_, body) =
            api.get("/api/controlPlane/v1/event/triggered/sh.keptn.event.deployment.triggered?project=shop").await;
        if let Some(open) = body["events"].as_array().and_then(|events| events.first().cloned()) {
            break open;
        }
        assert!(Instant::now() < deadline, "no deployment.triggered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let finished = json!({
        "specversion": "1.0", "type": "sh.keptn.event.deployment.finished", "source": "executor",
        "shkeptncontext": context, "triggeredid": open["id"],
        "data": { "project": "shop", "stage": "dev", "service": "carts", "status": "succeeded", "result": "pass" },
    });
    let (status, body) = api.post("/api/v1/event", &finished).await;
    assert_eq!(status, 200, "{body}");

    // Stopping flushes what the batch still holds.
    std::process::Command::new("kill").arg("-TERM").arg(process.child.id().to_string()).status().unwrap();
    assert_eq!(process.child.wait().unwrap().code(), Some(0));

    let trace = context.replace('-', "");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = spans(&received.lock().unwrap());
        let in_trace: Vec<&(String, String, serde_json::Map<String, Value>)> =
            spans.iter().filter(|(trace_id, _, _)| *trace_id == trace).collect();
        let named = |name: &str| in_trace.iter().filter(|(_, span, _)| span == name).count();
        if named("event") >= 2 && named("sequence.step") >= 2 {
            let event = in_trace.iter().find(|(_, name, _)| name == "event").unwrap();
            assert_eq!(event.2["keptn.context"], Value::String(context.clone()), "{:?}", event.2);
            assert!(spans.iter().any(|(_, name, attributes)| name == "http.request"
                && attributes.get("http.route").is_some_and(|route| route == "/api/v1/event")));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spans of {context} missing; received {:?}",
            spans.iter().map(|(trace, name, _)| (trace, name)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
