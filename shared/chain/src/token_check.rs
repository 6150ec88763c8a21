//! `meshpay chains check --rpc-url`: what a node says about a chain entry. The node's chain id
//! must be the entry's, and each token contract must have code whose `decimals()` and
//! `symbol()` are the configured ones (a wrong contract, a bridged variant with another symbol,
//! or a testnet address in a mainnet file shows up here before money moves).

use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use serde::Serialize;
use url::Url;

use crate::config::ChainsConfig;
use crate::redact::redact_urls;

alloy::sol! {
    function decimals() external view returns (uint8);
    function symbol() external view returns (string);
}

/// Per call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One token as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenReport {
    pub chain: String,
    pub symbol: String,
    pub contract: Address,
    pub onchain_decimals: Option<u8>,
    pub onchain_symbol: Option<String>,
    /// What does not match (empty: all good).
    pub problems: Vec<String>,
}

/// The node's answers for the chain whose id it reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpcReport {
    pub node_chain_id: u64,
    /// The file's chain with that id.
    pub chain: String,
    pub tokens: Vec<TokenReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenCheckError {
    /// Text without URLs (an RPC URL may carry a provider key).
    #[error("{method} failed: {message}")]
    Rpc {
        method: &'static str,
        message: String,
    },
    #[error("the node's chain id {0} is not in the file")]
    UnknownChainId(u64),
}

impl RpcReport {
    pub fn is_ok(&self) -> bool {
        self.tokens.iter().all(|t| t.problems.is_empty())
    }
}

/// Asks the node at `rpc_url` for its chain id, then checks every token of the file's chain
/// with that id.
pub async fn check_tokens(
    config: &ChainsConfig,
    rpc_url: Url,
) -> Result<RpcReport, TokenCheckError> {
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_http(rpc_url)
        .erased();
    let node_chain_id = timed("eth_chainId", provider.get_chain_id()).await?;
    let chain = config
        .chains()
        .iter()
        .find(|c| c.chain_id == node_chain_id)
        .ok_or(TokenCheckError::UnknownChainId(node_chain_id))?;
    let mut tokens = Vec::new();
    for asset in &chain.tokens {
        let meshpay_domain::AssetKind::Erc20 { contract } = asset.kind() else {
            continue;
        };
        tokens.push(check_token(&provider, &chain.name, asset, contract).await?);
    }
    Ok(RpcReport {
        node_chain_id,
        chain: chain.name.clone(),
        tokens,
    })
}

async fn check_token(
    provider: &DynProvider,
    chain: &str,
    asset: &meshpay_domain::Asset,
    contract: Address,
) -> Result<TokenReport, TokenCheckError> {
    let symbol = asset.id().symbol().to_owned();
    let mut report = TokenReport {
        chain: chain.to_owned(),
        symbol: symbol.clone(),
        contract,
        onchain_decimals: None,
        onchain_symbol: None,
        problems: Vec::new(),
    };
    let code = timed("eth_getCode", provider.get_code_at(contract)).await?;
    if code.is_empty() {
        report
            .problems
            .push("no contract code at this address on this chain".to_owned());
        return Ok(report);
    }
    match call(provider, contract, decimalsCall {}.abi_encode()).await? {
        Some(bytes) => match decimalsCall::abi_decode_returns(&bytes) {
            Ok(decimals) => {
                report.onchain_decimals = Some(decimals);
                if decimals != asset.decimals() {
                    report.problems.push(format!(
                        "decimals() is {decimals}, the file says {}",
                        asset.decimals()
                    ));
                }
            }
            Err(_) => report.problems.push("decimals() did not decode".to_owned()),
        },
        None => report.problems.push("decimals() reverted".to_owned()),
    }
    match call(provider, contract, symbolCall {}.abi_encode()).await? {
        Some(bytes) => match symbolCall::abi_decode_returns(&bytes) {
            Ok(onchain) => {
                if onchain != symbol {
                    report
                        .problems
                        .push(format!("symbol() is {onchain:?}, the file says {symbol:?}"));
                }
                report.onchain_symbol = Some(onchain);
            }
            Err(_) => report.problems.push("symbol() did not decode".to_owned()),
        },
        None => report.problems.push("symbol() reverted".to_owned()),
    }
    Ok(report)
}

/// `eth_call`; `None` when the call reverted (an answer about the contract, not a failure).
async fn call(
    provider: &DynProvider,
    to: Address,
    input: Vec<u8>,
) -> Result<Option<alloy::primitives::Bytes>, TokenCheckError> {
    let request = TransactionRequest::default().to(to).input(input.into());
    match tokio::time::timeout(CALL_TIMEOUT, provider.call(request)).await {
        Err(_) => Err(TokenCheckError::Rpc {
            method: "eth_call",
            message: "timed out".to_owned(),
        }),
        Ok(Ok(bytes)) => Ok(Some(bytes)),
        Ok(Err(error)) if error.as_error_resp().is_some() => Ok(None),
        Ok(Err(error)) => Err(TokenCheckError::Rpc {
            method: "eth_call",
            message: redact_urls(&error.to_string()),
        }),
    }
}

async fn timed<T>(
    method: &'static str,
    future: impl std::future::IntoFuture<Output = Result<T, alloy::transports::TransportError>>,
) -> Result<T, TokenCheckError> {
    match tokio::time::timeout(CALL_TIMEOUT, future.into_future()).await {
        Err(_) => Err(TokenCheckError::Rpc {
            method,
            message: "timed out".to_owned(),
        }),
        Ok(result) => result.map_err(|error| TokenCheckError::Rpc {
            method,
            message: redact_urls(&error.to_string()),
        }),
    }
}
