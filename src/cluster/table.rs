//! This instance's view of the cluster: who is a member, who holds each shard, which shards this
//! instance serves, and the lease guard that stops it acting once its leases may have expired.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::actors::snapshot::project_of_key;
use crate::model::placement::shard_of;
use crate::store::snapshots::{Fence, Fencing};

/// What this instance does with a shard it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    NotHeld,
    /// Acquired under `epoch`; its records are being read back.
    Restoring(u64),
    /// Serving it under `epoch`.
    Ready(u64),
    /// Draining it for another instance; still fenced under `epoch` until released.
    HandingOff(u64),
}

impl Local {
    /// The epoch this instance holds the shard under, if it does.
    pub fn epoch(self) -> Option<u64> {
        match self {
            Local::NotHeld => None,
            Local::Restoring(epoch) | Local::Ready(epoch) | Local::HandingOff(epoch) => Some(epoch),
        }
    }
}

/// One shard as this instance sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The lease holder's node and epoch, from the last look at Redis (or this instance's own).
    pub owner: Option<(String, u64)>,
    pub local: Local,
}

/// A member as the last look at Redis found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub node_id: String,
    pub advertise_url: String,
    pub state: String,
}

/// Where requests and events for a project go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// This instance serves the project.
    Here,
    /// Another instance does.
    Node { node: String, url: String },
    /// Nobody serves it right now (taken over, restoring, handing off): retry shortly.
    Moving,
}

/// A shard the writer was refused for, reported to the keeper.
pub type RefusedShard = (u32, u64);

pub struct ShardTable {
    node: String,
    shards: u32,
    slots: Vec<RwLock<Slot>>,
    members: RwLock<Vec<MemberView>>,
    /// Until when (ms after `origin`) the held leases are surely still ours.
    guard_until: AtomicU64,
    origin: Instant,
    leaving: AtomicBool,
    refused: tokio::sync::mpsc::Sender<RefusedShard>,
}

impl ShardTable {
    pub fn new(node: String, shards: u32, refused: tokio::sync::mpsc::Sender<RefusedShard>) -> Self {
        Self {
            node,
            shards,
            slots: (0..shards).map(|_| RwLock::new(Slot { owner: None, local: Local::NotHeld })).collect(),
            members: RwLock::default(),
            guard_until: AtomicU64::new(0),
            origin: Instant::now(),
            leaving: AtomicBool::new(false),
            refused,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    pub fn shard_of(&self, project: &str) -> u32 {
        shard_of(project, self.shards)
    }

    pub fn slot(&self, shard: u32) -> Slot {
        self.slots[shard as usize].read().expect("slot lock").clone()
    }

    /// What this instance does with `shard` (no copy of the owner: asked per event and per write).
    pub fn local(&self, shard: u32) -> Local {
        self.slots[shard as usize].read().expect("slot lock").local
    }

    fn update<T>(&self, shard: u32, change: impl FnOnce(&mut Slot) -> T) -> T {
        change(&mut self.slots[shard as usize].write().expect("slot lock"))
    }

    /// Records what Redis says about a shard this instance does not hold.
    pub fn set_owner(&self, shard: u32, owner: Option<(String, u64)>) {
        self.update(shard, |slot| {
            if slot.local == Local::NotHeld {
                slot.owner = owner;
            }
        });
    }

    /// This instance acquired `shard` under `epoch` and starts restoring it.
    pub fn acquired(&self, shard: u32, epoch: u64) {
        let node = self.node.clone();
        self.update(shard, |slot| *slot = Slot { owner: Some((node, epoch)), local: Local::Restoring(epoch) });
    }

    /// The shard's records are back: it is served from now on (unless it was lost meanwhile).
    pub fn restored(&self, shard: u32, epoch: u64) -> bool {
        self.update(shard, |slot| {
            let current = slot.local == Local::Restoring(epoch);
            if current {
                slot.local = Local::Ready(epoch);
            }
            current
        })
    }

    /// Starts draining `shard`; returns its epoch if it was being served.
    pub fn hand_off(&self, shard: u32) -> Option<u64> {
        self.update(shard, |slot| match slot.local {
            Local::Ready(epoch) | Local::Restoring(epoch) => {
                slot.local = Local::HandingOff(epoch);
                Some(epoch)
            }
            _ => None,
        })
    }

    /// The shard is no longer this instance's (released, lost, or refused by the fence); returns the
    /// epoch it was held under if it still was.
    pub fn drop_shard(&self, shard: u32, epoch: Option<u64>) -> Option<u64> {
        self.update(shard, |slot| {
            let held = slot.local.epoch()?;
            if epoch.is_some_and(|epoch| epoch != held) {
                return None;
            }
            *slot = Slot { owner: None, local: Local::NotHeld };
            Some(held)
        })
    }

    /// Drops `shard` if it is still held under `epoch` (a report about an earlier tenure changes
    /// nothing), counting and logging the loss; returns whether it was dropped.
    pub fn lose(&self, shard: u32, epoch: u64, reason: &'static str) -> bool {
        let lost = self.drop_shard(shard, Some(epoch)).is_some();
        if lost {
            metrics::counter!("keelson_shard_losses_total", "reason" => reason).increment(1);
            tracing::warn!(shard, epoch, reason, "cluster: shard lost");
        }
        lost
    }

    /// Shards held here with their epochs.
    pub fn held(&self) -> Vec<(u32, Local)> {
        (0..self.shards)
            .filter_map(|shard| {
                let local = self.local(shard);
                (local != Local::NotHeld).then_some((shard, local))
            })
            .collect()
    }

    pub fn set_members(&self, members: Vec<MemberView>) {
        *self.members.write().expect("members lock") = members;
    }

    pub fn members(&self) -> Vec<MemberView> {
        self.members.read().expect("members lock").clone()
    }

    fn member_url(&self, node: &str) -> Option<String> {
        self.members
            .read()
            .expect("members lock")
            .iter()
            .find(|member| member.node_id == node)
            .map(|member| member.advertise_url.clone())
    }

    /// Leases renewed at `renewed` stay ours until `renewed + ttl − margin`.
    pub fn extend_guard(&self, valid_until: Instant) {
        let millis = u64::try_from(valid_until.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX);
        self.guard_until.fetch_max(millis, Ordering::AcqRel);
    }

    /// Whether this instance's leases are surely still valid: past the guard it must stop acting,
    /// whatever Redis would say.
    pub fn guard_valid(&self) -> bool {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        now < self.guard_until.load(Ordering::Acquire)
    }

    pub fn guard_remaining(&self) -> Duration {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.guard_until.load(Ordering::Acquire).saturating_sub(now))
    }

    pub fn set_leaving(&self) {
        self.leaving.store(true, Ordering::Release);
    }

    pub fn leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }

    /// Where `project` is served.
    pub fn locate(&self, project: &str) -> Location {
        let shard = self.shard_of(project);
        match self.local(shard) {
            Local::Ready(_) if self.guard_valid() => return Location::Here,
            Local::NotHeld => {}
            _ => return Location::Moving,
        }
        match self.slot(shard).owner {
            Some((node, _)) if node != self.node => match self.member_url(&node) {
                Some(url) => Location::Node { node, url },
                None => Location::Moving,
            },
            _ => Location::Moving,
        }
    }

    /// Whether this instance serves `project` now.
    pub fn serves(&self, project: &str) -> bool {
        self.locate(project) == Location::Here
    }
}

impl crate::bus::nats::Provenance for ShardTable {
    fn of(&self, event: &crate::model::event::CloudEvent) -> Option<(&str, u64)> {
        let epoch = self.local(self.shard_of(event.project()?)).epoch()?;
        Some((&self.node, epoch))
    }
}

impl Fencing for ShardTable {
    fn fence(&self, key: &str) -> Fence {
        let Some(project) = project_of_key(key) else { return Fence::Open };
        let shard = self.shard_of(project);
        match self.local(shard).epoch() {
            Some(epoch) if self.guard_valid() => Fence::Epoch { shard, epoch },
            _ => Fence::NotHeld,
        }
    }

    fn refused(&self, shard: u32, epoch: u64) {
        // Bounded: at most one report per shard and epoch matters; a full queue means reports are
        // already waiting for the keeper.
        let _ = self.refused.try_send((shard, epoch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ShardTable {
        let (sender, _receiver) = tokio::sync::mpsc::channel(4);
        ShardTable::new("n1".into(), 64, sender)
    }

    #[test]
    fn a_shard_is_served_only_when_restored_and_the_guard_holds() {
        let table = table();
        let shard = table.shard_of("sockshop");
        assert_eq!(table.locate("sockshop"), Location::Moving);
        table.acquired(shard, 7);
        table.extend_guard(Instant::now() + Duration::from_secs(5));
        assert_eq!(table.locate("sockshop"), Location::Moving, "restoring");
        assert_eq!(table.fence("execution/sockshop/e1"), Fence::Epoch { shard, epoch: 7 }, "restore may write");
        assert!(!table.restored(shard, 6), "an older epoch's restore does not count");
        assert!(table.restored(shard, 7));
        assert_eq!(table.locate("sockshop"), Location::Here);
        assert_eq!(table.fence("project/sockshop"), Fence::Open);
        assert_eq!(table.fence("execution/other-project/e1"), Fence::NotHeld, "not this instance's shard");
        assert_eq!(table.hand_off(shard), Some(7));
        assert_eq!(table.locate("sockshop"), Location::Moving);
        assert_eq!(
            table.fence("sequence-control/sockshop"),
            Fence::Epoch { shard, epoch: 7 },
            "drains under its epoch"
        );
        assert_eq!(table.drop_shard(shard, Some(6)), None, "a stale report changes nothing");
        assert_eq!(table.drop_shard(shard, Some(7)), Some(7));
        assert_eq!(table.fence("execution/sockshop/e1"), Fence::NotHeld);
    }

    #[test]
    fn an_expired_guard_stops_serving_and_writing() {
        let table = table();
        let shard = table.shard_of("sockshop");
        table.acquired(shard, 1);
        table.restored(shard, 1);
        table.extend_guard(Instant::now());
        assert!(!table.guard_valid());
        assert_eq!(table.locate("sockshop"), Location::Moving);
        assert_eq!(table.fence("execution/sockshop/e1"), Fence::NotHeld);
    }

    #[test]
    fn other_owners_are_located_by_their_member_url() {
        let table = table();
        let shard = table.shard_of("sockshop");
        table.set_owner(shard, Some(("n2".into(), 3)));
        assert_eq!(table.locate("sockshop"), Location::Moving, "n2 is not a known member yet");
        table.set_members(vec![MemberView {
            node_id: "n2".into(),
            advertise_url: "http://127.0.0.1:18082".into(),
            state: "active".into(),
        }]);
        assert_eq!(
            table.locate("sockshop"),
            Location::Node { node: "n2".into(), url: "http://127.0.0.1:18082".into() }
        );
    }
}
