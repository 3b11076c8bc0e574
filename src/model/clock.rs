//! Wall-clock time as an injectable input.
//!
//! Paused tokio time does not freeze `SystemTime`, so every wall-clock reading in Keelson goes through
//! [`Clock`]; tests pass a [`ManualClock`] and step it.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    /// Guarded by a std mutex: nothing is awaited while it is held.
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { now: Mutex::new(start) }
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().expect("clock mutex poisoned");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock mutex poisoned")
    }
}

/// Keptn's own timestamp format, `2006-01-02T15:04:05.000Z`.
pub fn keptn_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Unix nanoseconds as a decimal string, the format of `creationDate` fields.
pub fn unix_nanos_string(at: DateTime<Utc>) -> String {
    at.timestamp_nanos_opt().unwrap_or(i64::MAX).to_string()
}
