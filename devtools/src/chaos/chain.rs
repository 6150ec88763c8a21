//! The chain as anvil itself answers (never through the fault proxy): what the checks trust.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// What a mined transaction did.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub success: bool,
    /// `gasUsed × effectiveGasPrice`, wei.
    pub fee: U256,
}

pub struct Chain {
    http: reqwest::Client,
    url: String,
    usdc: Address,
}

impl Chain {
    pub fn new(url: &str, usdc: Address) -> anyhow::Result<Chain> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Chain {
            http,
            url: url.to_owned(),
            usdc,
        })
    }

    pub async fn rpc(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let reply: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("anvil {method}"))?
            .json()
            .await
            .with_context(|| format!("anvil {method}"))?;
        if let Some(error) = reply.get("error") {
            bail!("anvil {method}: {error}");
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
    }

    /// The receipt on the canonical chain, `None` when not mined.
    pub async fn receipt(&self, hash: &str) -> anyhow::Result<Option<Receipt>> {
        let receipt = self.rpc("eth_getTransactionReceipt", json!([hash])).await?;
        if receipt.is_null() {
            return Ok(None);
        }
        let fee = quantity(&receipt["gasUsed"])? * quantity(&receipt["effectiveGasPrice"])?;
        Ok(Some(Receipt {
            success: receipt["status"] == json!("0x1"),
            fee,
        }))
    }

    pub async fn eth_balance(&self, address: Address) -> anyhow::Result<U256> {
        quantity(
            &self
                .rpc("eth_getBalance", json!([address, "latest"]))
                .await?,
        )
    }

    pub async fn usdc_balance(&self, owner: Address) -> anyhow::Result<u128> {
        let data = format!("0x70a08231{:0>64}", hex_of(owner));
        let word = self
            .rpc(
                "eth_call",
                json!([{"to": self.usdc, "data": data}, "latest"]),
            )
            .await?;
        let value = quantity(&word)?;
        u128::try_from(value).map_err(|_| anyhow!("balance {value} does not fit u128"))
    }

    /// Transactions `address` has mined (its next nonce on the canonical chain).
    pub async fn nonce(&self, address: Address) -> anyhow::Result<u64> {
        let n = quantity(
            &self
                .rpc("eth_getTransactionCount", json!([address, "latest"]))
                .await?,
        )?;
        u64::try_from(n).map_err(|_| anyhow!("nonce {n}"))
    }

    pub async fn block_number(&self) -> anyhow::Result<u64> {
        let n = quantity(&self.rpc("eth_blockNumber", json!([])).await?)?;
        u64::try_from(n).map_err(|_| anyhow!("block {n}"))
    }
}

fn hex_of(address: Address) -> String {
    format!("{address:x}").trim_start_matches("0x").to_owned()
}

/// A JSON-RPC quantity or data word as a number.
fn quantity(value: &Value) -> anyhow::Result<U256> {
    let text = value
        .as_str()
        .ok_or_else(|| anyhow!("not a quantity: {value}"))?;
    U256::from_str_radix(text.trim_start_matches("0x"), 16)
        .map_err(|e| anyhow!("quantity {text}: {e}"))
}
