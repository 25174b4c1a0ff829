//! Identifiers and timestamps as RUSVEL writes them: UUIDv7 strings and RFC 3339 UTC times
//! with milliseconds (`2026-12-04T16:13:04.123Z`), which sort as text in time order.

use chrono::{DateTime, SecondsFormat, Utc};

/// A new UUIDv7 identifier.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    format_time(Utc::now())
}

/// Formats a time as RFC 3339 UTC with milliseconds.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 time and returns it in the canonical form, so stored times compare
/// correctly as text; `None` when the text is not RFC 3339.
pub fn normalize_time(text: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| format_time(time.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_milliseconds() {
        let time = now();
        assert_eq!(time.len(), "2026-12-04T16:13:04.123Z".len());
        assert!(time.ends_with('Z'));
    }

    #[test]
    fn offsets_are_normalized_to_utc() {
        assert_eq!(
            normalize_time("2026-12-04T18:13:04+02:00").as_deref(),
            Some("2026-12-04T16:13:04.000Z")
        );
        assert_eq!(normalize_time("yesterday"), None);
    }

    #[test]
    fn ids_are_uuid_v7_and_sort_by_creation() {
        let first = new_id();
        let second = new_id();
        assert_eq!(uuid::Uuid::parse_str(&first).unwrap().get_version_num(), 7);
        assert!(first < second);
    }
}
