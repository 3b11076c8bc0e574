//! The lighthouse evaluation: indicator values scored against an SLO's criteria, compared with earlier
//! evaluations, and summed up into a total score and result.
//!
//! Pure: the service fetches the SLO file, the provider's indicator values and the earlier
//! evaluations, and turns an [`Outcome`] or [`EvaluationError`] into an `evaluation.finished` event.
//! Numbers, message texts and the order of checks follow Keptn's lighthouse-service closely, because
//! users compare scores and messages between Keptn and Keelson and quality gates must not flip when
//! switching.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use super::slo::{Objective, Slo};
use crate::model::verdict::TaskResult;

/// Message of the value lighthouse invents for an objective whose SLI the provider did not return.
pub const NO_VALUE_MESSAGE: &str = "no value received from SLI provider";

/// One SLI value as reported by a provider (`get-sli.finished` `indicatorValues[]`) and echoed in results.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SliValue {
    #[serde(default, deserialize_with = "null_as_default")]
    pub metric: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: f64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub compared_value: f64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SliTarget {
    #[serde(default, deserialize_with = "null_as_default")]
    pub criteria: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub target_value: f64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub violated: bool,
}

/// One entry of `evaluation.indicatorResults`.
///
/// Decoding is lenient (absent or null fields read as zero values) because earlier evaluations come from the
/// datastore and may have been written by older Keptn versions, which Go decodes without complaint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IndicatorResult {
    #[serde(default, deserialize_with = "null_as_default")]
    pub score: f64,
    #[serde(default)]
    pub value: Option<SliValue>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub display_name: String,
    #[serde(default)]
    pub pass_targets: Option<Vec<SliTarget>>,
    #[serde(default)]
    pub warning_targets: Option<Vec<SliTarget>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub key_sli: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// What an evaluation produced; the caller maps it onto `evaluation.finished` (§4.5 steps 9–11).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Goes into both `data.result` and `evaluation.result`.
    pub result: TaskResult,
    pub score: f64,
    /// `None` only when the SLO has no objectives (serialised as `null`, like Keptn).
    pub indicator_results: Option<Vec<IndicatorResult>>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum EvaluationError {
    /// A criterion that does not parse: the caller reports status succeeded, result fail, message
    /// "error with <objective>: <cause>" (this error's Display).
    #[error("error with {objective}: {cause}")]
    Criteria {
        /// displayName, or sli when displayName is empty.
        objective: String,
        cause: String,
    },
    /// total_score missing/unparseable: the caller reports an errored evaluation with this message
    /// ("no target score defined", "could not parse pass target percentage", "could not parse warning target
    /// percentage").
    #[error("{0}")]
    TotalScore(String),
}

/// Scores `values` (the provider's indicatorValues) against `slo`, comparing with `previous` = the
/// indicatorResults of earlier evaluations, newest first (spec §4.6 last bullet, §4.7–4.10).
///
/// An SLO without objectives yields score 0 and no indicator results; its result and message come from the
/// total-score rules with a maximum score of 100, as in lighthouse. The caller must still apply §4.5 step 10
/// (`result: fail`, message "lighthouse failed because no SLO objective was provided"), since that override
/// also depends on the get-sli outcome.
pub fn evaluate(
    slo: &Slo,
    values: Vec<SliValue>,
    previous: &[Vec<IndicatorResult>],
) -> Result<Outcome, EvaluationError> {
    let mut unused = values;
    let mut results = Vec::with_capacity(slo.objectives.len());
    let mut maximum_score = 0.0;
    let mut key_sli_failure: Option<String> = None;

    for objective in &slo.objectives {
        if !objective.pass.is_empty() {
            maximum_score += f64::from(objective.weight);
        }
        // Consuming the value is what makes a second objective on the same SLI see "no value", and what leaves
        // only unrequested SLIs for the "additional SLIs" message.
        let value = unused.iter().position(|v| v.metric == objective.sli).map(|i| unused.remove(i));
        let history = aggregate(&successful_history(previous, &objective.sli), &slo.comparison.aggregate_function);

        if objective.pass.is_empty() {
            results.push(IndicatorResult {
                score: 0.0,
                value,
                display_name: objective.display_name.clone(),
                pass_targets: Some(Vec::new()),
                warning_targets: non_empty(all_violated(&objective.warning, history)),
                key_sli: false,
                status: "info".to_string(),
            });
            continue;
        }

        let mut value = match value {
            Some(v) if v.success => v,
            missing => {
                let value = missing.unwrap_or_else(|| SliValue {
                    metric: objective.sli.clone(),
                    value: 0.0,
                    compared_value: 0.0,
                    success: false,
                    message: Some(NO_VALUE_MESSAGE.to_string()),
                });
                if objective.key_sli && key_sli_failure.is_none() {
                    key_sli_failure = Some(key_sli_message(objective, value.message.as_deref().unwrap_or("")));
                }
                results.push(IndicatorResult {
                    score: 0.0,
                    value: Some(value),
                    display_name: objective.display_name.clone(),
                    pass_targets: non_empty(all_violated(&objective.pass, history)),
                    warning_targets: non_empty(all_violated(&objective.warning, history)),
                    key_sli: false,
                    status: "fail".to_string(),
                });
                continue;
            }
        };

        let (passed, pass_targets) =
            check_sets(&objective.pass, &mut value, history).map_err(|cause| EvaluationError::Criteria {
                objective: if objective.display_name.is_empty() {
                    objective.sli.clone()
                } else {
                    objective.display_name.clone()
                },
                cause: cause.to_string(),
            })?;
        // A broken warning criterion only costs the warning verdict; lighthouse never aborts for it.
        let (warned, warning_targets) = if objective.warning.is_empty() {
            (false, None)
        } else {
            match check_sets(&objective.warning, &mut value, history) {
                Ok((warned, targets)) => (warned, non_empty(targets)),
                Err(_) => (false, None),
            }
        };

        let weight = f64::from(objective.weight);
        let (status, score) = if passed {
            ("pass", weight)
        } else if warned {
            ("warning", 0.5 * weight)
        } else {
            if objective.key_sli && key_sli_failure.is_none() {
                key_sli_failure = Some(key_sli_message(objective, "failed evaluation with score 0.000000"));
            }
            ("fail", 0.0)
        };
        results.push(IndicatorResult {
            score,
            value: Some(value),
            display_name: objective.display_name.clone(),
            pass_targets: non_empty(pass_targets),
            warning_targets,
            key_sli: objective.key_sli,
            status: status.to_string(),
        });
    }

    let message = if unused.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = unused.iter().map(|v| v.metric.as_str()).collect();
        format!(
            "Lighthouse received additional SLIs, which are not specified as SLO: {} . Please consider using them as an SLO.",
            names.join(", ")
        )
    };

    if slo.objectives.is_empty() {
        // Lighthouse skips the "nothing to score → 100" shortcut here, so the thresholds still apply to 0.
        return total_score(slo, 0.0, 100.0, None, message, None);
    }
    if maximum_score == 0.0 {
        return Ok(Outcome { result: TaskResult::Pass, score: 100.0, indicator_results: Some(results), message });
    }
    // Only objectives that reported pass targets count, mirroring lighthouse (info objectives score 0 anyway).
    let achieved: f64 =
        results.iter().filter(|r| r.pass_targets.as_ref().is_some_and(|t| !t.is_empty())).map(|r| r.score).sum();
    total_score(slo, achieved, maximum_score, key_sli_failure, message, Some(results))
}

fn key_sli_message(objective: &Objective, reason: &str) -> String {
    format!("Evaluation failed due to key_sli objective '{}': {}", objective.display_name, reason)
}

fn total_score(
    slo: &Slo,
    achieved: f64,
    maximum: f64,
    key_sli_failure: Option<String>,
    message: String,
    indicator_results: Option<Vec<IndicatorResult>>,
) -> Result<Outcome, EvaluationError> {
    // Same operation order as lighthouse: 100·(1/3) is 33.33333333333333 while 100·1/3 is 33.333333333333336.
    let score = 100.0 * (achieved / maximum);
    let target = slo.total_score.as_ref().filter(|t| !t.pass.is_empty());
    let Some(target) = target else {
        return Err(EvaluationError::TotalScore("no target score defined".to_string()));
    };
    let pass = parse_percentage(&target.pass)
        .ok_or_else(|| EvaluationError::TotalScore("could not parse pass target percentage".to_string()))?;

    let outcome = |result, message| Outcome { result, score, indicator_results, message };
    if score >= pass && key_sli_failure.is_none() {
        return Ok(outcome(TaskResult::Pass, message));
    }
    if let (Some(warning), None) = (&target.warning, &key_sli_failure) {
        let warning = parse_percentage(warning)
            .ok_or_else(|| EvaluationError::TotalScore("could not parse warning target percentage".to_string()))?;
        return Ok(if score >= warning {
            outcome(
                TaskResult::Warning,
                format!(
                    "Evaluation returned a warning: the calculated score of {} is close to the warning target value of {}",
                    go_float(score),
                    go_float(warning)
                ),
            )
        } else {
            outcome(
                TaskResult::Fail,
                format!(
                    "Evaluation failed since the calculated score of {} is below the warning value of {}",
                    go_float(score),
                    go_float(warning)
                ),
            )
        });
    }
    if let Some(reason) = key_sli_failure {
        return Ok(outcome(TaskResult::Fail, reason));
    }
    Ok(outcome(
        TaskResult::Fail,
        format!(
            "Evaluation failed since the calculated score of {} is below the target value of {}",
            go_float(score),
            go_float(pass)
        ),
    ))
}

fn parse_percentage(text: &str) -> Option<f64> {
    go_parse_float(text.strip_suffix('%').unwrap_or(text))
}

fn non_empty(targets: Vec<SliTarget>) -> Option<Vec<SliTarget>> {
    // Go leaves a slice nil when nothing was appended, which Keptn serialises as null rather than [].
    if targets.is_empty() {
        None
    } else {
        Some(targets)
    }
}

/// Values of earlier results for `sli` that a comparison may use; failed measurements would skew the baseline.
fn successful_history(previous: &[Vec<IndicatorResult>], sli: &str) -> Vec<f64> {
    previous
        .iter()
        .flatten()
        .filter_map(|r| r.value.as_ref())
        .filter(|v| v.metric == sli && v.success)
        .map(|v| v.value)
        .collect()
}

/// The baseline comparisons are measured against; `None` means "nothing to compare with", which lets every
/// comparison criterion pass so a first evaluation is not failed for lack of history.
fn aggregate(values: &[f64], function: &str) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    // An unknown function still counts as a baseline (of 0), exactly as lighthouse behaves.
    Some(match function {
        "avg" => values.iter().sum::<f64>() / values.len() as f64,
        "p50" => percentile(values, 0.5),
        "p90" => percentile(values, 0.9),
        "p95" => percentile(values, 0.95),
        _ => 0.0,
    })
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let pos = p * (n + 1) as f64;
    if pos < 1.0 {
        sorted[0]
    } else if pos >= n as f64 {
        sorted[n - 1]
    } else {
        let index = pos.floor() as usize;
        let (lower, upper) = (sorted[index - 1], sorted[index]);
        lower + (pos - pos.floor()) * (upper - lower)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operator {
    Le,
    Lt,
    Eq,
    Ge,
    Gt,
}

impl Operator {
    fn holds(self, measured: f64, target: f64) -> bool {
        match self {
            Operator::Le => measured <= target,
            Operator::Lt => measured < target,
            Operator::Eq => measured == target,
            Operator::Ge => measured >= target,
            Operator::Gt => measured > target,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Fixed,
    Percent { increase: bool },
    Absolute { increase: bool },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Criterion {
    operator: Operator,
    kind: Kind,
    amount: f64,
}

const INVALID_CRITERIA: &str = "invalid criteria string";
const INVALID_TARGET: &str = "could not parse criteria target value";

impl Criterion {
    fn parse(text: &str) -> Result<Criterion, &'static str> {
        static SHAPE: OnceLock<Regex> = OnceLock::new();
        // ASCII digits only: Go's RE2 `\d` never matches other scripts' digits.
        let shape = SHAPE.get_or_init(|| Regex::new(r"^[<|=>]{1,2}[+-]?[0-9]*\.?[0-9]*%?").expect("valid regex"));
        let compact = text.replace(' ', "");
        if !shape.is_match(&compact) {
            return Err(INVALID_CRITERIA);
        }
        // Longest operators first where they share a prefix, so "<=" is not read as "<" followed by "=".
        let operators =
            [("<=", Operator::Le), ("<", Operator::Lt), ("=", Operator::Eq), (">=", Operator::Ge), (">", Operator::Gt)];
        // The shape check admits a leading '|'; such a string has no operator and its remainder never parses.
        let (operator, rest) = operators
            .iter()
            .find_map(|(symbol, op)| compact.strip_prefix(symbol).map(|rest| (*op, rest)))
            .ok_or(INVALID_TARGET)?;

        let (percent, rest) = match rest.strip_suffix('%') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        // A sign means "relative to the baseline", which is why a negative fixed threshold cannot be written.
        let (signed, increase, rest) = if let Some(rest) = rest.strip_prefix('-') {
            (true, false, rest)
        } else if let Some(rest) = rest.strip_prefix('+') {
            (true, true, rest)
        } else {
            (false, true, rest)
        };
        let amount = go_parse_float(rest).ok_or(INVALID_TARGET)?;
        let kind = if percent {
            Kind::Percent { increase }
        } else if signed {
            Kind::Absolute { increase }
        } else {
            Kind::Fixed
        };
        Ok(Criterion { operator, kind, amount })
    }

    fn is_comparison(&self) -> bool {
        self.kind != Kind::Fixed
    }

    /// Target value and verdict for `measured`; `None` history satisfies comparisons with a target of 0.
    fn check(&self, measured: f64, history: Option<f64>) -> (f64, bool) {
        let target = match (self.kind, history) {
            (Kind::Fixed, _) => self.amount,
            (_, None) => return (0.0, true),
            (Kind::Percent { increase: true }, Some(a)) => (a * (100.0 + self.amount)) / 100.0,
            (Kind::Percent { increase: false }, Some(a)) => (a * (100.0 - self.amount)) / 100.0,
            (Kind::Absolute { increase: true }, Some(a)) => a + self.amount,
            (Kind::Absolute { increase: false }, Some(a)) => a - self.amount,
        };
        (target, self.operator.holds(measured, target))
    }
}

/// Evaluates OR-ed sets of AND-ed criteria. Every criterion is checked, even after the outcome is known, so
/// the result lists every violated target.
fn check_sets(
    sets: &[Vec<String>],
    value: &mut SliValue,
    history: Option<f64>,
) -> Result<(bool, Vec<SliTarget>), &'static str> {
    let mut any_set_holds = false;
    let mut targets = Vec::new();
    for set in sets {
        let mut set_holds = true;
        for text in set {
            let criterion = Criterion::parse(text)?;
            // Recorded for fixed thresholds too, so the bridge can show the baseline next to every value.
            value.compared_value = history.unwrap_or(0.0);
            let (target_value, holds) = criterion.check(value.value, history);
            set_holds &= holds;
            targets.push(SliTarget { criteria: text.clone(), target_value, violated: !holds });
        }
        any_set_holds |= set_holds;
    }
    Ok((any_set_holds, targets))
}

/// Targets for an objective that could not be judged: everything is reported violated, comparisons against the
/// bare baseline because there is no measured value to apply the +/−/% to. Unparseable criteria are left out.
fn all_violated(sets: &[Vec<String>], history: Option<f64>) -> Vec<SliTarget> {
    sets.iter()
        .flatten()
        .filter_map(|text| {
            let criterion = Criterion::parse(text).ok()?;
            let target_value = if criterion.is_comparison() { history.unwrap_or(0.0) } else { criterion.amount };
            Some(SliTarget { criteria: text.clone(), target_value, violated: true })
        })
        .collect()
}

/// Go's `strconv.ParseFloat`: like Rust's parser except that out-of-range values are errors rather than
/// infinities, and a sign before NaN is rejected. (Go's hexadecimal float literals are not supported.)
fn go_parse_float(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    let lower = text.to_ascii_lowercase();
    if value.is_infinite() && !lower.contains("inf") {
        return None;
    }
    if value.is_nan() && (lower.starts_with('+') || lower.starts_with('-')) {
        return None;
    }
    Some(value)
}

/// Formats like Go's `%v` for float64 (shortest round-trip digits, `%e` style when the decimal exponent is
/// below -4 or at least 6, two-digit exponents), because these numbers appear in user-facing messages that
/// must read the same as Keptn's.
fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` always has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is an integer");
    if value != 0.0 && !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
#[path = "scoring_tests.rs"]
mod tests;
