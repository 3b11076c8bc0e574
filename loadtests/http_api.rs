//! HTTP API load test.
//!
//! Starts Keelson on its embedded backends (SQLite, in-process bus, git) on a free 127.0.0.1 port, seeds
//! 50 projects, then runs each scenario with `--concurrency` clients for `--seconds` and prints
//! throughput and latency percentiles. Every loop is bounded by time; nothing leaves the machine.
//!
//! ```sh
//! cargo run --release --example loadtest-http-api -- --seconds 10 --concurrency 16
//! ```

/// mimalloc, as in the `keelson` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::{percentile, TOKEN};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

const PROJECTS: usize = 50;
const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2\nkind: Shipyard\nspec:\n  stages:\n  - name: dev\n  - name: staging\n  - name: production\n";

struct Options {
    seconds: u64,
    concurrency: usize,
}

fn options() -> Options {
    let mut options = Options { seconds: 10, concurrency: 16 };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--seconds", Some(v)) if (1..=300).contains(&v) => options.seconds = v,
            ("--concurrency", Some(v)) if (1..=256).contains(&v) => options.concurrency = v as usize,
            _ => {
                eprintln!("usage: loadtest-http-api [--seconds 1..300] [--concurrency 1..256]");
                std::process::exit(2);
            }
        }
    }
    options
}

#[derive(Clone, Copy)]
enum Scenario {
    GetProject,
    ListProjects,
    ReadResource,
    WriteResource,
    Auth,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::GetProject => "GET project",
            Scenario::ListProjects => "GET project list (page 20 of 50)",
            Scenario::ReadResource => "GET resource (git read)",
            Scenario::WriteResource => "PUT resource (git commit)",
            Scenario::Auth => "POST auth",
        }
    }

    fn request(self, client: &reqwest::Client, base: &str, worker: usize, sequence: usize) -> reqwest::RequestBuilder {
        let project = format!("project-{}", worker % PROJECTS);
        let request = match self {
            Scenario::GetProject => client.get(format!("{base}/api/controlPlane/v1/project/{project}")),
            Scenario::ListProjects => client.get(format!("{base}/api/controlPlane/v1/project?pageSize=20")),
            Scenario::ReadResource => client.get(format!(
                "{base}/api/resource-service/v1/project/{project}/stage/dev/service/carts/resource/slo.yaml"
            )),
            Scenario::WriteResource => client
                .put(format!("{base}/api/resource-service/v1/project/{project}/stage/dev/service/carts/resource/slo.yaml"))
                .json(&json!({ "resourceContent": base64::engine::general_purpose::STANDARD.encode(format!("objectives: [{sequence}]")) })),
            Scenario::Auth => client.post(format!("{base}/api/v1/auth")),
        };
        request.header("x-token", TOKEN)
    }
}

struct Outcome {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

async fn run(scenario: Scenario, base: Arc<String>, options: &Options) -> Outcome {
    let client = reqwest::Client::builder().pool_max_idle_per_host(options.concurrency).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started_at = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..options.concurrency {
        let client = client.clone();
        let base = Arc::clone(&base);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut sequence = 0;
            while Instant::now() < deadline {
                sequence += 1;
                let sent_at = Instant::now();
                let response = scenario.request(&client, &base, worker, sequence).send().await;
                match response {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.push(sent_at.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut outcome = Outcome { latencies: Vec::new(), errors: 0, elapsed: Duration::ZERO };
    for worker in workers {
        let (latencies, errors) = worker.await.unwrap();
        outcome.latencies.extend(latencies);
        outcome.errors += errors;
    }
    outcome.elapsed = started_at.elapsed();
    outcome.latencies.sort();
    outcome
}

async fn seed(client: &reqwest::Client, base: &str) {
    let shipyard = base64::engine::general_purpose::STANDARD.encode(SHIPYARD);
    for index in 0..PROJECTS {
        let project = format!("project-{index}");
        let created = client
            .post(format!("{base}/api/controlPlane/v1/project"))
            .header("x-token", TOKEN)
            .json(&json!({ "name": project, "shipyard": shipyard }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "seeding {project}");
        let service = client
            .post(format!("{base}/api/controlPlane/v1/project/{project}/service"))
            .header("x-token", TOKEN)
            .json(&json!({ "serviceName": "carts" }))
            .send()
            .await
            .unwrap();
        assert_eq!(service.status(), 200);
        let resource = client
            .post(format!("{base}/api/resource-service/v1/project/{project}/stage/dev/service/carts/resource"))
            .header("x-token", TOKEN)
            .json(&json!({ "resources": [{ "resourceURI": "slo.yaml", "resourceContent": base64::engine::general_purpose::STANDARD.encode("objectives: []") }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(resource.status(), 201);
    }
}

#[actix_rt::main]
async fn main() {
    let options = options();
    let (server, _data_dir, base) = common::start_keelson(|_| {}).await;
    let base = Arc::new(base);
    seed(&reqwest::Client::new(), &base).await;

    println!(
        "keelson {} · {} cores · {} clients · {} s per scenario",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        options.concurrency,
        options.seconds
    );
    println!("{:<36} {:>10} {:>10} {:>10} {:>10} {:>8}", "scenario", "requests", "req/s", "p50 ms", "p99 ms", "errors");
    for scenario in
        [Scenario::GetProject, Scenario::ListProjects, Scenario::Auth, Scenario::ReadResource, Scenario::WriteResource]
    {
        let outcome = run(scenario, Arc::clone(&base), &options).await;
        let count = outcome.latencies.len();
        println!(
            "{:<36} {:>10} {:>10.0} {:>10.3} {:>10.3} {:>8}",
            scenario.name(),
            count,
            count as f64 / outcome.elapsed.as_secs_f64(),
            percentile(&outcome.latencies, 0.50).as_secs_f64() * 1000.0,
            percentile(&outcome.latencies, 0.99).as_secs_f64() * 1000.0,
            outcome.errors
        );
    }
    server.handle.stop(true).await;
}
