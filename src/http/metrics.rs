//! Prometheus metrics: the recorder, `/metrics`, and per-route HTTP request counters and latencies.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;

pub const HTTP_REQUESTS: &str = "keelson_http_requests_total";
pub const HTTP_DURATION: &str = "keelson_http_request_duration_seconds";

/// Latency buckets from 100 µs to 10 s: API calls are expected in the sub-millisecond to millisecond range.
const DURATION_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide Prometheus recorder; installed once, shared by every server in the process.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), DURATION_BUCKETS)
                .expect("buckets are not empty")
                .build_recorder();
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
    let method = request.method().as_str().to_owned();
    let response = next.call(request).await;
    let (route, status) = match &response {
        Ok(response) => {
            (response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned()), response.status().as_u16())
        }
        Err(error) => ("unmatched".to_owned(), error.as_response_error().status_code().as_u16()),
    };
    let elapsed = started_at.elapsed().as_secs_f64();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route).record(elapsed);
    response
}

/// `GET /metrics`.
pub async fn render(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}
