//! How the `.finished` reports of one task combine into the task's result and status.

use serde_json::Value;

use super::super::payload::merge;
use crate::model::verdict::{TaskResult, TaskStatus};

/// Result and status of a finished task, with the merged data of its `.finished` events.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub result: TaskResult,
    pub status: TaskStatus,
    pub properties: Value,
}

/// One executor's `.finished` report, as it sent it.
pub struct Report<'a> {
    pub result: &'a str,
    pub status: &'a str,
    pub data: &'a Value,
}

/// Keptn's rules: result `fail` if any result is neither `pass` nor `warning` (missing counts as
/// fail), else `warning` if any is, else `pass`; status `errored` if any, else `aborted` if any, else
/// `succeeded` if all are, else `unknown` — which forces the result to `fail`.
pub fn aggregate<'a>(reports: impl IntoIterator<Item = Report<'a>>) -> Aggregate {
    let mut result = TaskResult::Pass;
    let (mut any_errored, mut any_aborted, mut all_succeeded) = (false, false, true);
    let mut properties = Value::Object(Default::default());
    let mut count = 0;
    for report in reports {
        count += 1;
        result = result.max(TaskResult::from_reported(report.result));
        match TaskStatus::from_reported(report.status) {
            TaskStatus::Errored => any_errored = true,
            TaskStatus::Aborted => any_aborted = true,
            TaskStatus::Succeeded => {}
            TaskStatus::Unknown => all_succeeded = false,
        }
        merge(&mut properties, report.data);
    }
    debug_assert!(count > 0, "a task completes with at least one report");
    let status = if any_errored {
        TaskStatus::Errored
    } else if any_aborted {
        TaskStatus::Aborted
    } else if all_succeeded {
        TaskStatus::Succeeded
    } else {
        TaskStatus::Unknown
    };
    if status == TaskStatus::Unknown {
        result = TaskResult::Fail;
    }
    Aggregate { result, status, properties }
}

/// The worst of `results` (`pass` for none).
pub fn worst(results: impl IntoIterator<Item = TaskResult>) -> TaskResult {
    results.into_iter().max().unwrap_or(TaskResult::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(reports: &[(&str, &str)]) -> (&'static str, &'static str) {
        let data = json!({});
        let aggregate = aggregate(reports.iter().map(|(result, status)| Report { result, status, data: &data }));
        (aggregate.result.as_str(), aggregate.status.as_str())
    }

    #[test]
    fn keptn_aggregation_table() {
        type Case<'a> = (&'a [(&'a str, &'a str)], (&'a str, &'a str));
        let cases: &[Case] = &[
            (&[("pass", "succeeded")], ("pass", "succeeded")),
            (&[("warning", "succeeded")], ("warning", "succeeded")),
            (&[("fail", "succeeded")], ("fail", "succeeded")),
            (&[("", "succeeded")], ("fail", "succeeded")),
            (&[("pass", "")], ("fail", "unknown")),
            (&[("pass", "errored")], ("pass", "errored")),
            (&[("pass", "aborted")], ("pass", "aborted")),
            (&[("pass", "succeeded"), ("warning", "succeeded")], ("warning", "succeeded")),
            (&[("warning", "succeeded"), ("fail", "succeeded")], ("fail", "succeeded")),
            (&[("pass", "aborted"), ("pass", "errored")], ("pass", "errored")),
            (&[("pass", "succeeded"), ("pass", "unknown")], ("fail", "unknown")),
        ];
        for (reports, expected) in cases {
            assert_eq!(run(reports), *expected, "reports {reports:?}");
        }
    }

    #[test]
    fn properties_merge_in_arrival_order() {
        let first = json!({ "deployment": { "uri": "a" }, "score": 1 });
        let second = json!({ "deployment": { "name": "b" }, "score": 2 });
        let aggregate = aggregate([
            Report { result: "pass", status: "succeeded", data: &first },
            Report { result: "pass", status: "succeeded", data: &second },
        ]);
        assert_eq!(aggregate.properties, json!({ "deployment": { "uri": "a", "name": "b" }, "score": 2 }));
    }

    #[test]
    fn the_worst_result_wins_and_unknown_ones_fail() {
        use TaskResult::*;
        assert_eq!(worst([]), Pass);
        assert_eq!(worst([Pass, Warning, Pass]), Warning);
        assert_eq!(worst([Warning, Fail, Pass]), Fail);
    }
}
