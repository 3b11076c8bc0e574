//! Membership and shard leases: every 250 ms, on a thread and Redis connection of its own (so actor
//! load cannot starve it), this instance renews its member record and leases, reads the cluster, and
//! acquires or hands off shards as the placement rules say. What it decides reaches the keeper
//! ([`super::keeper`]) as [`ShardChange`]s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::table::{Local, MemberView, ShardTable};
use crate::model::placement::{self, Holder, Member, Rules};
use crate::store::redis::{Acquired, Beat, MemberBeat, RedisSnapshotStore};

/// How often the cluster is looked at.
pub const POLL: Duration = Duration::from_millis(250);
/// The lease guard ends this long before the lease could expire in Redis.
const GUARD_MARGIN: Duration = Duration::from_millis(300);
/// An unowned shard is taken by anyone, not only its desired owner, after this long.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

/// A change of what this instance holds, for the keeper to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardChange {
    Acquired {
        shard: u32,
        epoch: u64,
    },
    /// Drain and release it: another instance should own it.
    HandOff {
        shard: u32,
        epoch: u64,
    },
    /// No longer this instance's (lease lost, guard expired, or writes refused): stop at once.
    Lost {
        shard: u32,
        epoch: u64,
        reason: &'static str,
    },
}

/// Who this instance is in the cluster.
#[derive(Debug, Clone)]
pub struct Identity {
    pub node: String,
    /// Random per start: a restarted node does not inherit its previous leases.
    pub incarnation: String,
    pub advertise_url: String,
}

impl Identity {
    /// Lease holder name: `<node>#<incarnation>`.
    pub fn holder(&self) -> String {
        format!("{}#{}", self.node, self.incarnation)
    }
}

/// The lease holder's node, holder name and epoch, from a lease value `<node>#<incarnation>#<epoch>`.
fn parse_lease(value: &str) -> Option<(&str, &str, u64)> {
    let (holder, epoch) = value.rsplit_once('#')?;
    let node = holder.split('#').next()?;
    Some((node, holder, epoch.parse().ok()?))
}

pub struct Coordinator {
    pub identity: Identity,
    pub store: RedisSnapshotStore,
    pub table: Arc<ShardTable>,
    pub changes: mpsc::Sender<ShardChange>,
    pub lease_ttl: Duration,
    pub join_grace: Duration,
    pub max_moves: usize,
    /// When this incarnation joined (ms, Redis clock), from its first beat.
    pub since_ms: u64,
}

impl Coordinator {
    /// Runs until `stop` turns true, then removes this member from the cluster.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unowned_since: Vec<Option<u64>> = vec![None; self.table.shards() as usize];
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
            if let Err(error) = self.tick(&mut unowned_since).await {
                tracing::warn!(%error, "cluster: cannot reach redis to renew leases");
                self.check_guard().await;
            }
        }
        if let Err(error) = self.store.leave(&self.identity.node, &self.identity.incarnation).await {
            tracing::warn!(%error, "cluster: could not remove this member; it expires by itself");
        }
    }

    /// Past the lease guard every held shard is dropped: the leases may be another's by now.
    async fn check_guard(&self) {
        if self.table.guard_valid() {
            return;
        }
        for (shard, local) in self.table.held() {
            if let Some(epoch) = local.epoch() {
                self.lose(shard, epoch, "guard").await;
            }
        }
    }

    async fn lose(&self, shard: u32, epoch: u64, reason: &'static str) {
        if self.table.lose(shard, epoch, reason) {
            let _ = self.changes.send(ShardChange::Lost { shard, epoch, reason }).await;
        }
    }

    async fn tick(&mut self, unowned_since: &mut [Option<u64>]) -> crate::store::Result<()> {
        let sent = Instant::now();
        let state = if self.table.leaving() { "leaving" } else { "active" };
        let beat = MemberBeat {
            node: &self.identity.node,
            incarnation: &self.identity.incarnation,
            advertise_url: &self.identity.advertise_url,
            state,
            since_ms: self.since_ms,
        };
        match self.store.beat(&beat, self.lease_ttl).await? {
            Beat::Alive { since_ms, .. } => self.since_ms = since_ms,
            Beat::Taken { record } => {
                tracing::error!(node = %self.identity.node, %record, "cluster: another process took this node id");
            }
        }
        let holder = self.identity.holder();
        let held: Vec<(u32, u64)> =
            self.table.held().into_iter().filter_map(|(shard, local)| Some((shard, local.epoch()?))).collect();
        let values: Vec<(u32, String)> =
            held.iter().map(|(shard, epoch)| (*shard, RedisSnapshotStore::lease_value(&holder, *epoch))).collect();
        let lost = self.store.renew_shards(&values, self.lease_ttl).await?;
        metrics::histogram!("keelson_lease_renew_seconds").record(sent.elapsed().as_secs_f64());
        self.table.extend_guard(sent + self.lease_ttl.saturating_sub(GUARD_MARGIN));
        for shard in lost {
            if let Some((_, epoch)) = held.iter().find(|(held, _)| *held == shard) {
                self.lose(shard, *epoch, "lease").await;
            }
        }

        let view = self.store.cluster_view(self.table.shards()).await?;
        let mut members = Vec::new();
        let mut views = Vec::new();
        for (node, record) in &view.members {
            let record: serde_json::Value = serde_json::from_str(record).unwrap_or_default();
            let state = record.get("state").and_then(|v| v.as_str()).unwrap_or("active").to_owned();
            members.push(Member {
                node: node.clone(),
                active: state == "active",
                since_ms: record.get("since").and_then(serde_json::Value::as_f64).unwrap_or(0.0) as u64,
            });
            views.push(MemberView {
                node_id: node.clone(),
                advertise_url: record.get("advertiseUrl").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
                state,
            });
        }
        self.table.set_members(views);

        let mut holders = Vec::with_capacity(view.leases.len());
        for (shard, lease) in (0u32..).zip(&view.leases) {
            let local = self.table.local(shard);
            let parsed = lease.as_deref().and_then(parse_lease);
            let holder_here = match parsed {
                Some((node, lease_holder, epoch)) if lease_holder != holder => {
                    unowned_since[shard as usize] = None;
                    self.table.set_owner(shard, Some((node.to_owned(), epoch)));
                    if let Some(epoch) = local.epoch() {
                        // Someone else's lease on a shard held here: ours is gone.
                        self.lose(shard, epoch, "lease").await;
                    }
                    Holder::Other(node.to_owned())
                }
                Some(_) => {
                    unowned_since[shard as usize] = None;
                    Holder::Me { handing_off: matches!(local, Local::HandingOff(_)) }
                }
                None => {
                    self.table.set_owner(shard, None);
                    let since = *unowned_since[shard as usize].get_or_insert(view.now_ms);
                    match local {
                        Local::NotHeld => Holder::Nobody { since_ms: since },
                        // Released by the keeper a moment ago, or expired: the renew says which.
                        _ => Holder::Me { handing_off: true },
                    }
                }
            };
            holders.push(holder_here);
        }
        metrics::gauge!("keelson_shards_owned").set(self.table.held().len() as f64);
        if self.table.leaving() {
            return Ok(());
        }
        let rules = Rules {
            join_grace_ms: u64::try_from(self.join_grace.as_millis()).unwrap_or(u64::MAX),
            orphan_grace_ms: u64::try_from(ORPHAN_GRACE.as_millis()).unwrap_or(u64::MAX),
            max_moves: self.max_moves,
        };
        let plan = placement::plan(&self.identity.node, &members, &holders, view.now_ms, &rules);
        let eligible = placement::eligible(&members, view.now_ms, &rules);
        for shard in plan.acquire {
            match self.store.acquire_shard(shard, &holder, self.lease_ttl).await? {
                Acquired::Granted { epoch } => {
                    let desired = placement::desired_owner(shard, eligible.iter().map(String::as_str));
                    let reason = if desired == Some(self.identity.node.as_str()) { "placement" } else { "orphan" };
                    metrics::counter!("keelson_shard_acquisitions_total", "reason" => reason).increment(1);
                    tracing::info!(shard, epoch, reason, "cluster: shard acquired");
                    self.table.acquired(shard, epoch);
                    let _ = self.changes.send(ShardChange::Acquired { shard, epoch }).await;
                }
                Acquired::Held { by } => tracing::debug!(shard, %by, "cluster: shard taken by another instance first"),
            }
        }
        for shard in plan.hand_off {
            if let Some(epoch) = self.table.hand_off(shard) {
                tracing::info!(shard, epoch, "cluster: handing shard off");
                let _ = self.changes.send(ShardChange::HandOff { shard, epoch }).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lease_values_name_node_holder_and_epoch() {
        assert_eq!(super::parse_lease("n1#a1b2#17"), Some(("n1", "n1#a1b2", 17)));
        assert_eq!(super::parse_lease("n1#17"), Some(("n1", "n1", 17)));
        assert_eq!(super::parse_lease("garbage"), None);
        assert_eq!(super::parse_lease("n1#x#notanumber"), None);
    }
}
