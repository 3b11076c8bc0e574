//! Keptn's rules for an evaluation window given as any two of start, end and timeframe, shared by the
//! API's evaluation trigger and by lighthouse. Each caller reads its own input (request fields, event
//! data) and words the errors as its Keptn counterpart does.

use chrono::{DateTime, TimeDelta, Utc};

/// The window when only a timeframe (or nothing) is given ends now; with nothing, it is this long.
pub const DEFAULT_TIMEFRAME: TimeDelta = TimeDelta::minutes(5);
/// The shortest window: an evaluation needs at least a minute of data.
pub const MIN_WINDOW: TimeDelta = TimeDelta::minutes(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowError {
    /// A start without an end or a timeframe.
    StartAlone,
    /// An end and a timeframe: they contradict each other.
    EndAndTimeframe,
    /// An end without a start.
    EndWithoutStart,
    /// Shorter than [`MIN_WINDOW`] (or ending before it starts).
    TooShort,
    /// Beyond the dates time arithmetic can represent.
    OutOfRange,
}

/// Whether the fields given (start, end, timeframe) can describe a window at all. Checked before any
/// of them is parsed, so these errors come first, as in Keptn.
pub fn shape(start: bool, end: bool, timeframe: bool) -> Result<(), WindowError> {
    match (start, end, timeframe) {
        (_, true, true) => Err(WindowError::EndAndTimeframe),
        (false, true, false) => Err(WindowError::EndWithoutStart),
        (true, false, false) => Err(WindowError::StartAlone),
        _ => Ok(()),
    }
}

/// The (start, end) of the window: `start..end`, `start..start+timeframe`, `now-timeframe..now`, or
/// the last [`DEFAULT_TIMEFRAME`] when nothing is given.
pub fn bounds(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    timeframe: Option<TimeDelta>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), WindowError> {
    shape(start.is_some(), end.is_some(), timeframe.is_some())?;
    let (from, to) = match (start, end, timeframe) {
        (Some(start), Some(end), _) => (start, end),
        (Some(start), None, Some(frame)) => (start, start.checked_add_signed(frame).ok_or(WindowError::OutOfRange)?),
        (None, _, frame) => {
            let frame = frame.unwrap_or(DEFAULT_TIMEFRAME);
            (now.checked_sub_signed(frame).ok_or(WindowError::OutOfRange)?, now)
        }
        (Some(_), None, None) => unreachable!("refused by shape"),
    };
    if to.signed_duration_since(from) < MIN_WINDOW {
        return Err(WindowError::TooShort);
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use WindowError::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn any_two_of_start_end_and_timeframe() {
        let now = at("2024-01-01T12:00:00Z");
        let ten = Some(TimeDelta::minutes(10));
        let start = Some(at("2024-01-01T10:00:00Z"));
        type Case = (
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<TimeDelta>,
            Result<(&'static str, &'static str), WindowError>,
        );
        let cases: [Case; 10] = [
            (None, None, None, Ok(("2024-01-01T11:55:00Z", "2024-01-01T12:00:00Z"))),
            (None, None, ten, Ok(("2024-01-01T11:50:00Z", "2024-01-01T12:00:00Z"))),
            (start, None, ten, Ok(("2024-01-01T10:00:00Z", "2024-01-01T10:10:00Z"))),
            (start, Some(at("2024-01-01T11:00:00Z")), None, Ok(("2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"))),
            (start, Some(at("2024-01-01T10:00:30Z")), None, Err(TooShort)),
            (start, Some(at("2024-01-01T09:00:00Z")), None, Err(TooShort)),
            (None, None, Some(TimeDelta::minutes(-10)), Err(TooShort)),
            (start, None, None, Err(StartAlone)),
            (None, Some(at("2024-01-01T11:00:00Z")), None, Err(EndWithoutStart)),
            (start, Some(at("2024-01-01T11:00:00Z")), ten, Err(EndAndTimeframe)),
        ];
        for (start, end, frame, expected) in cases {
            let expected = expected.map(|(from, to)| (at(from), at(to)));
            assert_eq!(bounds(start, end, frame, now), expected, "{start:?} {end:?} {frame:?}");
        }
        assert_eq!(bounds(Some(DateTime::<Utc>::MAX_UTC), None, ten, now), Err(OutOfRange));
        assert_eq!(bounds(None, None, Some(TimeDelta::MAX), now), Err(OutOfRange));
    }
}
