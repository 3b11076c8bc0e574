//! Whether a store answered its last write, so the API can refuse new work with 503 while it is down
//! instead of accepting work it cannot persist.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Shared between a background writer (which reports) and the API (which asks).
#[derive(Clone, Default)]
pub struct BackendHealth {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    failing: AtomicBool,
    last_error: Mutex<String>,
}

impl BackendHealth {
    pub fn report_failure(&self, error: &super::Error) {
        *self.inner.last_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = error.to_string();
        self.inner.failing.store(true, Ordering::Release);
    }

    pub fn report_success(&self) {
        self.inner.failing.store(false, Ordering::Release);
    }

    /// The last failure, while the backend keeps failing.
    pub fn problem(&self) -> Option<String> {
        if !self.inner.failing.load(Ordering::Acquire) {
            return None;
        }
        Some(self.inner.last_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}
