//! Keptn's datastore API (`/api/mongodb-datastore`): the event history, newest first.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::state::AppState;
use crate::model::event::CloudEvent;
use crate::store::query::parse_filter;
use crate::store::EventQuery;

/// Page size (`pageSize`, `limit`) when the client sends none, and the largest accepted.
const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 100;

pub fn routes(config: &mut web::ServiceConfig) {
    config.route("/event", web::get().to(events)).route("/event/type/{event_type}", web::get().to(events_of_type));
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct EventsQuery {
    project: Option<String>,
    stage: Option<String>,
    service: Option<String>,
    keptn_context: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    source: Option<String>,
    #[serde(rename = "eventID")]
    event_id: Option<String>,
    triggeredid: Option<String>,
    from_time: Option<String>,
    before_time: Option<String>,
    /// Present (with any value) means "root events only", as Keptn reads it.
    root: Option<String>,
    /// 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
    next_page_key: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventsPage {
    events: Vec<CloudEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_key: Option<String>,
    page_size: usize,
    #[serde(skip_serializing_if = "crate::model::paging::is_zero")]
    total_count: u64,
}

/// A time bound in the stored form (RFC 3339 with nine fraction digits), so that comparing the stored
/// text orders by time whatever precision the client wrote.
fn time_bound(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    let time = super::params::rfc3339(name, value.as_deref())?;
    Ok(time.map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)))
}

/// An empty query value counts as absent, as go-openapi binds it.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

fn size_in_range(name: &str, raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw.filter(|raw| !raw.is_empty()) else { return Ok(DEFAULT_PAGE_SIZE) };
    let size: i64 = raw.parse().map_err(|_| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{name} in query must be of type int64: \"{raw}\""))
    })?;
    if size < 1 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{name} in query should be greater than or equal to 1"),
        ));
    }
    if size > MAX_PAGE_SIZE as i64 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{name} in query should be less than or equal to {MAX_PAGE_SIZE}"),
        ));
    }
    Ok(size as usize)
}

fn store_error(error: crate::store::Error) -> ApiError {
    match error {
        crate::store::Error::Unavailable { .. } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        crate::store::Error::Corrupt { .. } => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// `GET /event`: filtered, paged (family B: the key is omitted on the last page).
#[utoipa::path(get, path = "/api/mongodb-datastore/event", tag = "datastore", operation_id = "getEvents",
    summary = "Stored events, newest first", params(EventsQuery),
    responses(
        (status = 200, description = "A page of events; `nextPageKey` absent on the last page", body = EventsPage),
        (status = 400, description = "An invalid time or page key", body = super::error::ErrorBody),
        (status = 422, description = "pageSize out of range", body = super::error::ErrorBody),
    ))]
pub(super) async fn events(
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page_size = size_in_range("pageSize", query.page_size.as_deref())?;
    let offset = match query.next_page_key.as_deref().filter(|key| !key.is_empty()) {
        None => 0,
        Some(key) => key.parse::<usize>().map_err(|_| ApiError::bad_request(format!("invalid nextPageKey '{key}'")))?,
    };
    let mut filter = EventQuery {
        project: given(query.project),
        stage: given(query.stage),
        service: given(query.service),
        keptn_context: given(query.keptn_context),
        event_type: given(query.event_type),
        source: given(query.source),
        triggered_id: given(query.triggeredid),
        event_id: given(query.event_id),
        from_time: time_bound("fromTime", query.from_time)?,
        before_time: time_bound("beforeTime", query.before_time)?,
        root_only: query.root.is_some(),
        offset,
        limit: page_size,
        ..Default::default()
    };
    let store = &state.events;
    let events = store.find(&filter).await.map_err(store_error)?;
    filter.limit = usize::MAX;
    let total_count = store.count(&filter).await.map_err(store_error)?;
    let next = offset + events.len();
    let next_page_key = (!events.is_empty() && (next as u64) < total_count).then(|| next.to_string());
    Ok(HttpResponse::Ok().json(EventsPage { events, next_page_key, page_size, total_count }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct TypeQuery {
    /// Clauses `<path>:<value>` joined by ` AND `, a comma-separated value meaning any of them; must
    /// name `data.project` or `shkeptncontext`.
    filter: Option<String>,
    /// Leave out events whose `triggeredid` was invalidated.
    #[param(value_type = Option<bool>)]
    exclude_invalidated: Option<String>,
    from_time: Option<String>,
    /// 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct EventList {
    events: Vec<CloudEvent>,
}

/// `GET /event/type/{eventType}`: events of one type matching a `filter`, newest first, no paging.
#[utoipa::path(get, path = "/api/mongodb-datastore/event/type/{eventType}", tag = "datastore", operation_id = "getEventsByType",
    summary = "Stored events of one type matching a filter, newest first",
    params(("eventType" = String, Path, description = "The event type"), TypeQuery),
    responses(
        (status = 200, description = "The events", body = EventList),
        (status = 400, description = "A filter without project or context, or an invalid clause", body = super::error::ErrorBody),
        (status = 422, description = "limit out of range, or excludeInvalidated not a boolean", body = super::error::ErrorBody),
    ))]
pub(super) async fn events_of_type(
    state: web::Data<AppState>,
    event_type: web::Path<String>,
    query: web::Query<TypeQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = size_in_range("limit", query.limit.as_deref())?;
    let exclude_invalidated = match query.exclude_invalidated.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("excludeInvalidated in query must be of type boolean: \"{other}\""),
            ))
        }
    };
    let conditions = parse_filter(query.filter.as_deref().unwrap_or_default()).map_err(ApiError::bad_request)?;
    let filter = EventQuery {
        event_type: Some(event_type.into_inner()),
        from_time: time_bound("fromTime", query.from_time)?,
        exclude_invalidated,
        conditions,
        limit,
        ..Default::default()
    };
    if filter.confined_project().is_none() && filter.confined_context().is_none() {
        return Err(ApiError::bad_request("either 'shkeptncontext' or 'data.project' must be set"));
    }
    let events = state.events.find(&filter).await.map_err(store_error)?;
    Ok(HttpResponse::Ok().json(EventList { events }))
}
