//! `remediation.yaml` (spec.keptn.sh/0.1.4) and the choice of the next remediation action.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const API_VERSION: &str = "spec.keptn.sh/0.1.4";

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RemediationFile {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub spec: RemediationSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RemediationSpec {
    #[serde(default)]
    pub remediations: Vec<Remediation>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Remediation {
    #[serde(rename = "problemType", default)]
    pub problem_type: String,
    #[serde(rename = "actionsOnOpen", default)]
    pub actions_on_open: Vec<Action>,
}

/// One action, as it travels in `get-action.finished` and `action.triggered`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Action {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub action: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
}

/// Parses a remediation file; anything but a valid 0.1.4 file is refused.
pub fn parse(text: &str) -> Result<RemediationFile, String> {
    let file: RemediationFile = serde_yaml_ng::from_str(text).map_err(|_| invalid())?;
    if file.api_version != API_VERSION {
        return Err(invalid());
    }
    Ok(file)
}

fn invalid() -> String {
    "Could not parse remediation.yaml file. Please validate it against the specification.".into()
}

/// The action to run at `index` for a problem: the remediation whose `problemType` equals the root
/// cause, else the problem title, else `default`. `Err` is the message of a `result: fail` answer.
pub fn next_action(
    file: &RemediationFile,
    root_cause: &str,
    problem_title: &str,
    index: usize,
) -> Result<Action, String> {
    let find = |problem_type: &str| file.spec.remediations.iter().find(|r| r.problem_type == problem_type);
    let (remediation, described) = if let Some(found) = find(root_cause) {
        (found, format!("root cause {root_cause}"))
    } else if let Some(found) = find(problem_title) {
        (found, format!("problem title {problem_title}"))
    } else if let Some(found) = find("default") {
        (found, "problem type default".to_owned())
    } else {
        return Err(format!(
            "unable to find action for root cause {root_cause}, problem title {problem_title} or problem type default"
        ));
    };
    remediation
        .actions_on_open
        .get(index)
        .cloned()
        .ok_or_else(|| format!("there is no action with index {index} for {described}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
apiVersion: spec.keptn.sh/0.1.4
kind: Remediation
metadata: {name: remediation-configuration}
spec:
  remediations:
    - problemType: Response time degradation
      actionsOnOpen:
        - name: Toggle feature flag
          action: togglefeature
          description: Toggle feature flag EnablePromotion from ON to OFF
          value: {EnablePromotion: "off"}
        - name: Scale up
          action: scaling
          value: "1"
    - problemType: cpu saturation
      actionsOnOpen:
        - {name: Restart, action: restart}
    - problemType: default
      actionsOnOpen:
        - {name: Page someone, action: page}
"#;

    #[test]
    fn actions_are_chosen_by_root_cause_then_title_then_default() {
        let file = parse(FILE).unwrap();
        assert_eq!(next_action(&file, "cpu saturation", "Response time degradation", 0).unwrap().action, "restart");
        let by_title = next_action(&file, "unknown", "Response time degradation", 0).unwrap();
        assert_eq!(by_title.action, "togglefeature");
        assert_eq!(by_title.value, serde_json::json!({ "EnablePromotion": "off" }));
        assert_eq!(
            next_action(&file, "unknown", "Response time degradation", 1).unwrap().value,
            serde_json::json!("1")
        );
        assert_eq!(next_action(&file, "x", "y", 0).unwrap().action, "page");
    }

    #[test]
    fn running_out_of_actions_or_matches_is_a_message() {
        let file = parse(FILE).unwrap();
        assert_eq!(
            next_action(&file, "", "Response time degradation", 2).unwrap_err(),
            "there is no action with index 2 for problem title Response time degradation"
        );
        let without_default = parse(&FILE.replace("problemType: default", "problemType: other")).unwrap();
        assert!(next_action(&without_default, "a", "b", 0).unwrap_err().starts_with("unable to find action"));
    }

    #[test]
    fn only_valid_0_1_4_files_are_read() {
        assert!(parse(&FILE.replace("0.1.4", "0.1.3")).is_err());
        assert!(parse("spec: [").is_err());
    }
}
