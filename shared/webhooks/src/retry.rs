//! When a failed delivery is tried again: the Standard Webhooks example schedule, read as
//! offsets from the first attempt (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h:
//! ten attempts over about a day), each gap jittered by ±20 % so that endpoints recovering
//! from an outage are not hit by every delivery in the same second. After the last attempt
//! the delivery fails.

use std::time::Duration;

use rand::Rng as _;

/// Jitter applied to each gap, in percent either way.
pub const JITTER_PERCENT: i64 = 20;
/// Shortest gap between two attempts, whatever the schedule and jitter say.
pub const MIN_GAP: Duration = Duration::from_secs(1);
/// Longest `Retry-After` we honour (a misbehaving endpoint cannot park deliveries forever).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
const MAX_ATTEMPTS: usize = 30;
const MAX_SPAN: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("a retry schedule lists 1 to {MAX_ATTEMPTS} offsets")]
    Length,
    #[error("a retry schedule starts at 0")]
    Start,
    #[error("retry offsets must not decrease")]
    Order,
    #[error("a retry schedule spans at most 7 days")]
    Span,
    #[error("{0:?} is not a duration like 0, 500ms, 5s, 5m, 2h")]
    Duration(String),
}

/// Attempt times as offsets from the first attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    offsets: Vec<Duration>,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::standard()
    }
}

impl RetrySchedule {
    /// The Standard Webhooks example: 10 attempts over 24 h.
    pub fn standard() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 3600;
        let secs = [
            0,
            5,
            5 * MIN,
            30 * MIN,
            2 * HOUR,
            5 * HOUR,
            10 * HOUR,
            14 * HOUR,
            20 * HOUR,
            24 * HOUR,
        ];
        RetrySchedule {
            offsets: secs.into_iter().map(Duration::from_secs).collect(),
        }
    }

    pub fn new(offsets: Vec<Duration>) -> Result<Self, ScheduleError> {
        if offsets.is_empty() || offsets.len() > MAX_ATTEMPTS {
            return Err(ScheduleError::Length);
        }
        if offsets[0] != Duration::ZERO {
            return Err(ScheduleError::Start);
        }
        if offsets.windows(2).any(|w| w[1] < w[0]) {
            return Err(ScheduleError::Order);
        }
        if offsets.last().is_some_and(|last| *last > MAX_SPAN) {
            return Err(ScheduleError::Span);
        }
        Ok(RetrySchedule { offsets })
    }

    /// Comma-separated offsets: `0,5s,5m,30m,2h` (units ms, s, m, h; a bare 0 is allowed).
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let offsets = text
            .split(',')
            .map(|item| parse_duration(item.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(offsets)
    }

    pub fn max_attempts(&self) -> u32 {
        // At most MAX_ATTEMPTS entries.
        self.offsets.len() as u32
    }

    /// The last attempt's offset: how long a delivery is retried.
    pub fn span(&self) -> Duration {
        self.offsets.last().copied().unwrap_or_default()
    }

    /// After `attempts` attempts (≥ 1) failed: the wait before the next one with a random
    /// jitter, or `None` when none is left.
    pub fn next_delay(&self, attempts: u32) -> Option<Duration> {
        let jitter = rand::thread_rng().gen_range(-JITTER_PERCENT..=JITTER_PERCENT);
        self.next_delay_with_jitter(attempts, jitter)
    }

    /// [`RetrySchedule::next_delay`] with a given jitter in percent (clamped to ±20).
    pub fn next_delay_with_jitter(&self, attempts: u32, jitter_percent: i64) -> Option<Duration> {
        let done = usize::try_from(attempts).ok()?;
        let next = *self.offsets.get(done)?;
        let previous = self.offsets.get(done.checked_sub(1)?).copied()?;
        let gap_ms = i64::try_from((next - previous).as_millis()).unwrap_or(i64::MAX);
        let jitter = jitter_percent.clamp(-JITTER_PERCENT, JITTER_PERCENT);
        let jittered = gap_ms.saturating_add(gap_ms.saturating_mul(jitter) / 100);
        let delay = Duration::from_millis(u64::try_from(jittered).unwrap_or(0));
        Some(delay.max(MIN_GAP))
    }
}

/// `Retry-After` in delta-seconds (the HTTP-date form is not honoured), capped at
/// [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn parse_duration(text: &str) -> Result<Duration, ScheduleError> {
    let bad = || ScheduleError::Duration(text.to_owned());
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn standard_schedule_is_ten_attempts_over_24_hours() {
        let s = RetrySchedule::standard();
        assert_eq!(s.max_attempts(), 10);
        assert_eq!(s.span(), secs(24 * 3600));
        // Without jitter, the gaps are the differences of the spec's offsets.
        let gaps: Vec<Duration> = (1..10)
            .map(|n| s.next_delay_with_jitter(n, 0).unwrap())
            .collect();
        assert_eq!(
            gaps,
            [
                secs(5),
                secs(295),
                secs(25 * 60),
                secs(90 * 60),
                secs(3 * 3600),
                secs(5 * 3600),
                secs(4 * 3600),
                secs(6 * 3600),
                secs(4 * 3600)
            ]
        );
        assert_eq!(gaps.iter().sum::<Duration>(), secs(24 * 3600));
        assert_eq!(s.next_delay(10), None, "the tenth failure is final");
        assert_eq!(s.next_delay(0), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_never_below_the_minimum_gap() {
        let s = RetrySchedule::standard();
        assert_eq!(s.next_delay_with_jitter(2, 20), Some(secs(354)));
        assert_eq!(s.next_delay_with_jitter(2, -20), Some(secs(236)));
        assert_eq!(s.next_delay_with_jitter(2, 90), Some(secs(354)), "clamped");
        for _ in 0..200 {
            let d = s.next_delay(3).unwrap();
            assert!(d >= secs(1200) && d <= secs(1800), "{d:?}");
        }
        let zero_gaps = RetrySchedule::parse("0,0,0").unwrap();
        assert_eq!(zero_gaps.next_delay(1), Some(MIN_GAP));
    }

    #[test]
    fn schedules_parse_from_text_and_must_start_at_zero_and_not_decrease() {
        let s = RetrySchedule::parse("0, 500ms, 2s, 1m, 1h").unwrap();
        assert_eq!(s.max_attempts(), 5);
        assert_eq!(s.span(), secs(3600));
        assert_eq!(RetrySchedule::parse("5s,10s"), Err(ScheduleError::Start));
        assert_eq!(RetrySchedule::parse("0,10s,5s"), Err(ScheduleError::Order));
        assert_eq!(RetrySchedule::parse("0,200h"), Err(ScheduleError::Span));
        assert!(matches!(
            RetrySchedule::parse("0,5x"),
            Err(ScheduleError::Duration(_))
        ));
        assert!(matches!(
            RetrySchedule::parse("0,s"),
            Err(ScheduleError::Duration(_))
        ));
        let many = vec!["0"; 31].join(",");
        assert_eq!(RetrySchedule::parse(&many), Err(ScheduleError::Length));
    }

    #[test]
    fn retry_after_is_seconds_capped_at_an_hour() {
        assert_eq!(parse_retry_after("120"), Some(secs(120)));
        assert_eq!(parse_retry_after("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
