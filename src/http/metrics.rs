//! Prometheus metrics: the recorder, `/metrics`, and per-route HTTP request counters and latencies.
//! What is exported is listed in [`catalogue`].

pub mod catalogue;

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::state::AppState;

pub const HTTP_REQUESTS: &str = "keelson_http_requests_total";
pub const HTTP_DURATION: &str = "keelson_http_request_duration_seconds";

/// Buckets of a histogram missing from the catalogue (none should be): ten microseconds to an hour.
const FALLBACK_BUCKETS: &[f64] = &[0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0];

/// The process-wide Prometheus recorder; installed once, shared by every server in the process. Every
/// family gets its help text and buckets, and its known series start at zero.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new().set_buckets(FALLBACK_BUCKETS).expect("buckets are not empty");
            for family in catalogue::FAMILIES {
                if let catalogue::Kind::Histogram(buckets) = family.kind {
                    builder = builder
                        .set_buckets_for_metric(Matcher::Full(family.name.to_owned()), buckets)
                        .expect("buckets are not empty");
                }
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding application); then ours only renders.
            if metrics::set_global_recorder(recorder).is_ok() {
                catalogue::register();
                metrics::gauge!("keelson_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                let started = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|since| since.as_secs_f64())
                    .unwrap_or_default();
                metrics::gauge!("process_start_time_seconds").set(started);
            }
            handle
        })
        .clone()
}

/// Middleware counting requests and timing them by route pattern (not raw path, to bound cardinality).
pub async fn track_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use tracing::Instrument as _;
    let started_at = Instant::now();
    let method = method_label(request.method());
    let span = tracing::info_span!(
        target: crate::telemetry::TARGET,
        "http.request",
        http.method = method,
        http.route = tracing::field::Empty,
        http.status = tracing::field::Empty,
    );
    let response = next.call(request).instrument(span.clone()).await;
    let (route, status) = match &response {
        Ok(response) => {
            (response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned()), response.status().as_u16())
        }
        Err(error) => ("unmatched".to_owned(), error.as_response_error().status_code().as_u16()),
    };
    let elapsed = started_at.elapsed().as_secs_f64();
    span.record("http.route", route.as_str()).record("http.status", status);
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route).record(elapsed);
    response
}

/// The method as a label: the standard methods by name, anything a client made up as `other`, so
/// requests cannot create time series without end.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => crate::actors::labels::OTHER,
    }
}

/// `GET /metrics`.
pub async fn render(state: web::Data<AppState>) -> HttpResponse {
    record_sequence_states(&state);
    record_queues_and_stores(&state);
    record_process();
    if let Some(nats) = &state.nats {
        record_consumer_lag(nats).await;
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}

/// Queue depths and store health, read at scrape time.
fn record_queues_and_stores(state: &AppState) {
    let router = state.control.router();
    let runtime = router.runtime();
    metrics::gauge!("keelson_lane_depth").set(router.queued() as f64);
    for (writer, depth, up) in [
        ("snapshots", runtime.snapshots.outstanding().count(), runtime.snapshots.health().problem().is_none()),
        ("history", runtime.history.outstanding().count(), runtime.history.health().problem().is_none()),
    ] {
        metrics::gauge!("keelson_writer_queue_depth", "writer" => writer).set(depth as f64);
        metrics::gauge!("keelson_store_up", "store" => writer).set(if up { 1.0 } else { 0.0 });
    }
    metrics::gauge!("keelson_bus_up").set(if runtime.emitter.bus_problem().is_none() { 1.0 } else { 0.0 });
    // Every stage of every project served here, so a queue that drained reads 0 rather than its last value.
    let mut queued: std::collections::BTreeMap<(String, String), usize> = std::collections::BTreeMap::new();
    for project in state.projects.list() {
        if state.cluster.as_ref().is_some_and(|cluster| !cluster.table.serves(&project.name)) {
            continue;
        }
        for stage in &project.stages {
            queued.insert((project.name.clone(), stage.name.clone()), 0);
        }
    }
    for (stage, count) in state.control.queued_by_stage() {
        if let Some(entry) = queued.get_mut(&stage) {
            *entry = count;
        }
    }
    for ((project, stage), count) in queued {
        metrics::gauge!("keelson_sequences_queued", "project" => project, "stage" => stage).set(count as f64);
    }
}

/// Memory, CPU time and open descriptors of this process, from `/proc` (Linux).
fn record_process() {
    // Linux reports CPU time in clock ticks of 1/100 s and memory in pages of 4 KiB on every platform
    // Keelson ships for.
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE_BYTES: f64 = 4096.0;
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        if let Some(resident) = statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<f64>().ok()) {
            metrics::gauge!("process_resident_memory_bytes").set(resident * PAGE_BYTES);
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces, inside parentheses).
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or_default();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
        let seconds = (ticks(11) + ticks(12)) / TICKS_PER_SECOND;
        metrics::counter!("process_cpu_seconds_total").absolute(seconds as u64);
    }
    if let Ok(descriptors) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("process_open_fds").set(descriptors.count() as f64);
    }
}

/// The control plane's JetStream consumer: what waits, what is unacknowledged, what came again.
async fn record_consumer_lag(nats: &crate::bus::nats::NatsBus) {
    match nats.consumer_lag().await {
        Ok(lag) => {
            metrics::gauge!("keelson_jetstream_consumer_pending").set(lag.pending as f64);
            metrics::gauge!("keelson_jetstream_consumer_ack_pending").set(lag.ack_pending as f64);
            metrics::gauge!("keelson_jetstream_consumer_redelivered").set(lag.redelivered as f64);
        }
        Err(error) => tracing::debug!(%error, "jetstream consumer info not read"),
    }
}

/// Sets `keelson_sequences{state}` from the executions' snapshots (counted at scrape time, so the
/// gauge can never drift from the truth).
fn record_sequence_states(state: &AppState) {
    let mut counts: std::collections::BTreeMap<&'static str, f64> =
        ["triggered", "started", "waitingForApproval", "paused", "finished", "timedOut"]
            .into_iter()
            .map(|s| (s, 0.0))
            .collect();
    for (name, count) in state.control.execution_states() {
        *counts.entry(name).or_default() += count as f64;
    }
    for (name, count) in counts {
        metrics::gauge!("keelson_sequences", "state" => name).set(count);
    }
}
