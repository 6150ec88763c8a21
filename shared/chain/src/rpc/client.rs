//! [`AlloyRpc`]: the JSON-RPC calls over alloy's HTTP provider, each bounded by a timeout.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::eips::BlockNumberOrTag;
use alloy::eips::eip1559::Eip1559Estimation;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::transports::{TransportError, TransportErrorKind};
use url::Url;

use alloy::consensus::Transaction as ConsensusTransaction;
use alloy::network::TransactionResponse;

use super::{ChainHead, ChainRpc, ConfirmRpc, LogFacts, ReceiptFacts, RpcFailure, TxRef};

/// One chain's node over HTTP (no fillers: the relay sets every field itself).
#[derive(Clone)]
pub struct AlloyRpc {
    pub(super) provider: DynProvider,
    timeout: Duration,
    /// The chain's name in chains.toml: the label of this client's metrics.
    chain: Arc<str>,
}

impl std::fmt::Debug for AlloyRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL can carry a provider API key: not printed.
        f.debug_struct("AlloyRpc")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AlloyRpc {
    /// No I/O: the provider connects on first use.
    pub fn new(url: Url, timeout: Duration) -> Self {
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased();
        AlloyRpc {
            provider,
            timeout,
            chain: Arc::from("-"),
        }
    }

    /// Labels this client's latency and error metrics with the chain's name.
    pub fn for_chain(mut self, chain: &str) -> Self {
        self.chain = Arc::from(chain);
        self
    }

    pub(super) async fn call<T>(
        &self,
        method: &'static str,
        request: impl Future<Output = Result<T, TransportError>>,
    ) -> Result<T, RpcFailure> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(RpcFailure::Timeout { method }),
            Ok(result) => result.map_err(|e| RpcFailure::from_transport(method, e)),
        };
        let error = result.as_ref().err().map(RpcFailure::kind);
        meshpay_telemetry::metrics::rpc_call(&self.chain, method, started.elapsed(), error);
        result
    }

    /// `eth_getTransactionCount(address, "pending")`.
    pub async fn pending_nonce(&self, address: Address) -> Result<u64, RpcFailure> {
        let request = self.provider.get_transaction_count(address).pending();
        self.call("eth_getTransactionCount", request.into_future())
            .await
    }

    /// `eth_estimateGas`.
    pub async fn estimate_gas(&self, request: TransactionRequest) -> Result<u64, RpcFailure> {
        let request = self.provider.estimate_gas(request);
        self.call("eth_estimateGas", request.into_future()).await
    }

    /// alloy's EIP-1559 estimator over `eth_feeHistory`.
    pub async fn eip1559_fees(&self) -> Result<Eip1559Estimation, RpcFailure> {
        self.call("eth_feeHistory", self.provider.estimate_eip1559_fees())
            .await
    }

    /// The next block's base fee: the last entry of `eth_feeHistory` over the latest block.
    pub async fn next_base_fee(&self) -> Result<Option<u128>, RpcFailure> {
        let history = self
            .call(
                "eth_feeHistory",
                self.provider
                    .get_fee_history(1, BlockNumberOrTag::Latest, &[]),
            )
            .await?;
        Ok(history.next_block_base_fee())
    }

    /// `eth_sendRawTransaction`; the node's hash on success.
    pub async fn send_raw(&self, raw: &[u8]) -> Result<B256, RpcFailure> {
        let pending = self
            .call(
                "eth_sendRawTransaction",
                self.provider.send_raw_transaction(raw),
            )
            .await?;
        Ok(*pending.tx_hash())
    }

    /// Whether the chain knows the transaction (pending or mined).
    pub async fn transaction_known(&self, hash: B256) -> Result<bool, RpcFailure> {
        let by_hash = self.provider.get_transaction_by_hash(hash);
        if self
            .call("eth_getTransactionByHash", by_hash.into_future())
            .await?
            .is_some()
        {
            return Ok(true);
        }
        // Some nodes drop the transaction index for old blocks but keep receipts.
        let receipt = self.provider.get_transaction_receipt(hash);
        Ok(self
            .call("eth_getTransactionReceipt", receipt.into_future())
            .await?
            .is_some())
    }

    /// `eth_getTransactionReceipt`, reduced to [`ReceiptFacts`]; `None` while not mined.
    /// Read as JSON first: OP-stack receipts carry `l1Fee`, which the typed receipt drops.
    pub async fn receipt(&self, hash: B256) -> Result<Option<ReceiptFacts>, RpcFailure> {
        let method = "eth_getTransactionReceipt";
        let request = self
            .provider
            .raw_request::<_, Option<serde_json::Value>>(method.into(), (hash,));
        let Some(json) = self.call(method, request).await? else {
            return Ok(None);
        };
        let receipt: TransactionReceipt = serde_json::from_value(json.clone())
            .map_err(|e| RpcFailure::from_transport(method, TransportErrorKind::custom(e)))?;
        let l1_fee = crate::l1_fee::receipt_l1_fee(&json)
            .map_err(|e| RpcFailure::from_transport(method, TransportErrorKind::custom_str(&e)))?;
        Ok(facts(&receipt).map(|facts| ReceiptFacts {
            l1_fee_wei: l1_fee,
            ..facts
        }))
    }

    /// `eth_blockNumber`, and the `finalized` block when asked for.
    pub async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure> {
        let latest = self
            .call(
                "eth_blockNumber",
                self.provider.get_block_number().into_future(),
            )
            .await?;
        let finalized = if finalized {
            let request = self
                .provider
                .get_block_by_number(BlockNumberOrTag::Finalized)
                .into_future();
            self.call("eth_getBlockByNumber", request)
                .await?
                .map(|block| block.header.number)
        } else {
            None
        };
        Ok(ChainHead { latest, finalized })
    }

    /// `eth_getTransactionCount(address, number)`.
    pub async fn nonce_at(&self, address: Address, number: u64) -> Result<u64, RpcFailure> {
        let request = self.provider.get_transaction_count(address).number(number);
        self.call("eth_getTransactionCount", request.into_future())
            .await
    }

    /// The transactions of block `number`; `None` when the node does not have the block.
    pub async fn block_transactions(&self, number: u64) -> Result<Option<Vec<TxRef>>, RpcFailure> {
        let request = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .full()
            .into_future();
        let Some(block) = self.call("eth_getBlockByNumber", request).await? else {
            return Ok(None);
        };
        Ok(Some(
            block
                .transactions
                .txns()
                .map(|tx| TxRef {
                    hash: tx.tx_hash(),
                    from: TransactionResponse::from(tx),
                    nonce: ConsensusTransaction::nonce(tx),
                })
                .collect(),
        ))
    }

    /// The canonical block hash at `number`; `None` when the node does not have the block.
    pub async fn block_hash(&self, number: u64) -> Result<Option<B256>, RpcFailure> {
        let request = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .into_future();
        Ok(self
            .call("eth_getBlockByNumber", request)
            .await?
            .map(|block| block.header.hash))
    }
}

/// `None` for a receipt of the pending block (no block number or hash yet).
pub(super) fn facts(receipt: &TransactionReceipt) -> Option<ReceiptFacts> {
    Some(ReceiptFacts {
        tx_hash: receipt.transaction_hash,
        success: receipt.status(),
        block_number: receipt.block_number?,
        block_hash: receipt.block_hash?,
        from: receipt.from,
        to: receipt.to,
        gas_used: receipt.gas_used,
        effective_gas_price_wei: receipt.effective_gas_price,
        l1_fee_wei: 0,
        logs: receipt
            .inner
            .logs()
            .iter()
            // A log flagged `removed` belongs to a block that left the chain.
            .filter(|log| !log.removed)
            .map(|log| LogFacts {
                address: log.address(),
                topics: log.topics().to_vec(),
                data: log.data().data.clone(),
            })
            .collect(),
    })
}

#[async_trait::async_trait]
impl ChainRpc for AlloyRpc {
    async fn next_base_fee(&self) -> Result<Option<u128>, RpcFailure> {
        AlloyRpc::next_base_fee(self).await
    }
    async fn pending_nonce(&self, address: Address) -> Result<u64, RpcFailure> {
        AlloyRpc::pending_nonce(self, address).await
    }

    async fn estimate_gas(&self, request: TransactionRequest) -> Result<u64, RpcFailure> {
        AlloyRpc::estimate_gas(self, request).await
    }

    async fn eip1559_fees(&self) -> Result<Eip1559Estimation, RpcFailure> {
        AlloyRpc::eip1559_fees(self).await
    }

    async fn send_raw(&self, raw: &[u8]) -> Result<B256, RpcFailure> {
        AlloyRpc::send_raw(self, raw).await
    }

    async fn transaction_known(&self, hash: B256) -> Result<bool, RpcFailure> {
        AlloyRpc::transaction_known(self, hash).await
    }

    async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure> {
        AlloyRpc::head(self, finalized).await
    }

    async fn nonce_at(&self, address: Address, number: u64) -> Result<u64, RpcFailure> {
        AlloyRpc::nonce_at(self, address, number).await
    }

    async fn block_transactions(&self, number: u64) -> Result<Option<Vec<TxRef>>, RpcFailure> {
        AlloyRpc::block_transactions(self, number).await
    }
}

#[async_trait::async_trait]
impl ConfirmRpc for AlloyRpc {
    async fn receipt(&self, hash: B256) -> Result<Option<ReceiptFacts>, RpcFailure> {
        AlloyRpc::receipt(self, hash).await
    }

    async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure> {
        AlloyRpc::head(self, finalized).await
    }

    async fn block_hash(&self, number: u64) -> Result<Option<B256>, RpcFailure> {
        AlloyRpc::block_hash(self, number).await
    }

    async fn transaction_known(&self, hash: B256) -> Result<bool, RpcFailure> {
        AlloyRpc::transaction_known(self, hash).await
    }

    async fn send_raw(&self, raw: &[u8]) -> Result<B256, RpcFailure> {
        AlloyRpc::send_raw(self, raw).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_failures_do_not_carry_the_rpc_url_or_its_api_key() {
        // A port nothing listens on (bound, then released): the request fails in the client.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url: Url = format!("http://127.0.0.1:{port}/v2/SECRET-API-KEY")
            .parse()
            .unwrap();
        let rpc = AlloyRpc::new(url, Duration::from_secs(5));
        let failure = rpc.pending_nonce(Address::ZERO).await.unwrap_err();
        assert!(
            matches!(failure, RpcFailure::Transport { .. }),
            "{failure:?}"
        );
        for text in [failure.to_string(), format!("{failure:?}")] {
            assert!(!text.contains("SECRET-API-KEY"), "{text}");
            assert!(!text.contains("/v2/"), "{text}");
        }
    }
}
