//! A Keelson cluster for tests and load tests: the shared servers (nats-server, redis-server,
//! SecantusDB, a git smart-HTTP server), `keelson` processes as members, an executor answering every
//! task over NATS, and the checks every cluster scenario makes.
//!
//! Used by `tests/cluster.rs` and `loadtests/cluster.rs`; it needs only its sibling modules `servers`
//! and `git_http`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{json, Value};

use super::git_http::GitHttpServer;
use super::servers::{self, free_port, ChildServer};

pub const TOKEN: &str = "cluster-token";
pub const SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const GIT_USER: &str = "keelson";
pub const GIT_TOKEN: &str = "git-token";
pub const SHARDS: usize = 64;

pub const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
metadata:
  name: cluster
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: t1
            - name: t2
        - name: hold
          tasks:
            - name: manual
    - name: prod
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: t1
";

/// The shared servers.
pub struct Servers {
    pub nats: ChildServer,
    pub redis: ChildServer,
    pub mongo: ChildServer,
    pub git: GitHttpServer,
    pub dir: tempfile::TempDir,
}

impl Drop for Servers {
    /// A failed scenario shows the end of every member's log.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if std::env::var_os("KEELSON_TEST_KEEP_LOGS").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("member logs kept in {}", dir.keep().display());
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else { return };
        for entry in entries.flatten().filter(|entry| entry.path().extension().is_some_and(|ext| ext == "log")) {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("==== {} (last 60 lines)", entry.path().display());
            for line in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{line}");
            }
        }
    }
}

impl Servers {
    pub fn start() -> Self {
        Self {
            nats: servers::nats(),
            redis: servers::redis(),
            mongo: servers::secantus(),
            git: GitHttpServer::start(GIT_USER, GIT_TOKEN),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn vars(&self, node: &str) -> Vec<(&'static str, String)> {
        vec![
            ("KEELSON_CLUSTER", "true".into()),
            ("KEELSON_NODE_ID", node.into()),
            ("KEELSON_NATS_URL", self.nats.url.clone()),
            ("KEELSON_REDIS_URL", self.redis.url.clone()),
            ("KEELSON_MONGODB_URL", self.mongo.url.clone()),
            ("KEELSON_API_TOKEN", TOKEN.into()),
            ("KEELSON_SECRET_KEY", SECRET_KEY.into()),
            ("KEELSON_GIT_ALLOWED_HOSTS", "127.0.0.1".into()),
        ]
    }

    pub fn log(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("{node}.log"))
    }

    pub fn data_dir(&self, node: &str) -> PathBuf {
        let dir = self.dir.path().join(node);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn spawn(&self, node: &str, extra: &[(&'static str, String)]) -> Node {
        let port = free_port();
        let mut vars = self.vars(node);
        vars.extend(extra.iter().cloned());
        let process = Member::spawn(&self.data_dir(node), port, &vars, &self.log(node));
        Node { id: node.to_owned(), api: Api::new(&process.base), process }
    }
}

pub struct Node {
    pub id: String,
    pub process: Member,
    pub api: Api,
}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self { base: base.to_owned(), client: reqwest::Client::new() }
    }

    /// GETs `path`, following `503` + `Retry-After` (a project changing hands) for up to 15 s, as a
    /// client of a cluster does.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.retrying(|| self.client.get(format!("{}{path}", self.base)).header("x-token", TOKEN)).await
    }

    /// POSTs `body` to `path`, following `503` + `Retry-After` like [`Api::get`].
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.retrying(|| self.client.post(format!("{}{path}", self.base)).header("x-token", TOKEN).json(body)).await
    }

    async fn retrying(&self, request: impl Fn() -> reqwest::RequestBuilder) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let answer = send(request()).await;
            if answer.0 != 503 || Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /api/v1/cluster`.
    pub async fn cluster(&self) -> Value {
        let (status, body) = self.get("/api/v1/cluster").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Shard owners as this instance sees them.
    pub async fn owners(&self) -> Vec<Option<String>> {
        let body = self.cluster().await;
        body["shards"].as_array().unwrap().iter().map(|shard| shard["owner"].as_str().map(str::to_owned)).collect()
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.client.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|line| line.starts_with(name) && !line.starts_with('#'))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Waits until `api` sees every shard owned by one of `nodes`, each owning some; returns how long it took.
pub async fn wait_until_owned_by(api: &Api, nodes: &[&str], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let owners = api.owners().await;
        let placed = owners.iter().all(|owner| owner.as_deref().is_some_and(|owner| nodes.contains(&owner)));
        let everyone = nodes.iter().all(|node| owners.iter().any(|owner| owner.as_deref() == Some(node)));
        if placed && everyone && owners.len() == SHARDS {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "shards not owned by {nodes:?} within {within:?}: {owners:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every `.triggered` task event the executor saw: (context, stage, task) → ids.
pub type Seen = Arc<Mutex<HashMap<(String, String, String), Vec<String>>>>;

/// What the executor saw.
#[derive(Clone, Default)]
pub struct Executor {
    pub seen: Seen,
    /// From publishing a task's `.finished` to receiving the same context's next task `.triggered`
    /// (within a sequence, or of the sequence chained after it): the control plane's dispatch latency
    /// as an execution plane sees it, bus hops included. Under faults its maximum is the longest a
    /// sequence stalled.
    pub dispatch: Arc<Mutex<Vec<Duration>>>,
    finished_at: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Executor {
    /// The longest dispatch so far.
    pub fn dispatch_max(&self) -> Duration {
        self.dispatch.lock().unwrap().iter().copied().max().unwrap_or_default()
    }

    /// The `q`-quantile of the dispatch latencies so far.
    pub fn dispatch_quantile(&self, q: f64) -> Duration {
        let mut all = self.dispatch.lock().unwrap().clone();
        all.sort();
        if all.is_empty() {
            return Duration::ZERO;
        }
        all[((all.len() - 1) as f64 * q).round() as usize]
    }
}

/// The execution plane: answers every task `.triggered` but `manual` (duplicates included) with `.started`, then
/// `.finished` (pass) after `work`, with ids derived from the triggered id.
pub async fn start_executor(nats_url: &str, work: Duration) -> Executor {
    let client = async_nats::connect(nats_url).await.unwrap();
    let mut triggered = client.queue_subscribe("sh.keptn.event.*.triggered", "executor".into()).await.unwrap();
    client.flush().await.unwrap();
    let executor = Executor::default();
    let state = executor.clone();
    tokio::spawn(async move {
        while let Some(message) = triggered.next().await {
            let received = Instant::now();
            let Ok(event) = serde_json::from_slice::<Value>(&message.payload) else { continue };
            let task = event["type"].as_str().unwrap_or_default().split('.').nth(3).unwrap_or_default().to_owned();
            if task == "manual" {
                // Left open for tests that control a waiting sequence.
                continue;
            }
            let context = event["shkeptncontext"].as_str().unwrap_or_default().to_owned();
            let stage = event["data"]["stage"].as_str().unwrap_or_default().to_owned();
            if let Some(finished) = state.finished_at.lock().unwrap().remove(&context) {
                state.dispatch.lock().unwrap().push(received.saturating_duration_since(finished));
            }
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            state
                .seen
                .lock()
                .unwrap()
                .entry((context.clone(), stage.clone(), task.clone()))
                .or_default()
                .push(id.clone());
            let client = client.clone();
            let finished_at = Arc::clone(&state.finished_at);
            tokio::spawn(async move {
                let data = json!({
                    "project": event["data"]["project"], "stage": event["data"]["stage"],
                    "service": event["data"]["service"], "status": "succeeded", "result": "pass",
                });
                for (kind, pause) in [("started", Duration::ZERO), ("finished", work)] {
                    tokio::time::sleep(pause).await;
                    let answer = json!({
                        "specversion": "1.0", "source": "executor",
                        "id": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{id}/{kind}").as_bytes()).to_string(),
                        "type": format!("sh.keptn.event.{task}.{kind}"),
                        "shkeptncontext": event["shkeptncontext"], "triggeredid": id, "data": data,
                    });
                    if kind == "finished" && !(task == "t1" && stage == "prod") {
                        finished_at.lock().unwrap().insert(context.clone(), Instant::now());
                    }
                    let subject = format!("sh.keptn.event.{task}.{kind}");
                    let _ = client.publish(subject, serde_json::to_vec(&answer).unwrap().into()).await;
                }
            });
        }
    });
    executor
}

pub async fn create_project(api: &Api, git: &GitHttpServer, name: &str) {
    create_project_with(api, git, name, SHIPYARD).await;
}

/// Creates `name` with `shipyard`, an upstream on `git`, and service `svc`.
pub async fn create_project_with(api: &Api, git: &GitHttpServer, name: &str, shipyard: &str) {
    let url = git.create_repo(name);
    let credentials = json!({ "remoteURL": url, "user": GIT_USER, "https": { "token": GIT_TOKEN } });
    let body = json!({ "name": name, "shipyard": b64(shipyard), "gitCredentials": credentials });
    let (status, answer) = api.post("/api/controlPlane/v1/project", &body).await;
    assert_eq!(status, 201, "create {name}: {answer}");
    let (status, answer) =
        api.post(&format!("/api/controlPlane/v1/project/{name}/service"), &json!({ "serviceName": "svc" })).await;
    assert_eq!(status, 200, "service of {name}: {answer}");
}

/// Triggers `dev.delivery` of `project` through `api`, retrying while its project changes hands.
pub async fn trigger(api: &Api, project: &str) -> String {
    trigger_with(api, project, json!({})).await
}

/// Like [`trigger`], with `extra` merged into the trigger's data.
pub async fn trigger_with(api: &Api, project: &str, extra: Value) -> String {
    let mut data = json!({ "project": project, "stage": "dev", "service": "svc" });
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    let trigger = json!({
        "specversion": "1.0", "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci", "data": data,
    });
    let (status, body) = api.post("/api/v1/event", &trigger).await;
    assert_eq!(status, 200, "trigger of {project}: {body}");
    body["keptnContext"].as_str().unwrap().to_owned()
}

/// Waits until every context in `contexts` ((project, context)) has finished both stages, as `api` sees it.
pub async fn wait_finished(api: &Api, contexts: &[(String, String)], within: Duration) {
    let deadline = Instant::now() + within;
    let mut open: Vec<&(String, String)> = contexts.iter().collect();
    while !open.is_empty() {
        let mut still = Vec::new();
        for entry in open {
            let (project, context) = entry;
            let (status, body) =
                api.get(&format!("/api/controlPlane/v1/sequence/{project}?keptnContext={context}")).await;
            let finished = status == 200
                && body["states"].as_array().is_some_and(|states| {
                    states.iter().any(|state| {
                        state["state"] == "finished"
                            && state["stages"].as_array().is_some_and(|stages| {
                                stages.len() == 2 && stages.iter().all(|stage| stage["result"] == "pass")
                            })
                    })
                });
            if !finished {
                still.push(entry);
            }
        }
        if still.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{} sequences did not finish, e.g. {:?}", still.len(), still.first());
        open = still;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// No (context, stage, task) was ever triggered with two different ids (a repeat of one id is allowed).
pub fn assert_one_id_per_task(executor: &Executor) -> usize {
    let seen = executor.seen.lock().unwrap();
    let mut repeats = 0;
    for (task, ids) in seen.iter() {
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), 1, "{task:?} was triggered with different ids: {ids:?}");
        repeats += ids.len() - 1;
    }
    repeats
}

/// A `keelson` process, its output in a log file; killed on drop.
pub struct Member {
    pub child: Child,
    pub base: String,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `keelson` binary: `KEELSON_BINARY`, else the test build's, else (load tests, built as examples)
/// the one in the target directory above this program's.
pub fn binary() -> PathBuf {
    if let Some(binary) = std::env::var_os("KEELSON_BINARY") {
        return PathBuf::from(binary);
    }
    if let Some(binary) = option_env!("CARGO_BIN_EXE_keelson") {
        return PathBuf::from(binary);
    }
    let exe = std::env::current_exe().expect("own path");
    exe.parent().and_then(|dir| dir.parent()).expect("target dir").join("keelson")
}

/// The command that runs a member on `port`, its output going to `log`.
pub fn member_command(
    data_dir: &std::path::Path,
    port: u16,
    vars: &[(&str, String)],
    log: &std::path::Path,
) -> Command {
    let output = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut command = Command::new(binary());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KEELSON_DATA_DIR", data_dir)
        .env("KEELSON_LISTEN", format!("127.0.0.1:{port}"))
        .env("KEELSON_LOG", "info")
        .env("KEELSON_SERVICES", "none")
        .stdout(Stdio::from(output.try_clone().unwrap()))
        .stderr(Stdio::from(output));
    for (key, value) in vars {
        command.env(key, value);
    }
    command
}

impl Member {
    /// Starts a member; returns once it listens, or panics with its log if it exits first.
    pub fn spawn(data_dir: &std::path::Path, port: u16, vars: &[(&str, String)], log: &std::path::Path) -> Self {
        let offset = std::fs::metadata(log).map(|meta| meta.len() as usize).unwrap_or(0);
        let mut child = member_command(data_dir, port, vars, log).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.get(offset..).is_some_and(|new| new.contains("Keelson is listening")) {
                return Self { child, base: format!("http://127.0.0.1:{port}") };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("keelson exited with {status} before listening:\n{text}");
            }
            assert!(Instant::now() < deadline, "keelson did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown code runs, as in a crash.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `within` for the process to exit; its exit code, `None` if it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Base64, as Keptn's API wants resource contents and shipyards.
pub fn b64(text: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Sends a request with a deadline; returns status and JSON body (`Null` when empty or not JSON).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = tokio::time::timeout(Duration::from_secs(60), request.send())
        .await
        .expect("request to keelson hung")
        .expect("request to keelson failed");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The node owning `project` as `api` sees it.
pub async fn owner_of(api: &Api, project: &str) -> Option<String> {
    let shard = keelson::model::placement::shard_of(project, SHARDS as u32) as usize;
    api.owners().await[shard].clone()
}
