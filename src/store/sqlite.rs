//! The embedded backend: one SQLite file holding snapshots and the event history.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool — except history inserts nobody
//! waits for, which run on a thread of the lowest priority ([`Background`]) so that they do not take
//! the cores from the snapshot commits sequences wait for. One connection behind a std mutex
//! serialises writers, which SQLite does anyway; reads go to separate read-only connections, so a slow
//! query (a datastore filter on a field without an index decodes every event of a project) never holds
//! up the writes sequences wait for (WAL mode lets readers and the writer run side by side).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::background::Background;
use super::query::{is_invalidation, Condition, IndexedField};
use super::{Error, EventQuery, EventStore, Result, SnapshotStore, UNMAPPED_EVENTS};
use crate::model::event::CloudEvent;

const BACKEND: &str = "embedded store (sqlite)";

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 5000;
PRAGMA temp_store = MEMORY;
PRAGMA cache_size = -65536;
PRAGMA wal_autocheckpoint = 16384;
PRAGMA mmap_size = 268435456;
PRAGMA journal_size_limit = 67108864;
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
CREATE INDEX IF NOT EXISTS events_project_type_time ON events (project, type, time);
CREATE INDEX IF NOT EXISTS events_context ON events (shkeptncontext);
CREATE INDEX IF NOT EXISTS events_triggeredid ON events (triggeredid);
-- The first event stored for each Keptn context (the datastore's `root` events).
CREATE TABLE IF NOT EXISTS roots (shkeptncontext TEXT PRIMARY KEY, id TEXT NOT NULL);
-- Ids of `.triggered` events whose results an `*.invalidated` event withdrew.
CREATE TABLE IF NOT EXISTS invalidated (triggeredid TEXT PRIMARY KEY);
";

/// Settings of the read-only connections.
const READER_SETTINGS: &str = "
PRAGMA busy_timeout = 5000;
PRAGMA temp_store = MEMORY;
PRAGMA cache_size = -16384;
";

/// Read-only connections per database.
const READERS: usize = 2;

/// SQLite-backed [`SnapshotStore`] and [`EventStore`].
#[derive(Clone)]
pub struct SqliteStore {
    /// The single writing connection; held only inside `spawn_blocking`, never across an await.
    connection: Arc<Mutex<Connection>>,
    readers: Arc<Readers>,
    /// Contexts whose root event is stored (by this process); saves a lookup in `roots` per event.
    rooted: Arc<Mutex<HashSet<String>>>,
    /// Where history inserts run.
    background: Arc<Background>,
}

/// Contexts remembered as rooted before the memory is cleared (it only saves lookups).
const ROOTED_MAX: usize = 100_000;

/// Read-only connections, each used by one query at a time.
struct Readers {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    /// A free connection if there is one, else the next in turn (waiting for it).
    fn checkout(&self) -> std::sync::MutexGuard<'_, Connection> {
        for connection in &self.connections {
            if let Ok(guard) = connection.try_lock() {
                return guard;
            }
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SqliteStore {
    /// Opens (or creates) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_owned();
        let (connection, readers) = tokio::task::spawn_blocking(move || -> Result<(Connection, Vec<Connection>)> {
            let connection = Connection::open(&path).map_err(|e| Error::unavailable(BACKEND, e))?;
            connection.execute_batch(SCHEMA).map_err(|e| Error::unavailable(BACKEND, e))?;
            let readers = (0..READERS)
                .map(|_| {
                    let reader = Connection::open_with_flags(
                        &path,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    reader.execute_batch(READER_SETTINGS)?;
                    Ok(reader)
                })
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| Error::unavailable(BACKEND, e))?;
            Ok((connection, readers))
        })
        .await
        .map_err(|e| Error::unavailable(BACKEND, e))??;
        let readers = Readers { connections: readers.into_iter().map(Mutex::new).collect(), next: AtomicUsize::new(0) };
        let background = Background::start("keelson-sqlite-history").map_err(|e| Error::unavailable(BACKEND, e))?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            readers: Arc::new(readers),
            rooted: Arc::default(),
            background: Arc::new(background),
        })
    }

    /// Runs `work` with a read-only connection on the blocking pool.
    async fn reading<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || work(&readers.checkout()))
            .await
            .map_err(|e| Error::unavailable(BACKEND, e))?
            .map_err(|e| Error::unavailable(BACKEND, e))
    }

    /// Runs `work` with the writing connection on the blocking pool. After a failed write (a full
    /// disk, an I/O error) the connection is brought back to a clean state, so that it works again as
    /// soon as the cause is gone.
    async fn with_connection<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || write_with(&connection, work))
            .await
            .map_err(|e| Error::unavailable(BACKEND, e))?
    }
}

/// Runs `work` on the writing connection (on the calling, blocking thread); a failure rolls back.
fn write_with<T>(connection: &Mutex<Connection>, work: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
    let connection = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let result = work(&connection);
    if result.is_err() {
        recover(&connection);
    }
    result.map_err(|e| Error::unavailable(BACKEND, e))
}

/// Ends a transaction a failed statement left open, and checkpoints the WAL where it can.
fn recover(connection: &Connection) {
    if !connection.is_autocommit() {
        if let Err(error) = connection.execute_batch("ROLLBACK") {
            tracing::warn!(%error, "could not roll back a failed sqlite transaction");
        }
    }
    // A full disk often comes from the write-ahead log: copy what no reader needs into the database.
    // Passive: it never waits for readers while the writer's lock is held.
    let _ = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

#[async_trait]
impl SnapshotStore for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.reading(move |c| {
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

    async fn put_if_absent(&self, key: &str, value: Vec<u8>) -> Result<bool> {
        let key = key.to_owned();
        self.with_connection(move |c| {
            c.execute(
                "INSERT INTO snapshots (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )
            .map(|changed| changed == 1)
        })
        .await
    }

    async fn put_if_present(&self, key: &str, value: Vec<u8>) -> Result<bool> {
        let key = key.to_owned();
        self.with_connection(move |c| {
            c.execute("UPDATE snapshots SET value = ?2 WHERE key = ?1", params![key, value]).map(|changed| changed == 1)
        })
        .await
    }

    async fn write_batch(&self, writes: Vec<(String, Option<Vec<u8>>)>) -> Result<()> {
        self.with_connection(move |c| {
            let transaction = c.unchecked_transaction()?;
            {
                let mut upsert = transaction.prepare_cached(
                    "INSERT INTO snapshots (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )?;
                let mut delete = transaction.prepare_cached("DELETE FROM snapshots WHERE key = ?1")?;
                for (key, value) in writes {
                    match value {
                        Some(value) => upsert.execute(params![key, value])?,
                        None => delete.execute([key])?,
                    };
                }
            }
            transaction.commit()
        })
        .await
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = prefix.to_owned();
        self.reading(move |c| {
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
        self.with_connection(move |c| row.insert(c, true)).await
    }

    async fn insert_many(&self, events: &[std::sync::Arc<CloudEvent>]) -> Result<()> {
        let (events, connection, rooted) = (events.to_vec(), Arc::clone(&self.connection), Arc::clone(&self.rooted));
        tokio::task::spawn_blocking(move || insert_rows(&connection, &rooted, &events))
            .await
            .map_err(|e| Error::unavailable(BACKEND, e))?
    }

    async fn insert_many_in_background(&self, events: &[std::sync::Arc<CloudEvent>]) -> Result<()> {
        let (events, connection, rooted) = (events.to_vec(), Arc::clone(&self.connection), Arc::clone(&self.rooted));
        self.background
            .run(move || insert_rows(&connection, &rooted, &events))
            .await
            .map_err(|e| Error::unavailable(BACKEND, e))?
    }

    async fn find(&self, query: &EventQuery) -> Result<Vec<CloudEvent>> {
        let plan = QueryPlan::new(query);
        let (offset, limit) = (query.offset, query.limit);
        self.reading(move |c| {
            let mut events = Vec::new();
            let mut skipped = 0;
            if limit == 0 {
                return Ok(events);
            }
            plan.for_each_match(c, |event| {
                if skipped < offset {
                    skipped += 1;
                    return true;
                }
                events.push(event);
                events.len() < limit
            })?;
            Ok(events)
        })
        .await
    }

    async fn count(&self, query: &EventQuery) -> Result<u64> {
        let plan = QueryPlan::new(query);
        self.reading(move |c| {
            if plan.residual.is_empty() {
                let sql = format!("SELECT COUNT(*) FROM events WHERE {}", plan.sql_where);
                return c.query_row(&sql, rusqlite::params_from_iter(plan.arguments.iter()), |row| row.get(0));
            }
            let mut count = 0;
            plan.for_each_match(c, |_| {
                count += 1;
                true
            })?;
            Ok(count)
        })
        .await
    }
}

/// Inserts `events` in one transaction (on the calling, blocking thread).
fn insert_rows(
    connection: &Mutex<Connection>,
    rooted: &Mutex<HashSet<String>>,
    events: &[std::sync::Arc<CloudEvent>],
) -> Result<()> {
    // Encoded here, not on the caller's thread (often the actors'), and before taking the writer's lock.
    let rows = events.iter().map(|event| EventRow::from_event(event)).collect::<Result<Vec<_>>>()?;
    let known: Vec<bool> = {
        let rooted = rooted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rows.iter().map(|row| rooted.contains(&row.keptn_context)).collect()
    };
    write_with(connection, |c| {
        let transaction = c.unchecked_transaction()?;
        for (row, known) in rows.iter().zip(&known) {
            row.insert(&transaction, !known)?;
        }
        transaction.commit()
    })?;
    // Remembered only once committed: a rolled-back batch stored no root.
    let mut rooted = rooted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if rooted.len() + rows.len() > ROOTED_MAX {
        rooted.clear();
    }
    rooted.extend(rows.into_iter().map(|row| row.keptn_context).filter(|context| !context.is_empty()));
    Ok(())
}

/// A query as SQL over the indexed columns plus conditions checked on each decoded event.
struct QueryPlan {
    sql_where: String,
    arguments: Vec<String>,
    /// Conditions on paths without a column.
    residual: Vec<Condition>,
}

impl QueryPlan {
    fn new(query: &EventQuery) -> Self {
        let mut clauses = vec!["1 = 1".to_owned()];
        let mut arguments = Vec::new();
        let mut residual = Vec::new();
        for condition in query.all_conditions() {
            let Some(field) = IndexedField::from_path(&condition.path) else {
                residual.push(condition);
                continue;
            };
            let column = match field {
                IndexedField::Id => "id",
                IndexedField::Project => "project",
                IndexedField::Stage => "stage",
                IndexedField::Service => "service",
                IndexedField::KeptnContext => "shkeptncontext",
                IndexedField::Type => "type",
                IndexedField::Source => "source",
                IndexedField::TriggeredId => "triggeredid",
            };
            let placeholders = vec!["?"; condition.values.len()].join(", ");
            clauses.push(format!("{column} IN ({placeholders})"));
            arguments.extend(condition.values);
        }
        if let Some(from) = &query.from_time {
            clauses.push("time > ?".to_owned());
            arguments.push(from.clone());
        }
        if let Some(before) = &query.before_time {
            clauses.push("time < ?".to_owned());
            arguments.push(before.clone());
        }
        if query.root_only {
            clauses.push("id IN (SELECT id FROM roots)".to_owned());
        }
        if query.exclude_invalidated {
            clauses
                .push("(triggeredid IS NULL OR triggeredid NOT IN (SELECT triggeredid FROM invalidated))".to_owned());
        }
        Self { sql_where: clauses.join(" AND "), arguments, residual }
    }

    /// Calls `visit` with each matching event, newest first, until it returns false.
    fn for_each_match(
        &self,
        connection: &Connection,
        mut visit: impl FnMut(CloudEvent) -> bool,
    ) -> rusqlite::Result<()> {
        let sql = format!("SELECT body FROM events WHERE {} ORDER BY time DESC, rowid DESC", self.sql_where);
        let mut statement = connection.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(self.arguments.iter()))?;
        while let Some(row) = rows.next()? {
            let body: Vec<u8> = row.get(0)?;
            let json: serde_json::Value = decode_body(&body)?;
            if !self.residual.iter().all(|condition| condition.matches(&json)) {
                continue;
            }
            let event = serde_json::from_value(json).map_err(|e| corrupt(e.to_string()))?;
            if !visit(event) {
                break;
            }
        }
        Ok(())
    }
}

fn decode_body(body: &[u8]) -> rusqlite::Result<serde_json::Value> {
    let json = lz4_flex::decompress_size_prepended(body).map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))
}

fn corrupt(message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Blob,
        Box::new(Error::Corrupt { key: "events".into(), message }),
    )
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
    invalidates: bool,
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
            invalidates: is_invalidation(event),
        })
    }

    /// Inserts unless the id is stored already; returns whether it was new. With `root`, the event
    /// becomes its context's root event unless the context has one.
    fn insert(&self, connection: &Connection, root: bool) -> rusqlite::Result<bool> {
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
        if inserted == 0 {
            return Ok(false);
        }
        if root && !self.keptn_context.is_empty() {
            connection
                .prepare_cached("INSERT OR IGNORE INTO roots (shkeptncontext, id) VALUES (?1, ?2)")?
                .execute(params![self.keptn_context, self.id])?;
        }
        if self.invalidates {
            connection
                .prepare_cached("INSERT OR IGNORE INTO invalidated (triggeredid) VALUES (?1)")?
                .execute(params![self.triggered_id])?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventQuery;

    #[actix_rt::test]
    async fn writes_go_on_while_every_reader_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.sqlite")).await.unwrap();
        store.put("a", b"1".to_vec()).await.unwrap();
        // Every read connection busy, as with long datastore queries.
        let held: Vec<_> = store.readers.connections.iter().map(|c| c.lock().unwrap()).collect();
        let write = tokio::time::timeout(std::time::Duration::from_secs(5), store.put("b", b"2".to_vec())).await;
        assert!(matches!(write, Ok(Ok(()))), "a write waited for readers: {write:?}");
        let event = crate::model::event::CloudEvent::emitted(
            "sh.keptn.event.x.triggered",
            "e1".into(),
            "ctx".into(),
            chrono::Utc::now(),
            serde_json::json!({ "project": "p" }),
        );
        let insert =
            tokio::time::timeout(std::time::Duration::from_secs(5), store.insert_many(&[Arc::new(event)])).await;
        assert!(matches!(insert, Ok(Ok(()))), "a history write waited for readers");
        drop(held);
        // Readers see what was written.
        assert_eq!(store.get("b").await.unwrap(), Some(b"2".to_vec()));
        let query = EventQuery { project: Some("p".into()), limit: 10, ..Default::default() };
        assert_eq!(store.find(&query).await.unwrap().len(), 1);
    }

    #[actix_rt::test]
    async fn a_failed_write_leaves_the_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.sqlite")).await.unwrap();
        // A statement that fails inside a transaction leaves it open unless it is rolled back.
        let failed = store
            .with_connection(|c| {
                c.execute_batch("BEGIN")?;
                c.execute_batch("INSERT INTO no_such_table VALUES (1)")
            })
            .await;
        assert!(failed.is_err());
        store.put("after", b"ok".to_vec()).await.unwrap();
        assert_eq!(store.get("after").await.unwrap(), Some(b"ok".to_vec()));
    }
}
