//! Tests of preparing structured (`v1beta1`) requests: rendering, checks, `options`, and error texts.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::services::webhook::curl::TEMPLATED;
use crate::services::webhook::test_support::context;

fn structured(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    payload: Option<&str>,
    options: Option<&str>,
) -> RequestSpec {
    RequestSpec::Structured {
        url: url.into(),
        method: method.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        payload: payload.map(Into::into),
        options: options.map(Into::into),
    }
}

#[test]
fn prepares_structured_requests() {
    let spec = structured(
        "https://hooks.example.com/services/{{.env.token}}",
        "POST",
        &[("Content-Type", "application/json"), ("X-Project", "{{.data.project}}")],
        Some(r#"{"text":"{{.data.evaluation.result}} {{.data.evaluation.score}}"}"#),
        Some("--max-time 10 -k --connect-timeout=2.5 -s"),
    );
    let request = prepare(&spec, &context()).unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.url.as_str(), "https://hooks.example.com/services/s3cr3t");
    assert_eq!(
        request.headers,
        vec![("Content-Type".to_string(), "application/json".to_string()), ("X-Project".into(), "sockshop".into())]
    );
    assert_eq!(request.body.as_deref(), Some(r#"{"text":"pass 92.5"}"#));
    assert_eq!(request.max_time, Some(Duration::from_secs(10)));
    assert_eq!(request.connect_timeout, Some(Duration::from_millis(2500)));
    assert!(request.insecure);
    // Debug output must not show the secret in the URL path.
    assert!(!format!("{request:?}").contains("s3cr3t"));
}

#[test]
fn structured_defaults_without_options() {
    let request = prepare(&structured("http://example.com:8080/x?a=1", "GET", &[], None, None), &context()).unwrap();
    assert_eq!(request.method, "GET");
    assert_eq!(request.url.port(), Some(8080));
    assert!(request.headers.is_empty());
    assert_eq!(request.body, None);
    assert_eq!((request.max_time, request.connect_timeout, request.insecure), (None, None, false));
    // A body without a content type gets curl's default one.
    let request = prepare(&structured("https://e.com", "PUT", &[], Some("a=b"), Some("-m 0")), &context()).unwrap();
    assert_eq!(request.headers, vec![("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string())]);
    assert_eq!(request.max_time, None, "0 means no limit in curl");
}

#[test]
fn structured_method_must_be_allowed() {
    for method in ["post", "OPTIONS", "TRACE", " GET", "{{.data.method}}"] {
        let err = prepare(&structured("https://e.com", method, &[], None, None), &context()).unwrap_err();
        assert_eq!(err, RequestError::Method(format!("{method:?}")));
    }
    for method in ALLOWED_METHODS {
        assert_eq!(prepare(&structured("https://e.com", method, &[], None, None), &context()).unwrap().method, *method);
    }
    let err = prepare(&structured("https://e.com", "post", &[], None, None), &context()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"method "post" is not allowed; use one of GET, HEAD, POST, PUT, PATCH, DELETE (uppercase)"#
    );
}

#[test]
fn structured_options_are_limited() {
    let ctx = context();
    let options_err =
        |options: &str| prepare(&structured("https://e.com", "GET", &[], None, Some(options)), &ctx).unwrap_err();
    assert_eq!(
        options_err("-o /tmp/x"),
        RequestError::RefusedOption { flag: "-o".into(), reason: "it writes the response to a local file" }
    );
    assert_eq!(
        options_err("--output=x").to_string(),
        "curl option --output is refused: it writes the response to a local file"
    );
    assert_eq!(
        options_err("-F a=@/etc/passwd").to_string(),
        "curl option -F is refused: multipart forms can read local files"
    );
    assert_eq!(options_err("--verbose"), RequestError::UnsupportedOption("--verbose".into()));
    assert_eq!(options_err("--verbose").to_string(), "unsupported curl option --verbose");
    assert_eq!(
        options_err("-H 'X-A: b'").to_string(),
        "curl option -H cannot be used in `options`; use the request's headers field instead"
    );
    assert_eq!(
        options_err("--request PUT"),
        RequestError::OptionNotInOptions { flag: "--request".into(), field: "method" }
    );
    assert_eq!(options_err("-d x"), RequestError::OptionNotInOptions { flag: "-d".into(), field: "payload" });
    assert_eq!(
        options_err("https://other.example.com"),
        RequestError::ArgumentInOptions("\"https://other.example.com\"".into())
    );
    assert_eq!(options_err("--max-time"), RequestError::MissingValue("--max-time".into()));
    assert_eq!(
        options_err("--max-time ten").to_string(),
        r#"invalid value "ten" for curl option --max-time: expected a number of seconds"#
    );
    assert!(matches!(
        options_err("-m -1"),
        RequestError::InvalidOptionValue { reason: "expected a non-negative number of seconds", .. }
    ));
    assert!(matches!(options_err("-m inf"), RequestError::InvalidOptionValue { .. }));
    assert!(matches!(
        options_err("--insecure=yes"),
        RequestError::InvalidOptionValue { reason: "this option takes no value", .. }
    ));
    assert_eq!(
        options_err("--max-time '10"),
        RequestError::Tokenize { what: "options", reason: "missing closing quote".into() }
    );
}

#[test]
fn structured_templates_cannot_inject_flags() {
    let ctx = json!({"data": {"x": "x' -o /etc/passwd '"}, "env": {}});
    let spec = structured(
        "https://e.com/hook",
        "POST",
        &[("X-Value", "{{.data.x}}")],
        Some(r#"{"v":"{{.data.x}}"}"#),
        Some("--max-time 5"),
    );
    let request = prepare(&spec, &ctx).unwrap();
    assert_eq!(request.body.as_deref(), Some(r#"{"v":"x' -o /etc/passwd '"}"#));
    assert_eq!(request.headers[0], ("X-Value".to_string(), "x' -o /etc/passwd '".to_string()));
    assert_eq!(request.max_time, Some(Duration::from_secs(5)));
}

#[test]
fn structured_header_values_cannot_add_lines() {
    let ctx = json!({"env": {"token": "abc\r\nX-Evil: 1"}});
    let spec = structured("https://e.com", "GET", &[("Authorization", "Bearer {{.env.token}}")], None, None);
    let err = prepare(&spec, &ctx).unwrap_err();
    assert_eq!(err.to_string(), r#"invalid header "Authorization": the value contains control characters"#);
    let spec = structured("https://e.com", "GET", &[("Bad Name", "v")], None, None);
    assert!(matches!(prepare(&spec, &ctx), Err(RequestError::InvalidHeader { .. })));
    // An empty rendered value drops the header, as curl would.
    let ctx = json!({"env": {"token": ""}});
    let spec = structured("https://e.com", "GET", &[("X-Token", "{{.env.token}}")], None, None);
    assert!(prepare(&spec, &ctx).unwrap().headers.is_empty());
}

#[test]
fn structured_errors_never_echo_rendered_text() {
    let ctx = json!({"env": {"token": "s3cr3t"}, "data": {}});
    let err = prepare(&structured("{{.env.token}}/x", "GET", &[], None, None), &ctx).unwrap_err();
    assert_eq!(err.to_string(), r#"invalid request URL "{{.env.token}}/x": relative URL without a base"#);
    let err = prepare(&structured("ftp://e.com/{{.env.token}}", "GET", &[], None, None), &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid request URL "ftp://e.com/{{.env.token}}": only http and https URLs are allowed"#
    );
    let err = prepare(&structured("https://e.com/{{.data.missing}}", "GET", &[], None, None), &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"could not render the URL "https://e.com/{{.data.missing}}": template: map has no entry for key "missing" (evaluating .data.missing)"#
    );
    let err = prepare(&structured("https://e.com", "GET", &[], None, Some("{{.env.token}}")), &ctx).unwrap_err();
    assert_eq!(err, RequestError::ArgumentInOptions(TEMPLATED.into()));
    let err = prepare(&structured("https://e.com", "GET", &[], Some("{{if .x}}"), None), &ctx).unwrap_err();
    assert_eq!(err.to_string(), "could not render the payload: unsupported template action: {{if .x}}");
}
