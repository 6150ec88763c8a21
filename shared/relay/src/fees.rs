//! Fees and gas of the transaction actually sent (the quote's figures bounded what the merchant
//! pays; these are fresh from the chain at broadcast time).
//!
//! - `maxFeePerGas`/`maxPriorityFeePerGas`: `eth_feeHistory` through alloy's estimator, clamped
//!   to the chain's `max_fee_per_gas_cap_wei` (the tip never above the max fee). Cached per
//!   chain for a short time: payments broadcast in the same block see the same fees anyway.
//! - gas limit: `eth_estimateGas` from the sending wallet plus a margin
//!   ([`meshpay_chain::fees::with_margin`]), except a plain value transfer estimated at exactly
//!   21,000, which is deterministic (no code runs) and gets no margin.
//! - [`bound_to_quote`]: the merchant's ledger holds the quoted `gas_limit × max_fee_per_gas`,
//!   the most the transaction may cost. Fees are clamped to the quoted ones (a transaction
//!   below the current base fee waits in the pool until blocks get cheaper), the quoted gas
//!   limit is signed, and a transfer that now needs more gas than quoted is not signed at all.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::eips::eip1559::Eip1559Estimation;
use meshpay_chain::fees::{NATIVE_TRANSFER_GAS, cap_fees, with_margin};

use meshpay_chain::rpc::ChainRpc;
use meshpay_chain::rpc::RpcFailure;

/// Fees for one transaction, already capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    /// The estimate was above the chain's cap and was clamped (the transaction may wait for
    /// cheaper blocks).
    pub capped: bool,
}

/// A payment's quoted gas terms: the hold is `gas_limit × max_fee_per_gas_wei`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedGas {
    pub gas_limit: u64,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
}

/// Gas and fees to sign, within the quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded {
    pub gas_limit: u64,
    pub fees: Fees,
    /// The fresh max fee or tip was above the quoted one and was lowered to it.
    pub clamped: bool,
}

/// The transfer needs more gas than quoted: signing it would risk a fee above the hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasAboveQuote {
    pub needed: u64,
    pub quoted: u64,
}

/// Bounds a fresh plan (`gas_needed`, `fresh` fees) by the quote: max fee and tip never above
/// the quoted ones (tip never above the max fee), gas limit = the quoted one. Needing more gas
/// than quoted is refused: a lower limit would run out of gas, a higher one exceed the hold.
pub fn bound_to_quote(
    quoted: QuotedGas,
    gas_needed: u64,
    fresh: Fees,
) -> Result<Bounded, GasAboveQuote> {
    if gas_needed > quoted.gas_limit {
        return Err(GasAboveQuote {
            needed: gas_needed,
            quoted: quoted.gas_limit,
        });
    }
    let max_fee = fresh.max_fee_per_gas_wei.min(quoted.max_fee_per_gas_wei);
    let priority = fresh
        .max_priority_fee_per_gas_wei
        .min(quoted.max_priority_fee_per_gas_wei)
        .min(max_fee);
    Ok(Bounded {
        gas_limit: quoted.gas_limit,
        fees: Fees {
            max_fee_per_gas_wei: max_fee,
            max_priority_fee_per_gas_wei: priority,
            capped: fresh.capped,
        },
        clamped: max_fee < fresh.max_fee_per_gas_wei
            || priority < fresh.max_priority_fee_per_gas_wei,
    })
}

/// Per-chain fee cache in front of [`ChainRpc::eip1559_fees`].
#[derive(Debug)]
pub struct FeeOracle {
    cap_wei: u128,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Eip1559Estimation)>>,
}

impl FeeOracle {
    pub fn new(cap_wei: u128, ttl: Duration) -> Self {
        FeeOracle {
            cap_wei,
            ttl,
            cached: Mutex::new(None),
        }
    }

    pub async fn fees(&self, rpc: &dyn ChainRpc) -> Result<Fees, RpcFailure> {
        let estimation = match self.cached() {
            Some(hit) => hit,
            None => {
                let fresh = rpc.eip1559_fees().await?;
                if let Ok(mut slot) = self.cached.lock() {
                    *slot = Some((Instant::now(), fresh));
                }
                fresh
            }
        };
        Ok(capped(estimation, self.cap_wei))
    }

    fn cached(&self) -> Option<Eip1559Estimation> {
        let slot = self.cached.lock().ok()?;
        let (at, estimation) = (*slot)?;
        (at.elapsed() < self.ttl).then_some(estimation)
    }
}

/// Applies the chain's cap (shared rule with the quote's estimate in `meshpay-chain`).
pub fn capped(estimation: Eip1559Estimation, cap_wei: u128) -> Fees {
    let (max_fee_per_gas_wei, max_priority_fee_per_gas_wei, capped) = cap_fees(estimation, cap_wei);
    Fees {
        max_fee_per_gas_wei,
        max_priority_fee_per_gas_wei,
        capped,
    }
}

/// The gas limit to sign for an `eth_estimateGas` result.
pub fn gas_limit(estimate: u64, has_calldata: bool) -> u64 {
    if estimate == NATIVE_TRANSFER_GAS && !has_calldata {
        NATIVE_TRANSFER_GAS
    } else {
        with_margin(estimate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_transfer_keeps_exactly_21000_gas() {
        assert_eq!(gas_limit(21_000, false), 21_000);
    }

    #[test]
    fn contract_calls_get_the_margin() {
        assert_eq!(gas_limit(50_000, true), 60_000);
        // A value transfer to a contract runs code: margin too.
        assert_eq!(gas_limit(23_500, false), 28_200);
    }

    const QUOTE: QuotedGas = QuotedGas {
        gas_limit: 65_000,
        max_fee_per_gas_wei: 2_000,
        max_priority_fee_per_gas_wei: 1_000,
    };

    fn fresh(max_fee: u128, tip: u128) -> Fees {
        Fees {
            max_fee_per_gas_wei: max_fee,
            max_priority_fee_per_gas_wei: tip,
            capped: false,
        }
    }

    #[test]
    fn fees_above_the_quote_are_lowered_to_it_with_the_quoted_gas_limit() {
        let bounded = bound_to_quote(QUOTE, 60_000, fresh(9_000, 3_000)).unwrap();
        assert_eq!(bounded.gas_limit, 65_000);
        assert_eq!(bounded.fees, fresh(2_000, 1_000));
        assert!(bounded.clamped);
    }

    #[test]
    fn cheaper_fresh_fees_are_kept_and_not_reported_as_clamped() {
        let bounded = bound_to_quote(QUOTE, 21_000, fresh(1_500, 500)).unwrap();
        assert_eq!(
            (bounded.gas_limit, bounded.fees),
            (65_000, fresh(1_500, 500))
        );
        assert!(!bounded.clamped);
    }

    #[test]
    fn tip_never_exceeds_the_clamped_max_fee() {
        let quote = QuotedGas {
            max_priority_fee_per_gas_wei: 5_000,
            ..QUOTE
        };
        let bounded = bound_to_quote(quote, 65_000, fresh(9_000, 4_000)).unwrap();
        assert_eq!(bounded.fees, fresh(2_000, 2_000));
    }

    #[test]
    fn needing_more_gas_than_quoted_is_refused() {
        assert_eq!(
            bound_to_quote(QUOTE, 65_001, fresh(1, 1)),
            Err(GasAboveQuote {
                needed: 65_001,
                quoted: 65_000
            })
        );
    }

    #[test]
    fn fees_above_the_cap_are_clamped_with_the_tip_below_the_max_fee() {
        let estimation = Eip1559Estimation {
            max_fee_per_gas: 500,
            max_priority_fee_per_gas: 300,
        };
        assert_eq!(
            capped(estimation, 200),
            Fees {
                max_fee_per_gas_wei: 200,
                max_priority_fee_per_gas_wei: 200,
                capped: true
            }
        );
        assert!(!capped(estimation, 1_000).capped);
    }
}
