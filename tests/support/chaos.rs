//! The crash and fault loop: Keelson as a child process under steady triggers and executor answers
//! (with retries after 503 and duplicate `.finished` events), while faults strike at random moments —
//! SIGKILL and restart, SIGSTOP/SIGCONT, Redis and NATS restarts, a full data volume — then a drain and
//! an audit of what clients were promised.
//!
//! Shared by the test suite (a short, fixed run) and `loadtests/chaos.rs` (a long, random one).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::servers::{self, ChildServer};

pub const TOKEN: &str = "chaos-token";
const PROJECT: &str = "chaos";
const SERVICES: usize = 12;
const TASKS: [&str; 2] = ["deployment", "test"];
const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: test
";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// SIGKILL, then start again on the same data.
    Kill,
    /// SIGSTOP for a while, then SIGCONT.
    Pause,
    RestartRedis,
    RestartNats,
    /// Fill the data volume until writes fail, hold, then free it.
    FillVolume,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backends {
    Embedded,
    /// NATS JetStream and Redis snapshots (embedded history).
    NatsRedis,
}

pub struct Plan {
    pub binary: PathBuf,
    pub backends: Backends,
    /// Faults in order; `None` picks them at random from `random_faults` for `duration`.
    pub script: Option<Vec<Fault>>,
    pub random_faults: Vec<Fault>,
    pub duration: Duration,
    /// Pause between faults (random runs draw from `gap.0..gap.1`).
    pub gap: (Duration, Duration),
    pub trigger_clients: usize,
    /// A tmpfs of this many MiB under the data dir (root only); needed for `FillVolume`.
    pub volume_mib: Option<u64>,
    /// How long the drain may take before unfinished sequences count as lost.
    pub drain_timeout: Duration,
}

#[derive(Debug, Default)]
pub struct Report {
    /// Triggers answered 200: each must finish exactly once.
    pub acknowledged: usize,
    /// Triggers answered 202 (accepted, not yet durable): each may run at most once.
    pub accepted_not_durable: usize,
    pub audited_ok: usize,
    pub faults: Vec<(Fault, Duration)>,
    pub statuses: HashMap<u16, usize>,
    pub retries_after_503: usize,
    pub duplicate_finished_sent: usize,
    pub problems: Vec<String>,
}

struct Node {
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    vars: Vec<(String, String)>,
    binary: PathBuf,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KEELSON_DATA_DIR", &self.data_dir)
            .env("KEELSON_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("KEELSON_API_TOKEN", TOKEN)
            .env("KEELSON_LOG", "warn")
            .env("KEELSON_SERVICES", "none")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        for (key, value) in &self.vars {
            command.env(key, value);
        }
        self.child = Some(command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display())));
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").arg(signal).arg(child.id().to_string()).status();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill();
    }
}

/// A tmpfs mounted for the run, unmounted at the end.
struct Volume(PathBuf);

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[derive(Clone)]
struct Api {
    base: String,
    client: reqwest::Client,
    statuses: Arc<Mutex<HashMap<u16, usize>>>,
}

impl Api {
    /// Sends and counts the answer's status (0 for no answer).
    async fn call(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let answer = request.header("x-token", TOKEN).timeout(Duration::from_secs(15)).send().await;
        let (status, body) = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        };
        *self.statuses.lock().unwrap().entry(status).or_default() += 1;
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(self.client.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(self.client.post(format!("{}{path}", self.base)).json(body)).await
    }
}

fn random_below(bound: usize) -> usize {
    use rand::Rng as _;
    rand::rng().random_range(0..bound.max(1))
}

fn random_between(range: (Duration, Duration)) -> Duration {
    use rand::Rng as _;
    if range.1 <= range.0 {
        return range.0;
    }
    rand::rng().random_range(range.0..range.1)
}

/// Runs the plan and audits the outcome.
pub async fn run(plan: Plan) -> Report {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let _volume = plan.volume_mib.map(|mib| {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700"), "tmpfs"])
            .arg(&data_dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a {mib} MiB tmpfs needs root");
        Volume(data_dir.clone())
    });
    let mut redis: Option<ChildServer> = None;
    let mut nats: Option<ChildServer> = None;
    let mut vars = Vec::new();
    if plan.backends == Backends::NatsRedis {
        let started_redis = servers::redis_persistent();
        let started_nats = servers::nats();
        vars.push(("KEELSON_REDIS_URL".to_owned(), started_redis.url.clone()));
        vars.push(("KEELSON_NATS_URL".to_owned(), started_nats.url.clone()));
        redis = Some(started_redis);
        nats = Some(started_nats);
    }
    let mut node = Node {
        child: None,
        port: servers::free_port(),
        data_dir: data_dir.clone(),
        log: work.path().join("keelson.log"),
        vars,
        binary: plan.binary.clone(),
    };
    node.start();
    let api = Api {
        base: format!("http://127.0.0.1:{}", node.port),
        client: reqwest::Client::new(),
        statuses: Arc::default(),
    };
    wait_until_serving(&api).await;
    set_up_project(&api).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, bool)>::new()));
    let retries = Arc::new(AtomicUsize::new(0));
    let duplicates = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for client in 0..plan.trigger_clients {
        workers.push(tokio::spawn(trigger_loop(api.clone(), client, Arc::clone(&stop), Arc::clone(&acknowledged))));
    }
    let drain = Arc::new(AtomicBool::new(false));
    for executor in 0..2 {
        workers.push(tokio::spawn(executor_loop(
            api.clone(),
            executor,
            Arc::clone(&drain),
            Arc::clone(&retries),
            Arc::clone(&duplicates),
        )));
    }

    let mut report = Report::default();
    let started = Instant::now();
    let faults: Vec<Fault> = match &plan.script {
        Some(script) => script.clone(),
        None => Vec::new(),
    };
    let mut scripted = faults.into_iter();
    loop {
        tokio::time::sleep(random_between(plan.gap)).await;
        let fault = match &plan.script {
            Some(_) => match scripted.next() {
                Some(fault) => fault,
                None => break,
            },
            None if started.elapsed() >= plan.duration => break,
            None => plan.random_faults[random_below(plan.random_faults.len())],
        };
        report.faults.push((fault, started.elapsed()));
        match fault {
            Fault::Kill => {
                node.kill();
                tokio::time::sleep(Duration::from_millis(200)).await;
                node.start();
                wait_until_serving(&api).await;
            }
            Fault::Pause => {
                node.signal("-STOP");
                tokio::time::sleep(Duration::from_millis(1500)).await;
                node.signal("-CONT");
            }
            Fault::RestartRedis => {
                if let Some(redis) = redis.as_mut() {
                    redis.kill();
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    redis.restart();
                }
            }
            Fault::RestartNats => {
                if let Some(nats) = nats.as_mut() {
                    nats.kill();
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    nats.restart();
                }
            }
            Fault::FillVolume => fill_and_free(&data_dir).await,
        }
    }
    // Drain: no new triggers; executors answer until every acknowledged sequence has ended.
    stop.store(true, Ordering::SeqCst);
    let (acknowledged, not_durable): (Vec<_>, Vec<_>) =
        acknowledged.lock().unwrap().iter().cloned().partition(|(_, durable)| *durable);
    let acknowledged: Vec<String> = acknowledged.into_iter().map(|(context, _)| context).collect();
    let not_durable: Vec<String> = not_durable.into_iter().map(|(context, _)| context).collect();
    report.acknowledged = acknowledged.len();
    report.accepted_not_durable = not_durable.len();
    let deadline = Instant::now() + plan.drain_timeout;
    let mut unfinished: HashSet<String> = acknowledged.iter().cloned().collect();
    while !unfinished.is_empty() && Instant::now() < deadline {
        let mut still = HashSet::new();
        for context in &unfinished {
            let (status, body) = api.get(&events_path(context)).await;
            let ended = status == 200
                && body["events"]
                    .as_array()
                    .is_some_and(|events| events.iter().any(|e| e["type"] == "sh.keptn.event.dev.delivery.finished"));
            if !ended {
                still.insert(context.clone());
            }
        }
        unfinished = still;
        if !unfinished.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    drain.store(true, Ordering::SeqCst);
    for worker in workers {
        let _ = worker.await;
    }
    for context in &unfinished {
        report.problems.push(format!("acknowledged sequence {context} never finished"));
    }
    for context in acknowledged.iter().filter(|context| !unfinished.contains(*context)) {
        match audit(&api, context, true).await {
            Ok(()) => report.audited_ok += 1,
            Err(problem) => report.problems.push(problem),
        }
    }
    for context in &not_durable {
        if let Err(problem) = audit(&api, context, false).await {
            report.problems.push(problem);
        }
    }
    report.statuses = api.statuses.lock().unwrap().clone();
    if let Some(count) = report.statuses.get(&500) {
        report.problems.push(format!("{count} answers were 500"));
    }
    report.retries_after_503 = retries.load(Ordering::SeqCst);
    report.duplicate_finished_sent = duplicates.load(Ordering::SeqCst);
    node.kill();
    let log = std::fs::read_to_string(&node.log).unwrap_or_default();
    for line in log.lines().filter(|line| line.contains("panicked")) {
        report.problems.push(format!("panic in the log: {line}"));
    }
    report
}

async fn wait_until_serving(api: &Api) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(response) = api.client.get(format!("{}/health", api.base)).send().await {
            if response.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("keelson did not serve within 60s");
}

async fn set_up_project(api: &Api) {
    use base64::Engine as _;
    let shipyard = base64::engine::general_purpose::STANDARD.encode(SHIPYARD);
    let (status, body) =
        api.post("/api/controlPlane/v1/project", &json!({ "name": PROJECT, "shipyard": shipyard })).await;
    assert_eq!(status, 201, "{body}");
    for index in 0..SERVICES {
        let (status, body) = api
            .post(
                &format!("/api/controlPlane/v1/project/{PROJECT}/service"),
                &json!({ "serviceName": format!("svc-{index}") }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

fn events_path(context: &str) -> String {
    format!("/api/mongodb-datastore/event?project={PROJECT}&keptnContext={context}&pageSize=100")
}

async fn trigger_loop(api: Api, client: usize, stop: Arc<AtomicBool>, acknowledged: Arc<Mutex<Vec<(String, bool)>>>) {
    let mut sent = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let service = format!("svc-{}", (client + sent) % SERVICES);
        sent += 1;
        let trigger = json!({
            "type": "sh.keptn.event.dev.delivery.triggered", "source": "chaos",
            "data": { "project": PROJECT, "stage": "dev", "service": service },
        });
        let (status, body) = api.post("/api/v1/event", &trigger).await;
        match status {
            // Accepted: durable (200) or not yet (202).
            200 | 202 => {
                if let Some(context) = body["keptnContext"].as_str() {
                    acknowledged.lock().unwrap().push((context.to_owned(), status == 200));
                }
            }
            // Not accepted (or no answer): nothing was promised; a later trigger takes its place.
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Answers open tasks: `.started` then `.finished`, retrying after a 503 or no answer, now and then
/// sending a `.finished` twice; an open task is answered again if it is still open a while later.
async fn executor_loop(
    api: Api,
    executor: usize,
    stop: Arc<AtomicBool>,
    retries: Arc<AtomicUsize>,
    duplicates: Arc<AtomicUsize>,
) {
    let mut answered: HashMap<String, Instant> = HashMap::new();
    let mut round = 0usize;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        for task in TASKS {
            let (status, body) = api
                .get(&format!(
                    "/api/controlPlane/v1/event/triggered/sh.keptn.event.{task}.triggered?project={PROJECT}&pageSize=50"
                ))
                .await;
            if status != 200 {
                continue;
            }
            for event in body["events"].as_array().cloned().unwrap_or_default() {
                let Some(id) = event["id"].as_str() else { continue };
                // Two executors share the work by id.
                if id.bytes().map(usize::from).sum::<usize>() % 2 != executor {
                    continue;
                }
                if answered.get(id).is_some_and(|at| at.elapsed() < Duration::from_secs(3)) {
                    continue;
                }
                answered.insert(id.to_owned(), Instant::now());
                let data = |extra: Value| {
                    let mut data = event["data"].clone();
                    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
                        data.extend(extra);
                    }
                    data
                };
                let reply = |kind: &str, data: Value| {
                    json!({
                        "type": format!("sh.keptn.event.{task}.{kind}"), "source": "chaos-executor",
                        "shkeptncontext": event["shkeptncontext"], "triggeredid": id, "data": data,
                    })
                };
                send_until_accepted(&api, &reply("started", data(json!({}))), &retries).await;
                let finished = reply("finished", data(json!({ "status": "succeeded", "result": "pass" })));
                send_until_accepted(&api, &finished, &retries).await;
                if (round + id.len()).is_multiple_of(7) {
                    duplicates.fetch_add(1, Ordering::SeqCst);
                    send_until_accepted(&api, &finished, &retries).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `event` until it is accepted (200/202) or refused for good (4xx); a 503 or no answer is
/// retried, as a well-behaved client does.
async fn send_until_accepted(api: &Api, event: &Value, retries: &AtomicUsize) {
    for _ in 0..100 {
        let (status, _) = api.post("/api/v1/event", event).await;
        match status {
            200 | 202 | 400..=499 => return,
            _ => {
                retries.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// What an acknowledged sequence must look like in the history: everything exactly once, or — for one
/// that was not yet durable when accepted (`durable` false) — at most once.
async fn audit(api: &Api, context: &str, durable: bool) -> Result<(), String> {
    let (status, body) = api.get(&events_path(context)).await;
    if status != 200 {
        return Err(format!("{context}: history unreadable ({status})"));
    }
    let events = body["events"].as_array().cloned().unwrap_or_default();
    let count = |event_type: &str| events.iter().filter(|e| e["type"] == event_type).count();
    let mut ids = HashSet::new();
    for event in &events {
        if !ids.insert(event["id"].as_str().unwrap_or_default().to_owned()) {
            return Err(format!("{context}: event id {} stored twice", event["id"]));
        }
    }
    if !durable && events.is_empty() {
        // Lost with the process before it was stored, as a 202 allows.
        return Ok(());
    }
    if count("sh.keptn.event.dev.delivery.triggered") != 1 {
        return Err(format!("{context}: its trigger is not in the history exactly once"));
    }
    let finished = count("sh.keptn.event.dev.delivery.finished");
    if finished > 1 || (durable && finished != 1) {
        return Err(format!("{context}: finished {finished} times"));
    }
    for task in TASKS {
        let triggered = count(&format!("sh.keptn.event.{task}.triggered"));
        if triggered > 1 || (durable && triggered != 1) {
            return Err(format!("{context}: task {task} triggered with {triggered} ids"));
        }
    }
    Ok(())
}

/// Writes a file into the data dir until the volume is full, keeps it so for a while, then removes it.
async fn fill_and_free(data_dir: &Path) {
    let filler = data_dir.join("filler");
    let written = tokio::task::spawn_blocking({
        let filler = filler.clone();
        move || {
            use std::io::Write as _;
            let Ok(mut file) = std::fs::File::create(&filler) else { return 0 };
            let block = vec![0u8; 1 << 20];
            let mut written = 0usize;
            while file.write_all(&block).is_ok() {
                written += 1;
                if written > 64 * 1024 {
                    break;
                }
            }
            let _ = file.sync_all();
            written
        }
    })
    .await
    .unwrap_or(0);
    eprintln!("chaos: data volume filled ({written} MiB written), freeing it in 3s");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = std::fs::remove_file(&filler);
}
