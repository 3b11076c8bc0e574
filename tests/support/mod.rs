//! Shared test harness: real backing servers on free loopback ports, an in-process Keelson, and a git
//! smart-HTTP server for upstream tests.
#![allow(dead_code)]

pub mod browser;
pub mod chaos;
pub mod cluster;
pub mod git_http;
pub mod process;
pub mod servers;

pub use cluster::{b64, send};

use std::time::Duration;

use keelson::config::Config;
use keelson::server::RunningServer;
use serde_json::Value;

/// A Keelson started in this process on a free port, with its own data dir.
pub struct TestKeelson {
    pub base: String,
    pub token: String,
    pub server: RunningServer,
    pub data_dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

/// The shipyard most tests use: three stages, chained delivery.
pub const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
metadata:
  name: shipyard-sockshop
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
    - name: staging
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: staging.delivery.finished
          tasks:
            - name: approval
";

pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).expect("valid base64")
}

/// The schemathesis command installed next to the test Python (the README's test command installs it).
pub fn schemathesis() -> std::path::PathBuf {
    let python = std::env::var_os("KEELSON_TEST_SECANTUS_PYTHON")
        .expect("KEELSON_TEST_SECANTUS_PYTHON is not set: run the README's test command (scripts/test)");
    let st = std::path::Path::new(&python).with_file_name("st");
    assert!(st.exists(), "{} is missing: run the README's test command (scripts/test)", st.display());
    st
}

/// A config for tests: loopback, a fresh data dir, a known token, and no built-in services (most tests
/// play the execution plane themselves; the services' tests turn them on).
pub fn test_config(data_dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_owned(),
        api_token: Some("test-token".to_owned()),
        services: Vec::new(),
        ..Config::default()
    }
}

impl TestKeelson {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = test_config(data_dir.path());
        adjust(&mut config);
        Self::start_in(data_dir, config).await
    }

    /// Starts on `nats_url` and `redis_url` with secrets sealed by `key`: what `keelson service …`
    /// processes share with the control plane.
    pub async fn start_for_service_processes(nats_url: &str, redis_url: &str, key: &str) -> Self {
        let (nats_url, redis_url, key) = (nats_url.to_owned(), redis_url.to_owned(), key.to_owned());
        Self::start_with(move |config| {
            config.nats_url = Some(nats_url.parse().unwrap());
            config.redis_url = Some(redis_url.parse().unwrap());
            config.secret_key = Some(keelson::config::Sensitive(key));
        })
        .await
    }

    /// Starts on `clock` (a manual one lets a test step time instead of waiting for it).
    pub async fn start_with_clock(
        adjust: impl FnOnce(&mut Config),
        clock: std::sync::Arc<dyn keelson::clock::Clock>,
    ) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = test_config(data_dir.path());
        adjust(&mut config);
        Self::start_in_with_clock(data_dir, config, clock).await
    }

    /// Starts on an existing data dir (to test restarts).
    pub async fn start_in(data_dir: tempfile::TempDir, config: Config) -> Self {
        Self::start_in_with_clock(data_dir, config, std::sync::Arc::new(keelson::clock::SystemClock)).await
    }

    async fn start_in_with_clock(
        data_dir: tempfile::TempDir,
        config: Config,
        clock: std::sync::Arc<dyn keelson::clock::Clock>,
    ) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let start = keelson::server::start_with_clock(&config, listener, clock);
        let server = tokio::time::timeout(Duration::from_secs(30), start)
            .await
            .expect("keelson start-up hung")
            .expect("keelson starts");
        let base = format!("http://{}", server.addr);
        let token = config.api_token.clone().unwrap_or_default();
        Self { base, token, server, data_dir, client: reqwest::Client::new() }
    }

    pub async fn stop(self) -> tempfile::TempDir {
        self.server.handle.stop(true).await;
        self.data_dir
    }

    /// Triggers `dev.delivery` for `service` of `project`; returns its Keptn context.
    pub async fn trigger_delivery(&self, project: &str, service: &str) -> String {
        let trigger = serde_json::json!({
            "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci",
            "data": { "project": project, "stage": "dev", "service": service },
        });
        let (status, body) = send(self.post("/api/v1/event").json(&trigger)).await;
        assert_eq!(status, 200, "{body}");
        body["keptnContext"].as_str().unwrap().to_owned()
    }

    /// `project`'s open `.triggered` event of `task` for `context`, polled for up to 10 s.
    pub async fn wait_for_open(&self, project: &str, task: &str, context: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let path = format!("/api/controlPlane/v1/event/triggered/sh.keptn.event.{task}.triggered?project={project}");
        loop {
            let (status, body) = send(self.get(&path)).await;
            assert_eq!(status, 200, "{body}");
            if let Some(event) = body["events"].as_array().unwrap().iter().find(|e| e["shkeptncontext"] == context) {
                return event.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no {task}.triggered for {context}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).header("x-token", &self.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).header("x-token", &self.token)
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.put(self.url(path)).header("x-token", &self.token)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).header("x-token", &self.token)
    }

    /// Creates a project with `shipyard`; returns the status and body.
    pub async fn create_project(&self, name: &str, shipyard: &str) -> (u16, Value) {
        let body = serde_json::json!({ "name": name, "shipyard": b64(shipyard) });
        send(self.post("/api/controlPlane/v1/project").json(&body)).await
    }

    pub async fn create_service(&self, project: &str, service: &str) -> (u16, Value) {
        let body = serde_json::json!({ "serviceName": service });
        send(self.post(&format!("/api/controlPlane/v1/project/{project}/service")).json(&body)).await
    }
}

/// Merges the keys of `extra` (an object) into `target` (an object).
pub fn merge_into(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

/// Asserts a Keptn error body: `{code: status, message}` with a non-empty message.
#[track_caller]
pub fn assert_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "unexpected status, body {body}");
    assert_eq!(body["code"], expected, "error body must carry the status as code: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "error body needs a message: {body}");
}
