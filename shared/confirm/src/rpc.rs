//! The JSON-RPC calls the confirm and settle steps make, behind a trait so tests can script a
//! chain. Every call is bounded by a timeout; failures are the relay's [`RpcFailure`] so one
//! classification ([`meshpay_relay::classify_send`]) covers every step.

use std::future::{Future, IntoFuture};
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::transports::TransportError;
use meshpay_relay::RpcFailure;
use url::Url;

use crate::finality::ChainHead;
use crate::receipt::{LogFacts, ReceiptFacts};

#[async_trait::async_trait]
pub trait ConfirmRpc: Send + Sync + 'static {
    /// `eth_getTransactionReceipt`; `None` while not mined (a pending-block receipt counts as
    /// not mined).
    async fn receipt(&self, hash: B256) -> Result<Option<ReceiptFacts>, RpcFailure>;
    /// `eth_blockNumber`, plus the `finalized` block when `finalized` is asked for.
    async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure>;
    /// Whether the node knows the transaction (pending or mined).
    async fn transaction_known(&self, hash: B256) -> Result<bool, RpcFailure>;
    /// `eth_sendRawTransaction`.
    async fn send_raw(&self, raw: &[u8]) -> Result<B256, RpcFailure>;
}

/// [`ConfirmRpc`] over alloy's HTTP provider.
#[derive(Clone)]
pub struct AlloyConfirmRpc {
    provider: DynProvider,
    timeout: Duration,
}

impl std::fmt::Debug for AlloyConfirmRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a provider API key: not printed.
        f.debug_struct("AlloyConfirmRpc")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AlloyConfirmRpc {
    /// No I/O: the provider connects on first use.
    pub fn new(url: Url, timeout: Duration) -> Self {
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased();
        AlloyConfirmRpc { provider, timeout }
    }

    async fn call<T>(
        &self,
        method: &'static str,
        request: impl Future<Output = Result<T, TransportError>>,
    ) -> Result<T, RpcFailure> {
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(RpcFailure::Timeout { method }),
            Ok(result) => result.map_err(|e| RpcFailure::from_transport(method, e)),
        }
    }
}

fn facts(receipt: &TransactionReceipt) -> Option<ReceiptFacts> {
    Some(ReceiptFacts {
        tx_hash: receipt.transaction_hash,
        success: receipt.status(),
        block_number: receipt.block_number?,
        block_hash: receipt.block_hash?,
        from: receipt.from,
        to: receipt.to,
        gas_used: receipt.gas_used,
        effective_gas_price_wei: receipt.effective_gas_price,
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
impl ConfirmRpc for AlloyConfirmRpc {
    async fn receipt(&self, hash: B256) -> Result<Option<ReceiptFacts>, RpcFailure> {
        let request = self.provider.get_transaction_receipt(hash);
        let receipt = self
            .call("eth_getTransactionReceipt", request.into_future())
            .await?;
        Ok(receipt.as_ref().and_then(facts))
    }

    async fn head(&self, finalized: bool) -> Result<ChainHead, RpcFailure> {
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

    async fn transaction_known(&self, hash: B256) -> Result<bool, RpcFailure> {
        let request = self.provider.get_transaction_by_hash(hash);
        Ok(self
            .call("eth_getTransactionByHash", request.into_future())
            .await?
            .is_some())
    }

    async fn send_raw(&self, raw: &[u8]) -> Result<B256, RpcFailure> {
        let pending = self
            .call(
                "eth_sendRawTransaction",
                self.provider.send_raw_transaction(raw),
            )
            .await?;
        Ok(*pending.tx_hash())
    }
}
