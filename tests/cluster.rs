//! Cluster mode, end to end: three `keelson` processes sharing nats-server, redis-server, SecantusDB
//! and a git smart-HTTP server, with this test as the execution plane (a NATS queue-group executor).
//! Sequences are triggered round-robin on every instance, the API answers alike on every instance,
//! an owner is killed mid-run, and bad configurations are refused.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{json, Value};
use support::git_http::GitHttpServer;
use support::process::{command_logged, spawn_keelson_logged, Process};
use support::servers::{self, free_port, ChildServer};
use support::{b64, send};

const TOKEN: &str = "cluster-token";
const SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const GIT_USER: &str = "keelson";
const GIT_TOKEN: &str = "git-token";
const SHARDS: usize = 64;

const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
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
    - name: prod
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: t1
";

/// The shared servers.
struct Servers {
    nats: ChildServer,
    redis: ChildServer,
    mongo: ChildServer,
    git: GitHttpServer,
    dir: tempfile::TempDir,
}

impl Servers {
    fn start() -> Self {
        Self {
            nats: servers::nats(),
            redis: servers::redis(),
            mongo: servers::secantus(),
            git: GitHttpServer::start(GIT_USER, GIT_TOKEN),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn vars(&self, node: &str) -> Vec<(&'static str, String)> {
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

    fn log(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("{node}.log"))
    }

    fn data_dir(&self, node: &str) -> PathBuf {
        let dir = self.dir.path().join(node);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn spawn(&self, node: &str, extra: &[(&'static str, String)]) -> Node {
        let port = free_port();
        let mut vars = self.vars(node);
        vars.extend(extra.iter().cloned());
        let process = spawn_keelson_logged(&self.data_dir(node), port, &vars, &self.log(node));
        Node { id: node.to_owned(), api: Api::new(&process.base), process }
    }
}

struct Node {
    id: String,
    process: Process,
    api: Api,
}

#[derive(Clone)]
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(base: &str) -> Self {
        Self { base: base.to_owned(), client: reqwest::Client::new() }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        send(self.client.get(format!("{}{path}", self.base)).header("x-token", TOKEN)).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        send(self.client.post(format!("{}{path}", self.base)).header("x-token", TOKEN).json(body)).await
    }

    /// `GET /api/v1/cluster`.
    async fn cluster(&self) -> Value {
        let (status, body) = self.get("/api/v1/cluster").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Shard owners as this instance sees them.
    async fn owners(&self) -> Vec<Option<String>> {
        let body = self.cluster().await;
        body["shards"].as_array().unwrap().iter().map(|shard| shard["owner"].as_str().map(str::to_owned)).collect()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self.client.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|line| line.starts_with(name) && !line.starts_with('#'))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Waits until `api` sees every shard owned by one of `nodes`, each owning some; returns how long it took.
async fn wait_until_owned_by(api: &Api, nodes: &[&str], within: Duration) -> Duration {
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
type Seen = Arc<Mutex<HashMap<(String, String, String), Vec<String>>>>;

/// The execution plane: answers every task `.triggered` (duplicates included) with `.started`, then
/// `.finished` (pass) after a short while, with ids derived from the triggered id.
async fn start_executor(nats_url: &str) -> Seen {
    let client = async_nats::connect(nats_url).await.unwrap();
    let mut triggered = client.queue_subscribe("sh.keptn.event.*.triggered", "executor".into()).await.unwrap();
    client.flush().await.unwrap();
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(message) = triggered.next().await {
            let Ok(event) = serde_json::from_slice::<Value>(&message.payload) else { continue };
            let task = event["type"].as_str().unwrap_or_default().split('.').nth(3).unwrap_or_default().to_owned();
            let key = (
                event["shkeptncontext"].as_str().unwrap_or_default().to_owned(),
                event["data"]["stage"].as_str().unwrap_or_default().to_owned(),
                task.clone(),
            );
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            record.lock().unwrap().entry(key).or_default().push(id.clone());
            let client = client.clone();
            tokio::spawn(async move {
                let data = json!({
                    "project": event["data"]["project"], "stage": event["data"]["stage"],
                    "service": event["data"]["service"], "status": "succeeded", "result": "pass",
                });
                for (kind, pause) in [("started", 0), ("finished", 100)] {
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    let answer = json!({
                        "specversion": "1.0", "source": "executor",
                        "id": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{id}/{kind}").as_bytes()).to_string(),
                        "type": format!("sh.keptn.event.{task}.{kind}"),
                        "shkeptncontext": event["shkeptncontext"], "triggeredid": id, "data": data,
                    });
                    let subject = format!("sh.keptn.event.{task}.{kind}");
                    let _ = client.publish(subject, serde_json::to_vec(&answer).unwrap().into()).await;
                }
            });
        }
    });
    seen
}

async fn create_project(api: &Api, git: &GitHttpServer, name: &str) {
    let url = git.create_repo(name);
    let credentials = json!({ "remoteURL": url, "user": GIT_USER, "https": { "token": GIT_TOKEN } });
    let body = json!({ "name": name, "shipyard": b64(SHIPYARD), "gitCredentials": credentials });
    let (status, answer) = api.post("/api/controlPlane/v1/project", &body).await;
    assert_eq!(status, 201, "create {name}: {answer}");
    let (status, answer) =
        api.post(&format!("/api/controlPlane/v1/project/{name}/service"), &json!({ "serviceName": "svc" })).await;
    assert_eq!(status, 200, "service of {name}: {answer}");
}

/// Triggers `dev.delivery` of `project` through `api`, retrying while its project changes hands.
async fn trigger(api: &Api, project: &str) -> String {
    let trigger = json!({
        "specversion": "1.0", "type": "sh.keptn.event.dev.delivery.triggered", "source": "ci",
        "data": { "project": project, "stage": "dev", "service": "svc" },
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = api.post("/api/v1/event", &trigger).await;
        if status == 200 {
            return body["keptnContext"].as_str().unwrap().to_owned();
        }
        assert!(status == 503 && Instant::now() < deadline, "trigger of {project}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every context in `contexts` ((project, context)) has finished both stages, as `api` sees it.
async fn wait_finished(api: &Api, contexts: &[(String, String)], within: Duration) {
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
fn assert_one_id_per_task(seen: &Seen) -> usize {
    let seen = seen.lock().unwrap();
    let mut repeats = 0;
    for (task, ids) in seen.iter() {
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), 1, "{task:?} was triggered with different ids: {ids:?}");
        repeats += ids.len() - 1;
    }
    repeats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_serve_every_project_and_survive_a_killed_owner() {
    let servers = Servers::start();
    let mut nodes: Vec<Node> = ["n1", "n2", "n3"].iter().map(|node| servers.spawn(node, &[])).collect();
    let apis: Vec<Api> = nodes.iter().map(|node| node.api.clone()).collect();
    wait_until_owned_by(&apis[0], &["n1", "n2", "n3"], Duration::from_secs(15)).await;
    let status = apis[1].cluster().await;
    assert_eq!(status["nodeId"], "n2");
    assert_eq!(status["members"].as_array().unwrap().len(), 3, "{status}");
    assert!(status["shards"].as_array().unwrap().iter().all(|shard| shard["epoch"].as_u64().is_some()));
    let seen = start_executor(&servers.nats.url).await;

    // Projects created on every instance are readable at once on every other.
    let projects: Vec<String> = (0..6).map(|i| format!("p{i:02}")).collect();
    for (i, project) in projects.iter().enumerate() {
        create_project(&apis[i % 3], &servers.git, project).await;
        for api in &apis {
            let (status, body) = api.get(&format!("/api/controlPlane/v1/project/{project}")).await;
            assert_eq!(status, 200, "{project} on {}: {body}", api.base);
            assert_eq!(body["stages"].as_array().unwrap().len(), 2);
        }
    }
    for api in &apis {
        let (status, body) = api.get("/api/controlPlane/v1/project").await;
        assert_eq!(status, 200);
        let names: Vec<&str> =
            body["projects"].as_array().unwrap().iter().filter_map(|p| p["projectName"].as_str()).collect();
        assert_eq!(names, projects.iter().map(String::as_str).collect::<Vec<_>>(), "list on {}", api.base);
    }
    // A project without an upstream cannot live in a cluster.
    let (status, body) =
        apis[0].post("/api/controlPlane/v1/project", &json!({ "name": "local-only", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(status, 422, "{body}");
    // A resource written through one instance is read through another.
    let resource = json!({ "resources": [{ "resourceURI": "notes.txt", "resourceContent": b64("written on n2") }] });
    let path = "/api/resource-service/v1/project/p00/stage/dev/service/svc/resource";
    let (status, body) = apis[1].post(path, &resource).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = apis[2].get(&format!("{path}/notes.txt")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resourceContent"], b64("written on n2"));

    // Steady state: sequences triggered round-robin through every instance all finish.
    let mut contexts = Vec::new();
    for round in 0..3 {
        for (i, project) in projects.iter().enumerate() {
            let context = trigger(&apis[(i + round) % 3], project).await;
            contexts.push((project.clone(), context));
        }
    }
    wait_finished(&apis[2], &contexts, Duration::from_secs(60)).await;
    let mut forwarded = 0.0;
    for api in &apis {
        forwarded += api.metric("keelson_forwarded_total").await;
        assert_eq!(api.metric("keelson_shard_losses_total").await, 0.0, "no spurious shard loss on {}", api.base);
    }
    assert!(forwarded > 0.0, "requests and events reached their owners through other instances");
    // Open tasks without a project are gathered from every instance (none open now).
    for api in &apis {
        let (status, body) = api.get("/api/controlPlane/v1/event/triggered/sh.keptn.event.t1.triggered").await;
        assert_eq!(status, 200, "{body}");
    }
    assert_one_id_per_task(&seen);

    // An owner is killed while sequences run: its shards are owned again within five seconds and
    // every sequence finishes.
    let mut running = Vec::new();
    for round in 0..2 {
        for (i, project) in projects.iter().enumerate() {
            let context = trigger(&apis[(i + round) % 3], project).await;
            running.push((project.clone(), context));
        }
    }
    let victim = nodes.remove(0);
    assert_eq!(victim.id, "n1");
    let killed_at = Instant::now();
    victim.process.kill_hard();
    let took = wait_until_owned_by(&apis[1], &["n2", "n3"], Duration::from_secs(10)).await;
    let took_total = killed_at.elapsed();
    assert!(took_total <= Duration::from_secs(5), "shards of the killed owner taken after {took_total:?} ({took:?})");
    wait_finished(&apis[2], &running, Duration::from_secs(60)).await;
    let repeats = assert_one_id_per_task(&seen);
    eprintln!("failover: shards owned again {took_total:?} after kill -9; {repeats} repeated task triggers (same id)");

    // A graceful leave hands the shards off and exits 0.
    let mut leaving = nodes.remove(0);
    leaving.process.signal("TERM");
    let left_at = Instant::now();
    assert_eq!(
        leaving.process.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        std::fs::read_to_string(servers.log("n2")).unwrap()
    );
    wait_until_owned_by(&apis[2], &["n3"], Duration::from_secs(5)).await;
    assert!(left_at.elapsed() <= Duration::from_secs(10));
    let after: Vec<(String, String)> = {
        let mut contexts = Vec::new();
        for project in &projects {
            contexts.push((project.clone(), trigger(&apis[2], project).await));
        }
        contexts
    };
    wait_finished(&apis[2], &after, Duration::from_secs(60)).await;
    assert_eq!(apis[2].metric("keelson_fenced_writes_total").await, 0.0, "no write was refused");
    assert_one_id_per_task(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_are_refused_with_one_line() {
    let servers = Servers::start();
    let fast = [("KEELSON_LEASE_TTL", "1s".to_owned())];
    let first = servers.spawn("n1", &fast);

    let refused = |node: &str, extra: &[(&'static str, String)], drop_redis: bool| {
        let mut vars = servers.vars(node);
        vars.extend(extra.iter().cloned());
        if drop_redis {
            vars.retain(|(key, _)| *key != "KEELSON_REDIS_URL");
        }
        let log = servers.log(&format!("{node}-refused"));
        let mut command = command_logged(&servers.data_dir(&format!("{node}-refused")), free_port(), &vars, &log);
        let status = command.status().unwrap();
        let output = std::fs::read_to_string(&log).unwrap();
        let last = output.lines().last().unwrap_or_default().to_owned();
        (status.code(), last)
    };

    let (code, line) = refused("n5", &[("KEELSON_SHARDS", "32".into()), fast[0].clone()], false);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains("KEELSON_SHARDS") && line.contains("64"), "{line}");

    let (code, line) = refused("n1", &fast, false);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains("KEELSON_NODE_ID") && line.contains("n1"), "{line}");

    let (code, line) = refused("n6", &[], true);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains("cluster mode needs KEELSON_REDIS_URL"), "{line}");

    // The running instance was not disturbed.
    let owners = first.api.owners().await;
    assert!(owners.iter().all(|owner| owner.as_deref() == Some("n1")), "{owners:?}");
    assert_eq!(first.api.metric("keelson_shard_losses_total").await, 0.0);
}
