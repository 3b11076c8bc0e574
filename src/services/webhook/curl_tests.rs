//! Tests of translating `curl …` command lines: flags, curl's defaults, refusals, and error texts.

use serde_json::json;

use super::*;
use crate::services::webhook::config::RequestSpec;
use crate::services::webhook::requests::prepare;
use crate::services::webhook::test_support::context;

fn curl(command: &str) -> Result<HttpRequest, RequestError> {
    prepare(&RequestSpec::Curl(command.into()), &context())
}

#[test]
fn translates_curl_commands() {
    let request = curl(
        r#"curl -X POST -H 'Content-Type: application/json' --header "X-Project: {{.data.project}}" -d '{"text": "score {{.data.evaluation.score}}"}' https://hooks.example.com/{{.env.token}}"#,
    )
    .unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.url.as_str(), "https://hooks.example.com/s3cr3t");
    assert_eq!(
        request.headers,
        vec![("Content-Type".to_string(), "application/json".to_string()), ("X-Project".into(), "sockshop".into())]
    );
    assert_eq!(request.body.as_deref(), Some(r#"{"text": "score 92.5"}"#));
    assert_eq!((request.max_time, request.connect_timeout, request.insecure), (None, None, false));
}

#[test]
fn curl_method_defaults_follow_curl() {
    let request = curl("curl https://e.com/a").unwrap();
    assert_eq!((request.method.as_str(), request.body.clone()), ("GET", None));
    let request = curl("curl -d x=1 --data y=2 --data-raw @literal https://e.com").unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.body.as_deref(), Some("x=1&y=2&@literal"));
    assert_eq!(request.headers, vec![("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string())]);
    let request = curl("curl -XPUT -d x https://e.com").unwrap();
    assert_eq!(request.method, "PUT");
}

#[test]
fn curl_long_forms_clusters_and_options() {
    let request = curl(
        "curl --request=PATCH --url=https://e.com/x -sSk --max-time 2.5 --connect-timeout=1 --fail-with-body -HX-A:b",
    )
    .unwrap();
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.url.as_str(), "https://e.com/x");
    assert!(request.insecure);
    assert_eq!(request.max_time, Some(Duration::from_millis(2500)));
    assert_eq!(request.connect_timeout, Some(Duration::from_secs(1)));
    assert_eq!(request.headers, vec![("X-A".to_string(), "b".to_string())]);
    let request = curl("curl -m5 -H 'X-Empty;' -H 'Accept:' \\\n  https://e.com").unwrap();
    assert_eq!(request.max_time, Some(Duration::from_secs(5)));
    assert_eq!(request.headers, vec![("X-Empty".to_string(), String::new())]);
}

#[test]
fn curl_refuses_file_access() {
    let refused = |command: &str| match curl(command) {
        Err(RequestError::RefusedOption { flag, .. }) => flag,
        other => panic!("{command}: expected a refusal, got {other:?}"),
    };
    assert_eq!(refused("curl -d @/etc/passwd https://e.com"), "-d");
    assert_eq!(refused("curl --data @file https://e.com"), "--data");
    assert_eq!(refused("curl --data-binary=@file https://e.com"), "--data-binary");
    assert_eq!(refused("curl -o /tmp/out https://e.com"), "-o");
    assert_eq!(refused("curl -o/tmp/out https://e.com"), "-o");
    assert_eq!(refused("curl -so out https://e.com"), "-o");
    assert_eq!(refused("curl --output out https://e.com"), "--output");
    assert_eq!(refused("curl --output-dir /tmp https://e.com"), "--output");
    assert_eq!(refused("curl -F f=@x https://e.com"), "-F");
    assert_eq!(refused("curl --form-string a=b https://e.com"), "--form");
    assert_eq!(refused("curl -T x https://e.com"), "-T");
    assert_eq!(refused("curl --upload-file x https://e.com"), "--upload-file");
    assert_eq!(refused("curl -K cfg https://e.com"), "-K");
    assert_eq!(refused("curl --config=cfg https://e.com"), "--config");
    assert_eq!(
        curl("curl -d @/etc/passwd https://e.com").unwrap_err().to_string(),
        "curl option -d is refused: a value starting with '@' reads a local file (use --data-raw for a literal '@')"
    );
}

#[test]
fn curl_rejects_other_flags_and_malformed_commands() {
    assert_eq!(curl("curl -v https://e.com").unwrap_err(), RequestError::UnsupportedOption("-v".into()));
    assert_eq!(curl("curl --location https://e.com").unwrap_err().to_string(), "unsupported curl option --location");
    assert_eq!(curl("wget https://e.com").unwrap_err(), RequestError::NotCurl);
    assert_eq!(curl("/usr/bin/curl https://e.com").unwrap_err(), RequestError::NotCurl);
    assert_eq!(curl("   ").unwrap_err(), RequestError::NotCurl);
    assert_eq!(
        curl("curl -d 'unclosed https://e.com").unwrap_err(),
        RequestError::Tokenize { what: "curl command", reason: "missing closing quote".into() }
    );
    assert_eq!(curl("curl -X POST").unwrap_err(), RequestError::NoUrl);
    assert_eq!(curl("curl https://e.com -H").unwrap_err(), RequestError::MissingValue("-H".into()));
    assert_eq!(
        curl("curl https://a.com https://b.com").unwrap_err(),
        RequestError::SecondUrl("\"https://b.com\"".into())
    );
    assert_eq!(curl("curl -X post https://e.com").unwrap_err(), RequestError::Method("\"post\"".into()));
    assert_eq!(
        curl("curl -H NoColon https://e.com").unwrap_err().to_string(),
        r#"invalid header "NoColon": curl headers are written as 'Name: value'"#
    );
}

#[test]
fn curl_urls_must_be_http() {
    assert_eq!(
        curl("curl example.com/path").unwrap_err().to_string(),
        r#"invalid request URL "example.com/path": relative URL without a base"#
    );
    assert_eq!(
        curl("curl ftp://e.com/file").unwrap_err().to_string(),
        r#"invalid request URL "ftp://e.com/file": only http and https URLs are allowed"#
    );
    assert!(matches!(curl("curl file:///etc/passwd"), Err(RequestError::InvalidUrl { .. })));
    assert!(matches!(curl("curl 'http://[::1'"), Err(RequestError::InvalidUrl { .. })));
}

#[test]
fn curl_errors_hide_templated_arguments() {
    let ctx = json!({"env": {"flag": "--s3cr3t", "url": "s3cr3t-host/x"}});
    let err = prepare(&RequestSpec::Curl("curl {{.env.flag}} https://e.com".into()), &ctx).unwrap_err();
    assert_eq!(err.to_string(), "unsupported curl option <templated value>");
    let err = prepare(&RequestSpec::Curl("curl {{.env.url}}".into()), &ctx).unwrap_err();
    assert_eq!(err.to_string(), "invalid request URL <templated value>: relative URL without a base");
    assert!(!err.to_string().contains("s3cr3t"));
}

#[test]
fn curl_quote_breakout_is_still_refused() {
    // In a raw command a templated value can break out of its quotes (the whole line is rendered
    // first, as in Keptn); the flag checks still stop it from writing files.
    let ctx = json!({"data": {"x": "x' -o /etc/passwd '"}});
    let err = prepare(&RequestSpec::Curl("curl -d '{{.data.x}}' https://e.com".into()), &ctx).unwrap_err();
    assert_eq!(
        err,
        RequestError::RefusedOption { flag: "-o".into(), reason: "it writes the response to a local file" }
    );
}
