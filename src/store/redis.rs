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

/// What an attempt to take a shard's lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Taken, with the shard's new epoch (one more than any earlier holder's).
    Granted { epoch: u64 },
    /// Another holder's lease is alive: its value (`<holder>#<epoch>`).
    Held { by: String },
}

/// Takes a free lease: bumps the shard's epoch and sets the lease to `<holder>#<epoch>` with a TTL.
/// KEYS: lease, epoch. ARGV: holder, ttl in ms.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('GET', KEYS[1])} end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '#' .. epoch, 'PX', ARGV[2])
return {1, tostring(epoch)}
";
/// Extends every lease still holding its expected value; returns the (1-based) indexes of the lost.
/// KEYS: leases. ARGV: ttl in ms, expected values.
const RENEW: &str = r"
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then redis.call('PEXPIRE', key, ARGV[1]) else lost[#lost + 1] = i end
end
return lost
";
/// Deletes a lease only if it still holds the expected value. KEYS: lease. ARGV: value.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";
/// Writes (`S`) or deletes (`D`) data keys only while the shard's epoch is the writer's: the fence that
/// keeps an instance which lost a shard from making anything durable.
/// KEYS: epoch, data keys. ARGV: expected epoch, one op letter per data key, the values of the sets.
const FENCED_WRITE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local value = 3
for i = 2, #KEYS do
  if string.sub(ARGV[2], i - 1, i - 1) == 'D' then redis.call('DEL', KEYS[i])
  else redis.call('SET', KEYS[i], ARGV[value]); value = value + 1 end
end
return 1
";

/// Shard leases and fenced writes for cluster mode: ownership lives in the same Redis as the
/// snapshots, so the store that receives the protected writes is the one that checks the fence.
impl RedisSnapshotStore {
    fn lease_key(shard: u32) -> String {
        format!("{KEY_PREFIX}shard/{shard}/lease")
    }

    fn epoch_key(shard: u32) -> String {
        format!("{KEY_PREFIX}shard/{shard}/epoch")
    }

    /// The lease value of `holder` at `epoch`.
    pub fn lease_value(holder: &str, epoch: u64) -> String {
        format!("{holder}#{epoch}")
    }

    /// Takes `shard`'s lease for `holder` if nobody holds it.
    pub async fn acquire_shard(&self, shard: u32, holder: &str, ttl: std::time::Duration) -> Result<Acquired> {
        let mut connection = self.connection().await?;
        let mut invocation = scripts().acquire.prepare_invoke();
        invocation.key(Self::lease_key(shard)).key(Self::epoch_key(shard)).arg(holder).arg(millis(ttl));
        let (granted, value): (i64, String) = self.call(invocation.invoke_async(&mut connection)).await?;
        if granted == 1 {
            let epoch =
                value.parse().map_err(|_| Error::unavailable(BACKEND, format!("epoch '{value}' is not a number")))?;
            Ok(Acquired::Granted { epoch })
        } else {
            Ok(Acquired::Held { by: value })
        }
    }

    /// Extends the leases of `held` (shard, lease value); returns the shards whose lease was lost.
    pub async fn renew_shards(&self, held: &[(u32, String)], ttl: std::time::Duration) -> Result<Vec<u32>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection().await?;
        let mut invocation = scripts().renew.prepare_invoke();
        invocation.arg(millis(ttl));
        for (shard, value) in held {
            invocation.key(Self::lease_key(*shard)).arg(value);
        }
        let lost: Vec<usize> = self.call(invocation.invoke_async(&mut connection)).await?;
        Ok(lost.into_iter().filter_map(|index| held.get(index.wrapping_sub(1)).map(|(shard, _)| *shard)).collect())
    }

    /// Gives `shard`'s lease back if it is still `value`'s; false if it had already gone.
    pub async fn release_shard(&self, shard: u32, value: &str) -> Result<bool> {
        let mut connection = self.connection().await?;
        let mut invocation = scripts().release.prepare_invoke();
        invocation.key(Self::lease_key(shard)).arg(value);
        let deleted: i64 = self.call(invocation.invoke_async(&mut connection)).await?;
        Ok(deleted == 1)
    }

    /// Applies `writes` (`None` deletes) atomically if `shard`'s epoch is still `epoch`; false when a
    /// newer holder took the shard (nothing was written).
    pub async fn write_fenced(&self, shard: u32, epoch: u64, writes: Vec<(String, Option<Vec<u8>>)>) -> Result<bool> {
        let mut connection = self.connection().await?;
        let mut invocation = scripts().fenced_write.prepare_invoke();
        invocation.key(Self::epoch_key(shard));
        let ops: String = writes.iter().map(|(_, value)| if value.is_some() { 'S' } else { 'D' }).collect();
        invocation.arg(epoch).arg(ops);
        for (key, value) in writes {
            invocation.key(Self::full_key(&key));
            if let Some(value) = value {
                invocation.arg(value);
            }
        }
        let written: i64 = self.call(invocation.invoke_async(&mut connection)).await?;
        Ok(written == 1)
    }
}

/// The lease scripts, hashed once (Redis runs them by their SHA after the first call).
struct Scripts {
    acquire: redis::Script,
    renew: redis::Script,
    release: redis::Script,
    fenced_write: redis::Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| Scripts {
        acquire: redis::Script::new(ACQUIRE),
        renew: redis::Script::new(RENEW),
        release: redis::Script::new(RELEASE),
        fenced_write: redis::Script::new(FENCED_WRITE),
    });
    &SCRIPTS
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
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
