//! Fuzzing of every parser of untrusted input: CloudEvents, shipyard, SLO, `webhook.yaml` (both
//! versions, with its request templates and curl translation), `remediation.yaml`, resource URIs,
//! durations, evaluation timestamps and datastore filters. Each must answer — a value or an error with
//! a message — quickly, and never panic.
//!
//! The saved corpus in `tests/fuzz/corpus/<target>/` (inputs that once broke something, and seeds) is
//! replayed on every run; proptest then generates `PROPTEST_CASES` inputs per target (256 by default).
//! A longer bounded run: `PROPTEST_CASES=20000 cargo test --release --test fuzz_parsers`.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

/// The longest one parser may take on one input, generously above what any of them needs.
const PER_INPUT: Duration = Duration::from_secs(2);

const TARGETS: &[&str] =
    &["event", "shipyard", "slo", "webhook", "remediation", "uri", "duration", "timestamp", "filter"];

/// Feeds `input` to the parser `target`; panics (failing the test) on a panic, an empty error or a
/// slow answer.
fn run(target: &str, input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let started = Instant::now();
    let outcome: Result<(), String> = match target {
        "event" => event(input),
        "shipyard" => keelson::model::shipyard::parse(&text).map(drop).map_err(|e| e.to_string()),
        "slo" => keelson::services::lighthouse::slo::parse(&text).map(drop).map_err(|e| e.to_string()),
        "webhook" => webhook(&text),
        "remediation" => keelson::model::remediation::parse(&text).map(drop),
        "uri" => keelson::resources::uri::parse(&text).map(drop).map_err(|e| e.to_string()),
        "duration" => duration(&text),
        "timestamp" => timestamp(&text),
        "filter" => keelson::store::query::parse_filter(&text).map(drop),
        other => panic!("unknown fuzz target {other}"),
    };
    if let Err(message) = outcome {
        assert!(!message.trim().is_empty(), "{target}: an error without a message for {text:?}");
    }
    assert!(started.elapsed() < PER_INPUT, "{target}: {:?} for {} bytes", started.elapsed(), input.len());
}

fn event(input: &[u8]) -> Result<(), String> {
    let raw: Value = serde_json::from_slice(input).map_err(|e| e.to_string())?;
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    keelson::model::incoming::accept(raw, "id".into(), now).map(drop).map_err(|refusal| format!("{refusal:?}"))
}

/// Parses the file, then renders every request against an event, as the webhook service does.
fn webhook(text: &str) -> Result<(), String> {
    let config = keelson::services::webhook::config::parse(text).map_err(|e| e.to_string())?;
    let context = json!({
        "type": "sh.keptn.event.x.triggered", "shkeptncontext": "c",
        "data": { "project": "p", "stage": "s", "service": "c", "labels": { "a": "{{.env.x}}" } },
        "env": { "x": "secret" },
    });
    for hook in &config.webhooks {
        for request in &hook.requests {
            if let Err(error) = keelson::services::webhook::requests::prepare(request, &context) {
                assert!(!error.to_string().is_empty());
            }
        }
    }
    Ok(())
}

fn duration(text: &str) -> Result<(), String> {
    use keelson::model::duration::{parse_go_duration, parse_human_duration, parse_signed_go_duration, MAX_DURATION};
    for parsed in [parse_go_duration(text), parse_human_duration(text)] {
        match parsed {
            Ok(duration) => assert!(duration <= MAX_DURATION, "{text:?} parsed beyond the bound"),
            Err(error) => assert!(!error.to_string().is_empty()),
        }
    }
    if let Err(error) = parse_signed_go_duration(text) {
        assert!(!error.to_string().is_empty());
    }
    Ok(())
}

/// An evaluation window from untrusted event data, with the text as every field in turn.
fn timestamp(text: &str) -> Result<(), String> {
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let windows = [
        json!({ "evaluation": { "start": text, "end": "2026-01-01T00:00:00Z" } }),
        json!({ "evaluation": { "start": text, "timeframe": "87840h" } }),
        json!({ "evaluation": { "start": "2024-01-01T00:00:00Z", "end": text } }),
        json!({ "evaluation": { "timeframe": text } }),
        json!({ "test": { "start": text, "end": text } }),
    ];
    for data in windows {
        let _ = keelson::services::lighthouse::evaluation_window::window(&data, now);
    }
    Ok(())
}

#[test]
fn the_saved_corpus_is_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    let mut replayed = 0;
    for target in TARGETS {
        let entries = std::fs::read_dir(root.join(target)).unwrap_or_else(|e| panic!("corpus of {target}: {e}"));
        for entry in entries {
            let path = entry.unwrap().path();
            run(target, &std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len(), "every target has a corpus");
}

/// Text made of the pieces a parser of `target` looks for, so generated inputs get past the first check.
fn pieces(target: &str) -> Vec<&'static str> {
    let yaml = vec![
        "\n",
        "  ",
        "- ",
        ": ",
        "name",
        "apiVersion",
        "spec.keptn.sh/0.2.2",
        "kind",
        "Shipyard",
        "spec",
        "stages",
        "sequences",
        "tasks",
        "triggeredOn",
        "triggeredAfter",
        "event",
        "selector",
        "match",
        "result",
        "dev",
        "delivery",
        "&a ",
        "*a",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "'",
        "100000000000h",
        "1.5h",
        "-1s",
        "~",
        "!!binary ",
        "objectives",
        "sli",
        "pass",
        "warning",
        "criteria",
        "<=+10%",
        ">-1e308",
        "weight",
        "key_sli",
        "total_score",
        "comparison",
        "webhooks",
        "type",
        "subscriptionID",
        "requests",
        "url",
        "method",
        "payload",
        "headers",
        "envFrom",
        "secretRef",
        "curl -X POST",
        " -H ",
        " -d @",
        " --url ",
        "{{.data.project}}",
        "{{.env.x}}",
        "{{",
        "}}",
        "webhookconfig.keptn.sh/v1beta1",
        "webhookconfig.keptn.sh/v1alpha1",
        "remediations",
        "problemType",
        "actionsOnOpen",
        "action",
        "spec.keptn.sh/0.1.4",
        "sendFinished",
    ];
    match target {
        "event" => vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"type\"",
            "\"source\"",
            "\"data\"",
            "\"triggeredid\"",
            "\"shkeptncontext\"",
            "\"id\"",
            "\"time\"",
            "\"sh.keptn.event.dev.delivery.triggered\"",
            "\"sh.keptn.event.deployment.finished\"",
            "\"project\"",
            "\"stage\"",
            "\"service\"",
            "null",
            "1e999",
            "-0",
            "true",
            "\"\\u0000\"",
            "\"ci\"",
            "\"result\"",
            "\"pass\"",
        ],
        "uri" => vec!["/", ".", "..", ".git", ".GIT", ".gitmodules", "~", "\\", "\0", "a", "x.yaml", " ", "%2F", "é"],
        "duration" | "timestamp" => vec![
            "0",
            "1",
            "9",
            ".",
            "-",
            "+",
            "h",
            "m",
            "s",
            "ms",
            "us",
            "µs",
            "ns",
            "d",
            "days",
            " ",
            "e",
            "99999999999",
            "T",
            "Z",
            ":",
            "2024-01-01",
            "T00:00:00",
            ".000Z",
            "+01:00",
            "262143",
        ],
        "filter" => vec!["data.", "project", ":", ",", " ", "AND", "x", ".", "$", "[", "]", "\"", "*"],
        _ => yaml,
    }
}

fn input_for(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let pieces = pieces(target);
    let structured = proptest::collection::vec(proptest::sample::select(pieces), 0..64)
        .prop_map(|parts| parts.concat().into_bytes());
    let bytes = proptest::collection::vec(any::<u8>(), 0..256);
    prop_oneof![3 => structured, 1 => bytes]
}

macro_rules! fuzz_targets {
    ($($name:ident => $target:literal),* $(,)?) => {
        proptest! {
            $(
                #[test]
                fn $name(input in input_for($target)) {
                    run($target, &input);
                }
            )*
        }
    };
}

fuzz_targets! {
    events_never_panic => "event",
    shipyards_never_panic => "shipyard",
    slos_never_panic => "slo",
    webhooks_never_panic => "webhook",
    remediations_never_panic => "remediation",
    resource_uris_never_panic => "uri",
    durations_never_panic => "duration",
    timestamps_never_panic => "timestamp",
    datastore_filters_never_panic => "filter",
}
