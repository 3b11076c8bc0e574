//! Metric label values taken from user input, kept to a bounded set: every distinct label value is a
//! time series held for the life of the process, so input must never be able to add them without end.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

/// The value that stands for every name past the bound.
pub const OTHER: &str = "other";

/// Distinct task names kept as labels; later ones count as [`OTHER`].
const MAX_TASK_LABELS: usize = 128;

/// The first `capacity` distinct names, then [`OTHER`].
pub struct BoundedLabels {
    capacity: usize,
    seen: Mutex<HashSet<Arc<str>>>,
}

impl BoundedLabels {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, seen: Mutex::new(HashSet::new()) }
    }

    /// The label for `name`: itself while there is room (or it already has one), else [`OTHER`].
    pub fn label(&self, name: &str) -> Arc<str> {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = seen.get(name) {
            return Arc::clone(known);
        }
        if seen.len() >= self.capacity {
            return Arc::from(OTHER);
        }
        let label: Arc<str> = Arc::from(name);
        seen.insert(Arc::clone(&label));
        label
    }
}

/// The label for a shipyard task name in task metrics.
pub fn task_label(name: &str) -> String {
    static TASKS: OnceLock<BoundedLabels> = OnceLock::new();
    TASKS.get_or_init(|| BoundedLabels::new(MAX_TASK_LABELS)).label(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_bound_become_other() {
        let labels = BoundedLabels::new(2);
        assert_eq!(&*labels.label("deployment"), "deployment");
        assert_eq!(&*labels.label("test"), "test");
        assert_eq!(&*labels.label("evaluation"), OTHER);
        assert_eq!(&*labels.label("deployment"), "deployment", "a known name keeps its label");
        for index in 0..10_000 {
            assert_eq!(&*labels.label(&format!("made-up-{index}")), OTHER);
        }
        assert_eq!(labels.seen.lock().unwrap().len(), 2);
    }
}
