//! The JSON-RPC layer the broadcast and confirm steps share: one HTTP client with a timeout on
//! every call ([`AlloyRpc`]), the failures it reports ([`RpcFailure`], texts without URLs) and
//! what a failed `eth_sendRawTransaction` means ([`classify_send`]).
//!
//! Each step sees the node through its own narrow trait ([`ChainRpc`] for broadcasting,
//! [`ConfirmRpc`] for confirming), so its tests can script a node or put a faulty one in front
//! of a real anvil; [`AlloyRpc`] implements both.

mod books;
mod classify;
mod client;
mod failure;

use alloy::eips::eip1559::Eip1559Estimation;
use alloy::primitives::{Address, B256, Bytes};
use alloy::rpc::types::TransactionRequest;

pub use books::{BooksRpc, PinnedBlock, TxFacts};
pub use classify::{SendClass, classify_send};
pub use client::AlloyRpc;
pub use failure::RpcFailure;

/// What the broadcast step asks a chain's node.
#[async_trait::async_trait]
pub trait ChainRpc: Send + Sync + 'static {
    /// `eth_getTransactionCount(address, "pending")`: the floor for the wallet's next nonce.
    async fn pending_nonce(&self, address: Address) -> Result<u64, RpcFailure>;
    /// `eth_estimateGas`.
    async fn estimate_gas(&self, request: TransactionRequest) -> Result<u64, RpcFailure>;
    /// EIP-1559 fees from `eth_feeHistory` (alloy's estimator: 10 blocks, 20th percentile tip,
    /// `2 * base fee + tip`). Uncapped: the caller applies the chain's cap.
    async fn eip1559_fees(&self) -> Result<Eip1559Estimation, RpcFailure>;
    /// `eth_sendRawTransaction`; the node's hash on success.
    async fn send_raw(&self, raw: &[u8]) -> Result<B256, RpcFailure>;
    /// Whether the chain knows the transaction (pending or mined).
    async fn transaction_known(&self, hash: B256) -> Result<bool, RpcFailure>;
    /// `eth_blockNumber`, plus the `finalized` block when `finalized` is asked for.
    async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure>;
    /// `eth_getTransactionCount(address, number)`: the wallet's nonce in the state after block
    /// `number` (a read pinned to that block, not to whatever `latest` a backend has).
    async fn nonce_at(&self, address: Address, number: u64) -> Result<u64, RpcFailure>;
    /// The transactions of block `number` (`eth_getBlockByNumber` with bodies); `None` when
    /// the node does not have that block.
    async fn block_transactions(&self, number: u64) -> Result<Option<Vec<TxRef>>, RpcFailure>;
    /// The next block's base fee (`eth_feeHistory`), when the node reports one: a transaction
    /// whose max fee is below it cannot be included. `None` by default (fee replacement then
    /// goes by the fee estimate alone).
    async fn next_base_fee(&self) -> Result<Option<u128>, RpcFailure> {
        Ok(None)
    }
}

/// Who sent a mined transaction, on which nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRef {
    pub hash: B256,
    pub from: Address,
    pub nonce: u64,
}

/// What the confirm and settle steps ask a chain's node.
#[async_trait::async_trait]
pub trait ConfirmRpc: Send + Sync + 'static {
    /// `eth_getTransactionReceipt`; `None` while not mined (a pending-block receipt counts as
    /// not mined).
    async fn receipt(&self, hash: B256) -> Result<Option<ReceiptFacts>, RpcFailure>;
    /// `eth_blockNumber`, plus the `finalized` block when `finalized` is asked for.
    async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure>;
    /// The hash of the canonical block at `number` (`eth_getBlockByNumber`); `None` when the
    /// node does not have that block (yet).
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, RpcFailure>;
    /// Whether the node knows the transaction (pending or mined).
    async fn transaction_known(&self, hash: B256) -> Result<bool, RpcFailure>;
    /// `eth_sendRawTransaction`.
    async fn send_raw(&self, raw: &[u8]) -> Result<B256, RpcFailure>;
}

/// One log of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFacts {
    pub address: Address,
    pub topics: Vec<B256>,
    pub data: Bytes,
}

/// The parts of a mined receipt that decide a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptFacts {
    pub tx_hash: B256,
    /// Status 1.
    pub success: bool,
    pub block_number: u64,
    pub block_hash: B256,
    pub from: Address,
    pub to: Option<Address>,
    pub gas_used: u64,
    pub effective_gas_price_wei: u128,
    /// OP-stack chains: the receipt's `l1Fee` (charged on top of the gas); 0 elsewhere.
    pub l1_fee_wei: u128,
    pub logs: Vec<LogFacts>,
}

impl ReceiptFacts {
    /// What the sender paid: `gasUsed × effectiveGasPrice` plus the L1 data fee.
    pub fn network_fee_wei(&self) -> alloy::primitives::U256 {
        alloy::primitives::U256::from(self.gas_used)
            * alloy::primitives::U256::from(self.effective_gas_price_wei)
            + alloy::primitives::U256::from(self.l1_fee_wei)
    }
}

/// The chain head as one check read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub latest: u64,
    /// The `finalized` block number; `None` when not asked for or not known yet.
    pub finalized: Option<u64>,
}

#[cfg(test)]
mod receipt_fee_tests {
    use super::*;

    #[test]
    fn the_fee_a_receipt_charged_includes_the_l1_data_fee() {
        let receipt = ReceiptFacts {
            tx_hash: B256::ZERO,
            success: true,
            block_number: 1,
            block_hash: B256::ZERO,
            from: Address::ZERO,
            to: None,
            gas_used: 21_000,
            effective_gas_price_wei: 1_000,
            l1_fee_wei: 0,
            logs: Vec::new(),
        };
        assert_eq!(
            receipt.network_fee_wei(),
            alloy::primitives::U256::from(21_000_000u64)
        );
        let op_stack = ReceiptFacts {
            l1_fee_wei: 7,
            ..receipt
        };
        assert_eq!(
            op_stack.network_fee_wei(),
            alloy::primitives::U256::from(21_000_007u64)
        );
    }
}
