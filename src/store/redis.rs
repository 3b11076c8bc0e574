//! Redis backend of [`SnapshotStore`], over one multiplexed connection that is reopened after failures.

use async_trait::async_trait;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig};
use tokio::sync::RwLock;

use super::{Error, Result, SnapshotStore};

const BACKEND: &str = "redis";
/// Every key Keelson writes lives under this prefix, so one Redis can be shared with other tools.
const KEY_PREFIX: &str = "keelson:";
/// How many keys one `SCAN` step asks for.
const SCAN_BATCH: usize = 500;
/// How long connecting and each command may take before the server counts as unavailable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct RedisSnapshotStore {
    client: redis::Client,
    /// The shared multiplexed connection; dropped after a failure and opened again by the next command,
    /// so the store recovers by itself once the server is back.
    connection: Arc<RwLock<Option<MultiplexedConnection>>>,
}

impl RedisSnapshotStore {
    /// Connects and checks the server answers `PING`; fails within [`CONNECT_TIMEOUT`] when it does not.
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| Error::unavailable(BACKEND, e))?;
        let store = Self { client, connection: Arc::default() };
        let mut connection = store.connection().await?;
        store.call(redis::cmd("PING").query_async::<String>(&mut connection)).await?;
        Ok(store)
    }

    /// The shared connection, opened if there is none.
    async fn connection(&self) -> Result<MultiplexedConnection> {
        if let Some(connection) = self.connection.read().await.as_ref() {
            return Ok(connection.clone());
        }
        let mut slot = self.connection.write().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(CONNECT_TIMEOUT).set_response_timeout(CONNECT_TIMEOUT);
        let connection =
            tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_multiplexed_async_connection_with_config(&config))
                .await
                .map_err(|_| Error::unavailable(BACKEND, "no answer within 5s"))?
                .map_err(|e| Error::unavailable(BACKEND, e))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs one command with a deadline; any failure drops the connection so the next command opens a
    /// fresh one.
    async fn call<T>(&self, command: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T> {
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, command).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => Error::unavailable(BACKEND, error),
            Err(_) => Error::unavailable(BACKEND, "no answer within 5s"),
        };
        self.connection.write().await.take();
        Err(error)
    }

    /// `SET key value NX|XX`: answers `OK` when it set the value, nil otherwise.
    async fn conditional_set(&self, key: &str, value: Vec<u8>, condition: &str) -> Result<bool> {
        let mut connection = self.connection().await?;
        let mut command = redis::cmd("SET");
        command.arg(Self::full_key(key)).arg(value).arg(condition);
        let answer: Option<String> = self.call(command.query_async(&mut connection)).await?;
        Ok(answer.is_some())
    }

    fn full_key(key: &str) -> String {
        format!("{KEY_PREFIX}{key}")
    }
}

/// Escapes Redis glob characters so that a prefix matches literally in `SCAN MATCH`.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[async_trait]
impl SnapshotStore for RedisSnapshotStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut connection = self.connection().await?;
        self.call(connection.get(Self::full_key(key))).await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let mut connection = self.connection().await?;
        self.call(connection.set(Self::full_key(key), value)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut connection = self.connection().await?;
        self.call(connection.del(Self::full_key(key))).await
    }

    async fn put_if_absent(&self, key: &str, value: Vec<u8>) -> Result<bool> {
        self.conditional_set(key, value, "NX").await
    }

    async fn put_if_present(&self, key: &str, value: Vec<u8>) -> Result<bool> {
        self.conditional_set(key, value, "XX").await
    }

    async fn write_batch(&self, writes: Vec<(String, Option<Vec<u8>>)>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for (key, value) in writes {
            match value {
                Some(value) => pipeline.set(Self::full_key(&key), value).ignore(),
                None => pipeline.del(Self::full_key(&key)).ignore(),
            };
        }
        let mut connection = self.connection().await?;
        self.call(pipeline.query_async::<()>(&mut connection)).await
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut connection = self.connection().await?;
        let pattern = format!("{}*", escape_glob(&Self::full_key(prefix)));
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(SCAN_BATCH);
            let (next, batch): (u64, Vec<String>) = self.call(scan.query_async(&mut connection)).await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = self.call(connection.mget(&keys)).await?;
        Ok(keys
            .into_iter()
            .zip(values)
            // A key deleted between SCAN and MGET is skipped.
            .filter_map(|(key, value)| Some((key[KEY_PREFIX.len()..].to_owned(), value?)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(super::escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
