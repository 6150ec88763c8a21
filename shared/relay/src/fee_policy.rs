//! The fee policy: how a payment's transaction is re-priced on its own nonce, and the ceiling
//! it never crosses. Integer arithmetic only (wei per gas as `u128`, products as `U256`).
//!
//! - **Ceiling.** The quote holds `gas_limit × max_fee_per_gas` where the quoted max fee
//!   carries headroom over the estimate ([`meshpay_chain::fees::QUOTE_HEADROOM_FACTOR`]).
//!   Broadcast signs at the fresh estimate, below that ceiling; every replacement stays at or
//!   under it, so the merchant's hold always covers the worst case of every attempt. A
//!   cancellation (a 21,000-gas self-transfer) may use the whole hold: its ceiling is
//!   `hold / 21,000`.
//! - **Bump rule.** A replacement raises BOTH the max fee and the tip by at least
//!   [`BUMP_PER_MILLE`] (+12.5 %, rounded up, and at least +1 wei): geth and reth take a
//!   replacement only at +10 % on both (and strictly above), some pools ask for 12.5 %. The
//!   fresh estimate wins when it is higher. The base for the bump is the highest-priced
//!   attempt of the nonce, since any of them may be the one in a node's pool.
//! - **Due.** A pending transaction is re-priced when the next block's base fee is above its
//!   max fee (it cannot be included), or when it has waited `replace_after` and either the
//!   fresh estimate is above what it pays (outbid on the tip) or it is next in line on its
//!   wallet (every earlier nonce mined) and still not mined. The last case is a node holding a
//!   transaction it will never mine at any price: a pool that computed the transaction's
//!   dependency on the previous nonce just before the block that mined that nonce was pruned
//!   (anvil, and reth's validate-then-insert race) parks it for good, and a node that accepted
//!   bytes without passing them on does the same. The same bytes sent again are "already
//!   known"; only new bytes on the nonce (this bump) get it mined.
//! - **Stalled.** When the base fee is above the ceiling, or the bump itself would cross it,
//!   nothing is signed: the payment shows `stalled` until fees come back.

use meshpay_domain::U256;

/// The minimum raise of a replacement, in per mille of the previous fee (+12.5 %).
pub const BUMP_PER_MILLE: u128 = 1_125;

/// A max fee and a tip, in wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeePair {
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
}

/// `fee` raised by the bump rule: ×1.125 rounded up, and strictly above `fee` (a 0 tip becomes
/// 1). Saturates at `u128::MAX`.
pub fn bump(fee: u128) -> u128 {
    let raised = U256::from(fee) * U256::from(BUMP_PER_MILLE);
    let raised = raised.div_ceil(U256::from(1_000u32));
    let raised = u128::try_from(raised).unwrap_or(u128::MAX);
    raised.max(fee.saturating_add(1))
}

/// The replacement cannot be priced within the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AboveCeiling {
    /// What the replacement would need per gas: the bumped fee, or the next base fee when that
    /// alone is above the ceiling.
    pub needed_wei: u128,
    pub ceiling_wei: u128,
}

impl std::fmt::Display for AboveCeiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fee market above the quoted maximum: a replacement needs {} wei/gas, the quote \
             allows at most {} wei/gas",
            self.needed_wei, self.ceiling_wei
        )
    }
}

/// The fees of a replacement of `previous` (the highest-priced attempt of the nonce), given
/// the `fresh` estimate, the next block's base fee if known, and the `ceiling`: at least the
/// bump of both fees, the fresh estimate if higher, the max fee at most the ceiling and the tip
/// at most the max fee.
pub fn replacement(
    previous: FeePair,
    fresh: FeePair,
    next_base_fee_wei: Option<u128>,
    ceiling_wei: u128,
) -> Result<FeePair, AboveCeiling> {
    let min_max_fee = bump(previous.max_fee_per_gas_wei);
    let min_tip = bump(previous.max_priority_fee_per_gas_wei);
    // A transaction priced below the base fee cannot be mined: signing one would only spend
    // the bump.
    let needed = min_max_fee.max(next_base_fee_wei.unwrap_or(0));
    if needed > ceiling_wei || min_tip > ceiling_wei {
        return Err(AboveCeiling {
            needed_wei: needed.max(min_tip),
            ceiling_wei,
        });
    }
    // Room for the whole tip above the next base fee when the ceiling allows it.
    let with_tip = next_base_fee_wei.map_or(0, |base| base.saturating_add(min_tip));
    let max_fee = needed
        .max(with_tip)
        .max(fresh.max_fee_per_gas_wei)
        .min(ceiling_wei);
    let tip = min_tip.max(fresh.max_priority_fee_per_gas_wei).min(max_fee);
    Ok(FeePair {
        max_fee_per_gas_wei: max_fee,
        max_priority_fee_per_gas_wei: tip,
    })
}

/// How long a pending transaction has waited, and whether it is next in line on its wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// It has waited `replace_after`.
    pub long_enough: bool,
    /// Every earlier nonce of its wallet is mined at the node's head and its own is not
    /// (`false` when unknown: nothing is concluded from a read that failed).
    pub next_in_line: bool,
}

/// Whether a pending transaction paying `signed` should be re-priced now.
pub fn replacement_due(
    signed: FeePair,
    fresh: FeePair,
    next_base_fee_wei: Option<u128>,
    waiting: Waiting,
) -> bool {
    replacement_due_on_fees(signed, fresh, next_base_fee_wei, waiting.long_enough)
        || (waiting.long_enough && waiting.next_in_line)
}

/// [`replacement_due`] by the fees alone: below the next base fee, or outbid after waiting.
fn replacement_due_on_fees(
    signed: FeePair,
    fresh: FeePair,
    next_base_fee_wei: Option<u128>,
    waited_long_enough: bool,
) -> bool {
    let below_base = next_base_fee_wei.is_some_and(|base| base > signed.max_fee_per_gas_wei);
    let outbid = fresh.max_fee_per_gas_wei > signed.max_fee_per_gas_wei
        || fresh.max_priority_fee_per_gas_wei > signed.max_priority_fee_per_gas_wei;
    below_base || (waited_long_enough && outbid)
}

/// The highest max fee per gas a transaction of `gas_limit` may carry for its worst case
/// (`gas_limit × max_fee`) to stay within `held_wei`.
pub fn ceiling_for_hold(held_wei: U256, gas_limit: u64) -> u128 {
    if gas_limit == 0 {
        return 0;
    }
    let per_gas = held_wei / U256::from(gas_limit);
    u128::try_from(per_gas).unwrap_or(u128::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(max_fee: u128, tip: u128) -> FeePair {
        FeePair {
            max_fee_per_gas_wei: max_fee,
            max_priority_fee_per_gas_wei: tip,
        }
    }

    #[test]
    fn the_bump_is_twelve_and_a_half_percent_rounded_up_and_always_strictly_higher() {
        assert_eq!(bump(1_000), 1_125);
        assert_eq!(bump(1_001), 1_127); // 1126.125 rounds up
        assert_eq!(bump(8), 9);
        assert_eq!(bump(1), 2);
        assert_eq!(bump(0), 1);
        assert_eq!(bump(u128::MAX), u128::MAX);
        // Above geth's and reth's +10 % rule for every fee, no floating point involved.
        for fee in [7u128, 99, 1_000_000_007, 3_000_000_000, u128::MAX / 2000] {
            assert!(bump(fee) * 100 >= fee * 110, "{fee}");
        }
    }

    #[test]
    fn a_replacement_raises_both_fees_by_the_bump_when_the_estimate_is_lower() {
        let fees = replacement(pair(2_000, 100), pair(1_500, 50), None, 10_000).unwrap();
        assert_eq!(fees, pair(2_250, 113));
    }

    #[test]
    fn a_higher_fresh_estimate_wins_over_the_bump_but_never_crosses_the_ceiling() {
        let fees = replacement(pair(2_000, 100), pair(5_000, 300), Some(2_400), 10_000).unwrap();
        assert_eq!(fees, pair(5_000, 300));
        let fees = replacement(pair(2_000, 100), pair(50_000, 300), Some(2_400), 10_000).unwrap();
        assert_eq!(fees, pair(10_000, 300));
    }

    #[test]
    fn a_replacement_pays_at_least_the_next_base_fee_plus_its_tip_within_the_ceiling() {
        // A stale estimate below the base fee does not price the replacement under it.
        let fees = replacement(pair(2_000, 100), pair(1_500, 50), Some(3_000), 10_000).unwrap();
        assert_eq!(fees, pair(3_113, 113));
        let fees = replacement(pair(2_000, 100), pair(1_500, 50), Some(3_000), 3_050).unwrap();
        assert_eq!(fees, pair(3_050, 113));
    }

    #[test]
    fn the_tip_never_exceeds_the_max_fee() {
        let fees = replacement(pair(2_000, 2_000), pair(2_000, 9_000), None, 2_300).unwrap();
        assert_eq!(fees, pair(2_250, 2_250));
    }

    #[test]
    fn a_bump_above_the_ceiling_is_refused_with_what_it_needed() {
        assert_eq!(
            replacement(pair(9_000, 100), pair(1, 1), None, 10_000),
            Err(AboveCeiling {
                needed_wei: 10_125,
                ceiling_wei: 10_000
            })
        );
    }

    #[test]
    fn a_base_fee_above_the_ceiling_is_refused_even_when_the_bump_fits() {
        assert_eq!(
            replacement(pair(2_000, 100), pair(1, 1), Some(12_000), 10_000),
            Err(AboveCeiling {
                needed_wei: 12_000,
                ceiling_wei: 10_000
            })
        );
        assert!(
            replacement(pair(2_000, 100), pair(1, 1), Some(10_000), 10_000).is_ok(),
            "a base fee at the ceiling can still be paid"
        );
    }

    fn waited(long_enough: bool) -> Waiting {
        Waiting {
            long_enough,
            next_in_line: false,
        }
    }

    #[test]
    fn a_replacement_is_due_below_the_base_fee_or_when_outbid_after_waiting() {
        let signed = pair(2_000, 100);
        assert!(replacement_due(signed, signed, Some(2_001), waited(false)));
        assert!(!replacement_due(signed, signed, Some(2_000), waited(true)));
        assert!(!replacement_due(
            signed,
            pair(3_000, 100),
            Some(1_000),
            waited(false)
        ));
        assert!(replacement_due(
            signed,
            pair(3_000, 100),
            Some(1_000),
            waited(true)
        ));
        assert!(replacement_due(
            signed,
            pair(2_000, 101),
            None,
            waited(true)
        ));
        assert!(!replacement_due(
            signed,
            pair(1_000, 50),
            None,
            waited(true)
        ));
    }

    #[test]
    fn a_transaction_next_in_line_and_unmined_after_waiting_is_due_at_any_fee() {
        let signed = pair(2_000, 100);
        let cheaper_market = pair(1_000, 50);
        let next_in_line = |long_enough| Waiting {
            long_enough,
            next_in_line: true,
        };
        assert!(replacement_due(
            signed,
            cheaper_market,
            Some(500),
            next_in_line(true)
        ));
        assert!(!replacement_due(
            signed,
            cheaper_market,
            Some(500),
            next_in_line(false)
        ));
        assert!(!replacement_due(
            signed,
            cheaper_market,
            Some(500),
            waited(true)
        ));
    }

    #[test]
    fn the_hold_bounds_the_max_fee_of_any_gas_limit() {
        let hold = U256::from(65_000u64) * U256::from(4_000u64);
        assert_eq!(ceiling_for_hold(hold, 65_000), 4_000);
        // A 21,000-gas cancellation may bid three times as much from the same hold.
        assert_eq!(ceiling_for_hold(hold, 21_000), 12_380);
        assert!(U256::from(21_000u64) * U256::from(12_380u64) <= hold);
        assert_eq!(ceiling_for_hold(hold, 0), 0);
        assert_eq!(ceiling_for_hold(U256::MAX, 1), u128::MAX);
    }
}
