//! The embedded backend: one SQLite file holding snapshots and the event history.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool; one connection behind a std mutex
//! serialises writers, which SQLite does anyway.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{Error, EventQuery, EventStore, Result, SnapshotStore, UNMAPPED_EVENTS};
use crate::model::event::CloudEvent;

const BACKEND: &str = "embedded store (sqlite)";

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA busy_timeout = 5000;
PRAGMA temp_store = MEMORY;
PRAGMA cache_size = -65536;
PRAGMA wal_autocheckpoint = 16384;
CREATE TABLE IF NOT EXISTS snapshots (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    type TEXT NOT NULL,
    shkeptncontext TEXT NOT NULL,
    triggeredid TEXT,
    stage TEXT,
    service TEXT,
    source TEXT NOT NULL,
    time TEXT NOT NULL,
    -- The event's JSON, LZ4-compressed: event payloads grow along a sequence and the history is
    -- write-heavy, so fewer bytes on disk means more events per second.
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_project_time ON events (project, time);
CREATE INDEX IF NOT EXISTS events_context ON events (shkeptncontext);
";

/// SQLite-backed [`SnapshotStore`] and [`EventStore`].
#[derive(Clone)]
pub struct SqliteStore {
    /// The single connection; held only inside `spawn_blocking`, never across an await.
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (or creates) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_owned();
        let connection = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let connection = Connection::open(&path).map_err(|e| Error::unavailable(BACKEND, e))?;
            connection.execute_batch(SCHEMA).map_err(|e| Error::unavailable(BACKEND, e))?;
            Ok(connection)
        })
        .await
        .map_err(|e| Error::unavailable(BACKEND, e))??;
        Ok(Self { connection: Arc::new(Mutex::new(connection)) })
    }

    /// Runs `work` with the connection on the blocking pool.
    async fn with_connection<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let connection = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&connection)
        })
        .await
        .map_err(|e| Error::unavailable(BACKEND, e))?
        .map_err(|e| Error::unavailable(BACKEND, e))
    }
}

#[async_trait]
impl SnapshotStore for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.with_connection(move |c| {
            c.query_row("SELECT value FROM snapshots WHERE key = ?1", [key], |row| row.get(0)).optional()
        })
        .await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let key = key.to_owned();
        self.with_connection(move |c| {
            c.execute(
                "INSERT INTO snapshots (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let key = key.to_owned();
        self.with_connection(move |c| c.execute("DELETE FROM snapshots WHERE key = ?1", [key]).map(drop)).await
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = prefix.to_owned();
        self.with_connection(move |c| {
            // Range scan instead of LIKE, so `%` and `_` in keys need no escaping.
            let mut upper = prefix.clone();
            upper.push(char::MAX);
            let mut statement =
                c.prepare_cached("SELECT key, value FROM snapshots WHERE key >= ?1 AND key < ?2 ORDER BY key")?;
            let rows = statement.query_map(params![prefix, upper], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
        .await
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn insert(&self, event: &CloudEvent) -> Result<bool> {
        let row = EventRow::from_event(event)?;
        self.with_connection(move |c| row.insert(c)).await
    }

    async fn insert_many(&self, events: &[std::sync::Arc<CloudEvent>]) -> Result<()> {
        let rows = events.iter().map(|event| EventRow::from_event(event)).collect::<Result<Vec<_>>>()?;
        self.with_connection(move |c| {
            let transaction = c.unchecked_transaction()?;
            for row in rows {
                row.insert(&transaction)?;
            }
            transaction.commit()
        })
        .await
    }

    async fn find(&self, query: &EventQuery) -> Result<Vec<CloudEvent>> {
        let query = query.clone();
        let bodies: Vec<Vec<u8>> = self
            .with_connection(move |c| {
                let mut statement = c.prepare_cached(
                    "SELECT body FROM events
                     WHERE (?1 IS NULL OR project = ?1)
                       AND (?2 IS NULL OR type = ?2)
                       AND (?3 IS NULL OR shkeptncontext = ?3)
                     ORDER BY time DESC, rowid DESC
                     LIMIT ?4",
                )?;
                let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
                let rows = statement
                    .query_map(params![query.project, query.event_type, query.keptn_context, limit], |row| {
                        row.get(0)
                    })?;
                rows.collect()
            })
            .await?;
        bodies
            .iter()
            .map(|body| {
                let json = lz4_flex::decompress_size_prepended(body)
                    .map_err(|e| Error::Corrupt { key: "events".into(), message: e.to_string() })?;
                serde_json::from_slice(&json)
                    .map_err(|e| Error::Corrupt { key: "events".into(), message: e.to_string() })
            })
            .collect()
    }
}

/// One event as stored in the `events` table.
struct EventRow {
    id: String,
    project: String,
    event_type: String,
    keptn_context: String,
    triggered_id: Option<String>,
    stage: Option<String>,
    service: Option<String>,
    source: String,
    time: String,
    body: Vec<u8>,
}

impl EventRow {
    fn from_event(event: &CloudEvent) -> Result<Self> {
        let body = serde_json::to_vec(event)
            .map(|json| lz4_flex::compress_prepend_size(&json))
            .map_err(|e| Error::Corrupt { key: event.id.clone(), message: e.to_string() })?;
        let text = |key: &str| event.data.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(Self {
            id: event.id.clone(),
            project: event.project().unwrap_or(UNMAPPED_EVENTS).to_owned(),
            event_type: event.event_type.clone(),
            keptn_context: event.shkeptncontext.clone(),
            triggered_id: event.triggeredid.clone(),
            stage: text("stage"),
            service: text("service"),
            source: event.source.clone(),
            time: event.time.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)).unwrap_or_default(),
            body,
        })
    }

    /// Inserts unless the id is stored already; returns whether it was new.
    fn insert(&self, connection: &Connection) -> rusqlite::Result<bool> {
        let mut statement = connection.prepare_cached(
            "INSERT OR IGNORE INTO events
             (id, project, type, shkeptncontext, triggeredid, stage, service, source, time, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let inserted = statement.execute(params![
            self.id,
            self.project,
            self.event_type,
            self.keptn_context,
            self.triggered_id,
            self.stage,
            self.service,
            self.source,
            self.time,
            self.body
        ])?;
        Ok(inserted == 1)
    }
}
