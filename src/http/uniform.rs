//! The uniform API (`/api/controlPlane/v1/uniform/registration…`) and integration logs (`…/log`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::error::ApiError;
use super::params::rfc3339;
use super::state::AppState;
use crate::integrations::IntegrationError;
use crate::model::uniform::{EventSubscription, Integration, IntegrationQuery, LogEntry};

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/uniform/registration", web::get().to(list))
        .route("/uniform/registration", web::post().to(register))
        .route("/uniform/registration/{id}", web::delete().to(unregister))
        .route("/uniform/registration/{id}/ping", web::put().to(ping))
        .route("/uniform/registration/{id}/subscription", web::get().to(subscriptions))
        .route("/uniform/registration/{id}/subscription", web::post().to(add_subscription))
        .route("/uniform/registration/{id}/subscription/{subscription}", web::get().to(subscription))
        .route("/uniform/registration/{id}/subscription/{subscription}", web::put().to(put_subscription))
        .route("/uniform/registration/{id}/subscription/{subscription}", web::delete().to(delete_subscription))
        .route("/log", web::post().to(add_logs))
        .route("/log", web::get().to(logs));
}

impl From<IntegrationError> for ApiError {
    fn from(error: IntegrationError) -> Self {
        let status = match error {
            IntegrationError::BadRequest(_) => StatusCode::BAD_REQUEST,
            IntegrationError::NotFound(_) => StatusCode::NOT_FOUND,
            IntegrationError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, error.to_string())
    }
}

#[utoipa::path(get, path = "/api/controlPlane/v1/uniform/registration", tag = "uniform", operation_id = "getRegistrations",
    summary = "Registered integrations", params(IntegrationQuery),
    responses((status = 200, description = "The integrations", body = Vec<Integration>)))]
pub(super) async fn list(
    state: web::Data<AppState>,
    query: web::Query<IntegrationQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.integrations.list(&query).await?))
}

#[utoipa::path(post, path = "/api/controlPlane/v1/uniform/registration", tag = "uniform", operation_id = "register",
    summary = "Registers an integration (again); its id derives from name, namespace and host",
    request_body = Integration,
    responses(
        (status = 200, description = "Registered before; updated", body = IdBody),
        (status = 201, description = "Registered", body = IdBody),
        (status = 400, description = "Invalid registration", body = super::error::ErrorBody),
    ))]
pub(super) async fn register(
    state: web::Data<AppState>,
    body: web::Json<Integration>,
) -> Result<HttpResponse, ApiError> {
    let (id, created) = state.integrations.register(body.into_inner()).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(HttpResponse::build(status).json(IdBody { id }))
}

#[utoipa::path(delete, path = "/api/controlPlane/v1/uniform/registration/{integrationID}", tag = "uniform", operation_id = "unregister",
    summary = "Removes an integration", params(("integrationID" = String, Path, description = "The integration's id")),
    responses(
        (status = 200, description = "Removed (empty object)", body = super::schemas::Empty),
        (status = 404, description = "No such integration", body = super::error::ErrorBody),
    ))]
pub(super) async fn unregister(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.integrations.unregister(&id).await?;
    Ok(HttpResponse::Ok().json(super::schemas::Empty {}))
}

#[utoipa::path(put, path = "/api/controlPlane/v1/uniform/registration/{integrationID}/ping", tag = "uniform", operation_id = "ping",
    summary = "Keeps an integration registered", params(("integrationID" = String, Path, description = "The integration's id")),
    responses(
        (status = 200, description = "The integration", body = Integration),
        (status = 404, description = "No such integration", body = super::error::ErrorBody),
    ))]
pub(super) async fn ping(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.integrations.ping(&id).await?))
}

#[utoipa::path(get, path = "/api/controlPlane/v1/uniform/registration/{integrationID}/subscription", tag = "uniform", operation_id = "getSubscriptions",
    summary = "An integration's subscriptions", params(("integrationID" = String, Path, description = "The integration's id")),
    responses(
        (status = 200, description = "The subscriptions", body = Vec<EventSubscription>),
        (status = 404, description = "No such integration", body = super::error::ErrorBody),
    ))]
pub(super) async fn subscriptions(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.integrations.subscriptions(&id).await?))
}

#[utoipa::path(post, path = "/api/controlPlane/v1/uniform/registration/{integrationID}/subscription", tag = "uniform", operation_id = "createSubscription",
    summary = "Adds a subscription", params(("integrationID" = String, Path, description = "The integration's id")), request_body = EventSubscription,
    responses(
        (status = 201, description = "Added", body = IdBody),
        (status = 400, description = "Invalid subscription", body = super::error::ErrorBody),
        (status = 404, description = "No such integration", body = super::error::ErrorBody),
    ))]
pub(super) async fn add_subscription(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<EventSubscription>,
) -> Result<HttpResponse, ApiError> {
    let subscription_id = state.integrations.add_subscription(&id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(IdBody { id: subscription_id }))
}

#[utoipa::path(get, path = "/api/controlPlane/v1/uniform/registration/{integrationID}/subscription/{subscriptionID}", tag = "uniform", operation_id = "getSubscription",
    summary = "One subscription", params(("integrationID" = String, Path, description = "The integration's id"), ("subscriptionID" = String, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The subscription", body = EventSubscription),
        (status = 404, description = "No such integration or subscription", body = super::error::ErrorBody),
    ))]
pub(super) async fn subscription(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, subscription_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(state.integrations.subscription(&id, &subscription_id).await?))
}

#[utoipa::path(put, path = "/api/controlPlane/v1/uniform/registration/{integrationID}/subscription/{subscriptionID}", tag = "uniform", operation_id = "updateSubscription",
    summary = "Replaces a subscription", params(("integrationID" = String, Path, description = "The integration's id"), ("subscriptionID" = String, Path, description = "The subscription's id")), request_body = EventSubscription,
    responses(
        (status = 201, description = "Replaced", body = IdBody),
        (status = 400, description = "Invalid subscription", body = super::error::ErrorBody),
        (status = 404, description = "No such integration or subscription", body = super::error::ErrorBody),
    ))]
pub(super) async fn put_subscription(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<EventSubscription>,
) -> Result<HttpResponse, ApiError> {
    let (id, subscription_id) = path.into_inner();
    state.integrations.put_subscription(&id, &subscription_id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(IdBody { id: subscription_id }))
}

#[utoipa::path(delete, path = "/api/controlPlane/v1/uniform/registration/{integrationID}/subscription/{subscriptionID}", tag = "uniform", operation_id = "deleteSubscription",
    summary = "Removes a subscription", params(("integrationID" = String, Path, description = "The integration's id"), ("subscriptionID" = String, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "Removed (empty object)", body = super::schemas::Empty),
        (status = 404, description = "No such integration or subscription", body = super::error::ErrorBody),
    ))]
pub(super) async fn delete_subscription(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, subscription_id) = path.into_inner();
    state.integrations.delete_subscription(&id, &subscription_id).await?;
    Ok(HttpResponse::Ok().json(super::schemas::Empty {}))
}

/// The id of what was created or registered.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct IdBody {
    id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct LogBody {
    #[serde(default)]
    logs: Vec<LogEntry>,
}

#[utoipa::path(post, path = "/api/controlPlane/v1/log", tag = "uniform", operation_id = "createLogEntries",
    summary = "Stores error logs of integrations", request_body = LogBody,
    responses(
        (status = 200, description = "Stored (empty object)", body = super::schemas::Empty),
        (status = 400, description = "Invalid entries", body = super::error::ErrorBody),
    ))]
pub(super) async fn add_logs(state: web::Data<AppState>, body: web::Json<LogBody>) -> Result<HttpResponse, ApiError> {
    state.integrations.add_logs(body.into_inner().logs).await?;
    Ok(HttpResponse::Ok().json(super::schemas::Empty {}))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct LogQuery {
    /// Only this integration's entries.
    integration_id: Option<String>,
    /// RFC 3339; entries after this time.
    from_time: Option<String>,
    /// RFC 3339; entries before this time.
    before_time: Option<String>,
    /// How many (at most 1000, the default).
    #[param(value_type = Option<u32>)]
    page_size: Option<String>,
    /// Offset from the previous page.
    #[param(value_type = Option<u32>)]
    next_page_key: Option<String>,
}

/// A page of log entries, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct LogPage {
    logs: Vec<LogEntry>,
    total_count: usize,
    /// Offset of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_key: Option<usize>,
}

fn parse_count(name: &str, value: Option<&str>) -> Result<usize, ApiError> {
    match value.filter(|value| !value.is_empty()) {
        None => Ok(0),
        Some(value) => value.parse().map_err(|_| ApiError::bad_request(format!("invalid {name} '{value}'"))),
    }
}

/// Most log entries in one answer; `pageSize` 0 or absent means this many (with a `nextPageKey`).
const MAX_LOG_PAGE: usize = 1_000;

/// `GET /log`: newest first, paged with integer keys.
#[utoipa::path(get, path = "/api/controlPlane/v1/log", tag = "uniform", operation_id = "getLogEntries",
    summary = "Error logs of integrations, newest first", params(LogQuery),
    responses(
        (status = 200, description = "A page of entries", body = LogPage),
        (status = 400, description = "Invalid time or page parameter", body = super::error::ErrorBody),
    ))]
pub(super) async fn logs(state: web::Data<AppState>, query: web::Query<LogQuery>) -> Result<HttpResponse, ApiError> {
    let from = rfc3339("fromTime", query.from_time.as_deref())?;
    let before = rfc3339("beforeTime", query.before_time.as_deref())?;
    let page_size = parse_count("pageSize", query.page_size.as_deref())?;
    let offset = parse_count("nextPageKey", query.next_page_key.as_deref())?;
    let integration = query.integration_id.as_deref().filter(|id| !id.is_empty());
    let all = state.integrations.logs(integration, from, before).await?;
    let total = all.len();
    let page_size = if page_size == 0 { MAX_LOG_PAGE } else { page_size.min(MAX_LOG_PAGE) };
    let end = offset.saturating_add(page_size).min(total);
    let page: Vec<LogEntry> = all.into_iter().skip(offset).take(end.saturating_sub(offset)).collect();
    Ok(HttpResponse::Ok().json(LogPage { logs: page, total_count: total, next_page_key: (end < total).then_some(end) }))
}
