//! The events an execution emitted that the history has not confirmed yet. They are stored with the
//! execution's record, so a crash before the confirmation republishes them (with the same ids).

use std::sync::Arc;

use crate::model::event::CloudEvent;

/// Pending events, oldest first, with running counts that match a confirmation to the entries it
/// covers (confirmations arrive after later events may have been appended).
#[derive(Debug, Default)]
pub struct Outbox {
    events: Vec<Arc<CloudEvent>>,
    /// Events ever appended, and ever confirmed.
    appended: u64,
    confirmed: u64,
}

impl Outbox {
    /// The outbox an execution was stored with.
    pub fn restored(events: Vec<Arc<CloudEvent>>) -> Self {
        Self { appended: events.len() as u64, events, confirmed: 0 }
    }

    /// Appends a step's events; returns the number to confirm them with.
    pub fn append(&mut self, events: &[Arc<CloudEvent>]) -> u64 {
        self.events.extend(events.iter().cloned());
        self.appended += events.len() as u64;
        self.appended
    }

    /// The number that confirms everything appended so far.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// The history holds every event up to number `upto`: they leave. False when that changes nothing
    /// (an older confirmation arriving late).
    pub fn confirm(&mut self, upto: u64) -> bool {
        if upto <= self.confirmed {
            return false;
        }
        let count = usize::try_from(upto - self.confirmed).unwrap_or(usize::MAX).min(self.events.len());
        self.events.drain(..count);
        self.confirmed = upto;
        true
    }

    pub fn events(&self) -> &[Arc<CloudEvent>] {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(ids: &[&str]) -> Vec<Arc<CloudEvent>> {
        ids.iter()
            .map(|id| {
                Arc::new(CloudEvent::emitted(
                    "sh.keptn.event.test.triggered",
                    (*id).to_owned(),
                    "ctx".to_owned(),
                    chrono::Utc::now(),
                    serde_json::json!({}),
                ))
            })
            .collect()
    }

    fn ids(outbox: &Outbox) -> Vec<&str> {
        outbox.events().iter().map(|event| event.id.as_str()).collect()
    }

    #[test]
    fn confirmations_remove_what_they_cover_in_any_order() {
        let mut outbox = Outbox::default();
        let first = outbox.append(&events(&["a", "b"]));
        let second = outbox.append(&events(&["c"]));
        assert_eq!((first, second, outbox.appended()), (2, 3, 3));
        assert!(outbox.confirm(first));
        assert_eq!(ids(&outbox), ["c"]);
        assert!(!outbox.confirm(first), "a repeated confirmation changes nothing");
        assert!(!outbox.confirm(1), "an older confirmation arriving late changes nothing");
        assert_eq!(ids(&outbox), ["c"]);
        let third = outbox.append(&events(&["d"]));
        // The later confirmation covers everything before it, including entries an earlier one missed.
        assert!(outbox.confirm(third));
        assert!(outbox.events().is_empty());
        assert_eq!(outbox.append(&[]), 4, "appending nothing keeps the count");
    }

    #[test]
    fn a_restored_outbox_is_confirmed_by_its_own_count() {
        let mut outbox = Outbox::restored(events(&["x", "y"]));
        assert_eq!(outbox.appended(), 2);
        outbox.append(&events(&["z"]));
        assert!(outbox.confirm(2));
        assert_eq!(ids(&outbox), ["z"]);
        assert!(outbox.confirm(10), "a count beyond the entries empties the outbox");
        assert!(outbox.events().is_empty());
    }
}
