//! When confirm looks at a pending transaction again: soon after it was sent, when a block
//! (its inclusion, then each confirmation) is most likely only a moment away, and less often as
//! it ages. The pause is a quarter of the transaction's age, between the configured floor
//! (`MESHPAY_CONFIRM_POLL_MIN_MS`) and ceiling (`MESHPAY_CONFIRM_POLL_INTERVAL_MS`), so the
//! moment a transaction becomes final is noticed within a quarter of the time it took, and a
//! transaction waiting for minutes costs no more checks than with the fixed ceiling. Only the
//! cadence changes: what a check reads and decides is the same at any pace.

use std::time::Duration;

/// The pause is the age divided by this.
const AGE_DIVISOR: u32 = 4;

/// The pause before the next check of a transaction sent `age` ago.
pub fn next_check(age: Duration, floor: Duration, ceiling: Duration) -> Duration {
    (age / AGE_DIVISOR).clamp(floor.min(ceiling), ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Duration = Duration::from_millis(250);
    const CEILING: Duration = Duration::from_secs(2);

    #[test]
    fn a_fresh_transaction_is_checked_at_the_floor() {
        assert_eq!(next_check(Duration::ZERO, FLOOR, CEILING), FLOOR);
        assert_eq!(
            next_check(Duration::from_millis(900), FLOOR, CEILING),
            FLOOR
        );
    }

    #[test]
    fn the_pause_grows_with_age_up_to_the_ceiling() {
        assert_eq!(
            next_check(Duration::from_secs(2), FLOOR, CEILING),
            Duration::from_millis(500)
        );
        assert_eq!(next_check(Duration::from_secs(8), FLOOR, CEILING), CEILING);
        assert_eq!(
            next_check(Duration::from_secs(3600), FLOOR, CEILING),
            CEILING
        );
    }

    #[test]
    fn a_floor_above_the_ceiling_gives_the_fixed_ceiling() {
        let floor = Duration::from_secs(5);
        assert_eq!(next_check(Duration::ZERO, floor, CEILING), CEILING);
    }
}
