//! Network fee estimation for quotes.
//!
//! The quoted network fee is the *most* the transfer can cost: `gas_limit * max_fee_per_gas`.
//! The merchant's hold covers that worst case; whatever the chain charges less is released at
//! settlement. Network fees are always denominated in the chain's native asset (wei), also for
//! ERC-20 payments: an ERC-20 quote therefore debits two assets (the token amount plus service
//! fee in the token, the network fee in the native asset).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alloy::eips::eip1559::Eip1559Estimation;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use alloy::transports::TransportError;

use meshpay_domain::{Asset, AssetKind};

use crate::config::{Chain, ChainsConfig};

/// Gas of a plain value transfer to an account without code.
pub const NATIVE_TRANSFER_GAS: u64 = 21_000;
/// Gas limit used when `eth_estimateGas` of an ERC-20 `transfer` fails (e.g. the hot wallet
/// holds too few tokens at quote time): covers a transfer to a fresh holder of common tokens.
pub const ERC20_TRANSFER_GAS_FALLBACK: u64 = 65_000;
/// Headroom added to `eth_estimateGas`, in percent: state can change between quote and send.
pub const GAS_LIMIT_MARGIN_PERCENT: u64 = 20;
/// The quoted (held) max fee and tip are the estimate times this: the ceiling every
/// replacement of the payment's transaction stays under. The estimate is `2 × base fee + tip`,
/// so the ceiling is `4 × base fee + 2 × tip` at quote time: the base fee may quadruple before
/// it binds, 11 consecutive full blocks on Ethereum (+12.5 % each, 1.125^11 ≈ 3.65, about 2.2
/// minutes) and about 70 on an OP-stack L2 (+2 % per full block with elasticity 6 and
/// denominator 250, 1.02^70 ≈ 4.0, about 2.3 minutes at 2 s blocks). Broadcast signs at the
/// fresh estimate, which leaves room for five +12.5 % replacements (1.125^5 ≈ 1.8) before the
/// ceiling. The merchant's hold is twice the estimate; the unused part is released at
/// settlement.
pub const QUOTE_HEADROOM_FACTOR: u128 = 2;

/// Refuse to quote a token transfer estimated above this (a token with hooks or a proxy gone
/// wrong): the hold would be out of proportion and the transfer is suspicious.
pub const ERC20_TRANSFER_GAS_MAX: u64 = 300_000;

alloy::sol! {
    /// ERC-20 `transfer`, encoded for `eth_estimateGas`.
    function transfer(address to, uint256 amount) external returns (bool);
}

/// What is being sent: enough to estimate its gas.
#[derive(Debug, Clone)]
pub struct TransferSpec {
    pub asset: Asset,
    pub recipient: Address,
    pub amount_base_units: U256,
}

/// A fee estimate, capped by the chain's `max_fee_per_gas_cap_wei`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeEstimate {
    pub gas_limit: u64,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    /// The estimate exceeded the cap and was clamped to it (the transfer may then wait for
    /// cheaper blocks instead of overpaying).
    pub capped: bool,
    /// OP-stack chains: the L1 data fee held on top of the gas (see [`crate::l1_fee`]); 0
    /// elsewhere.
    pub l1_fee_wei: u128,
}

impl FeeEstimate {
    /// `gas_limit * max_fee_per_gas` plus the L1 data fee, in wei of the native asset.
    pub fn network_fee_wei(&self) -> U256 {
        U256::from(self.gas_limit) * U256::from(self.max_fee_per_gas_wei)
            + U256::from(self.l1_fee_wei)
    }
}

/// Why no fee could be estimated.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FeeError {
    #[error("chain {0:?} is not configured for fee estimation")]
    UnknownChain(String),
    /// `message`: the transport error's text with URLs removed (the RPC URL may carry an API
    /// key, and HTTP client errors quote it).
    #[error("chain {chain}: {method} failed: {message}")]
    Rpc {
        chain: String,
        method: &'static str,
        message: String,
    },
    #[error("chain {chain}: {method} timed out")]
    Timeout { chain: String, method: &'static str },
    #[error(
        "chain {chain}: estimated gas {gas} for a token transfer exceeds {ERC20_TRANSFER_GAS_MAX}"
    )]
    GasTooHigh { chain: String, gas: u64 },
}

/// A transport error as text safe to log: without the URLs an HTTP client error quotes.
fn rpc_message(error: &TransportError) -> String {
    crate::redact::redact_urls(&error.to_string())
}

/// Estimates fees for quotes; a trait so the HTTP layer can be tested without a node.
#[async_trait::async_trait]
pub trait FeeEstimator: Send + Sync + 'static {
    async fn estimate(
        &self,
        chain: &Chain,
        transfer: &TransferSpec,
    ) -> Result<FeeEstimate, FeeError>;
}

/// Clamps an EIP-1559 estimate to the chain's cap; the tip never exceeds the max fee.
pub fn cap_fees(estimation: Eip1559Estimation, cap_wei: u128) -> (u128, u128, bool) {
    let capped = estimation.max_fee_per_gas > cap_wei;
    let max_fee = estimation.max_fee_per_gas.min(cap_wei);
    let priority = estimation.max_priority_fee_per_gas.min(max_fee);
    (max_fee, priority, capped)
}

/// The quote's ceiling for a fresh estimate: both fees times [`QUOTE_HEADROOM_FACTOR`].
pub fn with_headroom(estimation: Eip1559Estimation) -> Eip1559Estimation {
    Eip1559Estimation {
        max_fee_per_gas: estimation
            .max_fee_per_gas
            .saturating_mul(QUOTE_HEADROOM_FACTOR),
        max_priority_fee_per_gas: estimation
            .max_priority_fee_per_gas
            .saturating_mul(QUOTE_HEADROOM_FACTOR),
    }
}

/// Applies [`GAS_LIMIT_MARGIN_PERCENT`] to an `eth_estimateGas` result.
pub fn with_margin(gas: u64) -> u64 {
    let padded = u128::from(gas) * u128::from(100 + GAS_LIMIT_MARGIN_PERCENT) / 100;
    u64::try_from(padded).unwrap_or(u64::MAX)
}

/// Estimates from the chain's JSON-RPC: `eth_feeHistory` (alloy's EIP-1559 estimator: 10
/// blocks, 20th percentile tip, `2 * base fee + tip`) and `eth_estimateGas` for tokens.
pub struct RpcFeeEstimator {
    providers: HashMap<String, DynProvider>,
    rpc_timeout: Duration,
    /// Quotes in the same block see the same fees: cache per chain for `cache_ttl`.
    cache_ttl: Duration,
    /// Per chain, the last answer (or failure). One async lock per chain makes a flood of
    /// quotes that all miss wait for one `eth_feeHistory` instead of sending one each; a
    /// failure is kept for [`FEE_FAILURE_TTL`] so an outage does not queue them behind one
    /// timeout after another.
    cache: HashMap<String, tokio::sync::Mutex<Option<CachedFees>>>,
}

type CachedFees = (Instant, Result<Eip1559Estimation, FeeError>);

/// How long a failed fee estimate is answered from memory.
const FEE_FAILURE_TTL: Duration = Duration::from_secs(1);

impl RpcFeeEstimator {
    /// One HTTP provider per chain (no I/O until the first estimate).
    pub fn new(config: &ChainsConfig, rpc_timeout: Duration, cache_ttl: Duration) -> Self {
        let providers = config
            .chains()
            .iter()
            .map(|chain| {
                let provider = ProviderBuilder::new()
                    .disable_recommended_fillers()
                    .connect_http(chain.rpc_url.clone())
                    .erased();
                (chain.name.clone(), provider)
            })
            .collect();
        let cache = config
            .chains()
            .iter()
            .map(|chain| (chain.name.clone(), tokio::sync::Mutex::new(None)))
            .collect();
        Self {
            providers,
            rpc_timeout,
            cache_ttl,
            cache,
        }
    }

    fn provider(&self, chain: &Chain) -> Result<&DynProvider, FeeError> {
        self.providers
            .get(&chain.name)
            .ok_or_else(|| FeeError::UnknownChain(chain.name.clone()))
    }

    async fn eip1559(&self, chain: &Chain) -> Result<Eip1559Estimation, FeeError> {
        let slot = self
            .cache
            .get(&chain.name)
            .ok_or_else(|| FeeError::UnknownChain(chain.name.clone()))?;
        let mut slot = slot.lock().await;
        if let Some((at, cached)) = slot.as_ref() {
            let ttl = if cached.is_ok() {
                self.cache_ttl
            } else {
                FEE_FAILURE_TTL
            };
            if at.elapsed() < ttl {
                return cached.clone();
            }
        }
        let fetched = self.fetch_eip1559(chain).await;
        *slot = Some((Instant::now(), fetched.clone()));
        fetched
    }

    async fn fetch_eip1559(&self, chain: &Chain) -> Result<Eip1559Estimation, FeeError> {
        let provider = self.provider(chain)?;
        let method = "eth_feeHistory";
        let estimation = tokio::time::timeout(self.rpc_timeout, provider.estimate_eip1559_fees())
            .await
            .map_err(|_| FeeError::Timeout {
                chain: chain.name.clone(),
                method,
            })?
            .map_err(|source| FeeError::Rpc {
                chain: chain.name.clone(),
                method,
                message: rpc_message(&source),
            })?;
        Ok(estimation)
    }

    /// A plain value transfer costs exactly 21,000 gas, but a recipient that is a contract (a
    /// smart-contract wallet) runs code on receipt: the broadcast step estimates again and
    /// refuses to sign above the quoted gas limit, so the quote must cover it (with the same
    /// margin the broadcast step applies). An estimate that fails (e.g. the hot wallet is not
    /// funded yet) quotes the plain 21,000.
    async fn native_gas(&self, chain: &Chain, transfer: &TransferSpec) -> Result<u64, FeeError> {
        let provider = self.provider(chain)?;
        let mut request = TransactionRequest::default()
            .to(transfer.recipient)
            .value(transfer.amount_base_units);
        if let Some(from) = chain.hot_wallets.first() {
            request = request.from(*from);
        }
        let estimate = tokio::time::timeout(self.rpc_timeout, provider.estimate_gas(request)).await;
        Ok(match estimate {
            Ok(Ok(gas)) if gas <= NATIVE_TRANSFER_GAS => NATIVE_TRANSFER_GAS,
            Ok(Ok(gas)) => with_margin(gas),
            Ok(Err(error)) => {
                let error = rpc_message(&error);
                tracing::warn!(chain = %chain.name, %error, "eth_estimateGas failed, quoting a plain transfer");
                NATIVE_TRANSFER_GAS
            }
            Err(_) => {
                tracing::warn!(chain = %chain.name, "eth_estimateGas timed out, quoting a plain transfer");
                NATIVE_TRANSFER_GAS
            }
        })
    }

    async fn token_gas(
        &self,
        chain: &Chain,
        contract: Address,
        transfer: &TransferSpec,
    ) -> Result<u64, FeeError> {
        let provider = self.provider(chain)?;
        let call = transferCall {
            to: transfer.recipient,
            amount: transfer.amount_base_units,
        };
        let mut request = TransactionRequest::default()
            .to(contract)
            .input(call.abi_encode().into());
        if let Some(from) = chain.hot_wallets.first() {
            request = request.from(*from);
        }
        let estimate = tokio::time::timeout(self.rpc_timeout, provider.estimate_gas(request)).await;
        let gas = match estimate {
            Ok(Ok(gas)) => with_margin(gas),
            // A revert here usually means the hot wallet lacks tokens right now; the payment
            // can still be funded before broadcast, so quote with the conservative fallback.
            Ok(Err(error)) => {
                let error = rpc_message(&error);
                tracing::warn!(chain = %chain.name, %error, "eth_estimateGas failed, using fallback gas limit");
                ERC20_TRANSFER_GAS_FALLBACK
            }
            Err(_) => {
                tracing::warn!(chain = %chain.name, "eth_estimateGas timed out, using fallback gas limit");
                ERC20_TRANSFER_GAS_FALLBACK
            }
        };
        if gas > ERC20_TRANSFER_GAS_MAX {
            return Err(FeeError::GasTooHigh {
                chain: chain.name.clone(),
                gas,
            });
        }
        Ok(gas)
    }
}

#[async_trait::async_trait]
impl FeeEstimator for RpcFeeEstimator {
    async fn estimate(
        &self,
        chain: &Chain,
        transfer: &TransferSpec,
    ) -> Result<FeeEstimate, FeeError> {
        let gas_limit = match transfer.asset.kind() {
            AssetKind::Native => self.native_gas(chain, transfer).await?,
            AssetKind::Erc20 { contract } => self.token_gas(chain, contract, transfer).await?,
        };
        let estimation = with_headroom(self.eip1559(chain).await?);
        let (max_fee_per_gas_wei, max_priority_fee_per_gas_wei, capped) =
            cap_fees(estimation, chain.max_fee_per_gas_cap_wei);
        let mut fee = FeeEstimate {
            gas_limit,
            max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei,
            capped,
            l1_fee_wei: 0,
        };
        if chain.op_stack {
            fee.l1_fee_wei = self.l1_fee(chain, transfer, &fee).await?;
        }
        Ok(fee)
    }
}

impl RpcFeeEstimator {
    /// The L1 data fee to hold for this transfer on an OP-stack chain.
    async fn l1_fee(
        &self,
        chain: &Chain,
        transfer: &TransferSpec,
        fee: &FeeEstimate,
    ) -> Result<u128, FeeError> {
        let (to, value, input) = match transfer.asset.kind() {
            AssetKind::Native => (transfer.recipient, transfer.amount_base_units, Vec::new()),
            AssetKind::Erc20 { contract } => {
                let call = transferCall {
                    to: transfer.recipient,
                    amount: transfer.amount_base_units,
                };
                (contract, U256::ZERO, call.abi_encode())
            }
        };
        let input = crate::l1_fee::L1FeeInput {
            chain_id: chain.chain_id,
            to,
            value,
            input: input.into(),
            gas_limit: fee.gas_limit,
            max_fee_per_gas: fee.max_fee_per_gas_wei,
            max_priority_fee_per_gas: fee.max_priority_fee_per_gas_wei,
        };
        let method = "GasPriceOracle.getL1Fee";
        tokio::time::timeout(
            self.rpc_timeout,
            crate::l1_fee::quote_l1_fee(self.provider(chain)?, &input),
        )
        .await
        .map_err(|_| FeeError::Timeout {
            chain: chain.name.clone(),
            method,
        })?
        .map_err(|e| FeeError::Rpc {
            chain: chain.name.clone(),
            method,
            message: e.to_string(),
        })
    }
}

/// A constant estimator for tests and benchmarks that must not depend on a node: native
/// transfers use 21,000 gas, tokens [`ERC20_TRANSFER_GAS_FALLBACK`]; the cap still applies.
#[derive(Debug, Clone, Copy)]
pub struct FixedFeeEstimator {
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
}

#[async_trait::async_trait]
impl FeeEstimator for FixedFeeEstimator {
    async fn estimate(
        &self,
        chain: &Chain,
        transfer: &TransferSpec,
    ) -> Result<FeeEstimate, FeeError> {
        let gas_limit = match transfer.asset.kind() {
            AssetKind::Native => NATIVE_TRANSFER_GAS,
            AssetKind::Erc20 { .. } => ERC20_TRANSFER_GAS_FALLBACK,
        };
        let estimation = Eip1559Estimation {
            max_fee_per_gas: self.max_fee_per_gas_wei,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas_wei,
        };
        let (max_fee_per_gas_wei, max_priority_fee_per_gas_wei, capped) =
            cap_fees(estimation, chain.max_fee_per_gas_cap_wei);
        Ok(FeeEstimate {
            gas_limit,
            max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei,
            capped,
            l1_fee_wei: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimation(max_fee: u128, tip: u128) -> Eip1559Estimation {
        Eip1559Estimation {
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
        }
    }

    #[test]
    fn estimate_below_cap_is_kept() {
        assert_eq!(cap_fees(estimation(100, 2), 1_000), (100, 2, false));
    }

    #[test]
    fn estimate_above_cap_is_clamped_and_flagged() {
        assert_eq!(cap_fees(estimation(5_000, 2), 1_000), (1_000, 2, true));
    }

    #[test]
    fn tip_never_exceeds_the_capped_max_fee() {
        assert_eq!(
            cap_fees(estimation(5_000, 3_000), 1_000),
            (1_000, 1_000, true)
        );
    }

    #[test]
    fn the_quoted_ceiling_doubles_the_estimate_without_overflow() {
        let ceiling = with_headroom(estimation(3_000, 100));
        assert_eq!(
            (ceiling.max_fee_per_gas, ceiling.max_priority_fee_per_gas),
            (6_000, 200)
        );
        let huge = with_headroom(estimation(u128::MAX, u128::MAX));
        assert_eq!(huge.max_fee_per_gas, u128::MAX);
    }

    #[test]
    fn margin_adds_twenty_percent_without_overflow() {
        assert_eq!(with_margin(50_000), 60_000);
        assert_eq!(with_margin(u64::MAX), u64::MAX);
    }

    #[test]
    fn network_fee_is_gas_limit_times_max_fee() {
        let fee = FeeEstimate {
            gas_limit: 21_000,
            max_fee_per_gas_wei: 3_000_000_000,
            max_priority_fee_per_gas_wei: 1,
            capped: false,
            l1_fee_wei: 0,
        };
        assert_eq!(fee.network_fee_wei(), U256::from(63_000_000_000_000u64));
        let op_stack = FeeEstimate {
            l1_fee_wei: 5,
            ..fee
        };
        assert_eq!(
            op_stack.network_fee_wei(),
            U256::from(63_000_000_000_005u64)
        );
    }
}
