//! Timer trigger: `Data.<binding>` is a serialized `TimerInfo` object; Metadata holds only `sys`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::context::InvocationContext;
use crate::wire::{from_value_or_text, lenient_opt_string, serialize_datetime};

#[derive(Debug, Clone, PartialEq)]
pub struct TimerInvocation {
    pub timer: TimerInfo,
    pub context: InvocationContext,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TimerInfo {
    #[serde(rename = "Schedule", default)]
    pub schedule: Option<TimerSchedule>,
    /// `null` unless the schedule is monitored (`useMonitor`).
    #[serde(rename = "ScheduleStatus", default)]
    pub schedule_status: Option<ScheduleStatus>,
    /// True when this run fires late (e.g. a missed occurrence caught up at start-up).
    #[serde(rename = "IsPastDue", default)]
    pub is_past_due: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TimerSchedule {
    #[serde(rename = "AdjustForDST", default)]
    pub adjust_for_dst: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ScheduleStatus {
    #[serde(
        rename = "Last",
        default,
        deserialize_with = "host_datetime",
        serialize_with = "serialize_datetime"
    )]
    pub last: Option<OffsetDateTime>,
    #[serde(
        rename = "Next",
        default,
        deserialize_with = "host_datetime",
        serialize_with = "serialize_datetime"
    )]
    pub next: Option<OffsetDateTime>,
    #[serde(
        rename = "LastUpdated",
        default,
        deserialize_with = "host_datetime",
        serialize_with = "serialize_datetime"
    )]
    pub last_updated: Option<OffsetDateTime>,
}

impl TimerInfo {
    /// Accepts the object the host sends, or the same object as JSON text.
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        from_value_or_text(value)
    }
}

/// A `ScheduleStatus` time as the host writes it: RFC 3339, or with no offset at all. The
/// host serializes .NET `DateTime`s, and one of kind `Unspecified` (the `default(DateTime)`
/// of a timer's first run, `0001-01-01T00:00:00`) carries no offset; it is read as UTC.
fn host_datetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    let Some(text) = lenient_opt_string(d)? else {
        return Ok(None);
    };
    parse_host_datetime(&text)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp `{text}`")))
}

fn parse_host_datetime(text: &str) -> Option<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at);
    }
    let unspecified = format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(text, unspecified)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn status(last: &str, next: &str) -> ScheduleStatus {
        let info = TimerInfo::from_value(json!({
            "Schedule": {"AdjustForDST": true},
            "ScheduleStatus": {"Last": last, "Next": next, "LastUpdated": last},
            "IsPastDue": false,
        }))
        .unwrap();
        info.schedule_status.unwrap()
    }

    #[test]
    fn the_first_runs_default_last_with_no_offset_is_read_as_year_one_utc() {
        let s = status("0001-01-01T00:00:00", "2026-12-06T10:00:00+00:00");
        assert_eq!(s.last, Some(datetime!(0001-01-01 00:00:00 UTC)));
        assert_eq!(s.last_updated, Some(datetime!(0001-01-01 00:00:00 UTC)));
        assert_eq!(s.next, Some(datetime!(2026-12-06 10:00:00 UTC)));
    }

    #[test]
    fn timestamps_without_offset_are_read_as_utc_with_or_without_fractions() {
        let s = status("2026-12-06T10:00:00", "2026-12-06T10:05:00.1234567");
        assert_eq!(s.last, Some(datetime!(2026-12-06 10:00:00 UTC)));
        assert_eq!(s.next, Some(datetime!(2026-12-06 10:05:00.1234567 UTC)));
    }

    #[test]
    fn timestamps_with_an_offset_keep_it() {
        let s = status("0001-01-01T00:00:00+00:00", "2026-12-06T11:00:00+01:00");
        assert_eq!(s.last, Some(datetime!(0001-01-01 00:00:00 UTC)));
        assert_eq!(s.next, Some(datetime!(2026-12-06 11:00:00 +01:00)));
    }

    #[test]
    fn text_that_is_no_timestamp_is_refused() {
        let refused = TimerInfo::from_value(json!({
            "ScheduleStatus": {"Last": "yesterday", "Next": null, "LastUpdated": null},
        }));
        assert!(refused.is_err());
    }
}
