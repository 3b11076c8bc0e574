//! `x-token` authentication for `/api/*` and the rate limit on failed attempts.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use dashmap::DashMap;

use super::error::ApiError;
use super::AppState;

/// The header Keptn clients send the token in.
pub const TOKEN_HEADER: &str = "x-token";
/// The path that checks the token itself (and is rate limited instead of rejected by the middleware).
pub const AUTH_PATH: &str = "/api/v1/auth";

/// The configured API token.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the strings differ.
    fn matches(&self, candidate: &str) -> bool {
        let expected = self.0.as_bytes();
        let candidate = candidate.as_bytes();
        let mut difference = expected.len() ^ candidate.len();
        for (index, byte) in expected.iter().enumerate() {
            difference |= usize::from(byte ^ candidate.get(index).copied().unwrap_or(0));
        }
        difference == 0
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

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

/// Token buckets per client address for failed authentication attempts: one attempt per second with
/// bursts of two, as Keptn's api-service allows.
pub struct AuthLimiter {
    /// (tokens left, time of the last refill) per client; bounded by [`MAX_TRACKED_CLIENTS`].
    buckets: DashMap<IpAddr, (f64, Instant)>,
}

const REFILL_PER_SECOND: f64 = 1.0;
const BURST: f64 = 2.0;
/// Clients remembered at most; past this, buckets idle for [`IDLE_AFTER`] are dropped.
const MAX_TRACKED_CLIENTS: usize = 10_000;
const IDLE_AFTER: Duration = Duration::from_secs(180);

impl Default for AuthLimiter {
    fn default() -> Self {
        Self { buckets: DashMap::new() }
    }
}

impl AuthLimiter {
    /// Takes one attempt from `client`'s bucket; false when it is empty.
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        if self.buckets.len() >= MAX_TRACKED_CLIENTS {
            self.buckets.retain(|_, (_, last)| now.duration_since(*last) < IDLE_AFTER);
            if self.buckets.len() >= MAX_TRACKED_CLIENTS {
                // Too many distinct clients failing at once: forget them all rather than grow.
                self.buckets.clear();
            }
        }
        let mut bucket = self.buckets.entry(client).or_insert((BURST, now));
        let (tokens, last) = bucket.value_mut();
        let refill = now.duration_since(*last).as_secs_f64() * REFILL_PER_SECOND;
        *tokens = (*tokens + refill).min(BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// A successful authentication forgets earlier failures.
    pub fn reset(&self, client: IpAddr) {
        self.buckets.remove(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        let token = ApiToken::new("secret".into());
        assert!(token.matches("secret"));
        assert!(!token.matches("secreT"));
        assert!(!token.matches("secret2"));
        assert!(!token.matches(""));
        assert!(!format!("{token:?}").contains("secret"));
    }

    #[test]
    fn limiter_allows_burst_then_refills() {
        let limiter = AuthLimiter::default();
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        let start = Instant::now();
        assert!(limiter.allow(client, start));
        assert!(limiter.allow(client, start));
        assert!(!limiter.allow(client, start));
        assert!(limiter.allow(client, start + Duration::from_secs(1)));
        limiter.reset(client);
        assert!(limiter.allow(client, start + Duration::from_secs(1)));
    }
}
