//! Tests of reading `job/config.yaml` and matching events to its actions.

use super::*;
use serde_json::json;

const FULL: &str = r#"
apiVersion: v2
actions:
  - name: "Deploy with helm"
    events:
      - name: "sh.keptn.event.deployment.triggered"
        jsonpath:
          property: "$.data.deployment.deploymentstrategy"
          match: "direct"
    tasks:
      - name: "Run helm"
        image: "alpine/helm:3.7.2"
        files:
          - /helm
        env:
          - name: IMAGE
            value: "$.data.configurationChange.values.image"
            valueFrom: event
          - name: WHOLE
            value: "$.data"
            valueFrom: event
            as: yaml
          - name: registry
            valueFrom: secret
          - name: MODE
            value: fast
            valueFrom: string
        cmd: ["helm"]
        args: ["upgrade", "--install"]
        workingDir: /keptn
        maxPollDuration: 60
        resources:
          limits: { cpu: 1, memory: 512Mi }
        ttlSecondsAfterFinished: 600
        serviceAccount: deployer
        imagePullPolicy: IfNotPresent
        namespace: jobs
        securityContext: { runAsNonRoot: true }
        annotations: { team: delivery }
  - name: "Any test"
    silent: true
    events:
      - name: "sh.keptn.event.*.finished"
    tasks:
      - name: note
        cmd: ["true"]
"#;

fn event(event_type: &str, data: Value) -> Value {
    json!({ "type": event_type, "id": "e1", "shkeptncontext": "c1", "source": "s", "data": data })
}

#[test]
fn the_whole_format_is_read() {
    let config = parse(FULL).unwrap();
    assert_eq!(config.actions.len(), 2);
    let task = &config.actions[0].tasks[0];
    assert_eq!(task.cmd, vec!["helm"]);
    assert_eq!(task.args, vec!["upgrade", "--install"]);
    assert_eq!(task.files, vec!["/helm"]);
    assert_eq!(task.env.len(), 4);
    assert_eq!(task.env[2].value_from, ValueFrom::Secret);
    assert_eq!(task.max_duration(), Duration::from_secs(60));
    assert_eq!(
        task.ignored_settings(),
        vec![
            "image",
            "imagePullPolicy",
            "namespace",
            "resources",
            "securityContext",
            "serviceAccount",
            "ttlSecondsAfterFinished",
            "annotations"
        ]
    );
    assert!(config.actions[1].silent);
    assert_eq!(config.actions[1].tasks[0].max_duration(), DEFAULT_MAX_DURATION);
}

#[test]
fn events_match_by_type_pattern_and_jsonpath() {
    let config = parse(FULL).unwrap();
    let direct =
        event("sh.keptn.event.deployment.triggered", json!({ "deployment": { "deploymentstrategy": "direct" } }));
    assert_eq!(config.action_for(&direct, true).unwrap().name, "Deploy with helm");
    let blue_green =
        event("sh.keptn.event.deployment.triggered", json!({ "deployment": { "deploymentstrategy": "blue_green" } }));
    assert!(config.action_for(&blue_green, true).is_none());
    let missing = event("sh.keptn.event.deployment.triggered", json!({}));
    assert!(config.action_for(&missing, true).is_none());
    let finished = event("sh.keptn.event.test.finished", json!({}));
    assert_eq!(config.action_for(&finished, false).unwrap().name, "Any test");
    assert!(config.action_for(&event("sh.keptn.event.test.triggered", json!({})), true).is_none());
    // An answering action does not run again for the `.started`/`.finished` of its task.
    let started =
        event("sh.keptn.event.deployment.started", json!({ "deployment": { "deploymentstrategy": "direct" } }));
    let lenient =
        parse("apiVersion: v2\nactions:\n  - name: all\n    events: [{name: 'sh.keptn.event.deployment.*'}]\n")
            .unwrap();
    assert!(lenient.action_for(&started, false).is_none());
    assert!(lenient.action_for(&event("sh.keptn.event.deployment.triggered", json!({})), true).is_some());
    assert!(config.action_for(&started, false).is_none());
}

#[test]
fn conditions_compare_numbers_and_booleans_as_written() {
    let config = parse(
        "apiVersion: v2\nactions:\n  - name: a\n    events:\n      - name: x\n        jsonpath: { property: '$.data.n', match: '3' }\n    tasks: []\n",
    )
    .unwrap();
    assert!(config.action_for(&event("x", json!({ "n": 3 })), true).is_some());
    assert!(config.action_for(&event("x", json!({ "n": "3" })), true).is_some());
    assert!(config.action_for(&event("x", json!({ "n": 4 })), true).is_none());
    assert!(config.action_for(&event("x", json!({ "n": [3] })), true).is_none());
}

#[test]
fn bad_files_name_what_to_fix() {
    let cases = [
        ("actions: []", "apiVersion must be specified"),
        ("apiVersion: v1\nactions: []", "apiVersion v1 is not supported, use v2"),
        ("apiVersion: v2\nactions: [{name: a, tasks: [{name: t, cmd: [x], imagee: y}]}]", "unknown field `imagee`"),
        ("apiVersion: v2\nactions: [{name: a, events: [{name: '(unclosed'}]}]", "is not a regular expression"),
        (
            "apiVersion: v2\nactions: [{name: a, events: [{name: x, jsonpath: {property: '$$[', match: y}}]}]",
            "is not a JSONPath",
        ),
        (
            "apiVersion: v2\nactions: [{name: a, tasks: [{name: t, env: [{name: X, valueFrom: file}]}]}]",
            "unknown variant `file`",
        ),
        ("apiVersion: v2\nactions: {", "is not valid"),
        ("apiVersion: v2\nactions: [{name: a, tasks: [{name: t, env: [{name: X, value: 'data.x', valueFrom: event}]}]}]", "env X: 'data.x' is not a JSONPath"),
        ("apiVersion: v2\nactions: [{name: a, tasks: [{name: t, env: [{name: X, value: '$.data', valueFrom: event, as: toml}]}]}]", "'as: toml' is not known"),
        ("apiVersion: v2\nextra: 1", "unknown field `extra`"),
    ];
    for (text, expected) in cases {
        let error = parse(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn event_values_render_as_text_json_or_yaml() {
    let event = event("x", json!({ "image": "app:1", "values": { "replicas": 2 }, "list": [1, 2] }));
    assert_eq!(event_value("$.data.image", None, &event).unwrap(), "app:1");
    assert_eq!(event_value("$.data.values", None, &event).unwrap(), r#"{"replicas":2}"#);
    assert_eq!(event_value("$.data.values", Some("json"), &event).unwrap(), r#"{"replicas":2}"#);
    assert_eq!(event_value("$.data.values", Some("yaml"), &event).unwrap(), "replicas: 2\n");
    assert_eq!(event_value("$.data.list[1]", None, &event).unwrap(), "2");
    assert!(event_value("$.data.none", None, &event).unwrap_err().contains("matches nothing"));
    assert!(event_value("$.data.image", Some("toml"), &event).unwrap_err().contains("not known"));
    assert_eq!(event_value("$.data.image", Some("string"), &event).unwrap(), "app:1");
    assert!(event_value("data.image", None, &event).unwrap_err().contains("not a JSONPath"));
}

#[test]
fn a_broken_file_concerns_the_tasks_it_names() {
    let unknown_key = "apiVersion: v2\nactions:\n  - name: x\n    events: [{name: 'sh.keptn.event.deployment.triggered'}]\n    taks: []\n";
    assert!(may_concern(unknown_key, "sh.keptn.event.deployment.triggered", "deployment"));
    assert!(!may_concern(unknown_key, "sh.keptn.event.evaluation.triggered", "evaluation"));
    let not_yaml = "apiVersion: v2\nactions: [{name: deploy, events: [{name: sh.keptn.event.deployment.triggered}]";
    assert!(may_concern(not_yaml, "sh.keptn.event.deployment.triggered", "deployment"));
    assert!(!may_concern(not_yaml, "sh.keptn.event.approval.triggered", "approval"));
}
