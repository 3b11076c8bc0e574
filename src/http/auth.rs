//! `x-token` authentication for `/api/*` and the rate limit on failed attempts.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::state::AppState;
pub use super::token::{ApiToken, AuthLimiter};

/// The header Keptn clients send the token in.
pub const TOKEN_HEADER: &str = "x-token";
/// The path that checks the token itself (and is rate limited instead of rejected by the middleware).
pub const AUTH_PATH: &str = "/api/v1/auth";

enum TokenCheck {
    Valid,
    Missing,
    Wrong,
}

fn check(token: &ApiToken, request: &HttpRequest) -> TokenCheck {
    match request.headers().get(TOKEN_HEADER).and_then(|value| value.to_str().ok()) {
        None => TokenCheck::Missing,
        Some(candidate) if token.matches(candidate) => TokenCheck::Valid,
        Some(_) => TokenCheck::Wrong,
    }
}

fn unauthorized(check: TokenCheck) -> ApiError {
    let message = match check {
        TokenCheck::Missing => "missing x-token header: unauthenticated",
        _ => "incorrect api key auth",
    };
    ApiError::new(StatusCode::UNAUTHORIZED, message)
}

/// Middleware for the `/api` scope: every route except [`AUTH_PATH`] needs a valid token.
pub async fn require_token(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if request.path() != AUTH_PATH {
        let state = request.app_data::<web::Data<AppState>>().expect("app state is registered");
        match check(&state.token, request.request()) {
            TokenCheck::Valid => {}
            failed => {
                // Wrong tokens count against the same budget as on the auth endpoint, so no route
                // allows unlimited guessing.
                let client = request.peer_addr().map(|addr| addr.ip());
                if matches!(failed, TokenCheck::Wrong)
                    && client.is_some_and(|client| !state.auth_limiter.allow(client, Instant::now()))
                {
                    return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many requests").into());
                }
                return Err(unauthorized(failed).into());
            }
        }
    }
    next.call(request).await
}

/// `POST|GET /api/v1/auth`: 200 with an empty body for a valid token.
#[utoipa::path(post, path = "/api/v1/auth", tag = "api", operation_id = "auth",
    summary = "Checks the API token",
    responses(
        (status = 200, description = "The token is valid (empty body)"),
        (status = 401, description = "The token is missing or wrong", body = super::error::ErrorBody),
        (status = 429, description = "Too many failed attempts from this address", content_type = "text/plain", body = String),
    ))]
pub async fn auth(request: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = request.peer_addr().map(|addr| addr.ip());
    match check(&state.token, &request) {
        TokenCheck::Valid => {
            if let Some(client) = client {
                state.auth_limiter.reset(client);
            }
            Ok(HttpResponse::Ok().finish())
        }
        failed => {
            if let Some(client) = client {
                if !state.auth_limiter.allow(client, Instant::now()) {
                    return Ok(HttpResponse::TooManyRequests().content_type("text/plain").body("Too Many Requests"));
                }
            }
            Err(unauthorized(failed))
        }
    }
}

/// `GET /api/v1/auth`: the same check, for clients that send no body.
#[utoipa::path(get, path = "/api/v1/auth", tag = "api", operation_id = "authGet",
    summary = "Checks the API token",
    responses(
        (status = 200, description = "The token is valid (empty body)"),
        (status = 401, description = "The token is missing or wrong", body = super::error::ErrorBody),
        (status = 429, description = "Too many failed attempts from this address", content_type = "text/plain", body = String),
    ))]
pub async fn auth_get(request: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth(request, state).await
}
