//! One running sequence per service in a stage: the slot each service has and the FIFO of executions
//! waiting for it.
//!
//! Waiting executions are ordered by trigger time (then id), so a queued sequence keeps its place when it
//! pauses and asks again. The slot passes on the moment its holder releases it — no polling tick.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

/// Slots of every service of one stage.
#[derive(Debug, Default, Clone)]
pub struct SlotTable {
    services: HashMap<String, ServiceSlot>,
}

#[derive(Debug, Default, Clone)]
struct ServiceSlot {
    holder: Option<String>,
    waiting: BTreeSet<(DateTime<Utc>, String)>,
    /// Trigger time of each waiting execution, to find its queue entry by id.
    waiting_since: HashMap<String, DateTime<Utc>>,
}

/// An execution that now holds its service's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub service: String,
    pub execution: String,
}

impl SlotTable {
    /// `execution` (triggered at `triggered_at`) asks for `service`'s slot; returns the grant if it can
    /// have it now.
    pub fn request(&mut self, service: &str, execution: &str, triggered_at: DateTime<Utc>) -> Option<Grant> {
        let slot = self.services.entry(service.to_owned()).or_default();
        if slot.holder.as_deref() == Some(execution) {
            // Asked again while holding (an execution restarted after losing the grant): grant again.
            return Some(Grant { service: service.to_owned(), execution: execution.to_owned() });
        }
        if slot.waiting_since.insert(execution.to_owned(), triggered_at).is_none() {
            slot.waiting.insert((triggered_at, execution.to_owned()));
        }
        Self::grant_next(service, slot)
    }

    /// Rebuilds the table after a restart: `execution` held `service`'s slot when it was persisted.
    /// Returns false (and changes nothing) when another execution holds it already.
    pub fn restore_holder(&mut self, service: &str, execution: &str) -> bool {
        let slot = self.services.entry(service.to_owned()).or_default();
        match slot.holder.as_deref() {
            Some(holder) => holder == execution,
            None => {
                if let Some(since) = slot.waiting_since.remove(execution) {
                    slot.waiting.remove(&(since, execution.to_owned()));
                }
                slot.holder = Some(execution.to_owned());
                true
            }
        }
    }

    /// `execution` gives `service`'s slot back, or withdraws its request; returns the next grant.
    pub fn release(&mut self, service: &str, execution: &str) -> Option<Grant> {
        let slot = self.services.get_mut(service)?;
        if slot.holder.as_deref() == Some(execution) {
            slot.holder = None;
        }
        if let Some(since) = slot.waiting_since.remove(execution) {
            slot.waiting.remove(&(since, execution.to_owned()));
        }
        let grant = Self::grant_next(service, slot);
        if slot.holder.is_none() && slot.waiting.is_empty() {
            self.services.remove(service);
        }
        grant
    }

    fn grant_next(service: &str, slot: &mut ServiceSlot) -> Option<Grant> {
        if slot.holder.is_some() {
            return None;
        }
        let first = slot.waiting.pop_first()?;
        slot.waiting_since.remove(&first.1);
        slot.holder = Some(first.1.clone());
        Some(Grant { service: service.to_owned(), execution: first.1 })
    }

    /// Who holds `service`'s slot.
    pub fn holder(&self, service: &str) -> Option<&str> {
        self.services.get(service).and_then(|slot| slot.holder.as_deref())
    }

    /// How many executions wait in this stage.
    pub fn waiting(&self) -> usize {
        self.services.values().map(|slot| slot.waiting.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
    }

    fn grant(service: &str, execution: &str) -> Option<Grant> {
        Some(Grant { service: service.into(), execution: execution.into() })
    }

    #[test]
    fn first_come_first_served_per_service() {
        let mut slots = SlotTable::default();
        assert_eq!(slots.request("carts", "a", t(1)), grant("carts", "a"));
        assert_eq!(slots.request("carts", "b", t(2)), None, "b waits behind a");
        assert_eq!(slots.request("orders", "c", t(3)), grant("orders", "c"), "other services are independent");
        assert_eq!(slots.request("carts", "a", t(1)), grant("carts", "a"), "asking again while holding re-grants");
        assert_eq!(slots.release("carts", "a"), grant("carts", "b"), "the queued one starts the moment a ends");
        assert_eq!(slots.holder("carts"), Some("b"));
    }

    #[test]
    fn a_restored_holder_keeps_the_slot_over_earlier_waiters() {
        let mut slots = SlotTable::default();
        assert!(slots.restore_holder("carts", "holder"));
        assert!(!slots.restore_holder("carts", "other"), "one holder per service");
        assert_eq!(slots.request("carts", "earlier", t(0)), None, "the restored holder keeps running");
        assert_eq!(slots.release("carts", "holder"), grant("carts", "earlier"));
    }

    #[test]
    fn queue_order_follows_trigger_time_not_arrival() {
        let mut slots = SlotTable::default();
        slots.request("carts", "holder", t(0));
        slots.request("carts", "late", t(20));
        slots.request("carts", "early", t(10));
        assert_eq!(slots.waiting(), 2);
        assert_eq!(slots.release("carts", "holder"), grant("carts", "early"));
        assert_eq!(slots.release("carts", "early"), grant("carts", "late"));
    }

    #[test]
    fn withdrawn_requests_lose_their_place_only_until_they_ask_again() {
        let mut slots = SlotTable::default();
        slots.request("carts", "holder", t(0));
        slots.request("carts", "b", t(10));
        slots.request("carts", "c", t(20));
        assert_eq!(slots.release("carts", "b"), None, "withdrawing while someone holds the slot grants nothing");
        slots.request("carts", "b", t(10));
        assert_eq!(slots.release("carts", "holder"), grant("carts", "b"), "b keeps its trigger-time place");
        assert_eq!(slots.release("carts", "nobody"), None);
        assert_eq!(slots.release("carts", "b"), grant("carts", "c"));
        assert_eq!(slots.release("carts", "c"), None);
        assert_eq!(slots.holder("carts"), None);
    }
}
