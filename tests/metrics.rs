//! `/metrics` as Prometheus's own linter sees it after a delivery: help text on every family, counters
//! ending in `_total`, base units, no duplicates (`promtool check metrics`, from Debian's `prometheus`).

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::json;
use support::{send, TestKeelson, SHIPYARD};

#[actix_rt::test]
async fn a_live_scrape_passes_promtool_without_a_warning() {
    let keelson = TestKeelson::start().await;
    let (status, body) = keelson.create_project("shop", SHIPYARD).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = keelson.create_service("shop", "carts").await;
    assert_eq!(status, 200, "{body}");
    // A delivery through dev: the task and sequence families get samples.
    let context = keelson.trigger_delivery("shop", "carts").await;
    let open = keelson.wait_for_open("shop", "deployment", &context).await;
    let finished = json!({
        "specversion": "1.0", "type": "sh.keptn.event.deployment.finished", "source": "executor",
        "shkeptncontext": context, "triggeredid": open["id"],
        "data": { "project": "shop", "stage": "dev", "service": "carts", "status": "succeeded", "result": "pass" },
    });
    let (status, body) = send(keelson.post("/api/v1/event").json(&finished)).await;
    assert_eq!(status, 200, "{body}");

    let scrape = keelson.client.get(keelson.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) is installed");
    promtool.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    let findings = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && findings.trim().is_empty(), "promtool found:\n{findings}");

    // Counters that never moved are there at zero, with their help text.
    for line in [
        "keelson_snapshot_write_failures_total 0",
        "keelson_shard_losses_total{reason=\"fenced\"} 0",
        "keelson_webhook_requests_total{outcome=\"invalid\"} 0",
    ] {
        assert!(scrape.lines().any(|l| l == line), "missing `{line}`");
    }
    for family in ["keelson_snapshot_write_failures_total", "keelson_dispatch_latency_seconds", "process_open_fds"] {
        assert!(scrape.contains(&format!("# HELP {family} ")), "no help for {family}");
    }
    assert!(scrape.contains("keelson_sequences_queued{project=\"shop\",stage=\"dev\"} 0"), "queue depths per stage");
    assert!(scrape.contains("keelson_store_up{store=\"snapshots\"} 1"));
    assert!(scrape.contains(&format!("keelson_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))));
    // Task durations use hour-scale buckets, HTTP requests millisecond ones.
    assert!(scrape.contains("keelson_task_duration_seconds_bucket{task=\"deployment\",le=\"3600\"}"), "task buckets");
    assert!(scrape.contains("le=\"0.001\""), "HTTP and store buckets");
}
