//! The time window an `evaluation.triggered` event asks lighthouse to evaluate (spec §4.4 step 3).
//!
//! Pure: the caller passes the current time, so windows relative to "now" are testable.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use super::clock::{keptn_time, parse_keptn_time};
use super::duration::parse_signed_go_duration;

/// The error when the event carries neither an evaluation window nor a test window; Keptn's exact text.
pub const NO_WINDOW: &str = "evaluation.triggered event does not contain evaluation timeframe";

/// Keptn's timeframe when none is given. It is still parsed then, but with both `start` and `end` set (the only
/// way to get here without a timeframe) it never shapes the window.
const DEFAULT_TIMEFRAME: &str = "5m";

/// The evaluation window of an evaluation.triggered event's data (spec §4.4 step 3), as (start, end) strings.
///
/// Validation messages use Keptn's wording, so clients that show or match them behave the same.
pub fn window(data: &Value, now: DateTime<Utc>) -> Result<(String, String), String> {
    let evaluation = section(data, "evaluation")?;
    let start = text(evaluation, "evaluation", "start")?;
    let end = text(evaluation, "evaluation", "end")?;
    let timeframe = text(evaluation, "evaluation", "timeframe")?;

    if (!start.is_empty() && !end.is_empty()) || !timeframe.is_empty() {
        let (start, end) = bounds(start, end, timeframe, now)?;
        return Ok((keptn_time(start), keptn_time(end)));
    }

    // The test window comes from a test tool's own clock format, so it is passed on untouched.
    let test = section(data, "test")?;
    let test_start = text(test, "test", "start")?;
    let test_end = text(test, "test", "end")?;
    if !test_start.is_empty() && !test_end.is_empty() {
        return Ok((test_start.to_string(), test_end.to_string()));
    }
    Err(NO_WINDOW.to_string())
}

fn section<'a>(data: &'a Value, name: &str) -> Result<Option<&'a Value>, String> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(format!("{name} must be an object")),
    }
}

fn text<'a>(section: Option<&'a Value>, name: &str, field: &str) -> Result<&'a str, String> {
    match section.and_then(|s| s.get(field)) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("{name}.{field} must be a string")),
    }
}

fn bounds(
    start: &str,
    end: &str,
    timeframe: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    if !start.is_empty() && end.is_empty() && timeframe.is_empty() {
        return Err("no timeframe or end date provided".to_string());
    }
    if !end.is_empty() && !timeframe.is_empty() {
        return Err("'end' and 'timeframe' are mutually exclusive".to_string());
    }
    if !end.is_empty() && start.is_empty() {
        return Err("start date is required when using an end date".to_string());
    }

    let frame = if timeframe.is_empty() { DEFAULT_TIMEFRAME } else { timeframe };
    // Go's whole signed range, as in Keptn: a negative frame fails the one-minute check below.
    let frame = parse_signed_go_duration(frame).map_err(|e| format!("could not parse provided timeframe: {e}"))?;
    let out_of_range = || "evaluation timeframe is out of range".to_string();

    let from =
        if start.is_empty() { now.checked_sub_signed(frame).ok_or_else(out_of_range)? } else { timestamp(start)? };
    let to = if !end.is_empty() {
        timestamp(end)?
    } else if !start.is_empty() {
        // Validation guarantees a timeframe here: "start + timeframe" rather than "until now".
        from.checked_add_signed(frame).ok_or_else(out_of_range)?
    } else {
        now
    };

    if to.signed_duration_since(from) < TimeDelta::minutes(1) {
        return Err("end date must be at least 1 minute after start date".to_string());
    }
    Ok((from, to))
}

/// Parses a timestamp with the formats Keptn accepts ([`parse_keptn_time`]).
fn timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    parse_keptn_time(text).ok_or_else(|| {
        format!(
            "could not parse timestamp {text:?}: expected 2006-01-02T15:04:05.000Z, RFC 3339 or 2006-01-02T15:04:05"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
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
}
