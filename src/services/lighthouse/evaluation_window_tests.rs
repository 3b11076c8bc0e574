//! Tests of the evaluation window: Keptn's rules and messages, timestamps and timeframes.

use super::*;
use chrono::{TimeDelta, TimeZone};
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 6, 12, 0, 0).unwrap() + TimeDelta::milliseconds(345)
}

type Window = Result<(String, String), String>;

fn ok(start: &str, end: &str) -> Window {
    Ok((start.to_string(), end.to_string()))
}

#[test]
fn window_table() {
    let cases: Vec<(&str, Value, Window)> = vec![
        (
            "start and end",
            json!({"evaluation": {"start": "2024-05-06T10:00:00.000Z", "end": "2024-05-06T10:10:00.000Z"}}),
            ok("2024-05-06T10:00:00.000Z", "2024-05-06T10:10:00.000Z"),
        ),
        (
            "timeframe only ends now",
            json!({"evaluation": {"timeframe": "10m"}}),
            ok("2024-05-06T11:50:00.345Z", "2024-05-06T12:00:00.345Z"),
        ),
        (
            "start plus timeframe",
            json!({"evaluation": {"start": "2024-05-06T10:00:00Z", "timeframe": "1h30m"}}),
            ok("2024-05-06T10:00:00.000Z", "2024-05-06T11:30:00.000Z"),
        ),
        (
            "fractional hours",
            json!({"evaluation": {"start": "2024-05-06T10:00:00", "timeframe": "1.5h"}}),
            ok("2024-05-06T10:00:00.000Z", "2024-05-06T11:30:00.000Z"),
        ),
        (
            "RFC 3339 with offset is converted to UTC",
            json!({"evaluation": {"start": "2024-05-06T12:00:00+02:00", "end": "2024-05-06T12:05:00.123456+02:00"}}),
            ok("2024-05-06T10:00:00.000Z", "2024-05-06T10:05:00.123Z"),
        ),
        (
            "naive timestamps with a fraction",
            json!({"evaluation": {"start": "2024-05-06T10:00:00.5", "end": "2024-05-06T10:01:00.5"}}),
            ok("2024-05-06T10:00:00.500Z", "2024-05-06T10:01:00.500Z"),
        ),
        (
            "exactly one minute is enough",
            json!({"evaluation": {"start": "2024-05-06T10:00:00.000Z", "end": "2024-05-06T10:01:00.000Z"}}),
            ok("2024-05-06T10:00:00.000Z", "2024-05-06T10:01:00.000Z"),
        ),
        (
            "test window verbatim",
            json!({"test": {"start": "yesterday", "end": "today"}}),
            ok("yesterday", "today"),
        ),
        (
            "evaluation start alone falls back to the test window",
            json!({"evaluation": {"start": "2024-05-06T10:00:00Z"}, "test": {"start": "a", "end": "b"}}),
            ok("a", "b"),
        ),
        (
            "evaluation window wins over test window",
            json!({"evaluation": {"timeframe": "5m"}, "test": {"start": "a", "end": "b"}}),
            ok("2024-05-06T11:55:00.345Z", "2024-05-06T12:00:00.345Z"),
        ),
        ("nothing", json!({"project": "p"}), Err(NO_WINDOW.to_string())),
        ("nulls", json!({"evaluation": null, "test": {"start": "a", "end": null}}), Err(NO_WINDOW.to_string())),
        ("empty strings", json!({"evaluation": {"start": "", "end": "", "timeframe": ""}}), Err(NO_WINDOW.to_string())),
        ("only test start", json!({"test": {"start": "a"}}), Err(NO_WINDOW.to_string())),
        (
            "end with timeframe",
            json!({"evaluation": {"start": "2024-05-06T10:00:00Z", "end": "2024-05-06T11:00:00Z", "timeframe": "5m"}}),
            Err("'end' and 'timeframe' are mutually exclusive".to_string()),
        ),
        (
            "end without start",
            json!({"evaluation": {"end": "2024-05-06T11:00:00Z", "timeframe": "5m"}}),
            Err("'end' and 'timeframe' are mutually exclusive".to_string()),
        ),
        (
            "bad timeframe",
            json!({"evaluation": {"timeframe": "5 minutes"}}),
            Err("could not parse provided timeframe: unknown unit \" minutes\" in duration \"5 minutes\"".to_string()),
        ),
        (
            "timeframe shorter than a minute",
            json!({"evaluation": {"timeframe": "59s"}}),
            Err("end date must be at least 1 minute after start date".to_string()),
        ),
        (
            "negative timeframe",
            json!({"evaluation": {"timeframe": "-10m"}}),
            Err("end date must be at least 1 minute after start date".to_string()),
        ),
        (
            "end before start",
            json!({"evaluation": {"start": "2024-05-06T10:00:00Z", "end": "2024-05-06T09:00:00Z"}}),
            Err("end date must be at least 1 minute after start date".to_string()),
        ),
        (
            "59.999 seconds",
            json!({"evaluation": {"start": "2024-05-06T10:00:00.000Z", "end": "2024-05-06T10:00:59.999Z"}}),
            Err("end date must be at least 1 minute after start date".to_string()),
        ),
        (
            "unparseable start",
            json!({"evaluation": {"start": "06.05.2024", "timeframe": "5m"}}),
            Err("could not parse timestamp \"06.05.2024\": expected 2006-01-02T15:04:05.000Z, RFC 3339 or 2006-01-02T15:04:05".to_string()),
        ),
        (
            "unparseable end",
            json!({"evaluation": {"start": "2024-05-06T10:00:00Z", "end": "soon"}}),
            Err("could not parse timestamp \"soon\": expected 2006-01-02T15:04:05.000Z, RFC 3339 or 2006-01-02T15:04:05".to_string()),
        ),
        (
            "wrong types",
            json!({"evaluation": {"timeframe": 5}}),
            Err("evaluation.timeframe must be a string".to_string()),
        ),
        ("evaluation not an object", json!({"evaluation": "5m"}), Err("evaluation must be an object".to_string())),
        ("test not an object", json!({"test": []}), Err("test must be an object".to_string())),
        ("test field not a string", json!({"test": {"start": 1, "end": "b"}}), Err("test.start must be a string".to_string())),
    ];
    for (name, data, want) in cases {
        assert_eq!(window(&data, now()), want, "{name}");
    }
}

#[test]
fn validation_order_and_unreachable_start_only_branch() {
    // window() never reaches bounds() with a lone start (it falls back to the test window instead), but the
    // rule exists in Keptn's helper and is kept for anyone calling bounds() with such input.
    assert_eq!(bounds("2024-05-06T10:00:00Z", "", "", now()), Err("no timeframe or end date provided".to_string()));
    assert_eq!(
        bounds("", "2024-05-06T10:00:00Z", "", now()),
        Err("start date is required when using an end date".to_string())
    );
    // Validation happens before the timeframe is parsed.
    assert_eq!(bounds("x", "y", "bogus", now()), Err("'end' and 'timeframe' are mutually exclusive".to_string()));
}

#[test]
fn start_plus_timeframe_may_lie_in_the_future() {
    // Keptn does not clamp to now: the provider is asked for a window that has not fully happened yet.
    let data = json!({"evaluation": {"start": "2024-05-06T11:58:00.000Z", "timeframe": "10m"}});
    assert_eq!(window(&data, now()), ok("2024-05-06T11:58:00.000Z", "2024-05-06T12:08:00.000Z"));
}

#[test]
fn timeframes_use_gos_whole_range() {
    // Keptn reads the timeframe with Go's time.ParseDuration and bounds it only by Go's range.
    let data = json!({"evaluation": {"start": "2024-05-06T10:00:00Z", "timeframe": "100000h"}});
    assert_eq!(window(&data, now()), ok("2024-05-06T10:00:00.000Z", "2035-10-03T02:00:00.000Z"));
    let data = json!({"evaluation": {"timeframe": "9999999999999999999h"}});
    assert_eq!(
        window(&data, now()),
        Err("could not parse provided timeframe: invalid duration \"9999999999999999999h\"".to_string())
    );
    let data = json!({"evaluation": {"timeframe": "5"}});
    assert_eq!(
        window(&data, now()),
        Err("could not parse provided timeframe: missing unit in duration \"5\"".to_string())
    );
}
