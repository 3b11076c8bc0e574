//! The API token and the limit on failed attempts to present it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

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
    pub fn matches(&self, candidate: &str) -> bool {
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
