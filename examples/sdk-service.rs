//! A Keptn execution-plane service written with `keelson::sdk`: it handles one task by polling the
//! control plane's API (a remote execution plane) and reports a result.
//!
//! ```sh
//! KEPTN_ENDPOINT=http://127.0.0.1:8080 KEPTN_API_TOKEN=$(cat data/api-token) TASK=deployment \
//!     cargo run --example sdk-service
//! ```
//! Over NATS instead, set `NATS_URL=nats://127.0.0.1:4222` (the API endpoint is then used to register).

use keelson::sdk::{Service, TaskError};
use serde_json::json;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let endpoint = std::env::var("KEPTN_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    let token = std::env::var("KEPTN_API_TOKEN").unwrap_or_default();
    let task = std::env::var("TASK").unwrap_or_else(|_| "deployment".to_owned());
    let service = Service::new(format!("example-{task}-service"), task.clone());
    let service = match std::env::var("NATS_URL") {
        Ok(url) => service.over_nats(url).register_with(endpoint, token),
        Err(_) => service.over_http(endpoint, token),
    };
    let outcome = service
        .run(|triggered| async move {
            tracing::info!(
                project = triggered.project(),
                stage = triggered.stage(),
                service = triggered.service(),
                "working"
            );
            // Real work goes here; an error is reported as an errored, failed task.
            if triggered.data()["fail"].as_bool() == Some(true) {
                return Err(TaskError::new("asked to fail"));
            }
            Ok(json!({ "example": { "handledBy": "keelson-sdk" } }))
        })
        .await;
    if let Err(error) = outcome {
        eprintln!("service stopped: {error}");
        std::process::exit(1);
    }
}
