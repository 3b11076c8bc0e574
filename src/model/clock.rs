//! Keptn's time formats. (Where time comes from is the shell's [`crate::clock`]: the model is always
//! handed the time.)

use chrono::{DateTime, NaiveDateTime, Utc};

/// Keptn's own timestamp format, `2006-01-02T15:04:05.000Z`.
pub fn keptn_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses a time in the formats Keptn accepts for evaluation windows, in Keptn's order:
/// `2006-01-02T15:04:05.000Z`, RFC 3339 (any offset, converted to UTC), then `2006-01-02T15:04:05`,
/// read as UTC.
pub fn parse_keptn_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.3fZ") {
        return Some(time.and_utc());
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    // Go accepts fractional seconds after the seconds field even when the layout has none, hence `%.f`.
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|time| time.and_utc())
}

/// Unix nanoseconds as a decimal string, the format of `creationDate` fields.
pub fn unix_nanos_string(at: DateTime<Utc>) -> String {
    at.timestamp_nanos_opt().unwrap_or(i64::MAX).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_formats_in_order() {
        let t = |s: &str| parse_keptn_time(s).map(keptn_time);
        assert_eq!(t("2024-01-02T03:04:05.678Z"), Some("2024-01-02T03:04:05.678Z".to_string()));
        assert_eq!(t("2024-01-02T03:04:05Z"), Some("2024-01-02T03:04:05.000Z".to_string()));
        assert_eq!(t("2024-01-02T03:04:05.1Z"), Some("2024-01-02T03:04:05.100Z".to_string()));
        // Milliseconds are truncated, not rounded, like Go's layout.
        assert_eq!(t("2024-01-02T03:04:05.9999Z"), Some("2024-01-02T03:04:05.999Z".to_string()));
        assert_eq!(t("2024-01-02T03:04:05-01:30"), Some("2024-01-02T04:34:05.000Z".to_string()));
        assert_eq!(t("2024-01-02T03:04:05"), Some("2024-01-02T03:04:05.000Z".to_string()));
        assert!(t("2024-01-02 03:04").is_none());
        assert!(t("2024-13-02T03:04:05").is_none());
        assert!(t("").is_none());
    }
}
