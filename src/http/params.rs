//! Query parameters shared by several endpoints.

use chrono::{DateTime, Utc};

use super::error::ApiError;

/// An optional RFC 3339 time parameter called `name`; empty counts as absent, anything unparsable is a
/// 400 naming the parameter.
pub fn rfc3339(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match value.filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(value) => DateTime::parse_from_rfc3339(value)
            .map(|time| Some(time.with_timezone(&Utc)))
            .map_err(|_| ApiError::bad_request(format!("invalid {name} '{value}': expected an RFC 3339 time"))),
    }
}
