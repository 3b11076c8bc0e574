//! Durations from untrusted text, bounded when they are parsed, and time arithmetic that cannot
//! overflow.
//!
//! Every duration Keelson reads — a shipyard's `triggeredAfter`, a configured timeout, an evaluation's
//! timeframe — is at most [`MAX_DURATION`], so adding one to any time of this millennium stays far inside
//! what `chrono` represents. The arithmetic below still saturates instead of panicking, so a stored record
//! written before a bound existed cannot crash the actor that reads it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The longest duration accepted anywhere: ten years (3,660 days).
pub const MAX_DURATION: Duration = Duration::from_secs(3660 * 24 * 3600);

/// The bound as users write it.
pub const MAX_DURATION_TEXT: &str = "87840h (ten years)";

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?} (expected a duration such as 30s, 10m or 1h30m)")]
    Invalid(String),
    #[error("duration {0:?} is longer than the maximum of {MAX_DURATION_TEXT}")]
    TooLong(String),
}

/// Checks a parsed duration against [`MAX_DURATION`]; `text` is what the user wrote, for the error.
pub fn bounded(duration: Duration, text: &str) -> Result<Duration, DurationError> {
    if duration > MAX_DURATION {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    Ok(duration)
}

/// Parses a Go duration string (`300ms`, `10s`, `1h30m`, `1.5h`, `0`) of at most [`MAX_DURATION`].
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
    if text.is_empty() {
        return Err(invalid());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total_secs = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit_secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total_secs += number * unit_secs;
    }
    if !total_secs.is_finite() || total_secs > MAX_DURATION.as_secs_f64() {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    Duration::try_from_secs_f64(total_secs).map_err(|_| invalid())
}

/// Parses a configured duration in humantime's syntax (`30s`, `10m`, `1h 30m`, `2days`) of at most
/// [`MAX_DURATION`].
pub fn parse_human_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let duration = humantime::parse_duration(trimmed).map_err(|error| match error {
        humantime::DurationError::NumberOverflow => DurationError::TooLong(trimmed.to_owned()),
        _ => DurationError::Invalid(trimmed.to_owned()),
    })?;
    bounded(duration, trimmed)
}

/// `at + by`, or the latest representable time when that would overflow.
pub fn later(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(by).ok().and_then(|delta| at.checked_add_signed(delta)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at - by`, or the earliest representable time when that would overflow.
pub fn earlier(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(by).ok().and_then(|delta| at.checked_sub_signed(delta)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for invalid in ["", "10", "m10", "10x", "1..5h", "-1h", ".", "h"] {
            assert_eq!(parse_go_duration(invalid), Err(DurationError::Invalid(invalid.to_owned())), "{invalid:?}");
        }
    }

    #[test]
    fn go_durations_longer_than_the_bound_are_refused() {
        assert_eq!(parse_go_duration("87840h"), Ok(MAX_DURATION));
        for long in ["87841h", "100000000000h", "99999999999999999999999999999999999999h", "1e308h"] {
            let refused = parse_go_duration(long);
            assert!(refused.is_err(), "{long:?} accepted: {refused:?}");
        }
        assert_eq!(parse_go_duration("100000000000h"), Err(DurationError::TooLong("100000000000h".to_owned())));
        let message = parse_go_duration("100000000000h").unwrap_err().to_string();
        assert!(message.contains("longer than the maximum of 87840h"), "{message}");
    }

    #[test]
    fn human_durations_are_bounded() {
        assert_eq!(parse_human_duration(" 10m "), Ok(Duration::from_secs(600)));
        assert_eq!(parse_human_duration("100000000000h"), Err(DurationError::TooLong("100000000000h".to_owned())));
        assert_eq!(
            parse_human_duration("999999999999999999999999h"),
            Err(DurationError::TooLong("999999999999999999999999h".to_owned()))
        );
        assert_eq!(parse_human_duration("soon"), Err(DurationError::Invalid("soon".to_owned())));
    }

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(later(now, Duration::from_secs(60)), Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap());
        assert_eq!(earlier(now, Duration::from_secs(60)), Utc.with_ymd_and_hms(2025, 12, 31, 23, 59, 0).unwrap());
        assert_eq!(later(now, Duration::from_secs(100_000_000_000 * 3600)), DateTime::<Utc>::MAX_UTC);
        assert_eq!(later(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(earlier(now, Duration::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(later(DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)), DateTime::<Utc>::MAX_UTC);
    }
}
