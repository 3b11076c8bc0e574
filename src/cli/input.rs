//! Reading the command line's values: `k=v` pairs, dotted paths, short event types, URL components.

use serde_json::{Map, Value};

use super::error::CliError;

/// `k=v` pairs (labels, literals) as a map; a pair without `=` is an error naming the flag.
pub fn key_values(flag: &str, pairs: &[String]) -> Result<Map<String, Value>, CliError> {
    let mut map = Map::new();
    for pair in pairs.iter().filter(|pair| !pair.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| CliError::Usage(format!("invalid {flag} '{pair}': expected key=value")))?;
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(map)
}

/// `a.b=c` pairs as nested JSON (`{"a": {"b": "c"}}`), as Keptn's `--values` and `--data` do.
pub fn dotted_values(flag: &str, pairs: &[String]) -> Result<Value, CliError> {
    let mut root = Value::Object(Map::new());
    for (path, value) in key_values(flag, pairs)? {
        let mut node = &mut root;
        let parts: Vec<&str> = path.split('.').collect();
        if parts.iter().any(|part| part.is_empty()) {
            return Err(CliError::Usage(format!("invalid {flag} '{path}': empty key in the path")));
        }
        for part in &parts[..parts.len() - 1] {
            let object = node.as_object_mut().expect("only objects are descended into");
            let child = object.entry((*part).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            node = child;
        }
        node.as_object_mut().expect("only objects are descended into").insert(parts[parts.len() - 1].to_owned(), value);
    }
    Ok(root)
}

/// `evaluation.finished` → `sh.keptn.event.evaluation.finished`.
pub fn full_event_type(given: &str) -> String {
    if given.starts_with("sh.keptn.") {
        given.to_owned()
    } else {
        format!("{}{given}", crate::model::event_type::PREFIX)
    }
}

/// Percent-encodes one path or query component.
pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_values_nest() {
        let values = dotted_values("--values", &["a.b=c".into(), "a.d=e".into(), "top=1".into()]).unwrap();
        assert_eq!(values, json!({ "a": { "b": "c", "d": "e" }, "top": "1" }));
        assert!(dotted_values("--values", &["novalue".into()]).is_err());
        assert!(dotted_values("--values", &["a..b=c".into()]).is_err());
    }

    #[test]
    fn labels_and_event_types() {
        assert_eq!(
            key_values("--labels", &["k=v".into(), "x=".into()]).unwrap(),
            json!({ "k": "v", "x": "" }).as_object().unwrap().clone()
        );
        assert!(key_values("--labels", &["=v".into()]).is_err());
        assert_eq!(full_event_type("approval.triggered"), "sh.keptn.event.approval.triggered");
        assert_eq!(full_event_type("sh.keptn.event.dev.delivery.finished"), "sh.keptn.event.dev.delivery.finished");
    }
}
