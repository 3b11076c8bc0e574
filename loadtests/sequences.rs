//! Sequence orchestration load test (embedded mode).
//!
//! Starts Keelson on its embedded backends, creates a project whose `dev` stage runs a three-task
//! `delivery` sequence and `--services` services, then triggers `--sequences` sequences at once (so they
//! are all in flight: one running per service, the rest queued) and answers every task `.triggered`
//! event immediately as a fast executor on the in-process bus. It reports completed task transitions per
//! second and the dispatch latency — from the executor publishing a task's `.finished` to receiving the
//! next task's `.triggered` — as p50/p99. With `--idle N` it then opens N sequences that wait and reports
//! the resident memory they take.
//!
//! ```sh
//! cargo run --release --example loadtest-sequences -- --sequences 10000 --services 1000 --idle 100000
//! ```

/// mimalloc, as in the `keelson` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod backends;
mod common;

use common::{percentile, TOKEN};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use keelson::bus::Bus as _;
use keelson::model::event::CloudEvent;
use serde_json::json;

const SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: test
            - name: release
    - name: idle
      sequences:
        - name: wait
          tasks:
            - name: never-answered
";

struct Options {
    sequences: usize,
    services: usize,
    idle: usize,
    /// Mean time the executor works on a task before answering (0 = at once, saturating Keelson).
    think_ms: u64,
    /// Run on a Redis snapshot store (and, with `servers`, a MongoDB-compatible history) started for
    /// the test.
    redis: bool,
    servers: bool,
}

fn options() -> Options {
    let mut options =
        Options { sequences: 10_000, services: 1_000, idle: 0, think_ms: 0, redis: false, servers: false };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--servers" || flag == "--redis" {
            options.redis = true;
            options.servers |= flag == "--servers";
            continue;
        }
        let value = args.next().and_then(|v| v.parse::<usize>().ok());
        match (flag.as_str(), value) {
            ("--sequences", Some(v)) if (1..=1_000_000).contains(&v) => options.sequences = v,
            ("--services", Some(v)) if (1..=10_000).contains(&v) => options.services = v,
            ("--idle", Some(v)) if v <= 1_000_000 => options.idle = v,
            ("--think-ms", Some(v)) if v <= 60_000 => options.think_ms = v as u64,
            _ => {
                eprintln!("usage: loadtest-sequences [--sequences N] [--services N] [--idle N] [--think-ms N] [--redis | --servers]");
                std::process::exit(2);
            }
        }
    }
    options
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn event(event_type: &str, context: &str, triggered_id: Option<&str>, data: serde_json::Value) -> CloudEvent {
    let mut event =
        CloudEvent::emitted(event_type, uuid::Uuid::new_v4().to_string(), context.to_owned(), chrono::Utc::now(), data);
    event.source = "loadtest-executor".to_owned();
    event.triggeredid = triggered_id.map(str::to_owned);
    event
}

#[actix_rt::main]
async fn main() {
    let options = options();
    let backends = options.redis.then(backends::Backends::start);
    let baseline = match &backends {
        Some(backends) => {
            let redis_sets = backends.redis_set_rate();
            let (mongo_single, mongo_batched, mongo_indexed) = backends.mongodb_insert_rates().await;
            Some(format!(
                "raw store baseline (same run): redis-benchmark -t set -P 1: {redis_sets:.0} SET/s; \
                 mongodb-compatible inserts: {mongo_single:.0}/s one by one, {mongo_batched:.0}/s in batches of 1000, \
                 {mongo_indexed:.0}/s in batches of 1000 with the history's 7 indexes"
            ))
        }
        None => None,
    };
    let (server, _data_dir, base) = common::start_keelson(|config| {
        if let Some(backends) = &backends {
            config.redis_url = Some(backends.redis_url.parse().unwrap());
            if options.servers {
                config.mongodb_url = Some(backends.mongodb_url.clone());
            }
        }
    })
    .await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/api/controlPlane/v1/project"))
        .header("x-token", TOKEN)
        .json(&json!({ "name": "load", "shipyard": base64::engine::general_purpose::STANDARD.encode(SHIPYARD) }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    for index in 0..options.services {
        let response = client
            .post(format!("{base}/api/controlPlane/v1/project/load/service"))
            .header("x-token", TOKEN)
            .json(&json!({ "serviceName": format!("svc-{index}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let bus = server.control_plane.in_process_bus.clone().expect("embedded bus");
    let mut triggered = bus.subscribe_filtered(Some(Box::new(|event: &CloudEvent| {
        event.event_type.ends_with(".triggered") && event.source == keelson::model::event::CONTROL_PLANE_SOURCE
    })));
    let mut finished_sequences = bus.subscribe_filtered(Some(Box::new(|event: &CloudEvent| {
        event.event_type == "sh.keptn.event.dev.delivery.finished"
    })));

    // Executor: answers every task .triggered (at once, or after --think-ms) and measures dispatch
    // latency from publishing a .finished to receiving the next task's .triggered.
    let executor_bus = bus.clone();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let answered_at: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Default::default();
    let executor_latencies = Arc::clone(&latencies);
    let think = Duration::from_millis(options.think_ms);
    let executor = tokio::spawn(async move {
        while let Some(event) = triggered.recv().await {
            if event.event_type == "sh.keptn.event.never-answered.triggered" {
                continue;
            }
            if let Some(at) = answered_at.lock().unwrap().remove(&event.shkeptncontext) {
                executor_latencies.lock().unwrap().push(at.elapsed());
            }
            let bus = executor_bus.clone();
            let answered_at = Arc::clone(&answered_at);
            let answer = async move {
                if !think.is_zero() {
                    // Uniform in [0, 2 × think) so that answers spread out instead of arriving in waves.
                    let jitter =
                        event.id.bytes().fold(0u64, |hash, byte| hash.wrapping_mul(31).wrapping_add(u64::from(byte)));
                    tokio::time::sleep(think.mul_f64((jitter % 2000) as f64 / 1000.0)).await;
                }
                let task =
                    event.event_type.trim_start_matches("sh.keptn.event.").trim_end_matches(".triggered").to_owned();
                let scope = json!({ "project": event.data["project"], "stage": event.data["stage"], "service": event.data["service"] });
                let started = self::event(
                    &format!("sh.keptn.event.{task}.started"),
                    &event.shkeptncontext,
                    Some(&event.id),
                    scope.clone(),
                );
                let mut data = scope;
                data["result"] = json!("pass");
                data["status"] = json!("succeeded");
                let finished = self::event(
                    &format!("sh.keptn.event.{task}.finished"),
                    &event.shkeptncontext,
                    Some(&event.id),
                    data,
                );
                bus.publish(&started).await.unwrap();
                if task != "release" {
                    answered_at.lock().unwrap().insert(event.shkeptncontext.clone(), Instant::now());
                }
                bus.publish(&finished).await.unwrap();
            };
            if think.is_zero() {
                answer.await;
            } else {
                tokio::spawn(answer);
            }
        }
    });

    let started_at = Instant::now();
    for index in 0..options.sequences {
        let service = format!("svc-{}", index % options.services);
        let trigger = event(
            "sh.keptn.event.dev.delivery.triggered",
            &uuid::Uuid::new_v4().to_string(),
            None,
            json!({ "project": "load", "stage": "dev", "service": service }),
        );
        bus.publish(&trigger).await.unwrap();
    }
    let triggered_in = started_at.elapsed();
    let mut done = 0;
    while done < options.sequences {
        match tokio::time::timeout(Duration::from_secs(60), finished_sequences.recv()).await {
            Ok(Some(_)) => done += 1,
            _ => panic!("sequences stalled: {done} of {} finished", options.sequences),
        }
    }
    let elapsed = started_at.elapsed();
    executor.abort();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    let tasks = options.sequences * 3;
    println!(
        "keelson {} · {} cores · {}",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        if options.servers {
            "redis snapshots, mongodb-compatible (secantusdb) history, in-process bus"
        } else if options.redis {
            "redis snapshots, embedded (sqlite) history, in-process bus"
        } else {
            "embedded mode (sqlite snapshots and history, in-process bus)"
        }
    );
    if let Some(baseline) = &baseline {
        println!("{baseline}");
    }
    println!(
        "sequences: {} over {} services (all triggered in {:.2?})",
        options.sequences, options.services, triggered_in
    );
    println!("task transitions: {tasks} in {elapsed:.2?} = {:.0}/s", tasks as f64 / elapsed.as_secs_f64());
    println!("sequences completed: {:.0}/s", options.sequences as f64 / elapsed.as_secs_f64());
    let all_events = keelson::store::EventQuery { project: Some("load".into()), ..Default::default() };
    let events_stored = server.control_plane.storage.events.count(&all_events);
    if let Ok(Ok(stored)) = tokio::time::timeout(Duration::from_secs(60), events_stored).await {
        println!(
            "history: {stored} events stored = {:.0} events/s over the run",
            stored as f64 / elapsed.as_secs_f64()
        );
    }
    println!(
        "dispatch latency (executor .finished → next .triggered): p50 {:.3} ms, p99 {:.3} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );

    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let (writes, batches) = (metric("keelson_snapshot_writes_total"), metric("keelson_snapshot_batches_total"));
    println!(
        "snapshot store: {writes:.0} writes in {batches:.0} round trips ({:.2} round trips per task transition), mean batch {:.2} ms",
        batches / tasks as f64,
        metric("keelson_snapshot_batch_seconds_sum") / batches.max(1.0) * 1000.0
    );

    if options.idle > 0 {
        // Let the history writer and allocator settle before measuring.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = rss_kib();
        for _ in 0..options.idle {
            let trigger = event(
                "sh.keptn.event.idle.wait.triggered",
                &uuid::Uuid::new_v4().to_string(),
                None,
                json!({ "project": "load", "stage": "idle", "service": "svc-0" }),
            );
            bus.publish(&trigger).await.unwrap();
        }
        let control = server.control_plane.state.control.clone();
        let deadline = Instant::now() + Duration::from_secs(120);
        while control.execution_count() < options.sequences + options.idle {
            assert!(Instant::now() < deadline, "idle sequences were not all created");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = rss_kib();
        println!(
            "idle sequences: {} open, RSS {} MiB → {} MiB = {:.1} KiB per waiting sequence",
            options.idle,
            before / 1024,
            after / 1024,
            (after.saturating_sub(before)) as f64 / options.idle as f64
        );
    }
    server.handle.stop(false).await;
}
