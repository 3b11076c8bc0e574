//! Cluster figures on one machine: three `keelson` processes sharing nats-server, redis-server,
//! SecantusDB and a git smart-HTTP server, driven by a NATS executor (this program).
//!
//! - `--mode steady`: the same trigger load on one instance (no cluster) and on three; prints dispatch
//!   p50/p99 as the executor sees them (its `t1.finished` to the next `t2.triggered`) and spurious
//!   shard losses.
//! - `--mode chaos`: a random fault every `--every` seconds on a random instance — kill -9 and
//!   restart, SIGSTOP for 5 s, SIGTERM and restart — under steady triggers; prints how long each
//!   takeover took, then checks that every sequence finished and that no task was triggered with two
//!   ids. Exits 1 when a target is missed.
//! - `--mode rebalance`: three instances under steady triggers; a fourth joins, then one leaves with
//!   SIGTERM; prints the longest task transition meanwhile (target ≤ 1.5 s) and refused writes
//!   (target 0).
//!
//! ```sh
//! cargo build --release --bin keelson --example loadtest-cluster
//! target/release/examples/loadtest-cluster --mode steady --seconds 60
//! target/release/examples/loadtest-cluster --mode chaos --seconds 180
//! ```

#[allow(dead_code)]
#[path = "../tests/support/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "../tests/support/git_http.rs"]
mod git_http;
#[allow(dead_code)]
#[path = "../tests/support/servers.rs"]
mod servers;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use cluster::{Api, Executor, Node, Servers};
use serde_json::Value;

#[derive(Parser)]
struct Args {
    /// `steady` or `chaos`.
    #[arg(long, default_value = "chaos")]
    mode: String,
    /// How long triggers are sent (and, in chaos mode, faults strike).
    #[arg(long, default_value_t = 180)]
    seconds: u64,
    /// Sequences triggered per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Projects the sequences are spread over.
    #[arg(long, default_value_t = 12)]
    projects: usize,
    /// Seconds between faults (chaos mode).
    #[arg(long, default_value_t = 20)]
    every: u64,
    /// How long the executor takes per task, in ms.
    #[arg(long, default_value_t = 100)]
    work_ms: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    if !cluster::binary().exists() {
        eprintln!("{} not found: build it first (cargo build --release --bin keelson)", cluster::binary().display());
        std::process::exit(2);
    }
    match args.mode.as_str() {
        "steady" => steady(&args).await,
        "chaos" => chaos(&args).await,
        "rebalance" => rebalance(&args).await,
        other => {
            eprintln!("unknown --mode {other}: steady or chaos");
            std::process::exit(2);
        }
    }
}

/// Projects `c00…`, created through the members in turn.
async fn create_projects(servers: &Servers, apis: &[Api], count: usize) -> Vec<String> {
    let projects: Vec<String> = (0..count).map(|i| format!("c{i:02}")).collect();
    for (i, project) in projects.iter().enumerate() {
        cluster::create_project(&apis[i % apis.len()], &servers.git, project).await;
    }
    projects
}

/// Sends `rate` triggers per second for `seconds` to whichever members `live` lists, round-robin over
/// projects; returns the (project, context) of every accepted trigger.
async fn send_triggers(
    live: Arc<Mutex<Vec<Api>>>,
    projects: Vec<String>,
    rate: f64,
    seconds: u64,
) -> Vec<(String, String)> {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut sent = Vec::new();
    let mut n = 0usize;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    while Instant::now() < until {
        ticks.tick().await;
        let project = projects[n % projects.len()].clone();
        n += 1;
        let trigger = serde_json::json!({
            "specversion": "1.0", "type": "sh.keptn.event.dev.delivery.triggered", "source": "loadtest",
            "data": { "project": project, "stage": "dev", "service": "svc" },
        });
        // Another member takes over when one is down or its project is moving.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let candidates = live.lock().unwrap().clone();
            let api = &candidates[n % candidates.len().max(1)];
            let answer = client
                .post(format!("{}/api/v1/event", api.base))
                .header("x-token", cluster::TOKEN)
                .json(&trigger)
                .send()
                .await;
            if let Ok(answer) = answer {
                if answer.status().as_u16() == 200 {
                    let body: Value = answer.json().await.unwrap_or_default();
                    sent.push((project.clone(), body["keptnContext"].as_str().unwrap_or_default().to_owned()));
                    break;
                }
            }
            if Instant::now() > deadline {
                eprintln!("trigger for {project} not accepted within 20 s");
                break;
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    sent
}

async fn shard_losses(apis: &[Api]) -> f64 {
    let mut losses = 0.0;
    for api in apis {
        losses += api.metric("keelson_shard_losses_total").await;
    }
    losses
}

async fn steady(args: &Args) {
    println!("| instances | sequences | dispatch p50 | dispatch p99 | shard losses | forwarded |");
    println!("|---|---|---|---|---|---|");
    let mut p99s = Vec::new();
    for instances in [1usize, 3] {
        let servers = Servers::start();
        let nodes: Vec<Node> = (1..=instances)
            .map(|i| {
                let id = format!("n{i}");
                if instances == 1 {
                    // One instance without cluster mode, on the same servers.
                    let mut vars = servers.vars(&id);
                    vars.retain(|(key, _)| *key != "KEELSON_CLUSTER");
                    let log = servers.log(&id);
                    let port = servers::free_port();
                    let process = cluster::Member::spawn(&servers.data_dir(&id), port, &vars, &log);
                    Node { id, api: Api::new(&process.base), process }
                } else {
                    servers.spawn(&id, &[])
                }
            })
            .collect();
        let apis: Vec<Api> = nodes.iter().map(|node| node.api.clone()).collect();
        if instances > 1 {
            let ids: Vec<&str> = nodes.iter().map(|node| node.id.as_str()).collect();
            cluster::wait_until_owned_by(&apis[0], &ids, Duration::from_secs(30)).await;
        }
        let executor = cluster::start_executor(&servers.nats.url, Duration::from_millis(args.work_ms)).await;
        let projects = create_projects(&servers, &apis, args.projects).await;
        let live = Arc::new(Mutex::new(apis.clone()));
        let sent = send_triggers(live, projects, args.rate, args.seconds).await;
        cluster::wait_finished(&apis[0], &sent, Duration::from_secs(120)).await;
        let (p50, p99) = (executor.dispatch_quantile(0.5), executor.dispatch_quantile(0.99));
        let mut forwarded = 0.0;
        for api in &apis {
            forwarded += api.metric("keelson_forwarded_total").await;
        }
        let losses = if instances > 1 { shard_losses(&apis).await } else { 0.0 };
        println!(
            "| {instances} | {} | {:.1} ms | {:.1} ms | {losses} | {forwarded} |",
            sent.len(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        cluster::assert_one_id_per_task(&executor);
        p99s.push(p99);
    }
    let margin = p99s[1].saturating_sub(p99s[0]);
    println!("three instances' p99 exceeds one instance's by {:.1} ms (target ≤ 10 ms)", margin.as_secs_f64() * 1e3);
}

/// What a fault did.
struct Outcome {
    at: Duration,
    action: &'static str,
    node: String,
    /// From the fault to every shard owned by a live member again.
    takeover: Duration,
    target: Duration,
    note: String,
}

async fn wait_owned_by_live(api: &Api, live: &[String], within: Duration) -> Duration {
    let ids: Vec<&str> = live.iter().map(String::as_str).collect();
    let started = Instant::now();
    loop {
        let owners = api.owners().await;
        if owners.iter().all(|owner| owner.as_deref().is_some_and(|owner| ids.contains(&owner))) {
            return started.elapsed();
        }
        if started.elapsed() > within {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn chaos(args: &Args) {
    let servers = Arc::new(Servers::start());
    let mut nodes: Vec<Option<Node>> = ["n1", "n2", "n3"].iter().map(|id| Some(servers.spawn(id, &[]))).collect();
    let apis: Vec<Api> = nodes.iter().flatten().map(|node| node.api.clone()).collect();
    cluster::wait_until_owned_by(&apis[0], &["n1", "n2", "n3"], Duration::from_secs(30)).await;
    let executor: Executor = cluster::start_executor(&servers.nats.url, Duration::from_millis(args.work_ms)).await;
    let projects = create_projects(&servers, &apis, args.projects).await;
    let live = Arc::new(Mutex::new(apis.clone()));
    let triggers = tokio::spawn(send_triggers(Arc::clone(&live), projects, args.rate, args.seconds));
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut round = 0u64;
    while started.elapsed() + Duration::from_secs(args.every) <= Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_secs(args.every)).await;
        round += 1;
        let victim = (rand_index(round) % 3) as usize;
        let action = ["kill", "stop", "term"][(rand_index(round * 7 + 3) % 3) as usize];
        let id = format!("n{}", victim + 1);
        let others: Vec<String> = (0..3).filter(|i| *i != victim).map(|i| format!("n{}", i + 1)).collect();
        let witness = nodes[(victim + 1) % 3].as_ref().unwrap().api.clone();
        live.lock().unwrap().retain(|api| api.base != nodes[victim].as_ref().unwrap().api.base);
        let at = started.elapsed();
        let node = nodes[victim].take().unwrap();
        let fault = Instant::now();
        let (takeover, target, note, node) = match action {
            "kill" => {
                node.process.kill_hard();
                wait_owned_by_live(&witness, &others, Duration::from_secs(15)).await;
                (fault.elapsed(), Duration::from_secs(5), String::new(), None)
            }
            "stop" => {
                node.process.signal("STOP");
                wait_owned_by_live(&witness, &others, Duration::from_secs(15)).await;
                let took = fault.elapsed();
                tokio::time::sleep(Duration::from_secs(5).saturating_sub(took)).await;
                node.process.signal("CONT");
                (took, Duration::from_secs(4), String::new(), Some(node))
            }
            _ => {
                let mut node = node;
                node.process.signal("TERM");
                let code = tokio::task::block_in_place(|| node.process.wait_exit(Duration::from_secs(10)));
                wait_owned_by_live(&witness, &others, Duration::from_secs(15)).await;
                (fault.elapsed(), Duration::from_secs(3), format!("exit {code:?}"), None)
            }
        };
        let node = match node {
            Some(node) => node,
            None => tokio::task::block_in_place(|| servers.spawn(&id, &[])),
        };
        live.lock().unwrap().push(node.api.clone());
        nodes[victim] = Some(node);
        println!(
            "{:>6.1}s {action:<4} {id}: shards owned again after {:.2} s {note}",
            at.as_secs_f64(),
            takeover.as_secs_f64()
        );
        outcomes.push(Outcome { at, action, node: id, takeover, target, note });
    }
    let sent = triggers.await.unwrap();
    let witness = nodes.iter().flatten().next().unwrap().api.clone();
    let drain = Instant::now();
    cluster::wait_finished(&witness, &sent, Duration::from_secs(180)).await;
    let repeats = cluster::assert_one_id_per_task(&executor);
    println!(
        "{} sequences triggered and finished (drain {:.1} s); no task triggered with two ids; {repeats} repeated task triggers (same id)",
        sent.len(),
        drain.elapsed().as_secs_f64()
    );
    let stalled = executor.dispatch.lock().unwrap().iter().filter(|d| **d > Duration::from_secs(6)).count();
    println!(
        "dispatch p50 {:.1} ms, p99 {:.1} ms, max {:.2} s (all of the run, faults included); {stalled} over 6 s",
        executor.dispatch_quantile(0.5).as_secs_f64() * 1e3,
        executor.dispatch_quantile(0.99).as_secs_f64() * 1e3,
        executor.dispatch_max().as_secs_f64()
    );
    if stalled > 0 {
        println!("MISSED: {stalled} task transitions took longer than 6 s");
        std::process::exit(1);
    }
    let missed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| {
            outcome.takeover > outcome.target || (outcome.action == "term" && outcome.note != "exit Some(0)")
        })
        .collect();
    for outcome in &missed {
        println!(
            "MISSED at {:.1}s: {} {} took {:.2} s (target {:.1} s) {}",
            outcome.at.as_secs_f64(),
            outcome.action,
            outcome.node,
            outcome.takeover.as_secs_f64(),
            outcome.target.as_secs_f64(),
            outcome.note
        );
    }
    if !missed.is_empty() {
        std::process::exit(1);
    }
}

async fn rebalance(args: &Args) {
    let servers = Servers::start();
    let mut nodes: Vec<Node> = ["n1", "n2", "n3"].iter().map(|id| servers.spawn(id, &[])).collect();
    let apis: Vec<Api> = nodes.iter().map(|node| node.api.clone()).collect();
    cluster::wait_until_owned_by(&apis[0], &["n1", "n2", "n3"], Duration::from_secs(30)).await;
    let executor = cluster::start_executor(&servers.nats.url, Duration::from_millis(args.work_ms)).await;
    let projects = create_projects(&servers, &apis, args.projects).await;
    let live = Arc::new(Mutex::new(vec![apis[1].clone(), apis[2].clone()]));
    let seconds = args.seconds.max(30);
    let triggers = tokio::spawn(send_triggers(Arc::clone(&live), projects, args.rate, seconds));
    // Steady first, then the join, then (half-way through what is left) the leave.
    tokio::time::sleep(Duration::from_secs(seconds / 4)).await;
    executor.dispatch.lock().unwrap().clear();
    let joined_at = Instant::now();
    let joined = tokio::task::block_in_place(|| servers.spawn("n4", &[]));
    live.lock().unwrap().push(joined.api.clone());
    let mut owned = 0;
    while joined_at.elapsed() < Duration::from_secs(15) {
        owned = apis[1].owners().await.iter().filter(|owner| owner.as_deref() == Some("n4")).count();
        if owned >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let join_took = joined_at.elapsed();
    tokio::time::sleep(Duration::from_secs(seconds / 4)).await;
    let mut leaving = nodes.remove(0);
    let left_at = Instant::now();
    leaving.process.signal("TERM");
    let code = tokio::task::block_in_place(|| leaving.process.wait_exit(Duration::from_secs(10)));
    let remaining = [apis[1].clone(), apis[2].clone(), joined.api.clone()];
    cluster::wait_until_owned_by(&remaining[0], &["n2", "n3", "n4"], Duration::from_secs(10)).await;
    let leave_took = left_at.elapsed();
    let sent = triggers.await.unwrap();
    cluster::wait_finished(&remaining[0], &sent, Duration::from_secs(120)).await;
    let mut fenced = 0.0;
    for api in &remaining {
        fenced += api.metric("keelson_fenced_writes_total").await;
    }
    cluster::assert_one_id_per_task(&executor);
    let longest = executor.dispatch_max();
    println!("join: n4 owns {owned} shards {:.2} s after it started", join_took.as_secs_f64());
    println!(
        "leave: n1 exited with {code:?}; its shards held elsewhere {:.2} s after SIGTERM",
        leave_took.as_secs_f64()
    );
    println!(
        "{} sequences finished; during join and leave: dispatch p50 {:.1} ms, p99 {:.1} ms, longest {:.0} ms; refused writes {fenced}",
        sent.len(),
        executor.dispatch_quantile(0.5).as_secs_f64() * 1e3,
        executor.dispatch_quantile(0.99).as_secs_f64() * 1e3,
        longest.as_secs_f64() * 1e3
    );
    let missed = longest > Duration::from_millis(1500)
        || fenced > 0.0
        || code != Some(0)
        || owned < 8
        || leave_took > Duration::from_secs(3);
    if missed {
        println!("MISSED: a target (longest transition ≤ 1.5 s, no refused write, exit 0, join share, leave ≤ 3 s)");
        std::process::exit(1);
    }
}

/// A cheap deterministic spread of rounds over nodes and actions (SplitMix64).
fn rand_index(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
