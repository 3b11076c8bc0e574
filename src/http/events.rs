//! `POST /api/v1/event`: events from clients and remote execution planes.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::model::incoming::{self, Refusal, MAX_EVENT_BYTES};

/// How long a request waits for its event to become durable before answering 503.
const DURABLE_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting request checks whether a store has started failing.
const HEALTH_POLL: Duration = Duration::from_millis(50);

pub async fn post_event(state: web::Data<AppState>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = super::error::read_body(payload, state.max_request_body_bytes).await?;
    if body.len() > MAX_EVENT_BYTES {
        return Err(ApiError::bad_request(format!("event exceeds the maximum size of {} KiB", MAX_EVENT_BYTES / 1024)));
    }
    let raw: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("Invalid request format: {error}")))?;
    let runtime = state.router.runtime();
    let event =
        incoming::accept(raw, uuid::Uuid::new_v4().to_string(), runtime.clock.now()).map_err(
            |refusal| match refusal {
                Refusal::Schema(message) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message),
                Refusal::Invalid(message) => ApiError::bad_request(message),
            },
        )?;
    // Refused up front while a store keeps failing: accepting would mean holding work that cannot be
    // made durable.
    if let Some(problem) = runtime.storage_problem() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("event not accepted: {problem}")));
    }
    let keptn_context = event.shkeptncontext.clone();
    let event = Arc::new(event);
    let receipt = state.router.route_acked(Arc::clone(&event)).await;
    let mut durable = Box::pin(receipt.durable());
    let deadline = tokio::time::Instant::now() + DURABLE_WAIT;
    loop {
        tokio::select! {
            applied = &mut durable => {
                if !applied {
                    return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "event not applied: its sequence restarted; retry"));
                }
                break;
            }
            _ = tokio::time::sleep(HEALTH_POLL) => {
                // A store that fails while this event waits: answer now rather than at the deadline. The
                // event stays accepted and is stored (and applied) once the store answers, so the answer
                // is 202, which no client retries (a retried `.started` would count as a second executor).
                let problem = runtime.storage_problem();
                if problem.is_some() || tokio::time::Instant::now() >= deadline {
                    let problem = problem.unwrap_or_else(|| "the stores are slow to answer".to_owned());
                    let runtime = Arc::clone(runtime);
                    tokio::spawn(async move {
                        if durable.await {
                            forward(&runtime, &event).await;
                        } else {
                            tracing::warn!(event_id = %event.id, event_type = %event.event_type, "an event answered 202 was not applied: its sequence restarted first");
                        }
                    });
                    return Ok(HttpResponse::Accepted().json(json!({
                        "keptnContext": keptn_context,
                        "message": format!("event accepted but not yet stored ({problem}); it is applied once the store answers"),
                    })));
                }
            }
        }
    }
    // Executors and other subscribers see the event once the control plane has applied it.
    runtime.bus.publish_shared(&event).await.map_err(|error| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("event applied but not forwarded to the bus: {error}"))
    })?;
    Ok(HttpResponse::Ok().json(json!({ "keptnContext": keptn_context })))
}

/// Publishes an event accepted earlier for the bus's other subscribers, once it is applied.
async fn forward(runtime: &crate::actors::Runtime, event: &Arc<crate::model::event::CloudEvent>) {
    if let Err(error) = runtime.bus.publish_shared(event).await {
        tracing::warn!(event_id = %event.id, %error, "accepted event could not be forwarded to the bus");
    }
}
