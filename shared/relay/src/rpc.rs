//! The few JSON-RPC calls the broadcast step makes, behind a trait so tests can put a faulty
//! node in front of a real one. Every call is bounded by a timeout.

use std::future::{Future, IntoFuture};
use std::time::Duration;

use alloy::eips::eip1559::Eip1559Estimation;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::transports::TransportError;
use url::Url;

use crate::classify::RpcFailure;

/// One chain's JSON-RPC endpoint.
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
}

/// [`ChainRpc`] over alloy's HTTP provider (no fillers: the relay sets every field itself).
#[derive(Clone)]
pub struct AlloyRpc {
    provider: DynProvider,
    timeout: Duration,
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
    pub fn new(url: Url, timeout: Duration) -> Self {
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased();
        AlloyRpc { provider, timeout }
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

#[async_trait::async_trait]
impl ChainRpc for AlloyRpc {
    async fn pending_nonce(&self, address: Address) -> Result<u64, RpcFailure> {
        let request = self.provider.get_transaction_count(address).pending();
        self.call("eth_getTransactionCount", request.into_future())
            .await
    }

    async fn estimate_gas(&self, request: TransactionRequest) -> Result<u64, RpcFailure> {
        let request = self.provider.estimate_gas(request);
        self.call("eth_estimateGas", request.into_future()).await
    }

    async fn eip1559_fees(&self) -> Result<Eip1559Estimation, RpcFailure> {
        self.call("eth_feeHistory", self.provider.estimate_eip1559_fees())
            .await
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

    async fn transaction_known(&self, hash: B256) -> Result<bool, RpcFailure> {
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
