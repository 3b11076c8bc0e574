//! Redis backend of [`SnapshotStore`], over one multiplexed connection that is reopened after failures.

use async_trait::async_trait;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig};
use tokio::sync::RwLock;

use super::{Error, FencedGroup, KeyWrite, Result, SnapshotStore};

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

/// A member's heartbeat: refreshes its record (TTL) and its entry in the member set (scored by expiry
/// on Redis's clock), dropping expired entries. Refused when the node id's record belongs to another
/// incarnation (another live process uses the id).
/// KEYS: member set, member record. ARGV: node, incarnation, advertise URL, state, since (0: now), ttl ms.
const BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local existing = redis.call('GET', KEYS[2])
if existing then
  local ok, record = pcall(cjson.decode, existing)
  if ok and type(record) == 'table' and record.incarnation ~= ARGV[2] then return {0, now, existing} end
end
local since = tonumber(ARGV[5])
-- A member whose record expired (paused, cut off) joins again as a new one.
if since == 0 or not existing then since = now end
local ttl = tonumber(ARGV[6])
local record = cjson.encode({incarnation = ARGV[2], advertiseUrl = ARGV[3], state = ARGV[4], since = since})
redis.call('SET', KEYS[2], record, 'PX', ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {1, now, tostring(since)}
";
/// The cluster at one instant: Redis time, live members with their records, every shard's lease.
/// KEYS: member set. ARGV: key prefix, shard count.
const VIEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
local records = {}
for i, node in ipairs(nodes) do records[i] = redis.call('GET', ARGV[1] .. 'cluster/member/' .. node) or '' end
local leases = {}
for shard = 0, tonumber(ARGV[2]) - 1 do
  leases[shard + 1] = redis.call('GET', ARGV[1] .. 'shard/' .. shard .. '/lease') or ''
end
return {now, nodes, records, leases}
";
/// Removes a member that leaves, if the record is still its incarnation's.
/// KEYS: member set, member record. ARGV: node, incarnation.
const LEAVE: &str = r"
local existing = redis.call('GET', KEYS[2])
if existing then
  local ok, record = pcall(cjson.decode, existing)
  if ok and type(record) == 'table' and record.incarnation == ARGV[2] then redis.call('DEL', KEYS[2]) end
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
";

/// What a heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// Recorded; `since` is when this incarnation joined, `now` Redis's time (ms).
    Alive { now_ms: u64, since_ms: u64 },
    /// Another incarnation holds the node id (its record is `record`).
    Taken { record: String },
}

/// One member's heartbeat record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberBeat<'a> {
    pub node: &'a str,
    pub incarnation: &'a str,
    pub advertise_url: &'a str,
    pub state: &'a str,
    /// When it joined (ms, Redis clock); 0 on the first beat.
    pub since_ms: u64,
}

/// The cluster as one read found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub now_ms: u64,
    /// Live members and their records (JSON: incarnation, advertiseUrl, state, since).
    pub members: Vec<(String, String)>,
    /// Each shard's lease value (`<node>#<incarnation>#<epoch>`), `None` when free.
    pub leases: Vec<Option<String>>,
}

/// Shard leases and fenced writes for cluster mode: ownership lives in the same Redis as the
/// snapshots, so the store that receives the protected writes is the one that checks the fence.
impl RedisSnapshotStore {
    fn lease_key(shard: u32) -> String {
        format!("{KEY_PREFIX}shard/{shard}/lease")
    }

    fn epoch_key(shard: u32) -> String {
        format!("{KEY_PREFIX}shard/{shard}/epoch")
    }

    const MEMBERS_KEY: &'static str = "keelson:cluster/members";

    fn member_key(node: &str) -> String {
        format!("{KEY_PREFIX}cluster/member/{node}")
    }

    /// Records the shard count the first time any instance starts; returns the count the cluster
    /// was created with (compare it with this instance's).
    pub async fn cluster_shards(&self, shards: u32) -> Result<u32> {
        let key = Self::full_key("cluster/config");
        let config = serde_json::json!({ "shards": shards }).to_string();
        let mut connection = self.connection().await?;
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(config).arg("NX");
        let _: Option<String> = self.call(set.query_async(&mut connection)).await?;
        let stored: String = self.call(connection.get(&key)).await?;
        serde_json::from_str::<serde_json::Value>(&stored)
            .ok()
            .and_then(|config| config.get("shards")?.as_u64())
            .and_then(|shards| u32::try_from(shards).ok())
            .ok_or_else(|| Error::Corrupt { key: "cluster/config".into(), message: stored })
    }

    /// Refreshes this member's record and membership.
    pub async fn beat(&self, member: &MemberBeat<'_>, ttl: std::time::Duration) -> Result<Beat> {
        let mut connection = self.connection().await?;
        let mut invocation = scripts().beat.prepare_invoke();
        invocation
            .key(Self::MEMBERS_KEY)
            .key(Self::member_key(member.node))
            .arg(member.node)
            .arg(member.incarnation)
            .arg(member.advertise_url)
            .arg(member.state)
            .arg(member.since_ms)
            .arg(millis(ttl));
        let (alive, now, detail): (i64, u64, String) = self.call(invocation.invoke_async(&mut connection)).await?;
        Ok(if alive == 1 {
            Beat::Alive { now_ms: now, since_ms: detail.parse().unwrap_or(now) }
        } else {
            Beat::Taken { record: detail }
        })
    }

    /// The live members and every shard's lease, read at one instant.
    pub async fn cluster_view(&self, shards: u32) -> Result<ClusterView> {
        let mut connection = self.connection().await?;
        let mut invocation = scripts().view.prepare_invoke();
        invocation.key(Self::MEMBERS_KEY).arg(KEY_PREFIX).arg(shards);
        let (now_ms, nodes, records, leases): (u64, Vec<String>, Vec<String>, Vec<String>) =
            self.call(invocation.invoke_async(&mut connection)).await?;
        Ok(ClusterView {
            now_ms,
            members: nodes.into_iter().zip(records).filter(|(_, record)| !record.is_empty()).collect(),
            leases: leases.into_iter().map(|lease| Some(lease).filter(|lease| !lease.is_empty())).collect(),
        })
    }

    /// Removes this member (leaving for good).
    pub async fn leave(&self, node: &str, incarnation: &str) -> Result<()> {
        let mut connection = self.connection().await?;
        let mut invocation = scripts().leave.prepare_invoke();
        invocation.key(Self::MEMBERS_KEY).key(Self::member_key(node)).arg(node).arg(incarnation);
        let _: i64 = self.call(invocation.invoke_async(&mut connection)).await?;
        Ok(())
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
    pub async fn write_fenced_group(&self, group: FencedGroup) -> Result<bool> {
        let refused = self.write_fenced(Vec::new(), vec![group]).await?;
        Ok(refused.is_empty())
    }

    /// The `EVAL` of the fence script for one group (`EVAL` rather than `EVALSHA`: a pipeline cannot
    /// load a script it misses, and the script is short).
    fn fenced_command(group: FencedGroup) -> redis::Cmd {
        let ops: String = group.writes.iter().map(|(_, value)| if value.is_some() { 'S' } else { 'D' }).collect();
        let mut command = redis::cmd("EVAL");
        command.arg(FENCED_WRITE).arg(group.writes.len() + 1).arg(Self::epoch_key(group.shard));
        for (key, _) in &group.writes {
            command.arg(Self::full_key(key));
        }
        command.arg(group.epoch).arg(ops);
        for (_, value) in group.writes {
            if let Some(value) = value {
                command.arg(value);
            }
        }
        command
    }
}

/// The lease scripts, hashed once (Redis runs them by their SHA after the first call).
struct Scripts {
    beat: redis::Script,
    view: redis::Script,
    leave: redis::Script,
    acquire: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| Scripts {
        beat: redis::Script::new(BEAT),
        view: redis::Script::new(VIEW),
        leave: redis::Script::new(LEAVE),
        acquire: redis::Script::new(ACQUIRE),
        renew: redis::Script::new(RENEW),
        release: redis::Script::new(RELEASE),
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

    async fn write_fenced(&self, open: Vec<KeyWrite>, fenced: Vec<FencedGroup>) -> Result<Vec<(u32, u64)>> {
        if !open.is_empty() {
            self.write_batch(open).await?;
        }
        if fenced.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip for every group; each script is atomic on its own.
        let tags: Vec<(u32, u64)> = fenced.iter().map(|group| (group.shard, group.epoch)).collect();
        let mut pipeline = redis::pipe();
        for group in fenced {
            pipeline.add_command(Self::fenced_command(group));
        }
        let mut connection = self.connection().await?;
        let applied: Vec<i64> = self.call(pipeline.query_async(&mut connection)).await?;
        Ok(tags.into_iter().zip(applied).filter(|(_, applied)| *applied != 1).map(|(tag, _)| tag).collect())
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
