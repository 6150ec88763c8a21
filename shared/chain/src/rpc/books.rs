//! What reconcile's books check asks a chain's node ([`BooksRpc`]): state read at one pinned
//! block (by hash, EIP-1898, so every read of a check sees the same block or fails, even behind
//! a load balancer mixing nodes), receipts, and the transactions of a block.

use std::future::IntoFuture;

use alloy::consensus::Transaction as ConsensusTransaction;
use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::network::TransactionResponse;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;

use super::client::facts;
use super::{AlloyRpc, ChainHead, ReceiptFacts, RpcFailure};

alloy::sol! {
    function balanceOf(address owner) external view returns (uint256);
}

/// A block the reads of one check are pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedBlock {
    pub number: u64,
    pub hash: B256,
}

impl PinnedBlock {
    fn id(self) -> BlockId {
        BlockId::hash_canonical(self.hash)
    }
}

/// A mined transaction as the books need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFacts {
    pub hash: B256,
    pub from: Address,
    pub to: Option<Address>,
    pub nonce: u64,
    /// Native value, wei.
    pub value: U256,
}

#[async_trait::async_trait]
pub trait BooksRpc: Send + Sync + 'static {
    /// `eth_blockNumber`, plus the `finalized` block when `finalized` is asked for.
    async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure>;
    /// The hash of the canonical block at `number`; `None` when the node does not have it.
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, RpcFailure>;
    /// The wallet's nonce after `block`.
    async fn nonce_at(&self, address: Address, block: PinnedBlock) -> Result<u64, RpcFailure>;
    /// The wallet's nonce after block `number` (the search for the block that used a nonce).
    async fn nonce_at_number(&self, address: Address, number: u64) -> Result<u64, RpcFailure>;
    /// Native balance after `block`, wei.
    async fn balance_at(&self, address: Address, block: PinnedBlock) -> Result<U256, RpcFailure>;
    /// ERC-20 `balanceOf(owner)` after `block`.
    async fn token_balance_at(
        &self,
        token: Address,
        owner: Address,
        block: PinnedBlock,
    ) -> Result<U256, RpcFailure>;
    /// `eth_getTransactionReceipt`; `None` while not mined (or unknown to this node).
    async fn receipt(&self, hash: B256) -> Result<Option<ReceiptFacts>, RpcFailure>;
    /// `eth_getTransactionByHash`; `None` when the node does not know it.
    async fn transaction(&self, hash: B256) -> Result<Option<TxFacts>, RpcFailure>;
    /// The transactions of block `number`; `None` when the node does not have the block.
    async fn block_transactions(&self, number: u64) -> Result<Option<Vec<TxFacts>>, RpcFailure>;
}

fn tx_facts<T>(tx: &T) -> TxFacts
where
    T: TransactionResponse + ConsensusTransaction,
{
    TxFacts {
        hash: TransactionResponse::tx_hash(tx),
        from: TransactionResponse::from(tx),
        to: ConsensusTransaction::to(tx),
        nonce: ConsensusTransaction::nonce(tx),
        value: ConsensusTransaction::value(tx),
    }
}

#[async_trait::async_trait]
impl BooksRpc for AlloyRpc {
    async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure> {
        AlloyRpc::head(self, finalized).await
    }

    async fn block_hash(&self, number: u64) -> Result<Option<B256>, RpcFailure> {
        AlloyRpc::block_hash(self, number).await
    }

    async fn nonce_at(&self, address: Address, block: PinnedBlock) -> Result<u64, RpcFailure> {
        let request = self
            .provider
            .get_transaction_count(address)
            .block_id(block.id());
        self.call("eth_getTransactionCount", request.into_future())
            .await
    }

    async fn nonce_at_number(&self, address: Address, number: u64) -> Result<u64, RpcFailure> {
        AlloyRpc::nonce_at(self, address, number).await
    }

    async fn balance_at(&self, address: Address, block: PinnedBlock) -> Result<U256, RpcFailure> {
        let request = self.provider.get_balance(address).block_id(block.id());
        self.call("eth_getBalance", request.into_future()).await
    }

    async fn token_balance_at(
        &self,
        token: Address,
        owner: Address,
        block: PinnedBlock,
    ) -> Result<U256, RpcFailure> {
        let data = balanceOfCall { owner }.abi_encode();
        let request = TransactionRequest::default().to(token).input(data.into());
        let call = self.provider.call(request).block(block.id());
        let bytes = self.call("eth_call", call.into_future()).await?;
        balanceOfCall::abi_decode_returns(&bytes).map_err(|e| RpcFailure::Decode {
            method: "eth_call",
            message: format!("balanceOf answer: {e}"),
        })
    }

    async fn receipt(&self, hash: B256) -> Result<Option<ReceiptFacts>, RpcFailure> {
        let request = self.provider.get_transaction_receipt(hash);
        let receipt = self
            .call("eth_getTransactionReceipt", request.into_future())
            .await?;
        Ok(receipt.as_ref().and_then(facts))
    }

    async fn transaction(&self, hash: B256) -> Result<Option<TxFacts>, RpcFailure> {
        let request = self.provider.get_transaction_by_hash(hash);
        let tx = self
            .call("eth_getTransactionByHash", request.into_future())
            .await?;
        Ok(tx.as_ref().map(tx_facts))
    }

    async fn block_transactions(&self, number: u64) -> Result<Option<Vec<TxFacts>>, RpcFailure> {
        let request = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .full()
            .into_future();
        let Some(block) = self.call("eth_getBlockByNumber", request).await? else {
            return Ok(None);
        };
        Ok(Some(block.transactions.txns().map(tx_facts).collect()))
    }
}
