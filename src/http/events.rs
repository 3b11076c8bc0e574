//! `POST /api/v1/event`: events from clients and remote execution planes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::model::incoming::{self, Refusal, MAX_EVENT_BYTES};

pub async fn post_event(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
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
    let keptn_context = event.shkeptncontext.clone();
    runtime
        .bus
        .publish(&event)
        .await
        .map_err(|error| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({ "keptnContext": keptn_context })))
}
