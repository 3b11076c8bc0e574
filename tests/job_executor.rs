//! The built-in job executor: deliveries whose tasks are real commands (`sh` scripts and `python3`
//! checks) configured by `job/config.yaml`, and every way a job can go wrong.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{b64, send, TestKeelson};

const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
metadata:
  name: shipyard-jobs
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: test
";

const PROJECT: &str = "jobs";
const DB_PASSWORD: &str = "pa55-w0rd-never-shown";

async fn keelson(services: &[&str]) -> TestKeelson {
    keelson_running(services, 4).await
}

/// A Keelson whose job executor runs at most `max_parallel` tasks at once, with a project of `services`.
async fn keelson_running(services: &[&str], max_parallel: usize) -> TestKeelson {
    let keelson = TestKeelson::start_with(|config| {
        config.services = vec!["job-executor".to_owned()];
        config.jobs.runner = keelson::config::JobRunner::Process;
        config.jobs.allowed_commands = vec!["sh".to_owned(), "python3".to_owned(), "sleep".to_owned()];
        config.jobs.max_parallel = max_parallel;
    })
    .await;
    assert_eq!(keelson.create_project(PROJECT, SHIPYARD).await.0, 201);
    for service in services {
        assert_eq!(keelson.create_service(PROJECT, service).await.0, 200);
    }
    keelson
}

/// Uploads files to `service` of stage `dev`; returns the commit id.
async fn upload(keelson: &TestKeelson, service: &str, files: &[(&str, &str)]) -> String {
    let resources: Vec<Value> =
        files.iter().map(|(uri, content)| json!({ "resourceURI": uri, "resourceContent": b64(content) })).collect();
    let (status, body) = send(
        keelson
            .post(&format!("/api/resource-service/v1/project/{PROJECT}/stage/dev/service/{service}/resource"))
            .json(&json!({ "resources": resources })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["commitID"].as_str().expect("a commit id").to_owned()
}

async fn trigger(keelson: &TestKeelson, service: &str, data: Value, commit: Option<&str>) -> String {
    let mut event = json!({
        "type": "sh.keptn.event.dev.delivery.triggered", "source": "tests",
        "data": { "project": PROJECT, "stage": "dev", "service": service },
    });
    support::merge_into(&mut event["data"], data);
    if let Some(commit) = commit {
        event["gitcommitid"] = json!(commit);
    }
    let (status, body) = send(keelson.post("/api/v1/event").json(&event)).await;
    assert_eq!(status, 200, "{body}");
    body["keptnContext"].as_str().unwrap().to_owned()
}

async fn abort(keelson: &TestKeelson, context: &str) {
    let control = format!("/api/controlPlane/v1/sequence/{PROJECT}/{context}/control");
    let (status, body) = send(keelson.post(&control).json(&json!({ "state": "abort" }))).await;
    assert_eq!(status, 200, "{body}");
}

async fn create_secret(keelson: &TestKeelson, name: &str, data: Value) {
    let secret = json!({ "name": name, "scope": "keptn-default", "data": data });
    let (status, body) = send(keelson.post("/api/secrets/v1/secret").json(&secret)).await;
    assert_eq!(status, 201, "{body}");
}

/// All events of `context`, oldest first.
async fn history(keelson: &TestKeelson, context: &str) -> Vec<Value> {
    let (status, body) = send(
        keelson.get(&format!("/api/mongodb-datastore/event?project={PROJECT}&keptnContext={context}&pageSize=100")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut events = body["events"].as_array().cloned().unwrap_or_default();
    events.reverse();
    events
}

/// The first event of `event_type` in `context`, waited for up to `within`.
async fn wait_for(keelson: &TestKeelson, context: &str, event_type: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let events = history(keelson, context).await;
        if let Some(event) = events.iter().find(|event| event["type"] == event_type) {
            return event.clone();
        }
        let types: Vec<&Value> = events.iter().map(|event| &event["type"]).collect();
        if Instant::now() > deadline {
            let (_, state) = send(keelson.get(&format!("/api/controlPlane/v1/sequence/{PROJECT}"))).await;
            panic!("no {event_type} in {context}; have {types:?}; sequence state {state}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn outcome(event: &Value) -> (&str, &str) {
    (event["data"]["status"].as_str().unwrap_or_default(), event["data"]["result"].as_str().unwrap_or_default())
}

async fn job_logs(keelson: &TestKeelson) -> Vec<Value> {
    let (_, integrations) =
        send(keelson.get("/api/controlPlane/v1/uniform/registration?name=job-executor-service")).await;
    let id = integrations[0]["id"].as_str().expect("the job executor is registered").to_owned();
    let (status, body) = send(keelson.get(&format!("/api/controlPlane/v1/log?integrationId={id}"))).await;
    assert_eq!(status, 200, "{body}");
    body["logs"].as_array().cloned().unwrap_or_default()
}

/// Whether `pid` is a live process (a zombie has ended).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()))
        .is_some_and(|state| state != 'Z' && state != 'X')
}

async fn wait_for_file(path: &Path, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "{} was not written", path.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_delivery_runs_real_commands_with_files_from_the_event_commit() {
    let keelson = keelson(&["carts"]).await;
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("deployed.txt");
    create_secret(&keelson, "db", json!({ "DB_PASSWORD": DB_PASSWORD })).await;
    let config = format!(
        r#"apiVersion: v2
actions:
  - name: deploy
    events:
      - name: "sh.keptn.event.deployment.triggered"
        jsonpath:
          property: "$.data.deployment.deploymentstrategy"
          match: "direct"
    tasks:
      - name: render
        image: "alpine:3"
        files: [/scripts/deploy.sh]
        env:
          - {{ name: IMAGE, value: "$.data.configurationChange.values.image", valueFrom: event }}
          - {{ name: TARGET, value: "{target}", valueFrom: string }}
          - {{ name: db, valueFrom: secret }}
        cmd: [sh, scripts/deploy.sh]
  - name: test
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: check
        files: [scripts]
        workingDir: /keptn/scripts
        env:
          - {{ name: TARGET, value: "{target}", valueFrom: string }}
        cmd: [python3, check.py]
"#,
        target = target.display()
    );
    let deploy = |version: &str| {
        format!(
            "#!/bin/sh\nset -e\necho \"{version} $IMAGE $KEPTN_PROJECT $KEPTN_STAGE $KEPTN_SERVICE $KEPTN_CONTEXT $KEPTN_EVENT_ID\" > \"$TARGET\"\n\
             env | cut -d= -f1 | sort > \"$TARGET.env\"\necho \"deploying with password $DB_PASSWORD\"\n"
        )
    };
    let check = "import os, sys\nwords = open(os.environ['TARGET']).read().split()\nprint('deployed:', words)\n\
                 sys.exit(0 if words[1] == 'app:2' else 1)\n";
    let first = upload(
        &keelson,
        "carts",
        &[("job/config.yaml", &config), ("scripts/deploy.sh", &deploy("v1")), ("scripts/check.py", check)],
    )
    .await;
    // A later commit changes the script; the sequence names the first commit and must run that one.
    upload(&keelson, "carts", &[("scripts/deploy.sh", &deploy("v2")), ("scripts/later.txt", "later\n")]).await;
    // Listings too can be read at a commit (the job executor expands directories with them).
    let listing = |commit: Option<&str>| {
        let mut path = format!("/api/resource-service/v1/project/{PROJECT}/stage/dev/service/carts/resource");
        if let Some(commit) = commit {
            path.push_str(&format!("?gitCommitID={commit}"));
        }
        keelson.get(&path)
    };
    let (status, at_first) = send(listing(Some(&first))).await;
    assert_eq!(status, 200, "{at_first}");
    let (_, at_head) = send(listing(None)).await;
    let has_later = |page: &Value| {
        page["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resourceURI"] == "/scripts/later.txt" || r["resourceURI"] == "scripts/later.txt")
    };
    assert!(!has_later(&at_first) && has_later(&at_head), "{at_first} / {at_head}");

    let data = json!({ "deployment": { "deploymentstrategy": "direct" }, "configurationChange": { "values": { "image": "app:2" } } });
    let context = trigger(&keelson, "carts", data, Some(&first)).await;
    let finished = wait_for(&keelson, &context, "sh.keptn.event.dev.delivery.finished", Duration::from_secs(30)).await;
    assert_eq!(outcome(&finished), ("succeeded", "pass"), "{finished}");

    let events = history(&keelson, &context).await;
    let deployment_triggered = events.iter().find(|e| e["type"] == "sh.keptn.event.deployment.triggered").unwrap();
    for kind in ["started", "finished"] {
        for task in ["deployment", "test"] {
            let event = events.iter().find(|e| e["type"] == format!("sh.keptn.event.{task}.{kind}")).unwrap();
            assert_eq!(event["source"], "job-executor-service", "{event}");
        }
    }
    let deployed = std::fs::read_to_string(&target).unwrap();
    let expected = format!("v1 app:2 {PROJECT} dev carts {context} {}", deployment_triggered["id"].as_str().unwrap());
    assert_eq!(deployed.trim(), expected);
    let names = std::fs::read_to_string(out.path().join("deployed.txt.env")).unwrap();
    let names: Vec<&str> = names.lines().filter(|name| !["PWD", "SHLVL", "_", "OLDPWD"].contains(name)).collect();
    assert_eq!(
        names,
        [
            "DB_PASSWORD",
            "IMAGE",
            "KEPTN_CONTEXT",
            "KEPTN_EVENT_ID",
            "KEPTN_PROJECT",
            "KEPTN_SERVICE",
            "KEPTN_STAGE",
            "PATH",
            "TARGET"
        ],
        "the environment is only PATH, the Keptn variables and the declared env"
    );

    // The secret reached the process but not the history nor the logs.
    let everything = serde_json::to_string(&events).unwrap();
    assert!(!everything.contains(DB_PASSWORD), "the secret is in the history");
    let logs = job_logs(&keelson).await;
    let all_logs = serde_json::to_string(&logs).unwrap();
    assert!(!all_logs.contains(DB_PASSWORD), "the secret is in the logs: {all_logs}");
    assert!(all_logs.contains("deploying with password ***"), "{all_logs}");
    assert!(all_logs.contains("the process runner ignores image"), "{all_logs}");
    assert!(all_logs.contains("deployed: ['v1', 'app:2'"), "the check's output is logged: {all_logs}");

    // An event whose content does not match the action's condition is not the job executor's.
    let other = json!({ "deployment": { "deploymentstrategy": "blue_green" } });
    let context = trigger(&keelson, "carts", other, None).await;
    wait_for(&keelson, &context, "sh.keptn.event.deployment.triggered", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let types: Vec<Value> = history(&keelson, &context).await.into_iter().map(|e| e["type"].clone()).collect();
    assert!(!types.contains(&json!("sh.keptn.event.deployment.started")), "{types:?}");
    keelson.stop().await;
}

#[actix_rt::test]
async fn failing_slow_refused_and_broken_jobs_fail_their_task_with_the_reason() {
    let services = ["fails", "slow", "refused", "broken", "healthy"];
    let keelson = keelson(&services).await;
    let job = |task: &str| {
        format!(
            "apiVersion: v2\nactions:\n  - name: deploy\n    events:\n      - name: \"sh.keptn.event.deployment.triggered\"\n    tasks:\n{task}"
        )
    };
    // A certificate-like secret: the failing task prints its middle line on its own.
    let certificate = "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQABnever-shown\n-----END KEY-----";
    create_secret(&keelson, "cert", json!({ "CERT": certificate })).await;
    upload(
        &keelson,
        "fails",
        &[(
            "job/config.yaml",
            &job("      - name: boom\n        env: [{name: cert, valueFrom: secret}]\n        cmd: [sh, -c, \"echo preparing; echo \\\"$CERT\\\" | sed -n 2p; echo boom >&2; exit 3\"]\n"),
        )],
    )
    .await;
    upload(
        &keelson,
        "slow",
        &[("job/config.yaml", &job("      - name: wait\n        cmd: [sleep, \"30\"]\n        maxPollDuration: 1\n"))],
    )
    .await;
    upload(
        &keelson,
        "refused",
        &[("job/config.yaml", &job("      - name: shell\n        cmd: [bash, -c, \"true\"]\n"))],
    )
    .await;
    let broken = "apiVersion: v2\nactions:\n  - name: x\n    events: [{name: sh.keptn.event.deployment.triggered}]\n    taks: []\n";
    upload(&keelson, "broken", &[("job/config.yaml", broken)]).await;
    // "healthy" has no file of its own: the stage's applies.
    let stage_job = job("      - name: ok\n        cmd: [sh, -c, \"test $KEPTN_SERVICE = healthy\"]\n");
    let resources = json!({ "resources": [{ "resourceURI": "job/config.yaml", "resourceContent": b64(&stage_job) }] });
    let (status, body) =
        send(keelson.post(&format!("/api/resource-service/v1/project/{PROJECT}/stage/dev/resource")).json(&resources))
            .await;
    assert_eq!(status, 201, "{body}");

    let mut contexts = Vec::new();
    for service in services {
        contexts.push(trigger(&keelson, service, json!({}), None).await);
    }
    let mut messages = Vec::new();
    for (service, context) in services.iter().zip(&contexts) {
        let finished = wait_for(&keelson, context, "sh.keptn.event.deployment.finished", Duration::from_secs(30)).await;
        assert_eq!(finished["source"], "job-executor-service");
        if *service == "healthy" {
            assert_eq!(outcome(&finished), ("succeeded", "pass"), "{finished}");
        } else {
            assert_eq!(outcome(&finished), ("errored", "fail"), "{service}: {finished}");
            messages.push(finished["data"]["message"].as_str().unwrap().to_owned());
        }
        wait_for(&keelson, context, "sh.keptn.event.deployment.started", Duration::from_secs(1)).await;
    }
    assert!(messages[0].starts_with("Task 'boom' failed: exit code 3"), "{}", messages[0]);
    assert!(messages[0].contains("preparing") && messages[0].contains("boom"), "the output tail: {}", messages[0]);
    assert!(
        messages[0].contains("\n***\n") && !messages[0].contains("AAAAB3Nza"),
        "the secret line is hidden: {}",
        messages[0]
    );
    let everything = serde_json::to_string(&history(&keelson, &contexts[0]).await).unwrap();
    assert!(!everything.contains("never-shown"), "a secret reached the history");
    let logs = serde_json::to_string(&job_logs(&keelson).await).unwrap();
    assert!(!logs.contains("never-shown"), "a secret reached the log");
    assert!(messages[1].contains("Task 'wait' failed: did not finish within 1s"), "{}", messages[1]);
    assert!(
        messages[2].contains("command 'bash' is not allowed (job_allowed_commands: sh, python3, sleep)"),
        "{}",
        messages[2]
    );
    assert!(messages[3].contains("job/config.yaml is not valid") && messages[3].contains("taks"), "{}", messages[3]);

    // Counters are per process, and the other tests of this file run jobs too (none of them failing).
    let metrics = reqwest::get(keelson.url("/metrics")).await.unwrap().text().await.unwrap();
    let count = |outcome: &str| -> f64 {
        let prefix = format!("keelson_job_tasks_total{{outcome=\"{outcome}\"}} ");
        metrics.lines().find_map(|line| line.strip_prefix(&prefix)?.parse().ok()).unwrap_or(-1.0)
    };
    assert_eq!(count("failed"), 3.0, "the failing, slow and refused tasks");
    assert!(count("succeeded") >= 1.0);
    keelson.stop().await;
}

#[actix_rt::test]
async fn aborting_the_sequence_kills_the_running_process_group() {
    let keelson = keelson(&["carts"]).await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().display();
    let script = format!("sleep 60 & echo $! > {dir}/child.pid; echo $$ > {dir}/leader.pid; wait");
    let config = format!(
        "apiVersion: v2\nactions:\n  - name: deploy\n    events:\n      - name: \"sh.keptn.event.deployment.triggered\"\n    tasks:\n      - name: long\n        cmd: [sh, -c, \"{script}\"]\n      - name: never\n        cmd: [sh, -c, \"touch {dir}/never\"]\n"
    );
    upload(&keelson, "carts", &[("job/config.yaml", &config)]).await;
    let context = trigger(&keelson, "carts", json!({}), None).await;
    let leader: i32 =
        wait_for_file(&out.path().join("leader.pid"), Duration::from_secs(20)).await.trim().parse().unwrap();
    let child: i32 = wait_for_file(&out.path().join("child.pid"), Duration::from_secs(5)).await.trim().parse().unwrap();
    assert!(running(leader) && running(child));

    abort(&keelson, &context).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(leader) || running(child) {
        assert!(Instant::now() < deadline, "processes {leader}/{child} outlived the abort");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!out.path().join("never").exists(), "the action went on after the abort");
    let logs = serde_json::to_string(&job_logs(&keelson).await).unwrap();
    assert!(logs.contains("stopped: the sequence was aborted"), "{logs}");
    keelson.stop().await;
}

/// A `keelson service job-executor` process on NATS; killed when dropped.
struct ServiceProcess(std::process::Child);

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_rt::test]
async fn job_executors_on_nats_share_the_work_and_run_each_job_once() {
    let nats = support::servers::nats();
    let redis = support::servers::redis();
    let key = keelson::secrets::SecretKey::generate_text();
    let keelson = TestKeelson::start_for_service_processes(&nats.url, &redis.url, &key).await;
    assert_eq!(keelson.create_project(PROJECT, SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service(PROJECT, "carts").await.0, 200);
    for index in 0..4 {
        assert_eq!(keelson.create_service(PROJECT, &format!("slow-{index}")).await.0, 200);
    }
    create_secret(&keelson, "db", json!({ "DB_PASSWORD": DB_PASSWORD })).await;
    let out = tempfile::tempdir().unwrap();
    let runs = out.path().join("runs.txt");
    let config = format!(
        "apiVersion: v2\nactions:\n  - name: deploy\n    events:\n      - name: \"sh.keptn.event.(deployment|test).triggered\"\n    tasks:\n      - name: record\n        env:\n          - {{ name: db, valueFrom: secret }}\n        files: [lib]\n        cmd: [sh, -c, \"test -f lib/a.txt && test -f lib/nested/b.txt && echo $KEPTN_EVENT_ID >> {runs}; echo using $DB_PASSWORD\"]\n",
        runs = runs.display()
    );
    // A directory of files, listed and read through the API by the standalone executors.
    upload(&keelson, "carts", &[("job/config.yaml", &config), ("lib/a.txt", "a\n"), ("lib/nested/b.txt", "b\n")]).await;

    let start = |vars: &[(&str, &str)]| {
        let mut command = std::process::Command::new(support::process::BINARY);
        command
            .args(["service", "job-executor"])
            .env_clear()
            .env("KEELSON_NATS_URL", &nats.url)
            .env("KEELSON_REDIS_URL", &redis.url)
            .env("KEELSON_SECRET_KEY", &key)
            .env("KEELSON_API_URL", &keelson.base)
            .env("KEELSON_API_TOKEN", &keelson.token)
            .env("KEELSON_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (name, value) in vars {
            command.env(name, value);
        }
        command
    };
    // Off unless enabled, also as its own process.
    let refused = start(&[]).stderr(std::process::Stdio::piped()).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("KEELSON_JOB_RUNNER=process"), "{stderr}");

    let enabled =
        [("KEELSON_JOB_RUNNER", "process"), ("KEELSON_JOB_ALLOWED_COMMANDS", "sh"), ("KEELSON_JOB_MAX_PARALLEL", "4")];
    let _first = ServiceProcess(start(&enabled).spawn().unwrap());
    let _second = ServiceProcess(start(&enabled).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, listed) =
            send(keelson.get("/api/controlPlane/v1/uniform/registration?name=job-executor-service")).await;
        if listed.as_array().is_some_and(|listed| !listed.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the job executor did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both subscribed before any event is sent.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut contexts = Vec::new();
    for _ in 0..4 {
        contexts.push(trigger(&keelson, "carts", json!({}), None).await);
    }
    for context in &contexts {
        let finished =
            wait_for(&keelson, context, "sh.keptn.event.dev.delivery.finished", Duration::from_secs(30)).await;
        assert_eq!(outcome(&finished), ("succeeded", "pass"), "{finished}");
        let events = history(&keelson, context).await;
        let started = events.iter().filter(|e| e["type"] == "sh.keptn.event.deployment.started").count();
        assert_eq!(started, 1, "one executor answered");
        assert!(!serde_json::to_string(&events).unwrap().contains(DB_PASSWORD));
    }
    let recorded = std::fs::read_to_string(&runs).unwrap();
    let mut ids: Vec<&str> = recorded.lines().collect();
    assert_eq!(ids.len(), 8, "two tasks of four sequences: {recorded}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "no task ran twice: {recorded}");
    let logs = serde_json::to_string(&job_logs(&keelson).await).unwrap();
    assert!(logs.contains("using ***") && !logs.contains(DB_PASSWORD), "{logs}");

    // Aborts reach every instance: whichever runs a job kills it.
    let pids = out.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    let slow = format!(
        "apiVersion: v2\nactions:\n  - name: deploy\n    events:\n      - name: \"sh.keptn.event.deployment.triggered\"\n    tasks:\n      - name: long\n        cmd: [sh, -c, \"echo $$ > {}/$KEPTN_CONTEXT; sleep 60\"]\n",
        pids.display()
    );
    // Four services: sequences of one service run one after the other.
    let mut running_jobs = Vec::new();
    for index in 0..4 {
        let service = format!("slow-{index}");
        upload(&keelson, &service, &[("job/config.yaml", &slow)]).await;
        let context = trigger(&keelson, &service, json!({}), None).await;
        wait_for(&keelson, &context, "sh.keptn.event.deployment.started", Duration::from_secs(20)).await;
        let pid = wait_for_file(&pids.join(&context), Duration::from_secs(20)).await;
        running_jobs.push((context, pid.trim().parse::<i32>().unwrap()));
    }
    for (context, _) in &running_jobs {
        abort(&keelson, context).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some((context, pid)) = running_jobs.iter().find(|(_, pid)| running(*pid)) {
        assert!(Instant::now() < deadline, "the job of {context} (pid {pid}) outlived its abort");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn the_example_delivery_deploys_and_probes_a_local_server() {
    let keelson = TestKeelson::start_with(|config| {
        config.services = vec!["job-executor".to_owned()];
        config.jobs.runner = keelson::config::JobRunner::Process;
        config.jobs.allowed_commands = vec!["sh".to_owned()];
    })
    .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/job-executor/run.sh");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("bash")
            .arg(script)
            .env("HOME", home.path())
            .env("KEPTN", env!("CARGO_BIN_EXE_keptn"))
            .env("KEPTN_ENDPOINT", &keelson.base)
            .env("KEPTN_API_TOKEN", &keelson.token)
            .env("APP_PORT", port.to_string())
            .output(),
    )
    .await
    .expect("the example hung")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The deployed server outlives its task; stop it whatever the outcome.
    // The task's environment has no TMPDIR, so the example puts the site under /tmp.
    let site = Path::new("/tmp").join("keelson-hello-hello-dev");
    if let Ok(pid) = std::fs::read_to_string(site.join("server.pid")) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid.trim().parse().unwrap_or(0)),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = std::fs::remove_dir_all(&site);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("<h1>hello from hello:1.0.0</h1>"), "{stdout}");
    let context = history_of_project(&keelson, "hello").await;
    let test_finished = context.iter().find(|e| e["type"] == "sh.keptn.event.test.finished").expect("a test result");
    assert_eq!(outcome(test_finished), ("succeeded", "pass"), "{test_finished}");
    assert_eq!(test_finished["source"], "job-executor-service");
}

async fn history_of_project(keelson: &TestKeelson, project: &str) -> Vec<Value> {
    let (status, body) =
        send(keelson.get(&format!("/api/mongodb-datastore/event?project={project}&pageSize=100"))).await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().cloned().unwrap_or_default()
}

#[actix_rt::test]
async fn job_max_parallel_bounds_the_tasks_running_at_once() {
    let services = ["a", "b", "c"];
    let keelson = keelson_running(&services, 1).await;
    let out = tempfile::tempdir().unwrap();
    // Each task records when it starts and ends (in ms), and runs for a moment.
    let record = format!(
        "apiVersion: v2\nactions:\n  - name: deploy\n    events:\n      - name: \"sh.keptn.event.deployment.triggered\"\n    tasks:\n      - name: record\n        cmd: [sh, -c, \"echo $(date +%s%3N) >> {dir}/$KEPTN_SERVICE; sleep 0.4; echo $(date +%s%3N) >> {dir}/$KEPTN_SERVICE\"]\n",
        dir = out.path().display()
    );
    let mut contexts = Vec::new();
    for service in services {
        upload(&keelson, service, &[("job/config.yaml", &record)]).await;
    }
    for service in services {
        contexts.push(trigger(&keelson, service, json!({}), None).await);
    }
    for context in &contexts {
        let finished = wait_for(&keelson, context, "sh.keptn.event.deployment.finished", Duration::from_secs(30)).await;
        assert_eq!(outcome(&finished), ("succeeded", "pass"), "{finished}");
    }
    let mut spans: Vec<(u64, u64)> = services
        .iter()
        .map(|service| {
            let times: Vec<u64> = std::fs::read_to_string(out.path().join(service))
                .unwrap()
                .lines()
                .map(|line| line.parse().unwrap())
                .collect();
            (times[0], times[1])
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "two tasks ran at once with job_max_parallel = 1: {spans:?}");
    }
    keelson.stop().await;
}
