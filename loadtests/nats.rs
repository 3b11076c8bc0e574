//! Sequence orchestration over NATS, next to the raw NATS round-trip rate on the same machine.
//!
//! Starts a JetStream-enabled `nats-server` on a free loopback port, measures the raw request/reply rate
//! between two NATS clients (one request at a time, and as many in flight as sequences run at once) and the
//! durable round-trip rate through a JetStream stream and a pull consumer that acknowledges, then
//! starts Keelson on that server and runs `--sequences` three-task sequences over `--services` services,
//! answered by executors that are separate NATS clients (`sh.keptn.event.*.triggered` in a queue group,
//! `.started` and `.finished` published back). Reports task transitions per second and the dispatch
//! latency (executor publishes a task's `.finished` → receives the next task's `.triggered`).
//!
//! With `--redis`, Keelson keeps its snapshots in a `redis-server` started for the run. Every task
//! transition needs two durable inputs (`.started`, `.finished`), so half the durable round-trip rate
//! is the ceiling for an at-least-once control plane on this bus; the ratio to it is printed.
//!
//! ```sh
//! cargo run --release --example loadtest-nats -- --sequences 2000 --services 200 --executors 4 --redis
//! ```

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(dead_code)] // the MongoDB baselines are the sequences test's
mod backends;
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{percentile, TOKEN};
use futures_util::StreamExt as _;
use serde_json::{json, Value};

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
";

struct Options {
    sequences: usize,
    services: usize,
    executors: usize,
    redis: bool,
}

fn options() -> Options {
    let mut options = Options { sequences: 2_000, services: 200, executors: 4, redis: false };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--redis" {
            options.redis = true;
            continue;
        }
        let value = args.next().and_then(|v| v.parse::<usize>().ok());
        match (flag.as_str(), value) {
            ("--sequences", Some(v)) if (1..=200_000).contains(&v) => options.sequences = v,
            ("--services", Some(v)) if (1..=10_000).contains(&v) => options.services = v,
            ("--executors", Some(v)) if (1..=64).contains(&v) => options.executors = v,
            _ => {
                eprintln!("usage: loadtest-nats [--sequences N] [--services N] [--executors N] [--redis]");
                std::process::exit(2);
            }
        }
    }
    options
}

/// A `nats-server -js` on a free port, stopped on drop.
struct NatsServer {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nats() -> NatsServer {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server (apt-get install nats-server)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(25));
    }
    NatsServer { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir }
}

/// Request/reply round trips per second between two clients with `concurrency` requests in flight.
async fn raw_round_trips(url: &str, concurrency: usize) -> f64 {
    let responder = async_nats::connect(url).await.unwrap();
    let mut requests = responder.subscribe("bench.echo").await.unwrap();
    responder.flush().await.unwrap();
    let replier = responder.clone();
    let echo = tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            if let Some(reply) = message.reply {
                let _ = replier.publish(reply, message.payload).await;
            }
        }
    });
    let requester = async_nats::connect(url).await.unwrap();
    let payload = bytes::Bytes::from(vec![b'x'; 512]);
    let started = Instant::now();
    let window = Duration::from_secs(3);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, payload) = (requester.clone(), payload.clone());
            tokio::spawn(async move {
                let mut count = 0u64;
                while started.elapsed() < window {
                    client.request("bench.echo", payload.clone()).await.unwrap();
                    count += 1;
                }
                count
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap();
    }
    echo.abort();
    total as f64 / started.elapsed().as_secs_f64()
}

/// Durable round trips per second with `concurrency` in flight: a request published into a JetStream
/// stream (file storage), taken by a durable pull consumer that acknowledges it and answers on the
/// requester's inbox — the least an at-least-once consumer of the bus does per incoming event.
async fn raw_durable_round_trips(url: &str, concurrency: usize) -> f64 {
    use async_nats::jetstream::{self, consumer::pull};
    let consumer_client = async_nats::connect(url).await.unwrap();
    let stream_context = jetstream::new(consumer_client.clone());
    let stream = stream_context
        .get_or_create_stream(jetstream::stream::Config {
            name: "bench".to_owned(),
            subjects: vec!["bench.durable".to_owned()],
            retention: jetstream::stream::RetentionPolicy::Interest,
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer = stream
        .get_or_create_consumer(
            "bench-consumer",
            pull::Config {
                durable_name: Some("bench-consumer".to_owned()),
                max_ack_pending: 16_384,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let answer_client = consumer_client.clone();
    let answering = tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            let inbox = message.headers.as_ref().and_then(|headers| headers.get("reply-to")).map(|v| v.to_string());
            let _ = message.ack().await;
            if let Some(inbox) = inbox {
                let _ = answer_client.publish(inbox, bytes::Bytes::new()).await;
            }
        }
    });
    let requester = async_nats::connect(url).await.unwrap();
    let payload = bytes::Bytes::from(vec![b'x'; 512]);
    let started = Instant::now();
    let window = Duration::from_secs(3);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, payload) = (requester.clone(), payload.clone());
            tokio::spawn(async move {
                let inbox = client.new_inbox();
                let mut answers = client.subscribe(inbox.clone()).await.unwrap();
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("reply-to", inbox.as_str());
                let mut count = 0u64;
                while started.elapsed() < window {
                    client.publish_with_headers("bench.durable", headers.clone(), payload.clone()).await.unwrap();
                    answers.next().await.unwrap();
                    count += 1;
                }
                count
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap();
    }
    answering.abort();
    total as f64 / started.elapsed().as_secs_f64()
}

fn answer(source: &Value, kind: &str, task: &str) -> Vec<u8> {
    let mut data = json!({ "project": source["data"]["project"], "stage": source["data"]["stage"], "service": source["data"]["service"] });
    if kind == "finished" {
        data["result"] = json!("pass");
        data["status"] = json!("succeeded");
    }
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": uuid::Uuid::new_v4().to_string(), "source": "loadtest-executor",
        "type": format!("sh.keptn.event.{task}.{kind}"), "shkeptncontext": source["shkeptncontext"],
        "triggeredid": source["id"], "datacontenttype": "application/json", "data": data,
    }))
    .unwrap()
}

#[actix_rt::main]
async fn main() {
    let options = options();
    let nats = start_nats();
    let sequential = raw_round_trips(&nats.url, 1).await;
    // As many requests in flight as sequences run at once (one per service).
    let concurrent = raw_round_trips(&nats.url, options.services).await;
    let durable = raw_durable_round_trips(&nats.url, options.services).await;

    let backends = options.redis.then(backends::Backends::start);
    let url = nats.url.clone();
    let (server, _data_dir, base) = common::start_keelson(|config| {
        config.nats_url = Some(url.parse().unwrap());
        if let Some(backends) = &backends {
            config.redis_url = Some(backends.redis_url.parse().unwrap());
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

    // Executors: separate NATS connections sharing a queue group, as replicas of a Keptn service.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let answered_at: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let mut executors = Vec::new();
    for _ in 0..options.executors {
        let connection = async_nats::connect(&nats.url).await.unwrap();
        let mut triggered =
            connection.queue_subscribe("sh.keptn.event.*.triggered", "executors".to_owned()).await.unwrap();
        connection.flush().await.unwrap();
        let (latencies, answered_at) = (Arc::clone(&latencies), Arc::clone(&answered_at));
        executors.push(tokio::spawn(async move {
            while let Some(message) = triggered.next().await {
                let Ok(event) = serde_json::from_slice::<Value>(&message.payload) else { continue };
                let context = event["shkeptncontext"].as_str().unwrap_or_default().to_owned();
                if let Some(at) = answered_at.lock().unwrap().remove(&context) {
                    latencies.lock().unwrap().push(at.elapsed());
                }
                let event_type = event["type"].as_str().unwrap_or_default();
                let task = event_type.trim_start_matches("sh.keptn.event.").trim_end_matches(".triggered").to_owned();
                connection
                    .publish(format!("sh.keptn.event.{task}.started"), answer(&event, "started", &task).into())
                    .await
                    .unwrap();
                if task != "release" {
                    answered_at.lock().unwrap().insert(context, Instant::now());
                }
                connection
                    .publish(format!("sh.keptn.event.{task}.finished"), answer(&event, "finished", &task).into())
                    .await
                    .unwrap();
            }
        }));
    }
    let watcher = async_nats::connect(&nats.url).await.unwrap();
    let mut finished = watcher.subscribe("sh.keptn.event.dev.delivery.finished").await.unwrap();
    watcher.flush().await.unwrap();

    let trigger_client = async_nats::connect(&nats.url).await.unwrap();
    let started_at = Instant::now();
    for index in 0..options.sequences {
        let trigger = json!({
            "specversion": "1.0", "id": uuid::Uuid::new_v4().to_string(), "source": "loadtest",
            "type": "sh.keptn.event.dev.delivery.triggered", "shkeptncontext": uuid::Uuid::new_v4().to_string(),
            "data": { "project": "load", "stage": "dev", "service": format!("svc-{}", index % options.services) },
        });
        trigger_client
            .publish("sh.keptn.event.dev.delivery.triggered", serde_json::to_vec(&trigger).unwrap().into())
            .await
            .unwrap();
    }
    trigger_client.flush().await.unwrap();
    let mut done = 0;
    while done < options.sequences {
        match tokio::time::timeout(Duration::from_secs(60), finished.next()).await {
            Ok(Some(_)) => done += 1,
            _ => panic!("sequences stalled: {done} of {} finished", options.sequences),
        }
    }
    let elapsed = started_at.elapsed();
    executors.iter().for_each(|executor| executor.abort());
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    let tasks = options.sequences * 3;
    let transitions = tasks as f64 / elapsed.as_secs_f64();
    println!(
        "keelson {} · {} cores · nats-server with JetStream, {}, {} executor connections",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        if options.redis { "redis snapshots, embedded (sqlite) history" } else { "embedded stores" },
        options.executors
    );
    println!(
        "raw nats request/reply between two clients (same run): {sequential:.0}/s one at a time, {concurrent:.0}/s with {} in flight",
        options.services
    );
    println!(
        "raw durable round trips (JetStream publish → durable pull consumer ack → answer) with {} in flight: {durable:.0}/s",
        options.services
    );
    println!("sequences: {} over {} services", options.sequences, options.services);
    println!("task transitions: {tasks} in {elapsed:.2?} = {transitions:.0}/s");
    println!(
        "= {:.0} % of the raw one-at-a-time round-trip rate, {:.0} % of the concurrent one, {:.0} % of the durable one",
        transitions / sequential * 100.0,
        transitions / concurrent * 100.0,
        transitions / durable * 100.0
    );
    println!(
        "durable ceiling (two durable inputs per transition): {:.0}/s; task transitions reach {:.2} of it",
        durable / 2.0,
        transitions / (durable / 2.0)
    );
    println!(
        "dispatch latency (executor .finished → next .triggered): p50 {:.3} ms, p99 {:.3} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    server.handle.stop(false).await;
}
