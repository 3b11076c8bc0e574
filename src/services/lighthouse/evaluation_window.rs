//! The time window an `evaluation.triggered` event asks lighthouse to evaluate (spec §4.4 step 3).
//!
//! Pure: the caller passes the current time, so windows relative to "now" are testable.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::clock::{keptn_time, parse_keptn_time};
use crate::model::duration::parse_signed_go_duration;
use crate::model::evaluation_window::{self as rules, WindowError};

/// The error when the event carries neither an evaluation window nor a test window; Keptn's exact text.
pub const NO_WINDOW: &str = "evaluation.triggered event does not contain evaluation timeframe";

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
    let given = |text: &str| !text.is_empty();
    rules::shape(given(start), given(end), given(timeframe)).map_err(|e| message(e).to_owned())?;
    // Go's whole signed range, as in Keptn: a negative frame fails the one-minute check.
    let frame = given(timeframe)
        .then(|| parse_signed_go_duration(timeframe).map_err(|e| format!("could not parse provided timeframe: {e}")))
        .transpose()?;
    let start = given(start).then(|| timestamp(start)).transpose()?;
    let end = given(end).then(|| timestamp(end)).transpose()?;
    rules::bounds(start, end, frame, now).map_err(|error| message(error).to_owned())
}

/// Lighthouse's wording of each broken rule.
fn message(error: WindowError) -> &'static str {
    match error {
        WindowError::StartAlone => "no timeframe or end date provided",
        WindowError::EndAndTimeframe => "'end' and 'timeframe' are mutually exclusive",
        WindowError::EndWithoutStart => "start date is required when using an end date",
        WindowError::TooShort => "end date must be at least 1 minute after start date",
        WindowError::OutOfRange => "evaluation timeframe is out of range",
    }
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
