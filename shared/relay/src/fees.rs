//! Fees and gas of the transaction actually sent (the quote's figures bounded what the merchant
//! pays; these are fresh from the chain at broadcast time).
//!
//! - `maxFeePerGas`/`maxPriorityFeePerGas`: `eth_feeHistory` through alloy's estimator, clamped
//!   to the chain's `max_fee_per_gas_cap_wei` (the tip never above the max fee). Cached per
//!   chain for a short time: payments broadcast in the same block see the same fees anyway.
//! - gas limit: `eth_estimateGas` from the sending wallet plus a margin
//!   ([`meshpay_chain::fees::with_margin`]), except a plain value transfer estimated at exactly
//!   21,000, which is deterministic (no code runs) and gets no margin.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::eips::eip1559::Eip1559Estimation;
use meshpay_chain::fees::{NATIVE_TRANSFER_GAS, cap_fees, with_margin};

use crate::classify::RpcFailure;
use crate::rpc::ChainRpc;

/// Fees for one transaction, already capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    /// The estimate was above the chain's cap and was clamped (the transaction may wait for
    /// cheaper blocks).
    pub capped: bool,
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
