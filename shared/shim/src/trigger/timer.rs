//! Timer trigger: `Data.<binding>` is a serialized `TimerInfo` object; Metadata holds only `sys`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::context::InvocationContext;
use crate::wire::{from_value_or_text, lenient_datetime, serialize_datetime};

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
        deserialize_with = "lenient_datetime",
        serialize_with = "serialize_datetime"
    )]
    pub last: Option<OffsetDateTime>,
    #[serde(
        rename = "Next",
        default,
        deserialize_with = "lenient_datetime",
        serialize_with = "serialize_datetime"
    )]
    pub next: Option<OffsetDateTime>,
    #[serde(
        rename = "LastUpdated",
        default,
        deserialize_with = "lenient_datetime",
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
