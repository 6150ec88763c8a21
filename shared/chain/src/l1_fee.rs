//! The L1 data fee of OP-stack chains (Base, OP Mainnet; `op_stack = true` in chains.toml).
//! Besides `gasUsed × effectiveGasPrice`, every transaction there pays for posting its bytes to
//! L1, charged to the sender outside the gas accounting. Quotes hold it (asked of the
//! GasPriceOracle predeploy with the unsigned transaction, plus a margin: the L1 base and blob
//! fees move between quote and inclusion); settlement posts what the receipt's `l1Fee` says.
//!
//! anvil's `--network optimism` mode has no GasPriceOracle code and writes no `l1Fee` into
//! receipts, so this is tested with a mocked oracle answer and receipt-level JSON.

use alloy::consensus::{SignableTransaction as _, TxEip1559};
use alloy::primitives::{Address, Bytes, TxKind, U256, address};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;

/// The GasPriceOracle predeploy of every OP-stack chain.
pub const GAS_PRICE_ORACLE: Address = address!("0x420000000000000000000000000000000000000F");

/// Held on top of the oracle's answer, in percent: the L1 fee follows the L1 base fee and blob
/// fee, which can double within minutes; a quote lives up to its TTL and the transaction may
/// wait for inclusion. The unused part is released at settlement.
pub const L1_FEE_MARGIN_PERCENT: u64 = 100;

alloy::sol! {
    /// The L1 data fee of an unsigned, EIP-2718-encoded transaction, in wei (the oracle adds the
    /// signature's bytes itself).
    function getL1Fee(bytes _data) external view returns (uint256);
}

/// What a payout transaction will look like, for the oracle (its size is what matters).
#[derive(Debug, Clone)]
pub struct L1FeeInput {
    pub chain_id: u64,
    pub to: Address,
    pub value: U256,
    pub input: Bytes,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

impl L1FeeInput {
    /// The unsigned EIP-1559 transaction the oracle prices (type byte + RLP). Nonce 0 is one
    /// byte; real nonces are at most a few bytes more, inside the margin.
    pub fn unsigned_tx(&self) -> Bytes {
        let tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce: 0,
            gas_limit: self.gas_limit,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            to: TxKind::Call(self.to),
            value: self.value,
            access_list: Default::default(),
            input: self.input.clone(),
        };
        tx.encoded_for_signing().into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum L1FeeError {
    /// Text without URLs (an RPC URL may carry a provider key).
    #[error("GasPriceOracle.getL1Fee failed: {0}")]
    Call(String),
    #[error("GasPriceOracle.getL1Fee answered {0} bytes that do not decode")]
    Decode(usize),
}

/// The oracle's L1 fee for `input`, with [`L1_FEE_MARGIN_PERCENT`] added: what a quote holds.
pub async fn quote_l1_fee(provider: &DynProvider, input: &L1FeeInput) -> Result<u128, L1FeeError> {
    let call = getL1FeeCall {
        _data: input.unsigned_tx(),
    };
    let request = TransactionRequest::default()
        .to(GAS_PRICE_ORACLE)
        .input(call.abi_encode().into());
    let answer = provider
        .call(request)
        .await
        .map_err(|e| L1FeeError::Call(crate::redact::redact_urls(&e.to_string())))?;
    let fee =
        getL1FeeCall::abi_decode_returns(&answer).map_err(|_| L1FeeError::Decode(answer.len()))?;
    Ok(with_margin(fee))
}

/// `fee` plus [`L1_FEE_MARGIN_PERCENT`], saturating at `u128::MAX` (a fee that large is
/// refused by the merchant's balance anyway).
pub fn with_margin(fee: U256) -> u128 {
    let padded = fee.saturating_mul(U256::from(100 + L1_FEE_MARGIN_PERCENT)) / U256::from(100);
    u128::try_from(padded).unwrap_or(u128::MAX)
}

/// The `l1Fee` field an OP-stack receipt carries (hex quantity), if any; 0 on other chains.
pub fn receipt_l1_fee(receipt: &serde_json::Value) -> Result<u128, String> {
    match receipt.get("l1Fee") {
        None | Some(serde_json::Value::Null) => Ok(0),
        Some(serde_json::Value::String(hex)) => {
            let digits = hex
                .strip_prefix("0x")
                .ok_or_else(|| format!("l1Fee {hex:?}"))?;
            if digits.is_empty() {
                return Ok(0);
            }
            u128::from_str_radix(digits, 16).map_err(|_| format!("l1Fee {hex:?}"))
        }
        Some(other) => Err(format!("l1Fee {other}")),
    }
}

#[cfg(test)]
mod tests {
    use alloy::providers::{ProviderBuilder, mock::Asserter};

    use super::*;

    fn input() -> L1FeeInput {
        L1FeeInput {
            chain_id: 8453,
            to: address!("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
            value: U256::ZERO,
            input: Bytes::from(vec![0xa9, 0x05, 0x9c, 0xbb, 1, 2, 3]),
            gas_limit: 65_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000,
        }
    }

    #[tokio::test]
    async fn a_quote_holds_the_oracles_l1_fee_doubled() {
        let asserter = Asserter::new();
        // The oracle answers 1234 wei for the transaction's bytes.
        asserter.push_success(&Bytes::from(
            U256::from(1234u64).to_be_bytes::<32>().to_vec(),
        ));
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_mocked_client(asserter.clone())
            .erased();
        let held = quote_l1_fee(&provider, &input()).await.unwrap();
        assert_eq!(held, 2468);
        assert!(asserter.read_q().is_empty(), "one eth_call");
    }

    #[tokio::test]
    async fn an_oracle_that_cannot_answer_fails_the_quote_rather_than_holding_nothing() {
        let asserter = Asserter::new();
        asserter.push_failure_msg("execution reverted");
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_mocked_client(asserter)
            .erased();
        assert!(matches!(
            quote_l1_fee(&provider, &input()).await,
            Err(L1FeeError::Call(_))
        ));
    }

    #[test]
    fn the_unsigned_transaction_is_an_eip1559_envelope_with_the_call_data() {
        let bytes = input().unsigned_tx();
        assert_eq!(bytes[0], 0x02, "EIP-1559 type byte");
        assert!(
            bytes
                .windows(7)
                .any(|w| w == [0xa9, 0x05, 0x9c, 0xbb, 1, 2, 3])
        );
    }

    #[test]
    fn the_receipts_l1_fee_is_read_and_absent_means_zero() {
        let op_receipt = serde_json::json!({
            "gasUsed": "0xfde8", "effectiveGasPrice": "0x3b9aca00",
            "l1Fee": "0x2386f26fc10000", "l1GasUsed": "0x640", "l1GasPrice": "0x1"
        });
        assert_eq!(receipt_l1_fee(&op_receipt), Ok(10_000_000_000_000_000));
        assert_eq!(
            receipt_l1_fee(&serde_json::json!({ "gasUsed": "0x5208" })),
            Ok(0)
        );
        assert!(receipt_l1_fee(&serde_json::json!({ "l1Fee": "12" })).is_err());
    }
}
