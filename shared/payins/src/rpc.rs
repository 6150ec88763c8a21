//! The chain reads detection makes, each bounded by a timeout: alloy's HTTP provider, with
//! `eth_getLogs` and receipts keeping log indexes (which the payout side's client drops).

use std::future::{Future, IntoFuture};
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, Log};
use alloy::transports::TransportError;
use url::Url;

/// A failed or timed-out read (the run stops and the next one retries).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{method} timed out")]
    Timeout { method: &'static str },
    #[error("{method}: {message}")]
    Rpc {
        method: &'static str,
        message: String,
    },
}

/// `keccak256("Transfer(address,address,uint256)")`.
pub const TRANSFER_TOPIC: B256 =
    alloy::primitives::b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

/// One ERC-20 `Transfer` log as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferLog {
    pub token: Address,
    pub to: Address,
    pub amount: U256,
    pub tx_hash: B256,
    pub log_index: u64,
    pub block_number: u64,
    pub block_hash: B256,
}

/// One chain's node.
#[derive(Clone)]
pub struct PayinRpc {
    provider: DynProvider,
    timeout: Duration,
}

impl std::fmt::Debug for PayinRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL can carry a provider API key: not printed.
        f.debug_struct("PayinRpc").finish_non_exhaustive()
    }
}

impl PayinRpc {
    /// No I/O: the provider connects on first use.
    pub fn new(url: Url, timeout: Duration) -> Self {
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased();
        PayinRpc { provider, timeout }
    }

    async fn call<T>(
        &self,
        method: &'static str,
        request: impl Future<Output = Result<T, TransportError>>,
    ) -> Result<T, ReadError> {
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(ReadError::Timeout { method }),
            Ok(result) => result.map_err(|e| ReadError::Rpc {
                method,
                message: e.to_string(),
            }),
        }
    }

    /// `eth_blockNumber`, or the `finalized` block's number.
    pub async fn head(&self, finalized: bool) -> Result<Option<u64>, ReadError> {
        if !finalized {
            let latest = self.provider.get_block_number().into_future();
            return self.call("eth_blockNumber", latest).await.map(Some);
        }
        let request = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Finalized)
            .into_future();
        Ok(self
            .call("eth_getBlockByNumber", request)
            .await?
            .map(|block| block.header.number))
    }

    /// The canonical block hash at `number`; `None` when the node does not have the block.
    pub async fn block_hash(&self, number: u64) -> Result<Option<B256>, ReadError> {
        let request = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .into_future();
        Ok(self
            .call("eth_getBlockByNumber", request)
            .await?
            .map(|block| block.header.hash))
    }

    /// `address`'s native balance at block `number`.
    pub async fn balance_at(&self, address: Address, number: u64) -> Result<U256, ReadError> {
        let request = self
            .provider
            .get_balance(address)
            .number(number)
            .into_future();
        self.call("eth_getBalance", request).await
    }

    /// `Transfer` logs to any of `recipients` in blocks `from..=to`, of any token.
    pub async fn transfers_to(
        &self,
        recipients: &[Address],
        from: u64,
        to: u64,
    ) -> Result<Vec<TransferLog>, ReadError> {
        let topics: Vec<B256> = recipients.iter().map(|a| a.into_word()).collect();
        let filter = Filter::new()
            .from_block(from)
            .to_block(to)
            .event_signature(TRANSFER_TOPIC)
            .topic2(topics);
        let logs = self
            .call("eth_getLogs", self.provider.get_logs(&filter))
            .await?;
        Ok(logs.iter().filter_map(transfer).collect())
    }

    /// The `Transfer` logs of a mined transaction (`None` while not mined).
    pub async fn receipt_transfers(
        &self,
        tx_hash: B256,
    ) -> Result<Option<Vec<TransferLog>>, ReadError> {
        let request = self.provider.get_transaction_receipt(tx_hash).into_future();
        let Some(receipt) = self.call("eth_getTransactionReceipt", request).await? else {
            return Ok(None);
        };
        if receipt.block_number.is_none() {
            return Ok(None);
        }
        Ok(Some(
            receipt.inner.logs().iter().filter_map(transfer).collect(),
        ))
    }
}

/// A mined, not removed, well-formed `Transfer` log.
fn transfer(log: &Log) -> Option<TransferLog> {
    let topics = log.topics();
    if log.removed || topics.len() != 3 || topics[0] != TRANSFER_TOPIC {
        return None;
    }
    let data = &log.data().data;
    if data.len() != 32 {
        return None;
    }
    Some(TransferLog {
        token: log.address(),
        to: Address::from_word(topics[2]),
        amount: U256::from_be_slice(data),
        tx_hash: log.transaction_hash?,
        log_index: log.log_index?,
        block_number: log.block_number?,
        block_hash: log.block_hash?,
    })
}
