//! The `keptn` binary against a running Keelson (embedded): every command, its output and exit code,
//! and the scenario script of `examples/cli-scenario.sh`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{send, TestKeelson};

const KEPTN: &str = env!("CARGO_BIN_EXE_keptn");

const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: approval
              properties: { pass: manual, warning: manual }
";

/// Output of one `keptn` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\nstdout: {}\nstderr: {}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `keptn args` with HOME in `home` and `env` set (without blocking the server's thread).
async fn keptn(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(KEPTN);
    command.args(args).env_clear().env("HOME", home);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output()).await.expect("keptn hung").unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A Keelson, a HOME for the CLI, and the CLI authenticated against it.
async fn setup(services: bool) -> (TestKeelson, tempfile::TempDir) {
    let keelson = TestKeelson::start_with(|config| {
        if services {
            config.services = keelson::config::BUILTIN_SERVICES.iter().map(|s| (*s).to_owned()).collect();
        }
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let run = keptn(home.path(), &[], &["auth", "--endpoint", &keelson.base, "--api-token", &keelson.token]).await;
    assert_eq!(run.code, 0, "{run:?}");
    (keelson, home)
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

#[actix_rt::test]
async fn auth_status_and_version() {
    let keelson = TestKeelson::start().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();

    let wrong = keptn(home, &[], &["auth", "--endpoint", &keelson.base, "--api-token", "wrong"]).await;
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(wrong.stderr.contains("not authenticated") && wrong.stderr.lines().count() == 1, "{wrong:?}");
    assert!(!home.join(".keptn/.keptn").exists(), "nothing stored for a refused token");

    let port = support::servers::free_port();
    let unreachable =
        keptn(home, &[], &["auth", "--endpoint", &format!("http://127.0.0.1:{port}"), "--api-token", "x"]).await;
    assert_eq!(unreachable.code, 1);
    assert!(unreachable.stderr.contains("cannot reach the Keptn API"), "{unreachable:?}");

    std::fs::create_dir_all(home.join(".keptn")).unwrap();
    std::fs::write(home.join(".keptn/.keptn"), "{ damaged").unwrap();
    let damaged = keptn(home, &[], &["status"]).await;
    assert!(damaged.code == 1 && damaged.stderr.contains("damaged"), "{damaged:?}");
    std::fs::remove_file(home.join(".keptn/.keptn")).unwrap();

    let not_yet = keptn(home, &[], &["status"]).await;
    assert_eq!(not_yet.code, 1);
    assert!(not_yet.stderr.contains("keptn auth"), "{not_yet:?}");

    let auth = keptn(home, &[], &["auth", "--endpoint", &keelson.base, "--api-token", &keelson.token]).await;
    assert_eq!(auth.code, 0, "{auth:?}");
    assert!(auth.stdout.contains(&format!("Successfully authenticated against {}/api", keelson.base)), "{auth:?}");
    assert!(auth.stdout.contains(&format!("Bridge URL: {}/bridge", keelson.base)), "{auth:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(home.join(".keptn/.keptn")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials are private");
    }

    let status = keptn(home, &[], &["status"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stdout.lines().next().unwrap().ends_with(&format!("{}/api", keelson.base)), "{status:?}");
    let version = keptn(home, &[], &["version"]).await;
    assert!(version.stdout.contains("Keptn cluster version: 1.4.5"), "{version:?}");

    // The environment wins over the stored credentials.
    let overridden = keptn(home, &[("KEPTN_API_TOKEN", "wrong")], &["status"]).await;
    assert_eq!(overridden.code, 1, "{overridden:?}");
    let other_home = tempfile::tempdir().unwrap();
    let env_only = keptn(
        other_home.path(),
        &[("KEPTN_ENDPOINT", &keelson.base), ("KEPTN_API_TOKEN", &keelson.token)],
        &["status"],
    )
    .await;
    assert_eq!(env_only.code, 0, "{env_only:?}");

    let usage = keptn(home, &[], &["create", "project"]).await;
    assert_eq!(usage.code, 2, "clap reports usage errors with 2: {usage:?}");
}

#[actix_rt::test]
async fn projects_services_resources_and_secrets() {
    let (keelson, home) = setup(false).await;
    let home = home.path();
    let shipyard = write(home, "shipyard.yaml", SHIPYARD);

    let created = keptn(home, &[], &["create", "project", "sockshop", "--shipyard", &shipyard]).await;
    assert_eq!((created.code, created.stdout.trim()), (0, "Project created successfully"), "{created:?}");
    let again = keptn(home, &[], &["create", "project", "sockshop", "--shipyard", &shipyard]).await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.starts_with("Error: ") && again.stderr.contains("already exists"), "{again:?}");
    let bad = keptn(home, &[], &["create", "project", "Bad_Name", "--shipyard", &shipyard]).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("invalid project name"), "{bad:?}");
    let missing = keptn(home, &[], &["create", "project", "other", "--shipyard", "/nonexistent.yaml"]).await;
    assert!(missing.code == 1 && missing.stderr.contains("cannot read shipyard"), "{missing:?}");

    let service = keptn(home, &[], &["create", "service", "carts", "--project", "sockshop"]).await;
    assert_eq!((service.code, service.stdout.trim()), (0, "Service created successfully"), "{service:?}");

    let projects = keptn(home, &[], &["get", "projects"]).await;
    assert_eq!(projects.code, 0);
    assert!(projects.stdout.starts_with("NAME") && projects.stdout.contains("sockshop"), "{projects:?}");
    let json_out = keptn(home, &[], &["get", "project", "sockshop", "-o", "json"]).await;
    let parsed: Value = serde_json::from_str(&json_out.stdout).expect("JSON output");
    assert_eq!(parsed[0]["projectName"], "sockshop");
    let yaml_out = keptn(home, &[], &["get", "project", "sockshop", "-o", "yaml"]).await;
    assert!(yaml_out.stdout.contains("projectName: sockshop"), "{yaml_out:?}");
    let unknown = keptn(home, &[], &["get", "project", "nope"]).await;
    assert!(unknown.code == 1 && unknown.stderr.contains("No project nope found"), "{unknown:?}");

    let stages = keptn(home, &[], &["get", "stages", "--project", "sockshop"]).await;
    assert!(stages.stdout.contains("dev") && stages.stdout.contains("production"), "{stages:?}");
    let services = keptn(home, &[], &["get", "service", "carts", "--project", "sockshop"]).await;
    assert_eq!(services.stdout.lines().count(), 3, "one row per stage: {services:?}");
    let no_service = keptn(home, &[], &["get", "service", "orders", "--project", "sockshop"]).await;
    assert!(no_service.code == 1 && no_service.stderr.contains("No services orders found in project sockshop"));

    let file = write(home, "slo.yaml", "spec_version: '1.0'\n");
    let added = keptn(
        home,
        &[],
        &[
            "add-resource",
            "--project",
            "sockshop",
            "--stage",
            "dev",
            "--service",
            "carts",
            "--resource",
            &file,
            "--resourceUri",
            "slo.yaml",
        ],
    )
    .await;
    assert_eq!(added.code, 0, "{added:?}");
    let (status, body) =
        send(keelson.get("/api/resource-service/v1/project/sockshop/stage/dev/service/carts/resource/slo.yaml")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(support::unb64(body["resourceContent"].as_str().unwrap()), b"spec_version: '1.0'\n");
    let all = keptn(
        home,
        &[],
        &["add-resource", "--project", "sockshop", "--all-stages", "--resource", &file, "--resourceUri", "x.yaml"],
    )
    .await;
    assert_eq!(all.code, 0, "{all:?}");
    let (status, _) =
        send(keelson.get("/api/resource-service/v1/project/sockshop/stage/production/resource/x.yaml")).await;
    assert_eq!(status, 200);
    let wrong =
        keptn(home, &[], &["add-resource", "--project", "sockshop", "--service", "carts", "--resource", &file]).await;
    assert!(wrong.code == 1 && wrong.stderr.contains("--service needs --stage"), "{wrong:?}");

    let secret = keptn(
        home,
        &[],
        &["create", "secret", "slack", "--from-literal", "token=xoxb-1", "--scope", "keptn-webhook-service"],
    )
    .await;
    assert_eq!((secret.code, secret.stdout.trim()), (0, "Secret slack created successfully"), "{secret:?}");
    let secrets = keptn(home, &[], &["get", "secrets"]).await;
    assert!(
        secrets.stdout.contains("slack")
            && secrets.stdout.contains("keptn-webhook-service")
            && !secrets.stdout.contains("xoxb"),
        "{secrets:?}"
    );
    let updated = keptn(
        home,
        &[],
        &["update", "secret", "slack", "--from-literal", "token=xoxb-2", "--scope", "keptn-webhook-service"],
    )
    .await;
    assert_eq!(updated.code, 0, "{updated:?}");
    let no_data = keptn(home, &[], &["create", "secret", "empty"]).await;
    assert!(no_data.code == 1 && no_data.stderr.contains("--from-literal"), "{no_data:?}");
    let deleted = keptn(home, &[], &["delete", "secret", "slack", "--scope", "keptn-webhook-service"]).await;
    assert_eq!((deleted.code, deleted.stdout.trim()), (0, "Secret slack has been deleted"), "{deleted:?}");
    let none = keptn(home, &[], &["get", "secrets"]).await;
    assert_eq!(none.stdout.trim(), "No secrets found");

    let removed = keptn(home, &[], &["delete", "service", "carts", "--project", "sockshop"]).await;
    assert!(removed.code == 0 && removed.stdout.contains("Service deleted successfully"), "{removed:?}");
    let dropped = keptn(home, &[], &["delete", "project", "sockshop"]).await;
    assert!(dropped.code == 0 && dropped.stdout.contains("Project deleted successfully"), "{dropped:?}");
    let (status, _) = send(keelson.get("/api/controlPlane/v1/project/sockshop")).await;
    assert_eq!(status, 404);
}

async fn onboard(keelson: &TestKeelson) {
    assert_eq!(keelson.create_project("sockshop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
}

fn context_of(run: &Run) -> String {
    run.stdout
        .lines()
        .find_map(|line| line.strip_prefix("ID of Keptn context: "))
        .unwrap_or_else(|| panic!("no context printed: {run:?}"))
        .trim()
        .to_owned()
}

#[actix_rt::test]
async fn triggers_events_and_sequence_control() {
    let (keelson, home) = setup(false).await;
    let home = home.path();
    onboard(&keelson).await;

    let delivery = keptn(
        home,
        &[],
        &[
            "trigger",
            "delivery",
            "--project",
            "sockshop",
            "--service",
            "carts",
            "--image",
            "docker.io/keptn/carts:0.13.1",
            "--labels",
            "owner=tests,run=1",
            "--values",
            "replicas.count=2",
        ],
    )
    .await;
    assert_eq!(delivery.code, 0, "{delivery:?}");
    let context = context_of(&delivery);
    let deployment = keptn(
        home,
        &[],
        &["get", "event", "deployment.triggered", "--project", "sockshop", "--keptn-context", &context],
    )
    .await;
    let event: Value = serde_json::from_str(&deployment.stdout).unwrap_or_else(|_| panic!("{deployment:?}"));
    assert_eq!(event["data"]["stage"], "dev", "the first stage is the default");
    assert_eq!(
        event["data"]["configurationChange"]["values"],
        json!({ "image": "docker.io/keptn/carts:0.13.1", "replicas": { "count": "2" } })
    );
    assert_eq!(event["data"]["labels"], json!({ "owner": "tests", "run": "1" }));

    let paused = keptn(home, &[], &["pause", "sequence", "--project", "sockshop", "--keptn-context", &context]).await;
    assert_eq!((paused.code, paused.stdout.trim()), (0, "Successfully paused sequence"), "{paused:?}");
    let (_, states) =
        send(keelson.get(&format!("/api/controlPlane/v1/sequence/sockshop?keptnContext={context}"))).await;
    assert_eq!(states["states"][0]["state"], "paused");
    let resumed = keptn(home, &[], &["resume", "sequence", "-p", "sockshop", "-c", &context]).await;
    assert_eq!(resumed.stdout.trim(), "Successfully resumed sequence", "{resumed:?}");
    let aborted = keptn(home, &[], &["abort", "sequence", "-p", "sockshop", "-c", &context, "-s", "dev"]).await;
    assert_eq!(aborted.stdout.trim(), "Successfully aborted sequence", "{aborted:?}");
    let unknown = keptn(home, &[], &["abort", "sequence", "-p", "sockshop", "-c", "no-such-context"]).await;
    assert_eq!(unknown.code, 1, "{unknown:?}");

    for (project, stage, service, expected) in [
        ("nope", "dev", "carts", "project not found"),
        ("sockshop", "staging", "carts", "stage not found"),
        ("sockshop", "dev", "orders", "service not found"),
    ] {
        let run = keptn(
            home,
            &[],
            &[
                "trigger",
                "evaluation",
                "--project",
                project,
                "--stage",
                stage,
                "--service",
                service,
                "--timeframe",
                "5m",
            ],
        )
        .await;
        assert!(run.code == 1 && run.stderr.contains(expected), "{expected}: {run:?}");
    }
    let evaluation = keptn(
        home,
        &[],
        &[
            "trigger",
            "evaluation",
            "--project",
            "sockshop",
            "--stage",
            "dev",
            "--service",
            "carts",
            "--timeframe",
            "10m",
            "--labels",
            "k=v",
        ],
    )
    .await;
    assert_eq!(evaluation.code, 0, "{evaluation:?}");
    let evaluation_context = context_of(&evaluation);
    let triggered = keptn(
        home,
        &[],
        &[
            "get",
            "event",
            "sh.keptn.event.dev.evaluation.triggered",
            "--project",
            "sockshop",
            "--keptn-context",
            &evaluation_context,
            "-o",
            "yaml",
        ],
    )
    .await;
    assert!(triggered.stdout.contains("evaluation:") && triggered.stdout.contains("k: v"), "{triggered:?}");

    let json_context = keptn(
        home,
        &[],
        &["trigger", "evaluation", "--project", "sockshop", "--stage", "dev", "--service", "carts", "-o", "json"],
    )
    .await;
    let parsed: Value = serde_json::from_str(&json_context.stdout).unwrap_or_else(|_| panic!("{json_context:?}"));
    assert!(parsed["keptnContext"].as_str().is_some_and(|c| !c.is_empty()), "{json_context:?}");
    let end_only = keptn(
        home,
        &[],
        &[
            "trigger",
            "evaluation",
            "--project",
            "sockshop",
            "--stage",
            "dev",
            "--service",
            "carts",
            "--end",
            "2026-01-01T00:10:00Z",
        ],
    )
    .await;
    assert!(end_only.code == 1 && end_only.stderr.contains("--end needs --start"), "{end_only:?}");
    let unnamed =
        keptn(home, &[], &["send", "event", "approval.finished", "--project", "sockshop", "--stage", "production"])
            .await;
    assert!(unnamed.code == 1 && unnamed.stderr.contains("exactly one of --id and --service"), "{unnamed:?}");
    let mock = keptn(home, &[], &["--mock", "get", "projects"]).await;
    assert!(mock.code == 1 && mock.stderr.contains("--mock"), "{mock:?}");

    let sequence = keptn(
        home,
        &[],
        &[
            "trigger",
            "sequence",
            "delivery",
            "--project",
            "sockshop",
            "--stage",
            "production",
            "--service",
            "carts",
            "--data",
            "deployment.strategy=direct",
        ],
    )
    .await;
    assert_eq!(sequence.code, 0, "{sequence:?}");

    let event_file = write(
        home,
        "event.json",
        &json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "file",
                 "data": { "project": "sockshop", "stage": "dev", "service": "carts" } })
        .to_string(),
    );
    let sent = keptn(home, &[], &["send", "event", "--file", &event_file]).await;
    assert_eq!(sent.code, 0, "{sent:?}");
    context_of(&sent);
    let not_json = write(home, "bad.json", "{ nope");
    let refused = keptn(home, &[], &["send", "event", "-f", &not_json]).await;
    assert!(refused.code == 1 && refused.stderr.contains("not a JSON CloudEvent"), "{refused:?}");
    let none = keptn(home, &[], &["get", "event", "release.triggered", "--project", "sockshop"]).await;
    assert_eq!((none.code, none.stdout.trim()), (0, "No event returned"));

    let monitoring =
        keptn(home, &[], &["configure", "monitoring", "prometheus", "--project", "sockshop", "--service", "carts"])
            .await;
    assert_eq!(monitoring.code, 0, "{monitoring:?}");
    let needs_service = keptn(home, &[], &["configure", "monitoring", "prometheus", "--project", "sockshop"]).await;
    assert_eq!(needs_service.code, 1);
}

#[actix_rt::test]
async fn watch_follows_chained_sequences_and_reports_the_result() {
    let (keelson, home) = setup(true).await;
    let home_path = home.path().to_owned();
    let scenario_shipyard =
        SHIPYARD.replace("- name: deployment", "- name: evaluation\n              properties: { timeframe: 5m }");
    assert_eq!(keelson.create_project("sockshop", &scenario_shipyard).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);

    let none = keptn(
        &home_path,
        &[],
        &["get", "event", "approval.triggered", "--project", "sockshop", "--stage", "production"],
    )
    .await;
    assert_eq!(none.stdout.trim(), "No approval.triggered events have been found");

    // A declined approval fails the watched delivery (exit 3).
    let watch_home = home_path.clone();
    let watcher = tokio::spawn(async move {
        keptn(
            &watch_home,
            &[],
            &[
                "trigger",
                "delivery",
                "--project",
                "sockshop",
                "--service",
                "carts",
                "--image",
                "carts:1",
                "--watch",
                "--watch-time",
                "60",
            ],
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = keptn(
            &home_path,
            &[],
            &["get", "event", "approval.triggered", "--project", "sockshop", "--stage", "production"],
        )
        .await;
        if !open.stdout.contains("No approval.triggered") {
            break;
        }
        assert!(Instant::now() < deadline, "the approval never opened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let declined = keptn(
        &home_path,
        &[],
        &[
            "send",
            "event",
            "approval.finished",
            "--project",
            "sockshop",
            "--stage",
            "production",
            "--service",
            "carts",
            "--decline",
        ],
    )
    .await;
    assert!(declined.code == 0 && declined.stdout.contains("Declined carts"), "{declined:?}");
    let watched = watcher.await.unwrap();
    assert_eq!(watched.code, 3, "{watched:?}");
    assert!(watched.stdout.contains("sh.keptn.event.dev.delivery.finished"), "{watched:?}");
    assert!(
        watched.stdout.contains("sh.keptn.event.production.delivery.triggered"),
        "chained stage followed: {watched:?}"
    );
    assert!(watched.stderr.contains("production.delivery ended with result fail"), "{watched:?}");

    let nothing_open = keptn(&home_path, &[], &["approve", "--project", "sockshop", "--stage", "production"]).await;
    assert!(nothing_open.code == 1 && nothing_open.stderr.contains("No open approval"), "{nothing_open:?}");

    // Watched with -o json: only events, one JSON object per line, for `| jq`.
    let json_lines = keptn(
        &home_path,
        &[],
        &[
            "trigger",
            "evaluation",
            "--project",
            "sockshop",
            "--stage",
            "dev",
            "--service",
            "carts",
            "--watch",
            "--watch-time",
            "30",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(json_lines.code, 0, "{json_lines:?}");
    let events: Vec<serde_json::Value> = json_lines
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line: {line:?}: {e}")))
        .collect();
    assert!(events.iter().any(|e| e["type"] == "sh.keptn.event.evaluation.finished"), "{json_lines:?}");
    assert!(events.iter().all(|e| e["shkeptncontext"] == events[0]["shkeptncontext"]));
}

#[actix_rt::test]
async fn the_example_scenario_script_runs() {
    let keelson = TestKeelson::start_with(|config| {
        config.services = keelson::config::BUILTIN_SERVICES.iter().map(|s| (*s).to_owned()).collect();
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cli-scenario.sh");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("bash")
            .arg(script)
            .env("HOME", home.path())
            .env("KEPTN", KEPTN)
            .env("KEPTN_ENDPOINT", &keelson.base)
            .env("KEPTN_API_TOKEN", &keelson.token)
            .output(),
    )
    .await
    .expect("the scenario hung")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("Project created successfully"), "{stdout}");
    assert!(stdout.contains("Approved helloservice in stage production"), "{stdout}");
    assert!(stdout.contains("Sequence finished") && stdout.contains("delivery of helloservice finished"), "{stdout}");
    let (_, finished) = send(
        keelson
            .get("/api/mongodb-datastore/event?project=podtatohead&type=sh.keptn.event.production.delivery.finished"),
    )
    .await;
    assert_eq!(finished["events"][0]["data"]["result"], "pass", "{finished}");
}

/// The README's quick start and keptn walk-through, run as written: only the address (a free port here
/// instead of 8080) and the place of the `keptn` binary (the test build) differ.
#[actix_rt::test]
async fn the_readme_commands_run_as_written() {
    let keelson = TestKeelson::start_with(|config| {
        config.services = keelson::config::BUILTIN_SERVICES.iter().map(|s| (*s).to_owned()).collect();
    })
    .await;
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block_after = |heading: &str| -> String {
        let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("README has {heading}"))..];
        let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
        section[start..start + section[start..].find("```").unwrap()].to_owned()
    };
    let address = keelson.base.trim_start_matches("http://");
    let keptn_dir = Path::new(KEPTN).parent().unwrap().to_string_lossy().into_owned();
    let script =
        format!("set -euo pipefail\n{}\n{}", block_after("## Quick start"), block_after("## The keptn command line"))
            .replace("127.0.0.1:8080", address)
            .replace("$PWD/target/release", &keptn_dir);
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("data")).unwrap();
    std::fs::write(work.path().join("data/api-token"), &keelson.token).unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(work.path())
            .env_clear()
            .env("HOME", work.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output(),
    )
    .await
    .expect("the README's commands hung")
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "script:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("sh.keptn.event.evaluation.finished"), "{stdout}");
    assert!(stdout.contains("Approved carts"), "the prod approval was given: {stdout}");
    assert!(stdout.matches("Sequence finished").count() >= 2, "both watched sequences finished: {stdout}");
    let (_, finished) =
        send(keelson.get("/api/mongodb-datastore/event?project=sockshop&type=sh.keptn.event.prod.delivery.finished"))
            .await;
    assert_eq!(finished["events"][0]["data"]["result"], "pass", "{finished}");
}

#[actix_rt::test]
async fn commands_keelson_does_not_need_say_so_and_completion_works() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    for (args, says) in [
        (&["install", "--use-case", "continuous-delivery", "-y"][..], "keptn install is not needed with Keelson"),
        (&["upgrade", "--chart-repo", "x"][..], "keptn upgrade is not needed with Keelson"),
        (&["uninstall"][..], "keptn uninstall is not needed with Keelson"),
        (&["configure", "bridge", "--action", "expose"][..], "keptn configure bridge is not needed with Keelson"),
    ] {
        let run = keptn(home, &[], args).await;
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stderr.contains(says) && run.stderr.lines().count() == 1, "{run:?}");
    }
    let refused = keptn(home, &[], &["--config-file", "/tmp/keptn-config", "get", "projects"]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("--config-file /tmp/keptn-config is not supported"), "{refused:?}");
    for shell in ["bash", "zsh", "fish"] {
        let script = keptn(home, &[], &["completion", shell]).await;
        assert_eq!(script.code, 0, "{script:?}");
        assert!(script.stdout.contains("trigger") && script.stdout.contains("approve"), "{shell}: {script:?}");
    }
    let help = keptn(home, &[], &["trigger", "delivery", "--help"]).await;
    assert!(help.stdout.contains("Example: `keptn trigger delivery"), "{help:?}");
}
