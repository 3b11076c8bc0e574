//! How the `.finished` reports of one task combine into the task's result and status.

use serde_json::Value;

use super::super::payload::merge;

pub const PASS: &str = "pass";
pub const WARNING: &str = "warning";
pub const FAIL: &str = "fail";
pub const SUCCEEDED: &str = "succeeded";
pub const ERRORED: &str = "errored";
pub const ABORTED: &str = "aborted";
pub const UNKNOWN: &str = "unknown";

/// Result and status of a finished task, with the merged data of its `.finished` events.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub result: &'static str,
    pub status: &'static str,
    pub properties: Value,
}

/// One executor's `.finished` report.
pub struct Report<'a> {
    pub result: &'a str,
    pub status: &'a str,
    pub data: &'a Value,
}

/// Keptn's rules: result `fail` if any result is neither `pass` nor `warning` (missing counts as
/// fail), else `warning` if any is, else `pass`; status `errored` if any, else `aborted` if any, else
/// `succeeded` if all are, else `unknown` — which forces the result to `fail`.
pub fn aggregate<'a>(reports: impl IntoIterator<Item = Report<'a>>) -> Aggregate {
    let mut any_fail = false;
    let mut any_warning = false;
    let mut any_errored = false;
    let mut any_aborted = false;
    let mut all_succeeded = true;
    let mut properties = Value::Object(Default::default());
    let mut count = 0;
    for report in reports {
        count += 1;
        match report.result {
            PASS => {}
            WARNING => any_warning = true,
            _ => any_fail = true,
        }
        match report.status {
            ERRORED => any_errored = true,
            ABORTED => any_aborted = true,
            SUCCEEDED => {}
            _ => all_succeeded = false,
        }
        merge(&mut properties, report.data);
    }
    debug_assert!(count > 0, "a task completes with at least one report");
    let status = if any_errored {
        ERRORED
    } else if any_aborted {
        ABORTED
    } else if all_succeeded {
        SUCCEEDED
    } else {
        UNKNOWN
    };
    let result = if any_fail || status == UNKNOWN {
        FAIL
    } else if any_warning {
        WARNING
    } else {
        PASS
    };
    Aggregate { result, status, properties }
}

/// The worst of `results` (`pass` for none); a result other than `pass` or `warning` counts as `fail`.
pub fn worst<'a>(results: impl IntoIterator<Item = &'a str>) -> &'static str {
    results.into_iter().fold(PASS, |worst, result| {
        let known = match result {
            PASS => PASS,
            WARNING => WARNING,
            _ => FAIL,
        };
        worse(worst, known)
    })
}

/// The worse of two results (`fail` > `warning` > `pass`).
pub fn worse(a: &'static str, b: &'static str) -> &'static str {
    let rank = |result| match result {
        FAIL => 2,
        WARNING => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(reports: &[(&str, &str)]) -> (&'static str, &'static str) {
        let data = json!({});
        let aggregate = aggregate(reports.iter().map(|(result, status)| Report { result, status, data: &data }));
        (aggregate.result, aggregate.status)
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
            Report { result: PASS, status: SUCCEEDED, data: &first },
            Report { result: PASS, status: SUCCEEDED, data: &second },
        ]);
        assert_eq!(aggregate.properties, json!({ "deployment": { "uri": "a", "name": "b" }, "score": 2 }));
    }

    #[test]
    fn worse_orders_results() {
        assert_eq!(worse(PASS, WARNING), WARNING);
        assert_eq!(worse(WARNING, PASS), WARNING);
        assert_eq!(worse(WARNING, FAIL), FAIL);
        assert_eq!(worse(FAIL, PASS), FAIL);
    }

    #[test]
    fn the_worst_result_wins_and_unknown_ones_fail() {
        assert_eq!(worst([]), PASS);
        assert_eq!(worst(["pass", "warning", "pass"]), WARNING);
        assert_eq!(worst(["warning", "fail", "pass"]), FAIL);
        assert_eq!(worst(["pass", "nonsense"]), FAIL);
    }
}
