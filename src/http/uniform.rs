//! The uniform API (`/api/controlPlane/v1/uniform/registration…`) and integration logs (`…/log`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

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

async fn list(state: web::Data<AppState>, query: web::Query<IntegrationQuery>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.integrations.list(&query).await?))
}

async fn register(state: web::Data<AppState>, body: web::Json<Integration>) -> Result<HttpResponse, ApiError> {
    let (id, created) = state.integrations.register(body.into_inner()).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(HttpResponse::build(status).json(json!({ "id": id })))
}

async fn unregister(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.integrations.unregister(&id).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

async fn ping(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.integrations.ping(&id).await?))
}

async fn subscriptions(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.integrations.subscriptions(&id).await?))
}

async fn add_subscription(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<EventSubscription>,
) -> Result<HttpResponse, ApiError> {
    let subscription_id = state.integrations.add_subscription(&id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(json!({ "id": subscription_id })))
}

async fn subscription(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (id, subscription_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(state.integrations.subscription(&id, &subscription_id).await?))
}

async fn put_subscription(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<EventSubscription>,
) -> Result<HttpResponse, ApiError> {
    let (id, subscription_id) = path.into_inner();
    state.integrations.put_subscription(&id, &subscription_id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(json!({ "id": subscription_id })))
}

async fn delete_subscription(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, subscription_id) = path.into_inner();
    state.integrations.delete_subscription(&id, &subscription_id).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(Deserialize)]
struct LogBody {
    #[serde(default)]
    logs: Vec<LogEntry>,
}

async fn add_logs(state: web::Data<AppState>, body: web::Json<LogBody>) -> Result<HttpResponse, ApiError> {
    state.integrations.add_logs(body.into_inner().logs).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    integration_id: Option<String>,
    from_time: Option<String>,
    before_time: Option<String>,
    page_size: Option<String>,
    next_page_key: Option<String>,
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
async fn logs(state: web::Data<AppState>, query: web::Query<LogQuery>) -> Result<HttpResponse, ApiError> {
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
    let mut body = json!({ "logs": page, "totalCount": total });
    if end < total {
        body["nextPageKey"] = json!(end);
    }
    Ok(HttpResponse::Ok().json(body))
}
