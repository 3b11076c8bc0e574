//! Prometheus metrics: the recorder, `/metrics`, and per-route HTTP request counters and latencies.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::state::AppState;

pub const HTTP_REQUESTS: &str = "keelson_http_requests_total";
pub const HTTP_DURATION: &str = "keelson_http_request_duration_seconds";

/// Duration buckets from 10 µs to an hour: dispatch latencies and API calls sit in the microsecond to
/// millisecond range, task durations in seconds to minutes.
const DURATION_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The process-wide Prometheus recorder; installed once, shared by every server in the process.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder =
                PrometheusBuilder::new().set_buckets(DURATION_BUCKETS).expect("buckets are not empty").build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding application); then ours only renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Middleware counting requests and timing them by route pattern (not raw path, to bound cardinality).
pub async fn track_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started_at = Instant::now();
    let method = method_label(request.method());
    let response = next.call(request).await;
    let (route, status) = match &response {
        Ok(response) => {
            (response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned()), response.status().as_u16())
        }
        Err(error) => ("unmatched".to_owned(), error.as_response_error().status_code().as_u16()),
    };
    let elapsed = started_at.elapsed().as_secs_f64();
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
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
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
