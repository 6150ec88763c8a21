//! The chain's view of a settled payment, read from its JSON-RPC with alloy (nothing of meshpay
//! in between): receipt, transaction, the ERC-20 `Transfer` log, the recipient's balance just
//! before and at the inclusion block.

use std::future::IntoFuture;
use std::time::Duration;

use alloy::consensus::Transaction as _;
use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, Log, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::sol_types::SolEvent;
use anyhow::{Context, anyhow, bail};
use meshpay_client::PaymentView;
use meshpay_domain::Amount;
use serde::Serialize;

/// Bound on one JSON-RPC call.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Decimals of the chain's native asset (every EVM chain: wei).
const NATIVE_DECIMALS: u8 = 18;

alloy::sol! {
    event Transfer(address indexed from, address indexed to, uint256 value);

    #[sol(rpc)]
    interface Erc20 {
        function balanceOf(address account) external view returns (uint256);
        function decimals() external view returns (uint8);
    }
}

/// The chain's JSON-RPC endpoint.
pub struct Rpc {
    url: String,
    provider: DynProvider,
}

impl Rpc {
    /// No I/O: the provider connects on first use.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let parsed: url::Url = url
            .parse()
            .with_context(|| format!("--rpc {url} is not a URL"))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(parsed)
            .erased();
        Ok(Rpc {
            url: url.to_owned(),
            provider,
        })
    }

    /// One call, bounded by [`RPC_TIMEOUT`], its errors naming the method and the endpoint.
    async fn call<T, E>(
        &self,
        method: &str,
        call: impl IntoFuture<Output = Result<T, E>>,
    ) -> anyhow::Result<T>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match tokio::time::timeout(RPC_TIMEOUT, call.into_future()).await {
            Ok(result) => result.with_context(|| format!("{method} at {}", self.url)),
            Err(_) => Err(anyhow!(
                "{method} at {}: no answer within {RPC_TIMEOUT:?}",
                self.url
            )),
        }
    }

    async fn native_balance(&self, who: Address, block: u64) -> anyhow::Result<U256> {
        let request = self
            .provider
            .get_balance(who)
            .block_id(BlockId::number(block));
        self.call("eth_getBalance", request).await
    }

    async fn token_balance(
        &self,
        token: Address,
        who: Address,
        block: u64,
    ) -> anyhow::Result<U256> {
        let erc20 = Erc20::new(token, &self.provider);
        let request = erc20.balanceOf(who).block(BlockId::number(block));
        self.call("eth_call balanceOf", request.call()).await
    }

    async fn token_decimals(&self, token: Address, block: u64) -> anyhow::Result<u8> {
        let erc20 = Erc20::new(token, &self.provider);
        let request = erc20.decimals().block(BlockId::number(block));
        self.call("eth_call decimals", request.call()).await
    }
}

/// What the chain says about the payment's transaction.
#[derive(Debug, Serialize)]
pub struct ChainView {
    tx_hash: String,
    block_number: u64,
    block_hash: String,
    status: u64,
    from: String,
    nonce: u64,
    gas_used: u64,
    fee_wei: String,
    /// `token` (ERC-20 transfer) or `native`.
    kind: &'static str,
    /// The token contract (token payments).
    token: Option<String>,
    /// The amount moved: the Transfer log's value, or the transaction's value.
    transferred_base_units: String,
    transferred: String,
    recipient_balance_before: String,
    recipient_balance_after: String,
}

/// Reads the payment's transaction from the chain and fails on any disagreement with meshpay's
/// record (block, sender, recipient, amount) or a reverted transaction.
pub async fn check(rpc: &Rpc, payment: &PaymentView) -> anyhow::Result<ChainView> {
    let hash: B256 = payment
        .tx_hash
        .as_deref()
        .context("the settled payment has no tx_hash")?
        .parse()
        .context("the payment's tx_hash is not a 32-byte hash")?;
    let recipient: Address = payment
        .recipient
        .parse()
        .context("the payment's recipient is not an address")?;
    let expected: U256 = payment
        .amount
        .base_units
        .parse()
        .context("the payment's amount is not an integer")?;
    let receipt = rpc
        .call(
            "eth_getTransactionReceipt",
            rpc.provider.get_transaction_receipt(hash),
        )
        .await?
        .with_context(|| {
            format!("the chain has no receipt for {hash} (was anvil restarted since?)")
        })?;
    let tx = rpc
        .call(
            "eth_getTransactionByHash",
            rpc.provider.get_transaction_by_hash(hash),
        )
        .await?
        .with_context(|| format!("the chain has no transaction {hash}"))?;
    let block = receipt
        .block_number
        .with_context(|| format!("the receipt of {hash} has no block number"))?;
    let block_hash = receipt
        .block_hash
        .with_context(|| format!("the receipt of {hash} has no block hash"))?;
    let status = u64::from(receipt.status());
    if status != 1 {
        bail!("the chain says {hash} in block {block} reverted (status {status})");
    }
    if let Some(ours) = payment.block_number
        && ours != block
    {
        bail!("meshpay records block {ours} for {hash}, the chain block {block}");
    }
    let sender = tx.inner.signer();
    if let Some(from) = &payment.from
        && !from.eq_ignore_ascii_case(&sender.to_string())
    {
        bail!("meshpay records sender {from}, the chain {sender}");
    }

    let to = tx.to().context("the transaction creates a contract")?;
    let before_block = block.saturating_sub(1);
    let (kind, token, moved, decimals, before, after) = if tx.input().is_empty() {
        if to != recipient {
            bail!("the transaction pays {to}, the payment is to {recipient}");
        }
        let before = rpc.native_balance(recipient, before_block).await?;
        let after = rpc.native_balance(recipient, block).await?;
        ("native", None, tx.value(), NATIVE_DECIMALS, before, after)
    } else {
        let logs = receipt.inner.logs().iter().map(|log| &log.inner);
        let moved = transfer_amount(logs, to, sender, recipient)?;
        let decimals = rpc.token_decimals(to, block).await?;
        let before = rpc.token_balance(to, recipient, before_block).await?;
        let after = rpc.token_balance(to, recipient, block).await?;
        (
            "token",
            Some(to.to_string()),
            moved,
            decimals,
            before,
            after,
        )
    };
    if moved != expected {
        bail!(
            "the chain moved {moved} base units, the payment is for {expected} ({})",
            payment.amount.value
        );
    }
    let format = |v: U256| Amount::from_base_units(v).format_decimal(decimals);
    Ok(ChainView {
        tx_hash: hash.to_string(),
        block_number: block,
        block_hash: block_hash.to_string(),
        status,
        from: sender.to_string(),
        nonce: tx.nonce(),
        gas_used: receipt.gas_used,
        fee_wei: (U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price))
            .to_string(),
        kind,
        token,
        transferred_base_units: moved.to_string(),
        transferred: format(moved),
        recipient_balance_before: format(before),
        recipient_balance_after: format(after),
    })
}

/// The value of the one `Transfer(from, to, value)` log the token emitted to `recipient`.
fn transfer_amount<'a>(
    logs: impl Iterator<Item = &'a Log>,
    token: Address,
    from: Address,
    recipient: Address,
) -> anyhow::Result<U256> {
    let matching: Vec<U256> = logs
        .filter(|log| log.address == token)
        .filter(|log| {
            let topics = log.topics();
            topics.len() == 3
                && topics[0] == Transfer::SIGNATURE_HASH
                && topics[1] == from.into_word()
                && topics[2] == recipient.into_word()
                && log.data.data.len() == 32
        })
        .map(|log| U256::from_be_slice(&log.data.data))
        .collect();
    match matching.as_slice() {
        [value] => Ok(*value),
        [] => bail!("no Transfer log from {from} to {recipient} by token {token} in the receipt"),
        _ => bail!("several Transfer logs from {from} to {recipient} in one receipt"),
    }
}

pub fn print(chain: &ChainView, payment: &PaymentView) {
    println!(
        "chain: tx {} in block {} ({}), status {} (success), from {} nonce {}, gas used {}, fee {} wei",
        chain.tx_hash,
        chain.block_number,
        chain.block_hash,
        chain.status,
        chain.from,
        chain.nonce,
        chain.gas_used,
        chain.fee_wei
    );
    match &chain.token {
        Some(token) => println!(
            "chain: Transfer log of {} {} ({} base units) by token {} to {}: matches the payment",
            chain.transferred,
            payment.asset,
            chain.transferred_base_units,
            token,
            payment.recipient
        ),
        None => println!(
            "chain: value {} {} ({} wei) to {}: matches the payment",
            chain.transferred, payment.asset, chain.transferred_base_units, payment.recipient
        ),
    }
    println!(
        "chain: recipient's {} balance {} → {} (blocks {} → {})",
        payment.asset,
        chain.recipient_balance_before,
        chain.recipient_balance_after,
        chain.block_number.saturating_sub(1),
        chain.block_number
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Bytes;

    #[test]
    fn the_transfer_amount_comes_from_the_one_matching_log() {
        let token: Address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            .parse()
            .unwrap();
        let from: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            .parse()
            .unwrap();
        let to: Address = super::super::DEFAULT_RECIPIENT.parse().unwrap();
        let log = |address: Address, recipient: Address, value: u64| {
            Log::new_unchecked(
                address,
                vec![
                    Transfer::SIGNATURE_HASH,
                    from.into_word(),
                    recipient.into_word(),
                ],
                Bytes::from(U256::from(value).to_be_bytes::<32>().to_vec()),
            )
        };
        let logs = [
            log(from, to, 1),
            log(token, from, 2),
            log(token, to, 25_000_000),
        ];
        assert_eq!(
            transfer_amount(logs.iter(), token, from, to).unwrap(),
            U256::from(25_000_000u64)
        );
        assert!(transfer_amount(logs[..2].iter(), token, from, to).is_err());
    }
}
