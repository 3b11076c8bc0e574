//! The shipyard file (`spec.keptn.sh/0.2.x`): parsing and the validation a project create or update runs.
//!
//! Keptn decodes shipyards leniently and ignores unknown keys; Keelson rejects them, because a misspelt
//! `triggeredOn` or `tasks` silently changes what a project does (see `docs/compatibility.md`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::duration::{parse_go_duration, DurationError};
use super::names::{validate_stage_name, NameError};

/// The `apiVersion` prefix every shipyard carries.
pub const API_VERSION_PREFIX: &str = "spec.keptn.sh/";
/// Stage names that would collide with the repository's project branch.
pub const RESERVED_STAGE_NAMES: &[&str] = &["master"];
/// Name of the sequence every stage has even when its shipyard does not define it.
pub const BUILTIN_EVALUATION_SEQUENCE: &str = "evaluation";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Shipyard {
    pub api_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    pub spec: ShipyardSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipyardSpec {
    #[serde(default)]
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    #[serde(default)]
    pub sequences: Vec<Sequence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sequence {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggered_on: Vec<Trigger>,
    #[serde(default)]
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Task {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<serde_json::Value>,
}

/// Why a shipyard was refused. Each message reads well after `provided shipyard file is not valid: `.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShipyardError {
    #[error("could not parse shipyard: {0}")]
    Syntax(String),
    #[error("apiVersion '{0}' is not supported: it must be spec.keptn.sh/0.2.0 or later")]
    UnsupportedVersion(String),
    #[error("shipyard must contain at least one stage")]
    NoStages,
    #[error("invalid stage name: {0}")]
    StageName(#[from] NameError),
    #[error("stage name '{0}' is reserved")]
    ReservedStage(String),
    #[error("stage '{0}' is defined more than once")]
    DuplicateStage(String),
    #[error("sequence in stage '{stage}' has an empty name")]
    EmptySequenceName { stage: String },
    #[error("task in sequence '{sequence}' of stage '{stage}' has an empty name")]
    EmptyTaskName { stage: String, sequence: String },
    #[error("task '{task}' in stage '{stage}' has an invalid triggeredAfter: {reason}")]
    TriggeredAfter { stage: String, task: String, reason: DurationError },
    #[error("name '{0}' must not contain '.': Keptn event types are split on dots")]
    DottedName(String),
}

/// Parses and validates a shipyard from YAML text.
pub fn parse(yaml: &str) -> Result<Shipyard, ShipyardError> {
    let shipyard: Shipyard = serde_yaml_ng::from_str(yaml).map_err(|error| ShipyardError::Syntax(error.to_string()))?;
    validate(&shipyard)?;
    Ok(shipyard)
}

/// Checks the rules of a valid shipyard (see the module docs and `spec/keptn-shipyard-controller.md` §1.2).
pub fn validate(shipyard: &Shipyard) -> Result<(), ShipyardError> {
    if !version_is_supported(&shipyard.api_version) {
        return Err(ShipyardError::UnsupportedVersion(shipyard.api_version.clone()));
    }
    if shipyard.spec.stages.is_empty() {
        return Err(ShipyardError::NoStages);
    }
    let mut seen = BTreeSet::new();
    for stage in &shipyard.spec.stages {
        validate_stage_name(&stage.name)?;
        if RESERVED_STAGE_NAMES.contains(&stage.name.as_str()) {
            return Err(ShipyardError::ReservedStage(stage.name.clone()));
        }
        if !seen.insert(stage.name.as_str()) {
            return Err(ShipyardError::DuplicateStage(stage.name.clone()));
        }
        for sequence in &stage.sequences {
            validate_sequence(stage, sequence)?;
        }
    }
    Ok(())
}

fn validate_sequence(stage: &Stage, sequence: &Sequence) -> Result<(), ShipyardError> {
    if sequence.name.is_empty() {
        return Err(ShipyardError::EmptySequenceName { stage: stage.name.clone() });
    }
    if sequence.name.contains('.') {
        return Err(ShipyardError::DottedName(sequence.name.clone()));
    }
    for task in &sequence.tasks {
        if task.name.is_empty() {
            return Err(ShipyardError::EmptyTaskName { stage: stage.name.clone(), sequence: sequence.name.clone() });
        }
        if task.name.contains('.') {
            return Err(ShipyardError::DottedName(task.name.clone()));
        }
        if let Some(value) = &task.triggered_after {
            if let Err(reason) = parse_go_duration(value) {
                return Err(ShipyardError::TriggeredAfter {
                    stage: stage.name.clone(),
                    task: task.name.clone(),
                    reason,
                });
            }
        }
    }
    Ok(())
}

/// Keptn's version rule: strip `spec.keptn.sh/`, parse leniently (`0.2`, `v0.2.0`, `0.2.3`), require
/// `>= 0.2` and no pre-release suffix.
pub fn version_is_supported(api_version: &str) -> bool {
    let version = api_version.strip_prefix(API_VERSION_PREFIX).unwrap_or(api_version);
    let version = version.strip_prefix('v').unwrap_or(version);
    let mut parts = version.split('.');
    let mut numbers = [0u64; 3];
    for (index, slot) in numbers.iter_mut().enumerate() {
        match parts.next() {
            Some(part) if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) => {
                let Ok(number) = part.parse() else { return false };
                *slot = number;
            }
            None if index > 0 => break,
            _ => return false,
        }
    }
    if parts.next().is_some() {
        return false;
    }
    let [major, minor, _patch] = numbers;
    major > 0 || minor >= 2
}

/// The version string reported as `shipyardVersion`.
pub fn shipyard_version(shipyard: &Shipyard) -> &str {
    &shipyard.api_version
}

impl Shipyard {
    pub fn stage_names(&self) -> impl Iterator<Item = &str> {
        self.spec.stages.iter().map(|stage| stage.name.as_str())
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.spec.stages.iter().find(|stage| stage.name == name)
    }

    /// Stages whose sequences, when finished, trigger a sequence of `stage` (excluding `stage` itself).
    pub fn parent_stages(&self, stage: &str) -> Vec<String> {
        let Some(target) = self.stage(stage) else { return Vec::new() };
        let mut parents = BTreeSet::new();
        for sequence in &target.sequences {
            for trigger in &sequence.triggered_on {
                if let Some(parent) = trigger.event.split('.').next() {
                    if parent != stage && !parent.is_empty() {
                        parents.insert(parent.to_owned());
                    }
                }
            }
        }
        parents.into_iter().collect()
    }

    /// Whether `other` has exactly the same set of stage names (order may differ).
    pub fn has_same_stages(&self, other: &Shipyard) -> bool {
        let mine: BTreeSet<&str> = self.stage_names().collect();
        let theirs: BTreeSet<&str> = other.stage_names().collect();
        mine == theirs && self.spec.stages.len() == other.spec.stages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
metadata:
  name: shipyard-sockshop
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
              properties:
                deploymentstrategy: direct
            - name: test
              triggeredAfter: 10m
    - name: hardening
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
              selector:
                match:
                  result: pass
          tasks:
            - name: deployment
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: hardening.delivery.finished
          tasks:
            - name: approval
"#;

    #[test]
    fn parses_a_complete_shipyard() {
        let shipyard = parse(VALID).expect("valid shipyard");
        assert_eq!(shipyard.stage_names().collect::<Vec<_>>(), ["dev", "hardening", "production"]);
        let task = &shipyard.spec.stages[0].sequences[0].tasks[0];
        assert_eq!(task.properties.as_ref().unwrap()["deploymentstrategy"], "direct");
        assert_eq!(shipyard.parent_stages("hardening"), ["dev"]);
        assert_eq!(shipyard.parent_stages("production"), ["hardening"]);
        assert!(shipyard.parent_stages("dev").is_empty());
    }

    #[test]
    fn version_rule_matches_keptn() {
        let cases = [
            ("spec.keptn.sh/0.2.0", true),
            ("spec.keptn.sh/0.2.4", true),
            ("spec.keptn.sh/0.2", true),
            ("spec.keptn.sh/v0.2.0", true),
            ("0.2.0", true),
            ("spec.keptn.sh/1.0.0", true),
            ("spec.keptn.sh/0.1.7", false),
            ("spec.keptn.sh/0.2.0-alpha", false),
            ("spec.keptn.sh/", false),
            ("spec.keptn.sh/abc", false),
            ("spec.keptn.sh/0.2.0.1", false),
        ];
        for (version, expected) in cases {
            assert_eq!(version_is_supported(version), expected, "version {version}");
        }
    }

    fn rejects(yaml: &str) -> ShipyardError {
        parse(yaml).expect_err("shipyard must be rejected")
    }

    #[test]
    fn rejects_invalid_shipyards() {
        assert!(matches!(
            rejects("apiVersion: spec.keptn.sh/0.1.7\nspec:\n  stages:\n  - name: dev\n"),
            ShipyardError::UnsupportedVersion(_)
        ));
        assert_eq!(rejects("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages: []\n"), ShipyardError::NoStages);
        assert_eq!(rejects("apiVersion: spec.keptn.sh/0.2.0\nspec: {}\n"), ShipyardError::NoStages);
        assert!(matches!(
            rejects("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: Dev\n"),
            ShipyardError::StageName(_)
        ));
        assert!(matches!(
            rejects("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: ''\n"),
            ShipyardError::StageName(_)
        ));
        assert_eq!(
            rejects("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: master\n"),
            ShipyardError::ReservedStage("master".into())
        );
        assert_eq!(
            rejects("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: dev\n  - name: dev\n"),
            ShipyardError::DuplicateStage("dev".into())
        );
        assert!(matches!(
            rejects("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: dev\n    sequence: []\n"),
            ShipyardError::Syntax(_)
        ));
        assert!(matches!(
            rejects("apiVersion: spec.keptn.sh/0.2.0\nspecs:\n  stages:\n  - name: dev\n"),
            ShipyardError::Syntax(_)
        ));
        assert!(matches!(rejects("not: [valid"), ShipyardError::Syntax(_)));
        assert!(matches!(
            rejects(
                "apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: dev\n    sequences:\n    - name: d\n      tasks:\n      - name: t\n        triggeredAfter: soon\n"
            ),
            ShipyardError::TriggeredAfter { .. }
        ));
        let too_long = rejects(
            "apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: dev\n    sequences:\n    - name: d\n      tasks:\n      - name: t\n        triggeredAfter: 100000000000h\n",
        );
        assert!(matches!(&too_long, ShipyardError::TriggeredAfter { reason: DurationError::TooLong(_), .. }));
        assert!(too_long.to_string().contains("longer than the maximum"), "{too_long}");
    }

    #[test]
    fn stage_set_comparison_ignores_order() {
        let a = parse("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: dev\n  - name: prod\n").unwrap();
        let b = parse("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: prod\n  - name: dev\n").unwrap();
        let c = parse("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: dev\n").unwrap();
        assert!(a.has_same_stages(&b));
        assert!(!a.has_same_stages(&c));
    }
}
