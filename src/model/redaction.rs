//! Secret values hidden in what the built-in services report (webhook and job executor): failure
//! messages and the responses kept in `.finished` events.

use serde_json::Value;

/// Replaces every secret value inside the strings of `value` (a response kept in an event).
pub fn redact_value(value: &mut Value, secrets: &[&str]) {
    if secrets.iter().all(|secret| secret.is_empty()) {
        return;
    }
    match value {
        Value::String(text) if secrets.iter().any(|secret| !secret.is_empty() && text.contains(secret)) => {
            *text = redact(text, secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact_value(item, secrets)),
        Value::Object(fields) => {
            let keys_with_secrets: Vec<String> = fields
                .keys()
                .filter(|key| secrets.iter().any(|secret| !secret.is_empty() && key.contains(secret)))
                .cloned()
                .collect();
            for key in keys_with_secrets {
                if let Some(field) = fields.remove(&key) {
                    fields.insert(redact(&key, secrets), field);
                }
            }
            fields.values_mut().for_each(|field| redact_value(field, secrets));
        }
        _ => {}
    }
}

/// Replaces every occurrence of each non-empty secret value in `text` with `***`.
///
/// All occurrences of all secrets are marked first and each run of marked text becomes one `***`, so
/// secrets that overlap or contain one another are hidden completely (replacing one secret after another
/// could leave the tail of an overlapping one visible).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut hidden = vec![false; text.len()];
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let mut from = 0;
        while let Some(found) = text[from..].find(secret) {
            let start = from + found;
            hidden[start..start + secret.len()].iter_mut().for_each(|h| *h = true);
            // Step one character, not the whole match, so overlapping occurrences are found too.
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut in_secret = false;
    for (i, c) in text.char_indices() {
        if hidden[i] {
            if !in_secret {
                out.push_str("***");
            }
            in_secret = true;
        } else {
            in_secret = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[path = "redaction_tests.rs"]
mod tests;
