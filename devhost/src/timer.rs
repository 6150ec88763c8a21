//! Timer triggers: NCRONTAB schedules (6 fields with seconds; 5 accepted), UTC, optional
//! run on startup, never two runs of one timer at a time (the next occurrence is computed
//! after the previous run finished, so overlapping occurrences are skipped).
//!
//! A monitored timer's `ScheduleStatus` follows the host's `TimerListener`: each run gets
//! the status written after the previous run (`Last` = that run, `Next` = the occurrence now
//! firing); the first run gets `Last` and `LastUpdated` as `default(DateTime)`. The status
//! lives in memory only, so a restart of devhost starts from the first-run status again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::config::functions::{FunctionDef, TimerTrigger};
use crate::host::{Host, invocation_id};
use crate::wire::{self, ScheduleStatus};

/// Schedules firing at least this far apart are monitored by default (`useMonitor`).
const MONITOR_THRESHOLD: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Parses an NCRONTAB expression (`{second} {minute} {hour} {day} {month} {day-of-week}`).
pub fn parse_schedule(expr: &str) -> Result<Cron, String> {
    Cron::new(expr.trim())
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("schedule `{expr}` is not a valid NCRONTAB expression: {e}"))
}

/// Next occurrence strictly after `after`.
fn next_after(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

fn to_offset(t: DateTime<Utc>) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.timestamp_nanos_opt().unwrap_or(0)))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Runs one timer until shutdown.
pub async fn run(
    host: Host,
    function: Arc<FunctionDef>,
    trigger: TimerTrigger,
    mut shutdown: watch::Receiver<bool>,
) {
    let cron = match parse_schedule(&trigger.schedule) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(function = %function.name, "timer disabled: {e}");
            return;
        }
    };
    let monitored = trigger.use_monitor.unwrap_or_else(|| {
        let now = Utc::now();
        let gap = next_after(&cron, now).and_then(|a| next_after(&cron, a).map(|b| b - a));
        gap.is_some_and(|g| g >= MONITOR_THRESHOLD)
    });
    tracing::info!(function = %function.name, schedule = %trigger.schedule, "timer scheduled");
    let mut status = ScheduleStatus {
        last: None,
        next: next_after(&cron, Utc::now()).map_or(OffsetDateTime::UNIX_EPOCH, to_offset),
        last_updated: None,
    };
    if trigger.run_on_startup {
        // The host fires startup runs once the handler is up.
        let _ = host.invoker.port().await;
        status = fire(&host, &function, &trigger, &cron, monitored, status, true).await;
    }
    loop {
        let Some(next) = next_after(&cron, Utc::now()) else {
            tracing::warn!(function = %function.name, "schedule has no future occurrence; timer stops");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::shutdown::shutdown_requested(&mut shutdown) => return,
        }
        // Sleep can end a hair early; never fire before the occurrence.
        let early = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if !early.is_zero() {
            tokio::time::sleep(early).await;
        }
        status = fire(&host, &function, &trigger, &cron, monitored, status, false).await;
    }
}

/// Runs the function once with `status`; the status the next run gets.
async fn fire(
    host: &Host,
    function: &FunctionDef,
    trigger: &TimerTrigger,
    cron: &Cron,
    monitored: bool,
    status: ScheduleStatus,
    on_startup: bool,
) -> ScheduleStatus {
    let now = Utc::now();
    let payload = wire::timer_payload(
        &function.name,
        &trigger.binding,
        monitored.then_some(status),
        false,
        to_offset(now),
    );
    // Failures are logged by `invoke`; timers are not retried, the next occurrence runs.
    let _ = host.invoke(function, &invocation_id(), &payload).await;
    status_after_run(cron, status, now, on_startup)
}

/// The host's status update after a run at `invoked`: a run that fired a hair before its
/// occurrence counts as the occurrence, so `Next` never repeats.
fn status_after_run(
    cron: &Cron,
    before: ScheduleStatus,
    invoked: DateTime<Utc>,
    on_startup: bool,
) -> ScheduleStatus {
    let invoked = to_offset(invoked);
    let run = if !on_startup && before.next > invoked {
        before.next
    } else {
        invoked
    };
    let after = DateTime::<Utc>::from_timestamp(run.unix_timestamp(), run.nanosecond())
        .unwrap_or_else(Utc::now);
    ScheduleStatus {
        last: Some(run),
        next: next_after(cron, after).map_or(OffsetDateTime::UNIX_EPOCH, to_offset),
        last_updated: Some(run),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn six_field_expressions_have_seconds_first() {
        let cron = parse_schedule("*/5 * * * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 1).unwrap();
        assert_eq!(
            next_after(&cron, t).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 5).unwrap()
        );
    }

    #[test]
    fn five_field_expressions_fire_on_the_minute() {
        let cron = parse_schedule("*/5 * * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 30).unwrap();
        assert_eq!(
            next_after(&cron, t).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 0).unwrap()
        );
    }

    #[test]
    fn every_five_minutes_with_seconds_field() {
        let cron = parse_schedule("0 */5 * * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 0).unwrap();
        assert_eq!(
            next_after(&cron, t).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 10, 0).unwrap()
        );
    }

    #[test]
    fn the_first_run_sends_the_hosts_default_last_and_next_as_the_occurrence_firing() {
        let cron = parse_schedule("0 */5 * * * *").unwrap();
        let first = ScheduleStatus {
            last: None,
            next: to_offset(Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 0).unwrap()),
            last_updated: None,
        };
        let payload = wire::timer_payload("t", "timer", Some(first), false, first.next);
        assert_eq!(
            payload["Data"]["timer"]["ScheduleStatus"],
            serde_json::json!({
                "Last": "0001-01-01T00:00:00",
                "Next": "2026-01-01T00:05:00+00:00",
                "LastUpdated": "0001-01-01T00:00:00",
            })
        );
        // Fired a hair early: the run counts as the occurrence it was for.
        let invoked = Utc.with_ymd_and_hms(2026, 1, 1, 0, 4, 59).unwrap();
        let second = status_after_run(&cron, first, invoked, false);
        assert_eq!(second.last, Some(first.next));
        assert_eq!(second.last_updated, Some(first.next));
        assert_eq!(
            second.next,
            to_offset(Utc.with_ymd_and_hms(2026, 1, 1, 0, 10, 0).unwrap())
        );
    }

    #[test]
    fn a_startup_run_counts_at_the_time_it_ran() {
        let cron = parse_schedule("0 */5 * * * *").unwrap();
        let first = ScheduleStatus {
            last: None,
            next: to_offset(Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 0).unwrap()),
            last_updated: None,
        };
        let invoked = Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap();
        let after = status_after_run(&cron, first, invoked, true);
        assert_eq!(after.last, Some(to_offset(invoked)));
        assert_eq!(after.next, first.next);
    }

    #[test]
    fn invalid_schedules_are_rejected() {
        assert!(parse_schedule("every minute").is_err());
        assert!(parse_schedule("61 * * * * *").is_err());
    }
}
