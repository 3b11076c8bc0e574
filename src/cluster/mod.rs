//! Cluster mode: several instances share one NATS, Redis and MongoDB, and each project is served by
//! exactly one of them at a time.
//!
//! Projects hash into a fixed number of shards ([`crate::model::placement`]). A shard's owner holds a
//! lease in Redis with an epoch that grows on every acquisition, and every write of the shard's
//! records is fenced by that epoch inside Redis, so an instance that lost a shard (paused,
//! partitioned) can make nothing durable, and therefore publish nothing new.
//!
//! - [`table`]: this instance's view (members, shard owners, what it serves, the lease guard).
//! - [`coordinator`]: membership and leases, on a thread and Redis connection of its own.
//! - [`keeper`]: restores acquired shards, drains and releases handed-off ones, stops lost ones.
//! - [`forward`] and [`deliveries`]: events to their project's owner over NATS, and taking them in.

pub mod coordinator;
pub mod deliveries;
pub mod forward;
pub mod keeper;
pub mod table;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};

use crate::config::ClusterSettings;
use crate::store::redis::{Beat, MemberBeat, RedisSnapshotStore};
use coordinator::{Coordinator, Identity, ShardChange};
use keeper::Keeper;
use table::{RefusedShard, ShardTable};

/// A member that has joined: its identity and table, before its actors run.
pub struct Joined {
    pub identity: Identity,
    pub table: Arc<ShardTable>,
    pub settings: ClusterSettings,
    leases: RedisSnapshotStore,
    redis_url: String,
    refused: mpsc::Receiver<RefusedShard>,
    since_ms: u64,
}

/// Checks that this instance may join (same shard count, node id not in use by a live process) and
/// announces it.
pub async fn join(settings: &ClusterSettings, redis_url: &str) -> anyhow::Result<Joined> {
    let leases = RedisSnapshotStore::connect(redis_url).await.context("cluster mode: cannot reach redis")?;
    let shards =
        leases.cluster_shards(settings.shards).await.context("cluster mode: cannot read the cluster's settings")?;
    if shards != settings.shards {
        anyhow::bail!(
            "KEELSON_SHARDS is {} but this cluster was created with {shards} shards; every instance must use {shards}",
            settings.shards
        );
    }
    let identity = Identity {
        node: settings.node_id.clone(),
        incarnation: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        advertise_url: settings.advertise_url.as_str().trim_end_matches('/').to_owned(),
    };
    let beat = |since_ms| MemberBeat {
        node: &identity.node,
        incarnation: &identity.incarnation,
        advertise_url: &identity.advertise_url,
        state: "active",
        since_ms,
    };
    let mut answer = leases.beat(&beat(0), settings.lease_ttl).await?;
    if matches!(answer, Beat::Taken { .. }) {
        // A previous run of this node that was killed leaves its record for up to one TTL.
        tracing::info!(node = %identity.node, "cluster: this node id's record is alive; waiting one lease TTL for it to expire");
        tokio::time::sleep(settings.lease_ttl + coordinator::POLL).await;
        answer = leases.beat(&beat(0), settings.lease_ttl).await?;
    }
    let since_ms = match answer {
        Beat::Alive { since_ms, .. } => since_ms,
        Beat::Taken { .. } => anyhow::bail!(
            "KEELSON_NODE_ID {} is in use by another live instance; give each instance its own id",
            identity.node
        ),
    };
    let (refused_sender, refused) = mpsc::channel(settings.shards as usize * 2);
    let table = Arc::new(ShardTable::new(identity.node.clone(), settings.shards, refused_sender));
    // Until the first renew, this member holds nothing; the guard starts when it acquires.
    tracing::info!(node = %identity.node, incarnation = %identity.incarnation, shards = settings.shards, "cluster: joined");
    Ok(Joined {
        identity,
        table,
        settings: settings.clone(),
        leases,
        redis_url: redis_url.to_owned(),
        refused,
        since_ms,
    })
}

/// A running member.
pub struct Cluster {
    pub identity: Identity,
    pub table: Arc<ShardTable>,
    pub settings: ClusterSettings,
    /// Client for requests proxied to other members.
    pub http: reqwest::Client,
    keeper: Keeper,
    stop: watch::Sender<bool>,
    stopped: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl Joined {
    /// Starts the keeper (on this runtime) and the coordinator (on its own thread): from here on the
    /// member acquires its shards and serves them.
    pub fn start(
        self,
        router: crate::actors::router::EventRouter,
        snapshots: Arc<dyn crate::store::SnapshotStore>,
    ) -> anyhow::Result<Cluster> {
        let (changes_sender, changes) = mpsc::channel::<ShardChange>(self.settings.shards as usize * 4);
        let coordinator_store = self.leases.clone();
        let keeper = Keeper {
            table: Arc::clone(&self.table),
            router,
            snapshots,
            leases: self.leases,
            identity: self.identity.clone(),
            handoff_timeout: self.settings.handoff_timeout,
        };
        tokio::spawn(keeper.clone().run(changes, self.refused));
        let (stop, stop_receiver) = watch::channel(false);
        let (done, stopped) = tokio::sync::oneshot::channel();
        let coordinator = Coordinator {
            identity: self.identity.clone(),
            store: coordinator_store,
            table: Arc::clone(&self.table),
            changes: changes_sender,
            lease_ttl: self.settings.lease_ttl,
            join_grace: self.settings.join_grace,
            max_moves: self.settings.rebalance_max_moves,
            since_ms: self.since_ms,
        };
        let url = self.redis_url.clone();
        std::thread::Builder::new()
            .name("keelson-cluster".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "cluster: cannot start the lease thread");
                        return;
                    }
                };
                runtime.block_on(async move {
                    // A connection of its own, driven by this thread: actor load cannot delay renewals.
                    let mut coordinator = coordinator;
                    match RedisSnapshotStore::connect(&url).await {
                        Ok(store) => coordinator.store = store,
                        Err(error) => tracing::warn!(%error, "cluster: lease connection not opened yet; retrying"),
                    }
                    coordinator.run(stop_receiver).await;
                });
                let _ = done.send(());
            })
            .context("cannot start the cluster thread")?;
        let http = reqwest::Client::builder()
            .timeout(self.settings.forward_timeout)
            .connect_timeout(std::time::Duration::from_secs(2))
            .build()
            .context("cannot build the cluster's http client")?;
        Ok(Cluster {
            identity: self.identity,
            table: self.table,
            settings: self.settings,
            http,
            keeper,
            stop,
            stopped: tokio::sync::Mutex::new(Some(stopped)),
        })
    }
}

impl Cluster {
    /// Leaves the cluster: announces it, hands every shard off (drained, then released), and removes
    /// this member. Call after the bus consumers stopped.
    pub async fn leave(&self) {
        self.table.set_leaving();
        // Let the others see "leaving" before shards come free, so none is placed back here.
        tokio::time::sleep(coordinator::POLL * 2).await;
        self.keeper.hand_off_all().await;
        let _ = self.stop.send(true);
        if let Some(stopped) = self.stopped.lock().await.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stopped).await;
        }
        tracing::info!(node = %self.identity.node, "cluster: left");
    }
}
