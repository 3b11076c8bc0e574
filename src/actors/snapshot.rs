//! How actors' state is laid out in the [`SnapshotStore`](crate::store::SnapshotStore): one record per
//! execution (its state plus its outbox), one record per project for its pause flags. Records carry a
//! `schemaVersion` so a later release can read (and migrate) what an earlier one wrote.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::event::CloudEvent;
use crate::model::sequence::Execution;

pub use crate::store::versioned::SCHEMA_VERSION;
/// Prefix of every execution record: `execution/<project>/<execution id>`.
pub const EXECUTION_PREFIX: &str = "execution/";
/// Prefix of every project's control record: `sequence-control/<project>`.
pub const CONTROL_PREFIX: &str = "sequence-control/";

pub fn execution_key(project: &str, execution: &str) -> String {
    format!("{EXECUTION_PREFIX}{project}/{execution}")
}

/// The project a record key belongs to (`execution/<project>/…` or `sequence-control/<project>`).
pub fn project_of_key(key: &str) -> Option<&str> {
    if let Some(rest) = key.strip_prefix(EXECUTION_PREFIX) {
        return rest.split_once('/').map(|(project, _)| project);
    }
    key.strip_prefix(CONTROL_PREFIX).filter(|project| !project.is_empty())
}

pub fn control_key(project: &str) -> String {
    format!("{CONTROL_PREFIX}{project}")
}

/// An execution as stored, borrowed for writing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecordRef<'a> {
    pub schema_version: u32,
    pub execution: &'a Execution,
    /// Events the execution emitted that are not yet known to be in the history and on the bus; after
    /// a crash they are published again with the same ids.
    pub outbox: &'a [Arc<CloudEvent>],
    /// The execution ended with `triggeredOn` followers still to be started.
    pub chain_pending: bool,
}

/// An execution as stored, read back.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    pub schema_version: u32,
    pub execution: Execution,
    #[serde(default)]
    pub outbox: Vec<Arc<CloudEvent>>,
    #[serde(default)]
    pub chain_pending: bool,
}

/// A project's pause flags: `(keptn context, None)` pauses the context, `(context, Some(stage))` one stage.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlRecord {
    pub schema_version: u32,
    pub paused: Vec<(String, Option<String>)>,
}

impl ExecutionRecordRef<'_> {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an execution always serialises")
    }
}

/// Reads a stored execution; refuses records of a newer schema rather than misreading them.
pub fn decode_execution(bytes: &[u8]) -> Result<ExecutionRecord, String> {
    let record: ExecutionRecord = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
    crate::store::versioned::check(record.schema_version)?;
    Ok(record)
}

pub fn decode_control(bytes: &[u8]) -> Result<ControlRecord, String> {
    let record: ControlRecord = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
    crate::store::versioned::check(record.schema_version)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_a_newer_schema_are_refused() {
        let newer = br#"{"schemaVersion": 2, "paused": []}"#;
        assert!(decode_control(newer).unwrap_err().contains("schemaVersion 2"));
        let current = br#"{"schemaVersion": 1, "paused": [["ctx", null], ["ctx", "dev"]]}"#;
        let record = decode_control(current).unwrap();
        assert_eq!(record.paused, vec![("ctx".to_owned(), None), ("ctx".to_owned(), Some("dev".to_owned()))]);
    }

    #[test]
    fn record_keys_name_their_project() {
        assert_eq!(project_of_key(&execution_key("sockshop", "e1")), Some("sockshop"));
        assert_eq!(project_of_key(&control_key("sockshop")), Some("sockshop"));
        for other in ["project/sockshop", "execution/sockshop", "sequence-control/", "secret/x"] {
            assert_eq!(project_of_key(other), None, "{other}");
        }
    }
}
