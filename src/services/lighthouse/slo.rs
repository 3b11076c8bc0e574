//! `slo.yaml` as lighthouse reads it: objectives with their criteria, the comparison with earlier
//! evaluations, the total score thresholds, and the provider's filters, with lighthouse's defaults.
//!
//! Decoding follows Keptn's Go decoder (unknown keys ignored, scalars accepted where strings are
//! expected, `null` entries dropped), because the same file must mean the same quality gate in Keptn
//! and Keelson.

use serde::{Deserialize, Deserializer};
use thiserror::Error;

/// slo.yaml as parsed, with lighthouse's defaults applied (spec §4.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// Custom filters for the SLI provider, in file order so `get-sli.triggered` is reproducible.
    pub filter: Vec<(String, String)>,
    pub comparison: Comparison,
    pub objectives: Vec<Objective>,
    pub total_score: Option<TotalScore>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub compare_with: String,
    /// Kept as written; [`Slo::comparison_result_filter`] lower-cases it like lighthouse does.
    pub include_result_with_score: String,
    pub number_of_comparison_results: usize,
    pub aggregate_function: String,
}

/// The block lighthouse assumes when `comparison` is absent (or null) in slo.yaml.
impl Default for Comparison {
    fn default() -> Self {
        Comparison {
            compare_with: "single_result".to_string(),
            include_result_with_score: "all".to_string(),
            number_of_comparison_results: 1,
            aggregate_function: "avg".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub sli: String,
    pub display_name: String,
    /// OR of AND-sets of criteria strings, exactly as written (the original text is echoed in targets).
    pub pass: Vec<Vec<String>>,
    pub warning: Vec<Vec<String>>,
    pub weight: u32,
    pub key_sli: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TotalScore {
    /// May be empty when the file has a `total_score` block without `pass`; evaluation then fails as Keptn's does.
    pub pass: String,
    /// `None` also for an empty string, because lighthouse treats both as "no warning threshold".
    pub warning: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum SloParseError {
    #[error("invalid SLO file: {0}")]
    Yaml(String),
    /// Keptn would carry a negative weight into the score maths; a negative maximum score makes the result
    /// meaningless, so Keelson refuses the file instead.
    #[error("invalid SLO file: objective '{sli}' has negative weight {weight}")]
    NegativeWeight { sli: String, weight: i64 },
    #[error("invalid SLO file: comparison.number_of_comparison_results must not be negative (got {0})")]
    NegativeComparisonCount(i64),
}

/// Parses slo.yaml the way lighthouse does: unknown keys ignored, scalars accepted where strings are expected
/// (Go's YAML decoder does that), `null` objectives dropped, weight 0 or absent → 1, comparison defaults (§4.2).
pub fn parse(text: &str) -> Result<Slo, SloParseError> {
    // An empty document is a valid (if useless) SLO for Go's decoder, so it must not be an error here either.
    let raw: Option<RawSlo> = serde_yaml_ng::from_str(text).map_err(|e| SloParseError::Yaml(e.to_string()))?;
    let raw = raw.unwrap_or_default();

    let comparison = match raw.comparison {
        None => Comparison::default(),
        Some(c) => {
            let count = c.number_of_comparison_results.unwrap_or(0);
            if count < 0 {
                return Err(SloParseError::NegativeComparisonCount(count));
            }
            Comparison {
                // Not defaulted on purpose: an unknown value means "3 results" in §4.6, an empty one too.
                compare_with: c.compare_with.0,
                include_result_with_score: non_empty_or(c.include_result_with_score.0, "all"),
                number_of_comparison_results: if count == 0 { 3 } else { count as usize },
                aggregate_function: non_empty_or(c.aggregate_function.0, "avg"),
            }
        }
    };

    let mut objectives = Vec::new();
    for raw_objective in raw.objectives.unwrap_or_default().into_iter().flatten() {
        let weight = raw_objective.weight.unwrap_or(0);
        if weight < 0 {
            return Err(SloParseError::NegativeWeight { sli: raw_objective.sli.0, weight });
        }
        objectives.push(Objective {
            sli: raw_objective.sli.0,
            display_name: raw_objective.display_name.0,
            pass: criteria_sets(raw_objective.pass),
            warning: criteria_sets(raw_objective.warning),
            weight: if weight == 0 { 1 } else { u32::try_from(weight).unwrap_or(u32::MAX) },
            key_sli: raw_objective.key_sli.0,
        });
    }

    let total_score =
        raw.total_score.map(|t| TotalScore { pass: t.pass.0, warning: Some(t.warning.0).filter(|w| !w.is_empty()) });

    Ok(Slo { filter: raw.filter.0, comparison, objectives, total_score })
}

impl Slo {
    /// How many earlier evaluations to compare with (§4.6: 1 for single_result, number_of_comparison_results for
    /// several_results, else 3).
    pub fn comparison_count(&self) -> usize {
        match self.comparison.compare_with.as_str() {
            "single_result" => 1,
            "several_results" => self.comparison.number_of_comparison_results,
            _ => 3,
        }
    }

    /// The datastore filter term on data.result for earlier evaluations: None (all), Some("pass"),
    /// Some("pass,warning").
    pub fn comparison_result_filter(&self) -> Option<&'static str> {
        match self.comparison.include_result_with_score.to_lowercase().as_str() {
            "pass" => Some("pass"),
            "pass_or_warn" => Some("pass,warning"),
            _ => None,
        }
    }

    /// The SLI names to ask the provider for: every objective's sli, file order.
    pub fn indicators(&self) -> Vec<String> {
        self.objectives.iter().map(|o| o.sli.clone()).collect()
    }
}

fn non_empty_or(value: String, default: &str) -> String {
    if value.is_empty() {
        default.to_string()
    } else {
        value
    }
}

fn criteria_sets(raw: Option<Vec<Option<RawCriteriaSet>>>) -> Vec<Vec<String>> {
    // A null set still counts as a set (it keeps `pass` non-empty, as in Go); it simply has no criteria.
    raw.unwrap_or_default()
        .into_iter()
        .map(|set| set.and_then(|s| s.criteria).unwrap_or_default().into_iter().map(|c| c.0).collect())
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSlo {
    filter: Filter,
    comparison: Option<RawComparison>,
    objectives: Option<Vec<Option<RawObjective>>>,
    total_score: Option<RawTotalScore>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawComparison {
    compare_with: Text,
    include_result_with_score: Text,
    number_of_comparison_results: Option<i64>,
    aggregate_function: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawObjective {
    sli: Text,
    #[serde(rename = "displayName")]
    display_name: Text,
    pass: Option<Vec<Option<RawCriteriaSet>>>,
    warning: Option<Vec<Option<RawCriteriaSet>>>,
    weight: Option<i64>,
    key_sli: Flag,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCriteriaSet {
    criteria: Option<Vec<Text>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTotalScore {
    pass: Text,
    warning: Text,
}

/// A string field that, like Go's YAML decoder, also takes numbers and booleans (`pass: 90` means "90")
/// and reads `null` as empty.
#[derive(Default)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_yaml_ng::Value::deserialize(deserializer)? {
            serde_yaml_ng::Value::Null => Ok(Text(String::new())),
            other => scalar_text(&other).map(Text).ok_or_else(|| serde::de::Error::custom("expected a string")),
        }
    }
}

fn scalar_text(value: &serde_yaml_ng::Value) -> Option<String> {
    match value {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        serde_yaml_ng::Value::Null => Some(String::new()),
        _ => None,
    }
}

/// `key_sli`: YAML 1.2 booleans plus the YAML 1.1 words Go's decoder still accepts for bool fields.
#[derive(Default)]
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_yaml_ng::Value::deserialize(deserializer)? {
            serde_yaml_ng::Value::Null => Ok(Flag(false)),
            serde_yaml_ng::Value::Bool(b) => Ok(Flag(b)),
            serde_yaml_ng::Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "y" | "yes" | "on" | "true" => Ok(Flag(true)),
                "n" | "no" | "off" | "false" => Ok(Flag(false)),
                _ => Err(serde::de::Error::custom(format!("expected a boolean, got '{s}'"))),
            },
            _ => Err(serde::de::Error::custom("expected a boolean")),
        }
    }
}

/// The `filter` map, keeping file order (a `HashMap` would reorder customFilters between runs).
#[derive(Default)]
struct Filter(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_yaml_ng::Value::deserialize(deserializer)? {
            serde_yaml_ng::Value::Null => Ok(Filter(Vec::new())),
            serde_yaml_ng::Value::Mapping(map) => {
                let mut entries = Vec::with_capacity(map.len());
                for (key, value) in &map {
                    let key =
                        scalar_text(key).ok_or_else(|| serde::de::Error::custom("filter keys must be strings"))?;
                    let value =
                        scalar_text(value).ok_or_else(|| serde::de::Error::custom("filter values must be strings"))?;
                    entries.push((key, value));
                }
                Ok(Filter(entries))
            }
            _ => Err(serde::de::Error::custom("filter must be a map of strings")),
        }
    }
}

#[cfg(test)]
#[path = "slo_tests.rs"]
mod tests;
