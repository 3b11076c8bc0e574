//! Durations from untrusted text, bounded when they are parsed, and time arithmetic that cannot
//! overflow.
//!
//! Go durations (`1h30m`) are read by one parser that accepts what Go's `time.ParseDuration` accepts
//! ([`parse_signed_go_duration`]). Every duration Keelson waits for or adds to a stored time — a
//! shipyard's `triggeredAfter`, a configured timeout, the timeframe of an evaluation triggered through
//! the API — is at most [`MAX_DURATION`] ([`parse_go_duration`]), so adding one to any time of this
//! millennium stays far inside what `chrono` represents. The arithmetic below still saturates instead of
//! panicking, so a stored record written before a bound existed cannot crash the actor that reads it.

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

/// Why text is not a Go duration, in the words of Go's `time.ParseDuration`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoDurationError {
    /// Empty, a sign alone, a number without digits, or something other than a number where one belongs.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {text:?}")]
    UnknownUnit { unit: String, text: String },
    /// Beyond Go's range of ±(2^63 − 1) ns (about 292 years); Go calls this invalid too.
    #[error("invalid duration {0:?}")]
    OutOfRange(String),
}

/// Parses a duration as Go's `time.ParseDuration` does: an optional sign, then one or more numbers
/// (with an optional fraction) each followed by a unit — `ns`, `us` (or `µs`, `μs`), `ms`, `s`, `m`,
/// `h` — as in `300ms`, `-1.5h` or `1h30m`; a bare `0` (signed or not) is zero.
///
/// The value is Go's to the nanosecond: integer arithmetic with fractions scaled through `f64` exactly
/// as Go scales them (so `1.1s`-style values round as in Keptn), within Go's range of −2^63 to
/// 2^63 − 1 ns. The result is signed and not bounded by [`MAX_DURATION`]; callers that need a
/// non-negative, bounded duration use [`parse_go_duration`].
pub fn parse_signed_go_duration(text: &str) -> Result<TimeDelta, GoDurationError> {
    let invalid = || GoDurationError::Invalid(text.to_owned());
    let out_of_range = || GoDurationError::OutOfRange(text.to_owned());
    const LIMIT: u64 = 1 << 63;
    let mut rest = text;
    let mut negative = false;
    if let Some(sign) = rest.strip_prefix(['-', '+']) {
        negative = rest.starts_with('-');
        rest = sign;
    }
    if rest == "0" {
        return Ok(TimeDelta::zero());
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
            whole = whole.checked_mul(10).and_then(|w| w.checked_add(u64::from(b - b'0'))).ok_or_else(out_of_range)?;
            if whole > LIMIT {
                return Err(out_of_range());
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
                let next = fraction.checked_mul(10).map(|f| f + u64::from(b - b'0')).filter(|f| *f <= LIMIT);
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
            return Err(GoDurationError::MissingUnit(text.to_owned()));
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
            _ => return Err(GoDurationError::UnknownUnit { unit: unit_name.to_owned(), text: text.to_owned() }),
        };

        if whole > LIMIT / unit {
            return Err(out_of_range());
        }
        let mut part = whole * unit;
        if fraction > 0 {
            part += (fraction as f64 * (unit as f64 / scale)) as u64;
            if part > LIMIT {
                return Err(out_of_range());
            }
        }
        total = total.checked_add(part).filter(|t| *t <= LIMIT).ok_or_else(out_of_range)?;
    }

    let nanos = if negative {
        // -2^63 ns is representable, +2^63 is not.
        (total as i128).wrapping_neg() as i64
    } else {
        i64::try_from(total).map_err(|_| out_of_range())?
    };
    Ok(TimeDelta::nanoseconds(nanos))
}

/// Parses a Go duration string (`300ms`, `10s`, `1h30m`, `1.5h`, `+2m`, `0`) that is not negative and
/// at most [`MAX_DURATION`]: the syntax of [`parse_signed_go_duration`], for the durations Keelson waits
/// for or looks back over, where a negative one means nothing.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let delta = parse_signed_go_duration(text).map_err(|error| match error {
        // Longer than Go's range is longer than the bound too, unless it is a negative one.
        GoDurationError::OutOfRange(_) if !text.starts_with('-') => DurationError::TooLong(text.to_owned()),
        _ => DurationError::Invalid(text.to_owned()),
    })?;
    let duration = delta.to_std().map_err(|_| DurationError::Invalid(text.to_owned()))?;
    bounded(duration, text)
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

    /// Go's answer for `text` as nanoseconds or the error's text.
    fn signed(text: &str) -> Result<i64, String> {
        parse_signed_go_duration(text)
            .map(|delta| delta.num_nanoseconds().expect("Go durations fit in i64 nanoseconds"))
            .map_err(|error| error.to_string())
    }

    #[test]
    fn go_duration_table() {
        const S: i64 = 1_000_000_000;
        let invalid = |text: &str| Err(DurationError::Invalid(text.to_owned()));
        let too_long = |text: &str| Err(DurationError::TooLong(text.to_owned()));
        type Case = (&'static str, Result<i64, String>, Result<Duration, DurationError>);
        // (text, Go's signed value in ns or its error, parse_go_duration's answer)
        let cases: Vec<Case> = vec![
            ("5m", Ok(300 * S), Ok(Duration::from_secs(300))),
            ("10m", Ok(600 * S), Ok(Duration::from_secs(600))),
            ("1h30m", Ok(5400 * S), Ok(Duration::from_secs(5400))),
            ("1.5h", Ok(5400 * S), Ok(Duration::from_secs(5400))),
            ("90s", Ok(90 * S), Ok(Duration::from_secs(90))),
            ("300ms", Ok(300_000_000), Ok(Duration::from_millis(300))),
            ("0", Ok(0), Ok(Duration::ZERO)),
            ("+0", Ok(0), Ok(Duration::ZERO)),
            ("-0", Ok(0), Ok(Duration::ZERO)),
            ("-0s", Ok(0), Ok(Duration::ZERO)),
            ("+2m", Ok(120 * S), Ok(Duration::from_secs(120))),
            (".5s", Ok(S / 2), Ok(Duration::from_millis(500))),
            ("1.s", Ok(S), Ok(Duration::from_secs(1))),
            ("1h0.5m1s", Ok(3631 * S), Ok(Duration::from_secs(3631))),
            ("10us", Ok(10_000), Ok(Duration::from_micros(10))),
            ("10\u{00b5}s", Ok(10_000), Ok(Duration::from_micros(10))),
            ("10\u{03bc}s", Ok(10_000), Ok(Duration::from_micros(10))),
            ("7ns", Ok(7), Ok(Duration::from_nanos(7))),
            ("1.0000000001s", Ok(S), Ok(Duration::from_secs(1))),
            ("87840h", Ok(87840 * 3600 * S), Ok(MAX_DURATION)),
            ("87841h", Ok(87841 * 3600 * S), too_long("87841h")),
            ("2562047h47m16.854775807s", Ok(i64::MAX), too_long("2562047h47m16.854775807s")),
            ("-5m", Ok(-300 * S), invalid("-5m")),
            ("-1h", Ok(-3600 * S), invalid("-1h")),
            ("-2562047h47m16.854775808s", Ok(i64::MIN), invalid("-2562047h47m16.854775808s")),
            ("", Err("invalid duration \"\"".into()), invalid("")),
            ("-", Err("invalid duration \"-\"".into()), invalid("-")),
            (".", Err("invalid duration \".\"".into()), invalid(".")),
            ("m", Err("invalid duration \"m\"".into()), invalid("m")),
            ("h", Err("invalid duration \"h\"".into()), invalid("h")),
            ("m10", Err("invalid duration \"m10\"".into()), invalid("m10")),
            ("1h-5m", Err("unknown unit \"h-\" in duration \"1h-5m\"".into()), invalid("1h-5m")),
            ("5", Err("missing unit in duration \"5\"".into()), invalid("5")),
            ("10", Err("missing unit in duration \"10\"".into()), invalid("10")),
            ("1h5", Err("missing unit in duration \"1h5\"".into()), invalid("1h5")),
            ("1..5h", Err("missing unit in duration \"1..5h\"".into()), invalid("1..5h")),
            ("5d", Err("unknown unit \"d\" in duration \"5d\"".into()), invalid("5d")),
            ("10x", Err("unknown unit \"x\" in duration \"10x\"".into()), invalid("10x")),
            ("5M", Err("unknown unit \"M\" in duration \"5M\"".into()), invalid("5M")),
            ("5m ", Err("unknown unit \"m \" in duration \"5m \"".into()), invalid("5m ")),
            ("1e308h", Err("unknown unit \"e\" in duration \"1e308h\"".into()), invalid("1e308h")),
            (
                "2562047h47m16.854775808s",
                Err("invalid duration \"2562047h47m16.854775808s\"".into()),
                too_long("2562047h47m16.854775808s"),
            ),
            ("100000000000h", Err("invalid duration \"100000000000h\"".into()), too_long("100000000000h")),
            (
                "9999999999999999999h",
                Err("invalid duration \"9999999999999999999h\"".into()),
                too_long("9999999999999999999h"),
            ),
            ("-100000000000h", Err("invalid duration \"-100000000000h\"".into()), invalid("-100000000000h")),
        ];
        for (text, want_signed, want_bounded) in cases {
            assert_eq!(signed(text), want_signed, "{text:?}");
            assert_eq!(parse_go_duration(text), want_bounded, "{text:?}");
        }
    }

    #[test]
    fn go_duration_errors_say_what_is_wrong() {
        assert_eq!(parse_signed_go_duration("5"), Err(GoDurationError::MissingUnit("5".into())));
        assert_eq!(
            parse_signed_go_duration("5 minutes"),
            Err(GoDurationError::UnknownUnit { unit: " minutes".into(), text: "5 minutes".into() })
        );
        assert_eq!(parse_signed_go_duration("99999999999h"), Err(GoDurationError::OutOfRange("99999999999h".into())));
        assert_eq!(parse_signed_go_duration("x"), Err(GoDurationError::Invalid("x".into())));
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
