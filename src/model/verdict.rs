//! Keptn's result and status values of a task or sequence, as types instead of strings.
//!
//! Executors may send any text; what Keelson derives from it (a task's aggregate, a sequence's outcome)
//! is always one of these, and they serialise to Keptn's lowercase words.

use serde::{Deserialize, Serialize};

/// How well a task went, ordered from best to worst (`max` is the worse of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskResult {
    Pass,
    Warning,
    Fail,
}

impl TaskResult {
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskResult::Pass => "pass",
            TaskResult::Warning => "warning",
            TaskResult::Fail => "fail",
        }
    }

    /// An executor's result, as Keptn reads it: anything but `pass` or `warning` (nothing included) is
    /// a failure.
    pub fn from_reported(text: &str) -> Self {
        match text {
            "pass" => TaskResult::Pass,
            "warning" => TaskResult::Warning,
            _ => TaskResult::Fail,
        }
    }
}

/// Whether a task ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Succeeded,
    Errored,
    Aborted,
    Unknown,
}

impl TaskStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Errored => "errored",
            TaskStatus::Aborted => "aborted",
            TaskStatus::Unknown => "unknown",
        }
    }

    /// An executor's status: anything unrecognised (nothing included) is `unknown`.
    pub fn from_reported(text: &str) -> Self {
        match text {
            "succeeded" => TaskStatus::Succeeded,
            "errored" => TaskStatus::Errored,
            "aborted" => TaskStatus::Aborted,
            _ => TaskStatus::Unknown,
        }
    }

    /// An errored or aborted task stops its sequence.
    pub const fn stops(self) -> bool {
        matches!(self, TaskStatus::Errored | TaskStatus::Aborted)
    }
}

impl std::fmt::Display for TaskResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_words_and_their_values() {
        let results = [("pass", TaskResult::Pass), ("warning", TaskResult::Warning), ("fail", TaskResult::Fail)];
        for (text, result) in results {
            assert_eq!(TaskResult::from_reported(text), result);
            assert_eq!(result.as_str(), text);
            assert_eq!(serde_json::to_value(result).unwrap(), text);
            assert_eq!(serde_json::from_value::<TaskResult>(text.into()).unwrap(), result);
        }
        for text in ["", "failed", "PASS", "nonsense"] {
            assert_eq!(TaskResult::from_reported(text), TaskResult::Fail, "{text:?}");
        }
        let statuses = [
            ("succeeded", TaskStatus::Succeeded),
            ("errored", TaskStatus::Errored),
            ("aborted", TaskStatus::Aborted),
            ("unknown", TaskStatus::Unknown),
        ];
        for (text, status) in statuses {
            assert_eq!(TaskStatus::from_reported(text), status);
            assert_eq!(serde_json::to_value(status).unwrap(), text);
        }
        assert_eq!(TaskStatus::from_reported(""), TaskStatus::Unknown);
        assert_eq!(TaskResult::Pass.max(TaskResult::Warning).max(TaskResult::Pass), TaskResult::Warning);
        assert_eq!(TaskResult::Warning.max(TaskResult::Fail), TaskResult::Fail);
        assert!(TaskStatus::Errored.stops() && TaskStatus::Aborted.stops() && !TaskStatus::Unknown.stops());
    }
}
