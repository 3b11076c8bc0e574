//! Durable state behind two traits, each with a production backend and an embedded default:
//!
//! | trait | production | embedded |
//! |---|---|---|
//! | [`SnapshotStore`]: actor snapshots and records (projects, credentials, …) | Redis ([`redis::RedisSnapshotStore`]) | SQLite ([`sqlite::SqliteStore`]) |
//! | [`EventStore`]: the event history behind the datastore API | MongoDB ([`mongo::MongoEventStore`]) | the same SQLite file |

pub mod background;
pub mod health;
pub mod history;
pub mod mongo;
pub mod outstanding;
pub mod query;
pub mod redis;
pub mod snapshots;
pub mod sqlite;
pub mod versioned;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use crate::model::event::CloudEvent;

pub use query::{Condition, EventQuery};

/// A storage failure.
#[derive(Debug, Error)]
pub enum Error {
    /// The backend could not be reached or refused the operation; the caller may retry later.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Stored data could not be decoded.
    #[error("stored data under '{key}' is corrupt: {message}")]
    Corrupt { key: String, message: String },
}

impl Error {
    /// The backend failed with `error` (a driver's error, kept as the cause, or a description).
    pub fn unavailable(backend: &'static str, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Unavailable { backend, source: error.into() }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One write of a batch: the key and its new value (`None` deletes it).
pub type KeyWrite = (String, Option<Vec<u8>>);

/// A key-value store for snapshots and records. Keys are `/`-separated paths such as `project/sockshop`.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    /// Deletes `key`; deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Every entry whose key starts with `prefix`, sorted by key.
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Applies every write (`None` deletes) all-or-nothing, in one round trip where the backend allows.
    async fn write_batch(&self, writes: Vec<(String, Option<Vec<u8>>)>) -> Result<()>;
    /// Applies `open` like [`write_batch`](Self::write_batch), and each group of `fenced` only while its
    /// shard's epoch in the store is the group's; returns the (shard, epoch) of the refused groups.
    /// A store used by one instance only has no epochs and applies everything.
    async fn write_fenced(&self, open: Vec<KeyWrite>, fenced: Vec<FencedGroup>) -> Result<Vec<(u32, u64)>> {
        let mut writes = open;
        writes.extend(fenced.into_iter().flat_map(|group| group.writes));
        self.write_batch(writes).await.map(|()| Vec::new())
    }
    /// Stores `value` only if `key` is not there, atomically (also across instances sharing the store);
    /// returns whether it was stored.
    async fn put_if_absent(&self, key: &str, value: Vec<u8>) -> Result<bool>;
    /// Replaces the value of `key` only if it is there, atomically; returns whether it was replaced.
    async fn put_if_present(&self, key: &str, value: Vec<u8>) -> Result<bool>;
}

/// Writes of one shard, to be applied only while the shard's epoch is `epoch`.
#[derive(Debug, Clone)]
pub struct FencedGroup {
    pub shard: u32,
    pub epoch: u64,
    pub writes: Vec<KeyWrite>,
}

/// The event history.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores `event` unless an event with the same `id` is stored already; returns whether it was new.
    async fn insert(&self, event: &CloudEvent) -> Result<bool>;
    /// Stores every event of `events` not stored yet.
    async fn insert_many(&self, events: &[std::sync::Arc<CloudEvent>]) -> Result<()> {
        for event in events {
            self.insert(event).await?;
        }
        Ok(())
    }
    /// Like [`EventStore::insert_many`], for events nobody is waiting for: a backend may give the work
    /// a lower priority than the work sequences wait on.
    async fn insert_many_in_background(&self, events: &[std::sync::Arc<CloudEvent>]) -> Result<()> {
        self.insert_many(events).await
    }
    /// Events matching `query`, newest first, `query.offset` skipped, at most `query.limit`.
    async fn find(&self, query: &EventQuery) -> Result<Vec<CloudEvent>>;
    /// How many events match `query` (offset and limit aside).
    async fn count(&self, query: &EventQuery) -> Result<u64>;
}

/// The stores a running Keelson uses.
#[derive(Clone)]
pub struct Storage {
    pub snapshots: Arc<dyn SnapshotStore>,
    pub events: Arc<dyn EventStore>,
}

/// Name of the collection (MongoDB) or project column value (SQLite) for events without a project.
pub const UNMAPPED_EVENTS: &str = "keptnUnmappedEvents";
