//! The secrets API (`/api/secrets/v1/secret`, `/api/secrets/v1/scope`), Keptn's secret-service.
//!
//! Values go in and never come out: create and update answer with the secret's name, scope and keys.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::error::ApiError;
use super::state::AppState;
use crate::secrets::{NewSecret, SecretError, SecretSummary};

pub fn routes(config: &mut web::ServiceConfig) {
    config
        // A parse error would quote the offending value, which may be a secret.
        .app_data(web::JsonConfig::default().content_type_required(false).error_handler(|error, request| {
            use actix_web::error::JsonPayloadError as E;
            match error {
                E::Deserialize(_) => ApiError::bad_request(
                    "Invalid request format: expected {\"name\": string, \"scope\": string, \"data\": {string: string}}",
                )
                .into(),
                other => super::error::json_error(other, request),
            }
        }))
        .route("/secret", web::get().to(list))
        .route("/secret", web::post().to(create))
        .route("/secret", web::put().to(update))
        .route("/secret", web::delete().to(delete))
        .route("/scope", web::get().to(scopes));
}

fn api_error(action: &str, error: SecretError) -> ApiError {
    let status = match error {
        SecretError::BadRequest(_) => StatusCode::BAD_REQUEST,
        SecretError::Exists => StatusCode::CONFLICT,
        SecretError::NotFound => StatusCode::NOT_FOUND,
        SecretError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, format!("Unable to {action} secret: {error}"))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Selection {
    name: Option<String>,
    scope: Option<String>,
}

#[utoipa::path(get, path = "/api/secrets/v1/secret", tag = "secret", operation_id = "getSecrets",
    summary = "Lists secrets: names, scopes and keys, never values", params(Selection),
    responses((status = 200, description = "The secrets", body = SecretList)))]
pub(super) async fn list(state: web::Data<AppState>, query: web::Query<Selection>) -> Result<HttpResponse, ApiError> {
    let name = query.name.as_deref().filter(|name| !name.is_empty());
    let scope = query.scope.as_deref().filter(|scope| !scope.is_empty());
    let secrets = state.secrets.list(name, scope).await.map_err(|error| api_error("get", error))?;
    // Keptn's key is capitalised; the Bridge reads `Secrets`.
    Ok(HttpResponse::Ok().json(SecretList { secrets }))
}

#[utoipa::path(post, path = "/api/secrets/v1/secret", tag = "secret", operation_id = "createSecret",
    summary = "Creates a secret", request_body = NewSecret,
    responses(
        (status = 201, description = "Created; the answer names the keys, not the values", body = SecretSummary),
        (status = 400, description = "Invalid name, scope or key", body = super::error::ErrorBody),
        (status = 409, description = "The secret exists", body = super::error::ErrorBody),
    ))]
pub(super) async fn create(state: web::Data<AppState>, body: web::Json<NewSecret>) -> Result<HttpResponse, ApiError> {
    let created = state.secrets.create(body.into_inner()).await.map_err(|error| api_error("create", error))?;
    Ok(HttpResponse::Created().json(created))
}

#[utoipa::path(put, path = "/api/secrets/v1/secret", tag = "secret", operation_id = "updateSecret",
    summary = "Replaces a secret's data", request_body = NewSecret,
    responses(
        (status = 200, description = "Replaced", body = SecretSummary),
        (status = 400, description = "Invalid name, scope or key", body = super::error::ErrorBody),
        (status = 404, description = "No such secret", body = super::error::ErrorBody),
    ))]
pub(super) async fn update(state: web::Data<AppState>, body: web::Json<NewSecret>) -> Result<HttpResponse, ApiError> {
    let updated = state.secrets.update(body.into_inner()).await.map_err(|error| api_error("update", error))?;
    Ok(HttpResponse::Ok().json(updated))
}

#[utoipa::path(delete, path = "/api/secrets/v1/secret", tag = "secret", operation_id = "deleteSecret",
    summary = "Deletes a secret", params(Selection),
    responses(
        (status = 200, description = "Deleted (empty body)"),
        (status = 400, description = "No name or scope", body = super::error::ErrorBody),
        (status = 404, description = "No such secret", body = super::error::ErrorBody),
    ))]
pub(super) async fn delete(state: web::Data<AppState>, query: web::Query<Selection>) -> Result<HttpResponse, ApiError> {
    let name = query.name.as_deref().unwrap_or_default();
    let scope = query.scope.as_deref().unwrap_or_default();
    state.secrets.delete(name, scope).await.map_err(|error| api_error("delete", error))?;
    Ok(HttpResponse::Ok().finish())
}

#[utoipa::path(get, path = "/api/secrets/v1/scope", tag = "secret", operation_id = "getScopes",
    summary = "The secret scopes",
    responses((status = 200, description = "The scopes", body = ScopeList)))]
pub(super) async fn scopes(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ScopeList { scopes: state.secrets.scopes() })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct SecretList {
    /// Capitalised, as Keptn's secret-service writes it.
    #[serde(rename = "Secrets")]
    secrets: Vec<SecretSummary>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct ScopeList<'a> {
    scopes: &'a [String],
}
