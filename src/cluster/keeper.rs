//! Carries out the coordinator's decisions on this instance's actors: restores a shard it acquired
//! (only after the acquisition bumped the epoch, so no older owner's write can land after the read),
//! drains and releases a shard it hands off, and stops a lost shard's actors at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::coordinator::{Identity, ShardChange};
use super::table::{RefusedShard, ShardTable};
use crate::actors::router::EventRouter;
use crate::store::redis::RedisSnapshotStore;
use crate::store::SnapshotStore;

/// How often a draining shard checks whether its work is durable.
const DRAIN_POLL: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct Keeper {
    pub table: Arc<ShardTable>,
    pub router: EventRouter,
    pub snapshots: Arc<dyn SnapshotStore>,
    pub leases: RedisSnapshotStore,
    pub identity: Identity,
    pub handoff_timeout: Duration,
}

impl Keeper {
    /// Applies changes as they come, until both channels close.
    pub async fn run(self, mut changes: mpsc::Receiver<ShardChange>, mut refused: mpsc::Receiver<RefusedShard>) {
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Some(change) => self.apply(change, &mut changes).await,
                    None => break,
                },
                Some((shard, epoch)) = refused.recv() => self.lose(shard, epoch, "fenced").await,
            }
        }
    }

    async fn apply(&self, change: ShardChange, more: &mut mpsc::Receiver<ShardChange>) {
        match change {
            ShardChange::Acquired { shard, epoch } => {
                // Shards acquired together are restored with one read of the store.
                let mut acquired = vec![(shard, epoch)];
                let mut later = Vec::new();
                while let Ok(change) = more.try_recv() {
                    match change {
                        ShardChange::Acquired { shard, epoch } => acquired.push((shard, epoch)),
                        other => later.push(other),
                    }
                }
                self.restore(&acquired).await;
                for change in later {
                    Box::pin(self.apply(change, more)).await;
                }
            }
            ShardChange::HandOff { shard, epoch } => {
                let keeper = self.clone();
                tokio::spawn(async move { keeper.hand_off(shard, epoch).await });
            }
            ShardChange::Lost { shard, .. } => self.retire(&[shard]).await,
        }
    }

    async fn restore(&self, shards: &[(u32, u64)]) {
        let started = Instant::now();
        let wanted: HashSet<u32> = shards.iter().map(|(shard, _)| *shard).collect();
        let table = &self.table;
        let select = |project: &str| wanted.contains(&table.shard_of(project));
        let runtime = self.router.runtime();
        loop {
            let adopted = runtime.projects.adopt(&select).await;
            let restored = match adopted {
                Ok(()) => self.router.directory().recover_where(self.snapshots.as_ref(), &select).await.map(Some),
                Err(error) => {
                    tracing::warn!(%error, "cluster: cannot read the projects of acquired shards; retrying");
                    Ok(None)
                }
            };
            match restored {
                Ok(Some(report)) => {
                    tracing::info!(shards = ?wanted, executions = report.executions, running = report.running, "cluster: shards restored");
                    break;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cluster: cannot read the records of acquired shards; retrying"),
            }
            if shards.iter().all(|(shard, epoch)| table.local(*shard) != super::table::Local::Restoring(*epoch)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for (shard, epoch) in shards {
            table.restored(*shard, *epoch);
        }
        metrics::histogram!("keelson_shard_restore_seconds").record(started.elapsed().as_secs_f64());
    }

    /// Drains `shard` (new events are refused already), stops its actors and gives its lease back.
    pub async fn hand_off(&self, shard: u32, epoch: u64) {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.handoff_timeout;
        let runtime = self.router.runtime();
        // What the shard's actors were doing is stored (and its events published) once the writer and
        // the lanes are quiet; the limit bounds a handoff under constant load.
        let mut quiet = 0;
        while quiet < 2 && tokio::time::Instant::now() < deadline {
            let idle = self.router.queued() == 0 && runtime.snapshots.outstanding().count() == 0;
            quiet = if idle { quiet + 1 } else { 0 };
            tokio::time::sleep(DRAIN_POLL).await;
        }
        self.retire(&[shard]).await;
        let value = RedisSnapshotStore::lease_value(&self.identity.holder(), epoch);
        match self.leases.release_shard(shard, &value).await {
            Ok(_) => {}
            Err(error) => tracing::warn!(shard, %error, "cluster: could not release a lease; it expires by itself"),
        }
        self.table.drop_shard(shard, Some(epoch));
        metrics::histogram!("keelson_handoff_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(shard, epoch, "cluster: shard handed off");
    }

    /// The store refused writes of `shard` under `epoch`. Only if that is still the epoch held here
    /// is the shard dropped: a late refusal of an earlier tenure must not stop the current one.
    async fn lose(&self, shard: u32, epoch: u64, reason: &'static str) {
        if self.table.lose(shard, epoch, reason) {
            self.retire(&[shard]).await;
        }
    }

    /// Stops the actors of `shards`' projects without writing or publishing anything.
    async fn retire(&self, shards: &[u32]) {
        let table = &self.table;
        let retired = self.router.directory().retire(|project| shards.contains(&table.shard_of(project))).await;
        if retired > 0 {
            tracing::info!(?shards, projects = retired, "cluster: project actors stopped");
        }
    }

    /// Hands off every shard held (leaving the cluster).
    pub async fn hand_off_all(&self) {
        let held: Vec<(u32, u64)> = self
            .table
            .held()
            .into_iter()
            .filter_map(|(shard, _)| Some((shard, self.table.hand_off(shard).or(self.table.local(shard).epoch())?)))
            .collect();
        let handoffs = held.into_iter().map(|(shard, epoch)| {
            let keeper = self.clone();
            async move { keeper.hand_off(shard, epoch).await }
        });
        futures_util::future::join_all(handoffs).await;
    }
}
