//! Wall-clock time and timers as an injectable input.
//!
//! Every reading of the time and every timer in Keelson goes through a [`Clock`]: the server runs on
//! [`SystemClock`], tests hand it a [`ManualClock`] and step it, so timeouts are tested without
//! waiting for them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A future that resolves when a clock reaches a time.
pub type Wake = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of wall-clock time and timers.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// Resolves once the clock reads `at` or later — or earlier, for a far-away `at`: callers check
    /// the time again when it resolves.
    fn wait_until(&self, at: DateTime<Utc>) -> Wake;
}

/// The longest [`SystemClock`] sleeps at once; a later deadline is checked again after this long.
const LONGEST_SLEEP: Duration = Duration::from_secs(24 * 3600);

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn wait_until(&self, at: DateTime<Utc>) -> Wake {
        let delay = (at - Utc::now()).to_std().unwrap_or_default().min(LONGEST_SLEEP);
        Box::pin(tokio::time::sleep(delay))
    }
}

/// A clock that only moves when told to; its timers fire when it is moved past them.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self { now: watch::Sender::new(start) })
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.now.send_modify(|now| *now += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn wait_until(&self, at: DateTime<Utc>) -> Wake {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; a dropped clock never wakes anyone.
            if now.wait_for(|now| *now >= at).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clocks_timers_fire_when_it_passes_them() {
        let start = Utc::now();
        let clock = ManualClock::new(start);
        let mut early = clock.wait_until(start + chrono::Duration::minutes(1));
        let mut late = clock.wait_until(start + chrono::Duration::hours(1));
        let pending = |wake: &mut Wake| {
            let waker = futures_util::task::noop_waker();
            wake.as_mut().poll(&mut std::task::Context::from_waker(&waker)).is_pending()
        };
        assert!(pending(&mut early) && pending(&mut late));
        clock.advance(chrono::Duration::minutes(2));
        tokio::time::timeout(Duration::from_secs(1), early).await.expect("passed");
        assert!(pending(&mut late));
        clock.advance(chrono::Duration::hours(1));
        tokio::time::timeout(Duration::from_secs(1), late).await.expect("passed");
        assert_eq!(clock.now(), start + chrono::Duration::minutes(62));
        // A time already passed resolves at once.
        tokio::time::timeout(Duration::from_secs(1), clock.wait_until(start)).await.expect("in the past");
    }
}
