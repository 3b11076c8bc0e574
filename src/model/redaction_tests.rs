//! Tests of hiding secret values in messages and responses.

use super::*;

#[test]
fn redacts_secret_values() {
    assert_eq!(redact("token s3cr3t in s3cr3t", &["s3cr3t"]), "token *** in ***");
    assert_eq!(redact("my password and pass", &["pass", "password"]), "my *** and ***");
    assert_eq!(redact("xabcdy", &["abc", "bcd"]), "x***y");
    assert_eq!(redact("aaaa-b", &["aa"]), "***-b");
    assert_eq!(redact("nothing here", &["", "zzz"]), "nothing here");
    assert_eq!(redact("clé=ünïcode!", &["ünïcode"]), "clé=***!");
    assert_eq!(redact("", &["x"]), "");
}

#[test]
fn redacts_secret_values_anywhere_in_a_response() {
    let mut response = serde_json::json!({
        "echo": "Bearer s3cr3t", "headers": ["a", "x-s3cr3t-y"], "nested": { "s3cr3t": 1, "n": 5 }
    });
    redact_value(&mut response, &["s3cr3t"]);
    assert_eq!(
        response,
        serde_json::json!({ "echo": "Bearer ***", "headers": ["a", "x-***-y"], "nested": { "***": 1, "n": 5 } })
    );
    assert!(!response.to_string().contains("s3cr3t"));
}
