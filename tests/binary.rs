//! The `keelson` binary: configuration errors, the generated token, and a run on Redis, NATS and a
//! MongoDB-compatible server.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::json;
use support::process::spawn_keelson;
use support::servers::{self, free_port};
use support::{b64, SHIPYARD};

use support::process::BINARY;

/// Runs the binary with `vars` set; expects it to fail and returns its stderr.
fn expect_start_failure(vars: &[(&str, &str)]) -> String {
    let data_dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(BINARY);
    // Only errors are logged, so that the reason is the one line on stderr.
    command
        .env_clear()
        .env("KEELSON_DATA_DIR", data_dir.path())
        .env("KEELSON_LISTEN", &listen)
        .env("KEELSON_LOG", "error");
    for (key, value) in vars {
        command.env(key, value);
    }
    let started_at = Instant::now();
    let output = command.output().unwrap();
    assert!(!output.status.success(), "keelson must fail with {vars:?}");
    assert!(started_at.elapsed() < Duration::from_secs(30), "failure must come quickly");
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "one clear line, got: {stderr}");
    assert!(stderr.starts_with("keelson: "), "{stderr}");
    stderr
}

#[test]
fn bad_configuration_exits_with_one_line() {
    let line = expect_start_failure(&[("KEELSON_TASK_STARTED_TIMEOUT", "ten minutes")]);
    assert!(line.contains("KEELSON_TASK_STARTED_TIMEOUT"), "{line}");
    let line = expect_start_failure(&[("KEELSON_REDIS_URL", "not a url")]);
    assert!(line.contains("KEELSON_REDIS_URL"), "{line}");
    let line = expect_start_failure(&[("KEELSON_NATS_URL", "http://127.0.0.1:4222")]);
    assert!(line.contains("KEELSON_NATS_URL"), "{line}");
    let line = expect_start_failure(&[("KEELSON_LISTEN", "everywhere")]);
    assert!(line.contains("KEELSON_LISTEN"), "{line}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "listen = [").unwrap();
    let line = expect_start_failure(&[("KEELSON_CONFIG", config.to_str().unwrap())]);
    assert!(line.contains("bad.toml"), "{line}");
}

#[test]
fn an_invalid_log_filter_stops_the_start() {
    let line = expect_start_failure(&[("KEELSON_LOG", "info,keelson=loud")]);
    assert!(line.contains("KEELSON_LOG"), "{line}");
    let line = expect_start_failure(&[("KEELSON_LOG_FORMAT", "xml")]);
    assert!(line.contains("KEELSON_LOG_FORMAT"), "{line}");
}

/// Starts the binary with stdout and stderr as given, waits until `/health` answers on `port`.
fn start_with_streams(
    data_dir: &std::path::Path,
    listen: &str,
    port: u16,
    vars: &[(&str, &str)],
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> std::process::Child {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("KEELSON_DATA_DIR", data_dir)
        .env("KEELSON_LISTEN", listen)
        .env("KEELSON_SERVICES", "none")
        .stdout(stdout)
        .stderr(stderr);
    for (key, value) in vars {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = reqwest::blocking::get(format!("http://127.0.0.1:{port}/health")).is_ok_and(|r| r.status() == 200);
        if up {
            return child;
        }
        assert!(child.try_wait().unwrap().is_none(), "keelson exited");
        assert!(Instant::now() < deadline, "keelson did not answer on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM and returns the exit code.
fn terminate(mut child: std::process::Child) -> Option<i32> {
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    child.wait().unwrap().code()
}

#[test]
fn logs_go_to_stderr_in_plain_text_and_closed_streams_are_harmless() {
    let data_dir = tempfile::tempdir().unwrap();
    let log = data_dir.path().join("stderr.log");
    let port = free_port();
    // `localhost` is accepted as the listen host; stdout is a pipe nobody reads (`keelson | head`).
    let process = start_with_streams(
        data_dir.path(),
        &format!("localhost:{port}"),
        port,
        &[("KEELSON_LOG", "info")],
        std::process::Stdio::piped(),
        std::process::Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let mut process = process;
    drop(process.stdout.take());
    let client = reqwest::blocking::Client::new();
    assert_eq!(client.get(format!("http://127.0.0.1:{port}/metrics")).send().unwrap().status(), 200);
    let code = terminate(process);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(0), "a closed stdout neither panics nor fails the run: {text}");
    let token = std::fs::read_to_string(data_dir.path().join("api-token")).unwrap();
    assert!(text.contains("Keelson is listening on http://127.0.0.1:"), "{text}");
    assert!(text.contains("keelson is serving") && text.contains("stopped"), "logs on stderr: {text}");
    assert_eq!(text.matches(token.trim()).count(), 1, "the generated token is shown once: {text}");
    assert!(!text.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {text}");

    // A closed stderr is harmless too.
    let port = free_port();
    let mut process = start_with_streams(
        data_dir.path(),
        &format!("127.0.0.1:{port}"),
        port,
        &[("KEELSON_LOG", "info")],
        std::process::Stdio::null(),
        std::process::Stdio::piped(),
    );
    drop(process.stderr.take());
    assert_eq!(client.get(format!("http://127.0.0.1:{port}/health")).send().unwrap().status(), 200);
    assert_eq!(terminate(process), Some(0));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let data_dir = tempfile::tempdir().unwrap();
    let log = data_dir.path().join("stderr.log");
    let port = free_port();
    let process = start_with_streams(
        data_dir.path(),
        &format!("127.0.0.1:{port}"),
        port,
        &[("KEELSON_LOG", "info"), ("KEELSON_LOG_FORMAT", "json")],
        std::process::Stdio::null(),
        std::process::Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    assert_eq!(terminate(process), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} missing: {line}");
        }
    }
    let serving = lines.iter().find(|line| line["message"] == "keelson is serving").expect("the serving line");
    assert!(serving["address"].as_str().is_some_and(|a| a.ends_with(&port.to_string())), "fields kept: {serving}");
    assert!(lines.iter().any(|line| line["message"].as_str().is_some_and(|m| m.starts_with("Keelson is listening"))));
}

#[test]
fn unreachable_servers_stop_the_start() {
    let port = free_port();
    let line = expect_start_failure(&[("KEELSON_REDIS_URL", &format!("redis://127.0.0.1:{port}"))]);
    assert!(line.contains("redis"), "{line}");
    let line = expect_start_failure(&[("KEELSON_NATS_URL", &format!("nats://127.0.0.1:{port}"))]);
    assert!(line.contains("nats"), "{line}");
    let line = expect_start_failure(&[("KEELSON_MONGODB_URL", &format!("mongodb://127.0.0.1:{port}/db"))]);
    assert!(line.contains("mongodb"), "{line}");
}

#[tokio::test]
async fn embedded_run_generates_a_private_token_once() {
    let data_dir = tempfile::tempdir().unwrap();
    let first = spawn_keelson(data_dir.path(), &[]);
    let token_path = data_dir.path().join("api-token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    assert!(token.len() >= 32);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "token file must be private");
    }
    assert!(first.startup_lines.iter().any(|line| line.contains(&token)), "token shown when generated");
    let client = reqwest::Client::new();
    let health = client.get(format!("{}/health", first.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let auth = client.post(format!("{}/api/v1/auth", first.base)).header("x-token", &token).send().await.unwrap();
    assert_eq!(auth.status(), 200);
    drop(first);

    let second = spawn_keelson(data_dir.path(), &[]);
    assert_eq!(std::fs::read_to_string(&token_path).unwrap(), token, "the token is generated once");
    assert!(!second.startup_lines.iter().any(|line| line.contains(&token)), "and shown once");
    drop(second);
}

#[tokio::test]
async fn runs_on_redis_nats_and_mongodb() {
    let redis = servers::redis();
    let nats = servers::nats();
    let mongo = servers::secantus();
    let vars = [
        ("KEELSON_REDIS_URL", redis.url.clone()),
        ("KEELSON_NATS_URL", nats.url.clone()),
        ("KEELSON_MONGODB_URL", mongo.url.clone()),
        ("KEELSON_API_TOKEN", "backend-token".to_owned()),
    ];
    let subscriber = async_nats::connect(&nats.url).await.unwrap();
    let mut lifecycle = subscriber.subscribe("sh.keptn.event.project.>").await.unwrap();
    subscriber.flush().await.unwrap();

    let data_dir = tempfile::tempdir().unwrap();
    let process = spawn_keelson(data_dir.path(), &vars);
    assert!(
        !process.stderr.lock().unwrap().iter().any(|line| line.contains("backend-token")),
        "a configured token is not printed"
    );
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/api/controlPlane/v1/project", process.base))
        .header("x-token", "backend-token")
        .json(&json!({ "name": "sockshop", "shipyard": b64(SHIPYARD) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // Lifecycle events arrive on NATS under their type as subject.
    let mut subjects = Vec::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(Duration::from_secs(10), lifecycle.next())
            .await
            .expect("lifecycle event on nats within 10s")
            .unwrap();
        let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(event["type"], message.subject.as_str());
        assert_eq!(event["data"]["project"], "sockshop");
        subjects.push(message.subject.to_string());
    }
    assert_eq!(subjects, ["sh.keptn.event.project.create.started", "sh.keptn.event.project.create.finished"]);

    // The record is in Redis and the events in the MongoDB-compatible history.
    let redis_client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut connection = redis_client.get_multiplexed_async_connection().await.unwrap();
    let record: Option<Vec<u8>> =
        redis::cmd("GET").arg("keelson:project/sockshop").query_async(&mut connection).await.unwrap();
    assert!(record.is_some(), "project record stored in redis");
    use keelson::store::EventStore as _;
    let history = keelson::store::mongo::MongoEventStore::connect(&mongo.url).await.unwrap();
    let stored = history
        .find(&keelson::store::EventQuery { project: Some("sockshop".into()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    let mut stored_types: Vec<String> = stored.into_iter().map(|event| event.event_type).collect();
    stored_types.sort();
    assert_eq!(stored_types, ["sh.keptn.event.project.create.finished", "sh.keptn.event.project.create.started"]);
    assert!(!data_dir.path().join("keelson.sqlite").exists(), "no embedded database with all servers configured");

    // A restart reads the project back from Redis.
    drop(process);
    let process = spawn_keelson(data_dir.path(), &vars);
    let project: serde_json::Value = client
        .get(format!("{}/api/controlPlane/v1/project/sockshop", process.base))
        .header("x-token", "backend-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(project["projectName"], "sockshop");
    // On NATS, /metrics reports the control plane's consumer lag and every store as up.
    let scrape = client.get(format!("{}/metrics", process.base)).send().await.unwrap().text().await.unwrap();
    for line in [
        "keelson_jetstream_consumer_pending 0",
        "keelson_jetstream_consumer_ack_pending 0",
        "keelson_store_up{store=\"history\"} 1",
        "keelson_bus_up 1",
    ] {
        assert!(scrape.lines().any(|l| l == line), "missing `{line}` in:\n{scrape}");
    }
}

/// `SIGTERM` during a burst of events: the process stops taking input, makes what it accepted durable
/// and exits 0 within 10 s; after a restart every accepted event's sequence is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_loses_no_accepted_event() {
    const TOKEN: &str = "drain-token";
    let data_dir = tempfile::tempdir().unwrap();
    let vars = [("KEELSON_API_TOKEN", TOKEN.to_owned())];
    let mut first = spawn_keelson(data_dir.path(), &vars);
    let api = std::sync::Arc::new(support::process::ProcessApi::new(&first, TOKEN));
    let (status, body) =
        api.post("/api/controlPlane/v1/project", &json!({ "name": "shop", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(status, 201, "{body}");
    let services: Vec<String> = (0..20).map(|n| format!("svc-{n}")).collect();
    for service in &services {
        let (status, _) =
            api.post("/api/controlPlane/v1/project/shop/service", &json!({ "serviceName": service })).await;
        assert_eq!(status, 200);
    }

    // A burst of triggers from many clients at once; SIGTERM arrives while they are being answered.
    let mut burst = tokio::task::JoinSet::new();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = reqwest::Client::new();
    for n in 0..3000 {
        let client = client.clone();
        let api = std::sync::Arc::clone(&api);
        let answered = std::sync::Arc::clone(&answered);
        let service = services[n % services.len()].clone();
        burst.spawn(async move {
            let trigger = json!({
                "type": "sh.keptn.event.dev.delivery.triggered", "source": "burst",
                "data": { "project": "shop", "stage": "dev", "service": service },
            });
            let answer = client
                .post(format!("{}/api/v1/event", api.base))
                .header("x-token", TOKEN)
                .json(&trigger)
                .timeout(Duration::from_secs(15))
                .send()
                .await;
            match answer {
                Ok(response) => {
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    (status, body["keptnContext"].as_str().map(str::to_owned))
                }
                Err(_) => (0, None),
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(std::sync::atomic::Ordering::Relaxed) < 50 {
        assert!(Instant::now() < deadline, "the burst is not being answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = first.child.id().to_string();
    let signalled = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exit = loop {
        if let Some(status) = first.child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(10), "still running 10 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status after SIGTERM: {exit}");

    // Answers still on their way are read within a moment; a request without one by then was not
    // accepted (the process is gone).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut accepted = Vec::new();
    let mut refused = std::collections::BTreeMap::new();
    while let Some(result) = burst.try_join_next() {
        match result.unwrap() {
            (200 | 202, Some(context)) => accepted.push(context),
            (status, _) => *refused.entry(status).or_insert(0) += 1,
        }
    }
    let unanswered = burst.len();
    burst.abort_all();
    println!("accepted {} refused {refused:?} unanswered {unanswered}", accepted.len());
    assert!(!accepted.is_empty(), "some triggers were accepted before the signal");
    assert!(refused.len() + unanswered > 0, "the signal came during the burst ({} accepted)", accepted.len());

    drop(first);
    let second = spawn_keelson(data_dir.path(), &vars);
    let api = support::process::ProcessApi::new(&second, TOKEN);
    let (status, body) = api.get("/api/controlPlane/v1/sequence-execution?project=shop&pageSize=5000").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalCount"].as_u64().unwrap() as usize, body["sequenceExecutions"].as_array().unwrap().len());
    let contexts: std::collections::HashSet<&str> = body["sequenceExecutions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|execution| execution["scope"]["keptnContext"].as_str())
        .collect();
    let lost: Vec<&String> = accepted.iter().filter(|context| !contexts.contains(context.as_str())).collect();
    assert!(lost.is_empty(), "{} of {} accepted triggers lost: {lost:?}", lost.len(), accepted.len());
    for context in accepted.iter().take(20) {
        let (status, body) = api.get(&format!("/api/mongodb-datastore/event?keptnContext={context}&pageSize=50")).await;
        assert_eq!(status, 200, "{body}");
        let types: Vec<&str> = body["events"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
        assert!(
            types.contains(&"sh.keptn.event.dev.delivery.triggered"),
            "trigger of {context} in the history: {types:?}"
        );
    }
}

/// Runs `keelson check-config` with `vars`; its exit code and standard output.
fn check_config(vars: &[(&str, String)]) -> (Option<i32>, String) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BINARY);
    command.env_clear().env("KEELSON_DATA_DIR", data_dir.path()).env("KEELSON_LOG", "error").arg("check-config");
    for (key, value) in vars {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn check_config_reports_each_server_without_serving() {
    let (code, report) = check_config(&[]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.lines().count() >= 2 && report.lines().all(|line| line.starts_with("ok    ")), "{report}");

    let (redis, nats, mongo) = (servers::redis(), servers::nats(), servers::secantus());
    let servers_vars = vec![
        ("KEELSON_REDIS_URL", redis.url.clone()),
        ("KEELSON_NATS_URL", nats.url.clone()),
        ("KEELSON_MONGODB_URL", mongo.url.clone()),
    ];
    let (code, report) = check_config(&servers_vars);
    assert_eq!(code, Some(0), "{report}");
    for server in ["redis", "nats", "mongodb"] {
        assert!(report.lines().any(|line| line.starts_with("ok") && line.contains(server)), "{server}: {report}");
    }

    let port = free_port();
    let (code, report) = check_config(&[("KEELSON_REDIS_URL", format!("redis://127.0.0.1:{port}"))]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.lines().any(|line| line.starts_with("fail  redis")), "{report}");

    // A cluster created with another shard count is named before anything starts.
    let store = keelson::store::redis::RedisSnapshotStore::connect(&redis.url).await.unwrap();
    assert_eq!(store.cluster_shards(64).await.unwrap(), 64);
    let mut cluster = servers_vars.clone();
    cluster.extend([
        ("KEELSON_CLUSTER", "true".to_owned()),
        ("KEELSON_API_TOKEN", "t".to_owned()),
        ("KEELSON_SECRET_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()),
        ("KEELSON_SHARDS", "32".to_owned()),
    ]);
    let (code, report) = check_config(&cluster);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.lines().any(|line| line.starts_with("fail") && line.contains("64 shards")), "{report}");
    assert_eq!(store.cluster_shards(32).await.unwrap(), 64, "the check changed nothing");
}
