//! Every record in the snapshot store carries a `schemaVersion`, so that a later release can recognise
//! (and migrate) what an earlier one wrote, and an earlier release refuses what it cannot read.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Version of the records this release writes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct VersionedRef<'a, T> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(flatten)]
    value: &'a T,
}

#[derive(Deserialize)]
struct Versioned<T> {
    /// Records written before versioning count as version 1.
    #[serde(rename = "schemaVersion", default = "first_version")]
    schema_version: u32,
    #[serde(flatten)]
    value: T,
}

fn first_version() -> u32 {
    1
}

/// The JSON of `value` (an object) with `schemaVersion` added.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(&VersionedRef { schema_version: SCHEMA_VERSION, value }).expect("records always serialise")
}

/// Reads a record written by [`encode`]; refuses versions this release does not know.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let record: Versioned<T> = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
    check(record.schema_version)?;
    Ok(record.value)
}

/// Refuses a `schemaVersion` this release cannot read.
pub fn check(version: u32) -> Result<(), String> {
    if version == 0 || version > SCHEMA_VERSION {
        return Err(format!("schemaVersion {version} is not readable by this release (reads 1..={SCHEMA_VERSION})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        name: String,
    }

    #[test]
    fn records_carry_their_version_and_newer_ones_are_refused() {
        let bytes = encode(&Record { name: "a".into() });
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json, serde_json::json!({ "schemaVersion": 1, "name": "a" }));
        assert_eq!(decode::<Record>(&bytes).unwrap(), Record { name: "a".into() });
        assert_eq!(decode::<Record>(br#"{"name":"old"}"#).unwrap().name, "old", "unversioned records are version 1");
        assert!(decode::<Record>(br#"{"schemaVersion":2,"name":"new"}"#).unwrap_err().contains("schemaVersion 2"));
    }
}
