//! The time window an `evaluation.triggered` event asks lighthouse to evaluate (spec §4.4 step 3).
//!
//! Pure: the caller passes the current time, so windows relative to "now" are testable.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde_json::Value;

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
        return Ok((keptn_timestamp(start), keptn_timestamp(end)));
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
    let frame = parse_signed_nanos(frame).map_err(|e| format!("could not parse provided timeframe: {e}"))?;
    let frame = TimeDelta::nanoseconds(frame);
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

/// Parses a timestamp with the formats Keptn accepts, in Keptn's order; zone-less times are UTC.
fn timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.3fZ") {
        return Ok(t.and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    // Go accepts fractional seconds after the seconds field even when the layout has none, hence `%.f`.
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    Err(format!(
        "could not parse timestamp {text:?}: expected 2006-01-02T15:04:05.000Z, RFC 3339 or 2006-01-02T15:04:05"
    ))
}

fn keptn_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Go-style duration ("5m", "1h30m", "1.5h", "90s", "300ms") parsing.
///
/// Negative durations are valid Go but have no `std::time::Duration`; they are rejected here (the window
/// computation accepts them and then fails the one-minute check, as Keptn does).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let nanos = parse_signed_nanos(text)?;
    u64::try_from(nanos).map(Duration::from_nanos).map_err(|_| format!("negative duration {text:?} is not supported"))
}

/// Go's `time.ParseDuration` as signed nanoseconds, including its limits (±2^63−1 ns) and its
/// float-based handling of fractions, so that "1.1s"-style values round exactly as in Keptn.
fn parse_signed_nanos(text: &str) -> Result<i64, String> {
    let invalid = || format!("invalid duration {text:?}");
    let mut rest = text;
    let mut negative = false;
    if let Some(first) = rest.chars().next() {
        if first == '-' || first == '+' {
            negative = first == '-';
            rest = &rest[1..];
        }
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }

    let mut total: u64 = 0;
    while !rest.is_empty() {
        let bytes = rest.as_bytes();
        if !(bytes[0] == b'.' || bytes[0].is_ascii_digit()) {
            return Err(invalid());
        }

        let int_len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &b in &bytes[..int_len] {
            whole = whole.checked_mul(10).and_then(|w| w.checked_add(u64::from(b - b'0'))).ok_or_else(invalid)?;
            if whole > 1 << 63 {
                return Err(invalid());
            }
        }
        rest = &rest[int_len..];

        let mut fraction: u64 = 0;
        let mut scale = 1.0f64;
        let mut has_fraction_digits = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(|b| b.is_ascii_digit()).count();
            has_fraction_digits = frac_len > 0;
            // Digits beyond what fits are dropped rather than rejected, as Go does.
            let mut overflowed = false;
            for b in after_dot[..frac_len].bytes() {
                if overflowed {
                    continue;
                }
                let next = fraction.checked_mul(10).map(|f| f + u64::from(b - b'0')).filter(|f| *f <= 1 << 63);
                match next {
                    Some(f) => {
                        fraction = f;
                        scale *= 10.0;
                    }
                    None => overflowed = true,
                }
            }
            rest = &after_dot[frac_len..];
        }
        if int_len == 0 && !has_fraction_digits {
            return Err(invalid());
        }

        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("missing unit in duration {text:?}"));
        }
        let unit_name = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit: u64 = match unit_name {
            "ns" => 1,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("unknown unit {unit_name:?} in duration {text:?}")),
        };

        if whole > (1 << 63) / unit {
            return Err(invalid());
        }
        let mut part = whole * unit;
        if fraction > 0 {
            part += (fraction as f64 * (unit as f64 / scale)) as u64;
            if part > 1 << 63 {
                return Err(invalid());
            }
        }
        total = total.checked_add(part).filter(|t| *t <= 1 << 63).ok_or_else(invalid)?;
    }

    if negative {
        // -2^63 ns is representable, +2^63 is not.
        return Ok((total as i128).wrapping_neg() as i64);
    }
    i64::try_from(total).map_err(|_| invalid())
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

    #[test]
    fn timestamp_formats_in_order() {
        let t = |s: &str| timestamp(s).map(keptn_timestamp);
        assert_eq!(t("2024-01-02T03:04:05.678Z"), Ok("2024-01-02T03:04:05.678Z".to_string()));
        assert_eq!(t("2024-01-02T03:04:05Z"), Ok("2024-01-02T03:04:05.000Z".to_string()));
        assert_eq!(t("2024-01-02T03:04:05.1Z"), Ok("2024-01-02T03:04:05.100Z".to_string()));
        // Milliseconds are truncated, not rounded, like Go's layout.
        assert_eq!(t("2024-01-02T03:04:05.9999Z"), Ok("2024-01-02T03:04:05.999Z".to_string()));
        assert_eq!(t("2024-01-02T03:04:05-01:30"), Ok("2024-01-02T04:34:05.000Z".to_string()));
        assert_eq!(t("2024-01-02T03:04:05"), Ok("2024-01-02T03:04:05.000Z".to_string()));
        assert!(t("2024-01-02 03:04").is_err());
        assert!(t("2024-13-02T03:04:05").is_err());
        assert!(t("").is_err());
    }

    #[test]
    fn go_duration_table() {
        let cases: Vec<(&str, Result<Duration, String>)> = vec![
            ("5m", Ok(Duration::from_secs(300))),
            ("1h30m", Ok(Duration::from_secs(5400))),
            ("1.5h", Ok(Duration::from_secs(5400))),
            ("90s", Ok(Duration::from_secs(90))),
            ("300ms", Ok(Duration::from_millis(300))),
            ("0", Ok(Duration::ZERO)),
            ("+0", Ok(Duration::ZERO)),
            ("-0s", Ok(Duration::ZERO)),
            ("+2m", Ok(Duration::from_secs(120))),
            (".5s", Ok(Duration::from_millis(500))),
            ("1.s", Ok(Duration::from_secs(1))),
            ("1h0.5m1s", Ok(Duration::from_secs(3631))),
            ("10us", Ok(Duration::from_micros(10))),
            ("10\u{00b5}s", Ok(Duration::from_micros(10))),
            ("10\u{03bc}s", Ok(Duration::from_micros(10))),
            ("7ns", Ok(Duration::from_nanos(7))),
            ("1.0000000001s", Ok(Duration::from_nanos(1_000_000_000))),
            ("2562047h47m16.854775807s", Ok(Duration::from_nanos(i64::MAX as u64))),
            ("", Err("invalid duration \"\"".to_string())),
            ("-", Err("invalid duration \"-\"".to_string())),
            (".", Err("invalid duration \".\"".to_string())),
            ("m", Err("invalid duration \"m\"".to_string())),
            ("5", Err("missing unit in duration \"5\"".to_string())),
            ("1h5", Err("missing unit in duration \"1h5\"".to_string())),
            ("5d", Err("unknown unit \"d\" in duration \"5d\"".to_string())),
            ("5M", Err("unknown unit \"M\" in duration \"5M\"".to_string())),
            ("5m ", Err("unknown unit \"m \" in duration \"5m \"".to_string())),
            ("2562047h47m16.854775808s", Err("invalid duration \"2562047h47m16.854775808s\"".to_string())),
            ("9999999999999999999h", Err("invalid duration \"9999999999999999999h\"".to_string())),
            ("-5m", Err("negative duration \"-5m\" is not supported".to_string())),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input), want, "{input:?}");
        }
        assert_eq!(parse_signed_nanos("-5m"), Ok(-300_000_000_000));
        assert_eq!(parse_signed_nanos("-2562047h47m16.854775808s"), Ok(i64::MIN));
    }
}
