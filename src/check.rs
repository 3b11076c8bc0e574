//! `keelson check-config`: validates a configuration and that its servers answer, without serving
//! anything — for deployment pipelines and for operators before a restart.

use std::time::Duration;

use crate::config::Config;

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: String,
    /// `None` when it is fine, else why not.
    pub problem: Option<String>,
}

impl Finding {
    fn ok(what: impl Into<String>) -> Self {
        Self { what: what.into(), problem: None }
    }

    fn from_result<E: std::fmt::Display>(what: impl Into<String>, result: Result<(), E>) -> Self {
        Self { what: what.into(), problem: result.err().map(|error| error.to_string()) }
    }
}

/// Longest a server may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Checks the data dir and every configured server; nothing is written but a
/// probe file in the data dir, and nothing is created on the servers.
pub async fn check(config: &Config) -> Vec<Finding> {
    // The listen address is not bound: the instance this configuration is for may be running.
    let mut findings = vec![Finding::ok(format!("configuration is valid (listen {})", config.listen))];
    findings
        .push(Finding::from_result(format!("data dir {} is writable", config.data_dir.display()), data_dir(config)));
    if let Some(url) = &config.redis_url {
        let what = format!("redis at {} answers", crate::server::redacted(url));
        let connected = within(crate::store::redis::RedisSnapshotStore::connect(url.as_str())).await;
        match (connected, &config.cluster) {
            (Ok(store), Some(cluster)) => {
                findings.push(Finding::ok(what));
                findings.push(Finding::from_result(
                    format!("the cluster's shard count is {}", cluster.shards),
                    shard_count(&store, cluster.shards).await,
                ));
            }
            (connected, _) => findings.push(Finding::from_result(what, connected.map(drop))),
        }
    }
    if let Some(url) = &config.nats_url {
        let what = format!("nats at {} answers", crate::server::redacted(url));
        findings
            .push(Finding::from_result(what, within(crate::bus::nats::NatsBus::connect(url.as_str())).await.map(drop)));
    }
    if let Some(url) = &config.mongodb_url {
        let connected = within(crate::store::mongo::MongoEventStore::connect(url)).await.map(drop);
        findings.push(Finding::from_result("mongodb answers", connected));
    }
    findings
}

async fn within<T, E: std::fmt::Display>(work: impl std::future::Future<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(ANSWER_WITHIN, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {}s", ANSWER_WITHIN.as_secs())),
    }
}

fn data_dir(config: &Config) -> std::io::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let probe = config.data_dir.join(format!(".check-{}", std::process::id()));
    std::fs::write(&probe, b"probe")?;
    std::fs::remove_file(&probe)
}

/// The shard count a running cluster was created with must be this instance's (read only).
async fn shard_count(store: &crate::store::redis::RedisSnapshotStore, shards: u32) -> Result<(), String> {
    use crate::store::SnapshotStore as _;
    let stored = store.get("cluster/config").await.map_err(|error| error.to_string())?;
    let Some(stored) = stored else { return Ok(()) };
    let existing = serde_json::from_slice::<serde_json::Value>(&stored)
        .ok()
        .and_then(|config| config.get("shards")?.as_u64())
        .ok_or("the stored cluster settings cannot be read")?;
    if existing == u64::from(shards) {
        Ok(())
    } else {
        Err(format!("the cluster was created with {existing} shards; set KEELSON_SHARDS={existing}"))
    }
}
