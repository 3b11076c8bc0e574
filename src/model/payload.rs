//! Event payloads passed along a sequence: the merge rule and the `.triggered` payload of a task.

use serde_json::{Map, Value};

/// Merges `newer` into `older`: maps merge recursively, anything else takes the newer value.
///
/// Keptn keeps the *older* number or boolean and concatenates arrays; Keelson lets the newer value win
/// everywhere (see `docs/compatibility.md`), so a score or a list reported by a later task replaces the
/// earlier one.
pub fn merge(older: &mut Value, newer: &Value) {
    match (older, newer) {
        (Value::Object(older), Value::Object(newer)) => {
            for (key, value) in newer {
                match older.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        older.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (older, newer) => *older = newer.clone(),
    }
}

/// A JSON object view of `value`, replacing non-objects with an empty object.
pub fn as_object_mut(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    value.as_object_mut().expect("just made an object")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_recursively_and_newer_values_win() {
        let mut older = json!({
            "project": "p", "score": 1, "flag": true, "list": [1, 2],
            "deployment": { "uri": "a", "keep": "x" }, "mixed": "text"
        });
        merge(
            &mut older,
            &json!({ "score": 2, "flag": false, "list": [3], "deployment": { "uri": "b" }, "mixed": { "now": "map" }, "new": 1 }),
        );
        assert_eq!(
            older,
            json!({
                "project": "p", "score": 2, "flag": false, "list": [3],
                "deployment": { "uri": "b", "keep": "x" }, "mixed": { "now": "map" }, "new": 1
            })
        );
    }
}
