//! `POST /api/v1/event`: events from clients and remote execution planes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::state::AppState;
use crate::actors::handle::Acceptance;
use crate::model::event::CloudEvent;
use crate::model::incoming::{self, Refusal, MAX_EVENT_BYTES};

#[utoipa::path(post, path = "/api/v1/event", tag = "api", operation_id = "postEvent",
    summary = "Sends an event into the control plane",
    description = "Takes a Keptn CloudEvent (`type` and `data.project` required; `id`, `time`, `shkeptncontext` \
        filled in when missing) and answers with its context once it is durable.",
    request_body(content = CloudEvent, description = "A Keptn CloudEvent"),
    responses(
        (status = 200, description = "Stored and applied", body = EventAccepted),
        (status = 202, description = "Accepted, stored once a slow store answers; do not send it again", body = EventAccepted),
        (status = 400, description = "Not JSON, too large or not a valid event", body = super::error::ErrorBody),
        (status = 422, description = "The event breaks Keptn's schema", body = super::error::ErrorBody),
    ))]
pub async fn post_event(state: web::Data<AppState>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = super::error::read_body(payload, state.max_request_body_bytes).await?;
    if body.len() > MAX_EVENT_BYTES {
        return Err(ApiError::bad_request(format!("event exceeds the maximum size of {} KiB", MAX_EVENT_BYTES / 1024)));
    }
    let raw: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("Invalid request format: {error}")))?;
    let event =
        incoming::accept(raw, uuid::Uuid::new_v4().to_string(), state.control.now()).map_err(
            |refusal| match refusal {
                Refusal::Schema(message) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message),
                Refusal::Invalid(message) => ApiError::bad_request(message),
            },
        )?;
    take_in(&state, event).await
}

/// Takes an event in through the control plane and answers as Keptn's API does: 200 once it is
/// durable, 202 when it is accepted but a store is slow or failing (clients must not retry it; a
/// retried `.started` would count as a second executor), 503 when it was not accepted.
pub(super) async fn take_in(state: &AppState, event: CloudEvent) -> Result<HttpResponse, ApiError> {
    let keptn_context = event.shkeptncontext.clone();
    match state.control.accept(event).await {
        Ok(Acceptance::Applied) => Ok(HttpResponse::Ok().json(EventAccepted { keptn_context, message: None })),
        Ok(Acceptance::Pending { problem }) => Ok(HttpResponse::Accepted().json(EventAccepted {
            keptn_context,
            message: Some(format!(
                "event accepted but not yet stored ({problem}); it is applied once the store answers"
            )),
        })),
        // Every refusal is a condition that passes: not accepted, not applied, or not forwarded.
        Err(error) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())),
    }
}

/// The answer to an accepted event.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventAccepted {
    keptn_context: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}
