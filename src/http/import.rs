//! `/api/v1/import/…`: Keelson's additions for moving an existing Keptn installation over (used by
//! `keelson import`): take a project over from its upstream, and store events of its history.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::state::AppState;
use crate::model::event::CloudEvent;
use crate::projects::ImportProject;

/// Most events in one import request.
pub const MAX_IMPORTED_EVENTS: usize = 1_000;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/v1/import/project", web::post().to(import_project))
        .route("/v1/import/events", web::post().to(import_events));
}

#[utoipa::path(post, path = "/api/v1/import/project", tag = "import", operation_id = "importProject",
    summary = "Takes over a project that its git upstream already holds (Keelson's addition)",
    description = "The upstream must hold a Keptn project: `shipyard.yaml` on `master` and one branch per stage. \
        The project gets the given services; no lifecycle events are sent.",
    request_body = ImportProject,
    responses(
        (status = 201, description = "Imported (empty body)"),
        (status = 400, description = "Invalid name, services or credentials", body = super::error::ErrorBody),
        (status = 409, description = "The project exists", body = super::error::ErrorBody),
        (status = 422, description = "The upstream is refused or holds no Keptn project", body = super::error::ErrorBody),
        (status = 424, description = "The upstream failed", body = super::error::ErrorBody),
    ))]
pub(super) async fn import_project(
    state: web::Data<AppState>,
    body: web::Json<ImportProject>,
) -> Result<HttpResponse, ApiError> {
    state.projects.import(body.into_inner()).await?;
    Ok(HttpResponse::Created().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct ImportedEvents {
    /// Up to 1000 events, oldest first (the first event of each context becomes its root event).
    events: Vec<CloudEvent>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ImportAnswer {
    /// How many events the request held; those stored before (same `id`) are left as they are.
    received: usize,
}

#[utoipa::path(post, path = "/api/v1/import/events", tag = "import", operation_id = "importEvents",
    summary = "Stores events of a project's history as they are (Keelson's addition)",
    description = "The events go into the event history only: nothing reacts to them. An event whose `id` is \
        stored already is skipped, so an import can be repeated.",
    request_body = ImportedEvents,
    responses(
        (status = 200, description = "Stored", body = ImportAnswer),
        (status = 400, description = "Too many events, or an event without id or type", body = super::error::ErrorBody),
    ))]
pub(super) async fn import_events(
    state: web::Data<AppState>,
    body: web::Json<ImportedEvents>,
) -> Result<HttpResponse, ApiError> {
    let events = body.into_inner().events;
    if events.len() > MAX_IMPORTED_EVENTS {
        return Err(ApiError::bad_request(format!("at most {MAX_IMPORTED_EVENTS} events per request")));
    }
    if let Some(position) = events.iter().position(|event| event.id.is_empty() || event.event_type.is_empty()) {
        return Err(ApiError::bad_request(format!("event {position} has no id or no type")));
    }
    let received = events.len();
    let events: Vec<std::sync::Arc<CloudEvent>> = events.into_iter().map(std::sync::Arc::new).collect();
    state.events.insert_many(&events).await.map_err(|error| match error {
        crate::store::Error::Unavailable { .. } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        crate::store::Error::Corrupt { .. } => ApiError::bad_request(error.to_string()),
    })?;
    Ok(HttpResponse::Ok().json(ImportAnswer { received }))
}
