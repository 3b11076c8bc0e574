//! The API's error body, `{code, message}`, and the handlers that turn framework errors into it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use crate::projects::ProjectError;

/// An error answered as `{"code": <status>, "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ErrorBody<'a> {
    /// The HTTP status.
    code: u16,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody { code: self.status.as_u16(), message: &self.message })
    }
}

impl From<ProjectError> for ApiError {
    fn from(error: ProjectError) -> Self {
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, error.to_string())
    }
}

/// Maps JSON body errors: too large → 413, wrong content type → 415, anything else → 400.
pub fn json_error(error: actix_web::error::JsonPayloadError, _request: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api_error = match &error {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
        }
        E::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
        }
        E::Payload(payload) if super::body_timeout::is_timeout(payload) => body_timed_out(),
        E::ContentType => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "request body must be application/json"),
        other => ApiError::bad_request(format!("Invalid request format: {other}")),
    };
    api_error.into()
}

/// Maps query string errors to 400.
pub fn query_error(error: actix_web::error::QueryPayloadError, _request: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("Invalid request format: {error}")).into()
}

/// Maps raw body errors: over the limit 413, too slow 408, anything else 400.
pub fn payload_error(error: actix_web::error::PayloadError) -> ApiError {
    match error {
        actix_web::error::PayloadError::Overflow => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
        }
        timeout if super::body_timeout::is_timeout(&timeout) => body_timed_out(),
        other => ApiError::bad_request(format!("Invalid request format: {other}")),
    }
}

fn body_timed_out() -> ApiError {
    ApiError::new(StatusCode::REQUEST_TIMEOUT, super::body_timeout::BODY_TIMED_OUT)
}

/// Reads a raw request body of at most `limit` bytes, with the errors above.
pub async fn read_body(mut payload: actix_web::web::Payload, limit: usize) -> Result<actix_web::web::Bytes, ApiError> {
    use futures_util::StreamExt as _;
    let mut body = actix_web::web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(payload_error)?;
        if body.len() + chunk.len() > limit {
            return Err(payload_error(actix_web::error::PayloadError::Overflow));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Answer for a path no route serves.
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    ApiError::not_found(format!("path {} was not found", request.path())).error_response()
}
