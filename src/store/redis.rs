//! Redis backend of [`SnapshotStore`], through a reconnecting connection manager.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

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
    connection: ConnectionManager,
}

impl RedisSnapshotStore {
    /// Connects and checks the server answers `PING`; fails within [`CONNECT_TIMEOUT`] when it does not.
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| Error::unavailable(BACKEND, e))?;
        // A plain connection first: the connection manager retries forever, which would hide a
        // misconfigured URL behind a hang at start.
        let timed_out = |_| Error::unavailable(BACKEND, "no answer within 5s");
        let mut probe = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(timed_out)?
            .map_err(|e| Error::unavailable(BACKEND, e))?;
        tokio::time::timeout(CONNECT_TIMEOUT, redis::cmd("PING").query_async::<String>(&mut probe))
            .await
            .map_err(timed_out)?
            .map_err(|e| Error::unavailable(BACKEND, e))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(CONNECT_TIMEOUT);
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(timed_out)?
            .map_err(|e| Error::unavailable(BACKEND, e))?;
        Ok(Self { connection })
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
        let mut connection = self.connection.clone();
        connection.get(Self::full_key(key)).await.map_err(|e| Error::unavailable(BACKEND, e))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let mut connection = self.connection.clone();
        connection.set(Self::full_key(key), value).await.map_err(|e| Error::unavailable(BACKEND, e))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut connection = self.connection.clone();
        connection.del(Self::full_key(key)).await.map_err(|e| Error::unavailable(BACKEND, e))
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut connection = self.connection.clone();
        let pattern = format!("{}*", escape_glob(&Self::full_key(prefix)));
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut connection)
                .await
                .map_err(|e| Error::unavailable(BACKEND, e))?;
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
        let values: Vec<Option<Vec<u8>>> = connection.mget(&keys).await.map_err(|e| Error::unavailable(BACKEND, e))?;
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
