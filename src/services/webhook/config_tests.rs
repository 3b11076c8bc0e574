//! Tests of reading `webhook.yaml`: both versions, Keptn's defaults, and the refusals.

use super::*;

const V1BETA1: &str = r#"
apiVersion: webhookconfig.keptn.sh/v1beta1
kind: WebhookConfig
metadata:
  name: webhook-configuration
  labels: {anything: goes}
spec:
  webhooks:
    - type: sh.keptn.event.mytask.triggered
      subscriptionID: "0123456987"
      sendFinished: true
      envFrom:
        - name: secretKey
          secretRef: {name: my-webhook-secret, key: my-key}
      requests:
        - url: https://hooks.example.com/services/{{.env.secretKey}}
          method: POST
          headers: [{key: Content-Type, value: application/json}]
          payload: '{"text":"{{.data.evaluation.result}}"}'
          options: "--max-time 10"
        - url: https://example.com/ping
          method: GET
          payload: ""
          options: ""
    - type: sh.keptn.event.evaluation.finished
      subscriptionID: other
      sendStarted: false
      requests:
        - {url: "https://example.com", method: PUT}
"#;

#[test]
fn parses_v1beta1_with_defaults() {
    let config = parse(V1BETA1).unwrap();
    assert_eq!(config.webhooks.len(), 2);
    let first = &config.webhooks[0];
    assert_eq!(first.event_type, "sh.keptn.event.mytask.triggered");
    assert_eq!(first.subscription_id, "0123456987");
    assert!(first.send_started, "sendStarted defaults to true");
    assert!(first.send_finished);
    assert_eq!(
        first.env_from,
        vec![EnvFrom {
            name: "secretKey".into(),
            secret_name: "my-webhook-secret".into(),
            secret_key: "my-key".into()
        }]
    );
    assert_eq!(
        first.requests[0],
        RequestSpec::Structured {
            url: "https://hooks.example.com/services/{{.env.secretKey}}".into(),
            method: "POST".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            payload: Some(r#"{"text":"{{.data.evaluation.result}}"}"#.into()),
            options: Some("--max-time 10".into()),
        }
    );
    // Empty payload and options mean "none", as Keptn only adds them when non-empty.
    assert_eq!(
        first.requests[1],
        RequestSpec::Structured {
            url: "https://example.com/ping".into(),
            method: "GET".into(),
            headers: vec![],
            payload: None,
            options: None,
        }
    );
    let second = &config.webhooks[1];
    assert!(!second.send_started);
    assert!(!second.send_finished, "sendFinished defaults to false");
    assert!(second.env_from.is_empty());
}

#[test]
fn parses_v1alpha1_curl_requests() {
    let text = r#"
apiVersion: webhookconfig.keptn.sh/v1alpha1
kind: WebhookConfig
spec:
  webhooks:
    - type: sh.keptn.event.webhook.triggered
      subscriptionID: abc
      requests:
        - "curl --request POST https://example.com/{{.data.project}}"
"#;
    let config = parse(text).unwrap();
    let webhook = &config.webhooks[0];
    assert!(webhook.send_started);
    assert!(!webhook.send_finished);
    assert_eq!(
        webhook.requests,
        vec![RequestSpec::Curl("curl --request POST https://example.com/{{.data.project}}".into())]
    );
}

#[test]
fn unquoted_numeric_subscription_id_stays_text() {
    let text = "apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n    - type: t\n      subscriptionID: 0123456987\n      requests: [\"curl https://example.com\"]\n";
    assert_eq!(parse(text).unwrap().webhooks[0].subscription_id, "0123456987");
}

fn webhook_error(text: &str) -> (usize, String) {
    match parse(text) {
        Err(ConfigError::Webhook { index, message }) => (index, message),
        other => panic!("expected a webhook error, got {other:?}"),
    }
}

fn beta(webhooks: &str) -> String {
    format!("apiVersion: webhookconfig.keptn.sh/v1beta1\nspec:\n  webhooks:\n{webhooks}")
}

const GOOD_BETA: &str = "    - {type: t, subscriptionID: s, requests: [{url: 'https://e.com', method: GET}]}\n";

#[test]
fn rejects_wrong_or_missing_api_version() {
    let err = parse("apiVersion: webhookconfig.keptn.sh/v2\nspec: {webhooks: []}").unwrap_err();
    assert_eq!(err, ConfigError::ApiVersion("webhookconfig.keptn.sh/v2".into()));
    assert!(err.to_string().contains("expected \"webhookconfig.keptn.sh/v1beta1\""));
    assert_eq!(parse("spec: {webhooks: []}").unwrap_err(), ConfigError::ApiVersion(String::new()));
}

#[test]
fn rejects_missing_type_subscription_and_requests() {
    let (index, message) = webhook_error(&beta("    - {subscriptionID: s, requests: [{url: u, method: GET}]}\n"));
    assert_eq!((index, message.as_str()), (0, "`type` is required and must not be empty"));
    let (index, message) = webhook_error(&beta(&format!(
        "{GOOD_BETA}    - {{type: t, subscriptionID: '', requests: [{{url: u, method: GET}}]}}\n"
    )));
    assert_eq!((index, message.as_str()), (1, "`subscriptionID` is required and must not be empty"));
    let (_, message) = webhook_error(&beta("    - {type: t, subscriptionID: s}\n"));
    assert_eq!(message, "`requests` must contain at least one request");
    let (_, message) = webhook_error(&beta("    - {type: t, subscriptionID: s, requests: []}\n"));
    assert_eq!(message, "`requests` must contain at least one request");
}

#[test]
fn rejects_incomplete_v1beta1_requests() {
    let cases = [
        ("{url: '', method: GET}", "requests[0]: `url` is required and must not be empty"),
        ("{url: u}", "requests[0]: `method` is required and must not be empty"),
        ("{url: u, method: GET, headers: [{key: '', value: v}]}", "requests[0]: headers[0]: `key` must not be empty"),
        (
            "{url: u, method: GET, headers: [{key: A, value: b}, {key: X-Token}]}",
            "requests[0]: headers[1] (\"X-Token\"): `value` must not be empty",
        ),
        (
            "'curl https://e.com'",
            "requests[0]: webhookconfig.keptn.sh/v1beta1 requests must be objects with `url` and `method`",
        ),
    ];
    for (request, expected) in cases {
        let (index, message) =
            webhook_error(&beta(&format!("{GOOD_BETA}    - {{type: t, subscriptionID: s2, requests: [{request}]}}\n")));
        assert_eq!((index, message.as_str()), (1, expected), "for {request}");
    }
    let ok = parse(&beta("    - {type: t, subscriptionID: s, requests: [{url: u, method: GET}]}\n")).unwrap();
    assert_eq!(ok.webhooks.len(), 1);
}

#[test]
fn rejects_bad_v1alpha1_requests() {
    let alpha = |request: &str| {
        format!("apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n    - {{type: t, subscriptionID: s, requests: [{request}]}}\n")
    };
    let (_, message) = webhook_error(&alpha("{url: u, method: GET}"));
    assert_eq!(
        message,
        "requests[0]: webhookconfig.keptn.sh/v1alpha1 requests must be strings holding a `curl …` command"
    );
    let (_, message) = webhook_error(&alpha("'  '"));
    assert_eq!(message, "requests[0]: the curl command must not be empty");
}

#[test]
fn rejects_misspelt_keys_and_bad_yaml() {
    let err =
        parse(&beta("    - {type: t, subscriptionID: s, sendfinished: true, requests: [{url: u, method: GET}]}\n"))
            .unwrap_err();
    assert!(matches!(&err, ConfigError::Yaml(m) if m.contains("unknown field `sendfinished`")), "{err}");
    let (_, message) =
        webhook_error(&beta("    - {type: t, subscriptionID: s, requests: [{url: u, method: GET, body: x}]}\n"));
    assert!(message.starts_with("requests[0]: unknown field `body`"), "{message}");
    assert!(matches!(parse("apiVersion: [unclosed"), Err(ConfigError::Yaml(_))));
}

#[test]
fn finds_the_first_webhook_of_a_subscription() {
    let text = beta(
            "    - {type: a, subscriptionID: s1, requests: [{url: u, method: GET}]}\n    - {type: b, subscriptionID: s2, requests: [{url: u, method: GET}]}\n    - {type: c, subscriptionID: s2, requests: [{url: u, method: GET}]}\n",
        );
    let config = parse(&text).unwrap();
    assert_eq!(config.for_subscription("s2").unwrap().event_type, "b");
    assert_eq!(config.for_subscription("s1").unwrap().event_type, "a");
    assert!(config.for_subscription("s3").is_none());
    assert!(config.for_subscription("").is_none());
}
