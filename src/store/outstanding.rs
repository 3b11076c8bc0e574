//! How much work a background writer holds that is not durable yet, so a shutdown can wait for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often [`Outstanding::drained`] looks again.
const POLL: Duration = Duration::from_millis(10);

#[derive(Clone, Default)]
pub struct Outstanding(Arc<AtomicUsize>);

impl Outstanding {
    pub fn add(&self, count: usize) {
        self.0.fetch_add(count, Ordering::AcqRel);
    }

    pub fn done(&self, count: usize) {
        self.0.fetch_sub(count, Ordering::AcqRel);
    }

    /// Writes handed over and not yet durable.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Waits until nothing is outstanding; false if `deadline` passed first.
    pub async fn drained(&self, deadline: tokio::time::Instant) -> bool {
        while self.count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
        true
    }
}
