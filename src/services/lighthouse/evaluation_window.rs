//! The time window an `evaluation.triggered` event asks lighthouse to evaluate (spec §4.4 step 3).
//!
//! Pure: the caller passes the current time, so windows relative to "now" are testable.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::model::clock::{keptn_time, parse_keptn_time};
use crate::model::duration::parse_signed_go_duration;

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
#[path = "evaluation_window_tests.rs"]
mod tests;
