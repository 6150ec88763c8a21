//! .NET `TimeSpan` strings as host.json writes them: `hh:mm:ss`, `hh:mm:ss.fffffff`,
//! `d.hh:mm:ss[.f]`, and `-1` (no limit, for `functionTimeout`).

use std::time::Duration;

/// A parsed timespan: `None` means "unbounded" (`-1`).
pub fn parse(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text == "-1" || text.starts_with("-1.") || text == "-00:00:01" {
        return Ok(None);
    }
    let bad = || format!("`{text}` is not a TimeSpan (expected [d.]hh:mm:ss[.fffffff])");
    let parts: Vec<&str> = text.split(':').collect();
    let [head, minutes, seconds] = parts.as_slice() else {
        return Err(bad());
    };
    let (days, hours) = match head.split_once('.') {
        Some((d, h)) => (number(d).ok_or_else(bad)?, number(h).ok_or_else(bad)?),
        None => (0, number(head).ok_or_else(bad)?),
    };
    let minutes = number(minutes).ok_or_else(bad)?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole = number(whole).ok_or_else(bad)?;
    if hours > 23 || minutes > 59 || whole > 59 {
        return Err(bad());
    }
    let nanos = fraction_nanos(fraction).ok_or_else(bad)?;
    let secs = ((days * 24 + hours) * 60 + minutes) * 60 + whole;
    Ok(Some(Duration::new(secs, nanos)))
}

fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Up to 7 fractional digits (.NET ticks); more are rejected like .NET does.
fn fraction_nanos(fraction: &str) -> Option<u32> {
    if fraction.is_empty() {
        return Some(0);
    }
    if fraction.len() > 7 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let padded = format!("{fraction:0<9}");
    padded.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_minutes_seconds() {
        assert_eq!(parse("00:05:00").unwrap(), Some(Duration::from_secs(300)));
        assert_eq!(parse("01:00:02").unwrap(), Some(Duration::from_secs(3602)));
    }

    #[test]
    fn fractions_and_days() {
        assert_eq!(
            parse("00:00:00.100").unwrap(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            parse("00:00:00.5").unwrap(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse("1.00:00:00").unwrap(),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn minus_one_is_unbounded() {
        assert_eq!(parse("-1").unwrap(), None);
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in [
            "5",
            "00:60:00",
            "aa:bb:cc",
            "00:00",
            "00:00:00.12345678",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
