//! The crash and fault loop (see `tests/support/chaos.rs`): steady triggers and executor answers while
//! Keelson is killed, paused, its Redis and NATS restarted and its data volume filled at random
//! moments; then a drain and an audit. Exits non-zero when anything acknowledged was lost or doubled.
//!
//! ```sh
//! cargo build --release --bin keelson --example loadtest-chaos
//! sudo target/release/examples/loadtest-chaos --backends embedded --seconds 300 --volume-mib 160
//! target/release/examples/loadtest-chaos --backends nats-redis --seconds 300
//! ```

#[allow(dead_code)]
#[path = "../tests/support/chaos.rs"]
mod chaos;
#[allow(dead_code)]
#[path = "../tests/support/servers.rs"]
mod servers;

use std::time::Duration;

use chaos::{Backends, Fault, Plan};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// `embedded` or `nats-redis`.
    #[arg(long, default_value = "embedded")]
    backends: String,
    /// How long faults strike; the drain and audit follow.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    /// Clients sending triggers.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Put the data dir on a tmpfs of this size and fill it now and then (needs root).
    #[arg(long)]
    volume_mib: Option<u64>,
    /// Faults to draw from (comma-separated: kill, pause, restart-redis, restart-nats, fill-volume);
    /// default: every one the backends and volume allow.
    #[arg(long)]
    faults: Option<String>,
    /// The keelson binary (default: next to this program's directory).
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let backends = match args.backends.as_str() {
        "embedded" => Backends::Embedded,
        "nats-redis" => Backends::NatsRedis,
        other => {
            eprintln!("unknown --backends {other}: embedded or nats-redis");
            std::process::exit(2);
        }
    };
    let binary = args.binary.unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("own path");
        exe.parent().and_then(|dir| dir.parent()).expect("target dir").join("keelson")
    });
    if !binary.exists() {
        eprintln!("{} not found: build it first (cargo build --release --bin keelson)", binary.display());
        std::process::exit(2);
    }
    let mut faults = vec![Fault::Kill, Fault::Pause];
    if backends == Backends::NatsRedis {
        faults.extend([Fault::RestartRedis, Fault::RestartNats]);
    }
    if args.volume_mib.is_some() {
        faults.push(Fault::FillVolume);
    }
    if let Some(chosen) = &args.faults {
        faults = chosen
            .split(',')
            .map(|name| match name.trim() {
                "kill" => Fault::Kill,
                "pause" => Fault::Pause,
                "restart-redis" => Fault::RestartRedis,
                "restart-nats" => Fault::RestartNats,
                "fill-volume" => Fault::FillVolume,
                other => {
                    eprintln!("unknown fault {other}");
                    std::process::exit(2);
                }
            })
            .collect();
    }
    let report = chaos::run(Plan {
        binary,
        backends,
        script: None,
        random_faults: faults,
        duration: Duration::from_secs(args.seconds),
        gap: (Duration::from_secs(2), Duration::from_secs(8)),
        trigger_clients: args.clients,
        volume_mib: args.volume_mib,
        drain_timeout: Duration::from_secs(180),
    })
    .await;
    let mut statuses: Vec<_> = report.statuses.iter().collect();
    statuses.sort();
    println!("faults: {}", report.faults.len());
    for (fault, at) in &report.faults {
        println!("  {:>7.1}s {fault:?}", at.as_secs_f64());
    }
    println!("answers by status (0 = no answer): {statuses:?}");
    println!("retries after 503 or no answer: {}", report.retries_after_503);
    println!("duplicate .finished sent: {}", report.duplicate_finished_sent);
    println!(
        "acknowledged sequences (200): {}, audited correct: {}; accepted not yet durable (202): {}",
        report.acknowledged, report.audited_ok, report.accepted_not_durable
    );
    if report.problems.is_empty() {
        println!("no problem found");
    } else {
        println!("{} problems:", report.problems.len());
        for problem in &report.problems {
            println!("  {problem}");
        }
        std::process::exit(1);
    }
}
