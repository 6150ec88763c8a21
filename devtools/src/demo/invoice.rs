//! The invoice half of `meshpay-dev demo`: an invoice for `amount` USDC is created, anvil
//! account 5 (given the USDC by the token's owner, account 0: dev chain only) pays it to the
//! deposit address, and the invoice is followed through `pending` and `paid` (credited in the
//! same database transaction) with timings, then the merchant's balance, then swept: the
//! `sweep` timer's transaction moving the USDC to the factory's treasury, checked on anvil (the
//! deposit address empty, the treasury up by the amount); the pay page URL is printed to open
//! in a browser.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::steps::Steps;

/// anvil account 5: the payer.
const PAYER: &str = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc";
/// anvil account 0: the dev USDC's owner (mints).
const MINTER: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/// The dev USDC (chains.dev.toml).
const USDC: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// The dev DepositFactory (chains.dev.toml).
const FACTORY: &str = "0x700b6A60ce7EaaEA56F065753d8dcB9653dbAD35";
/// `keccak256("Transfer(address,address,uint256)")`.
const TRANSFER_TOPIC: &str = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

pub async fn run(
    api: &str,
    key: &str,
    rpc: &str,
    amount_usdc: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut steps = Steps::new(true);
    steps.say(format_args!(
        "demo invoice: {amount_usdc} USDC on anvil, paid by anvil account 5"
    ));
    let created: Value = http
        .post(format!("{api}/invoices"))
        .bearer_auth(key)
        .header("Idempotency-Key", format!("demo-{}", uuid::Uuid::new_v4()))
        .json(&json!({"chain": "anvil", "asset": "USDC", "amount": amount_usdc.to_string(), "reference": "meshpay demo invoice"}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"]
        .as_str()
        .context(format!("no invoice: {created}"))?
        .to_owned();
    let address = created["deposit_address"]
        .as_str()
        .context("deposit_address")?
        .to_owned();
    steps.record(
        "invoiced",
        format!("{id}: pay {amount_usdc} USDC to {address}"),
    );

    let units = u128::from(amount_usdc) * 1_000_000;
    let word = |a: &str| format!("{:0>64}", a.trim_start_matches("0x").to_ascii_lowercase());
    let treasury = treasury(&http, rpc).await?;
    let treasury_before = usdc_balance(&http, rpc, &treasury).await?;
    send(&http, rpc, json!({"from": MINTER, "to": USDC, "data": format!("0x40c10f19{}{units:064x}", word(PAYER))})).await?;
    let paid_at = Instant::now();
    let tx = send(&http, rpc, json!({"from": PAYER, "to": USDC, "data": format!("0xa9059cbb{}{units:064x}", word(&address))})).await?;
    steps.record("transferred", format!("tx {tx} from anvil account 5"));

    let mut shown = String::from("open");
    loop {
        let invoice: Value = http
            .get(format!("{api}/invoices/{id}"))
            .bearer_auth(key)
            .send()
            .await?
            .json()
            .await?;
        let status = invoice["status"].as_str().unwrap_or_default().to_owned();
        if status != shown {
            let step = match status.as_str() {
                "pending" => "pending",
                "paid" => "paid",
                other => bail!("invoice {id} went {other}: {invoice}"),
            };
            steps.record(
                step,
                format!("received {}", invoice["amount_received"]["value"]),
            );
            shown = status;
        }
        if shown == "paid" {
            break;
        }
        if paid_at.elapsed() > timeout {
            bail!("invoice {id} still {shown} after {timeout:?} (logs: .dev/logs/devhost.log)");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    steps.say(format_args!(
        "transfer mined -> paid in {:?}",
        paid_at.elapsed()
    ));
    let balances: Value = http
        .get(format!("{api}/balances"))
        .bearer_auth(key)
        .send()
        .await?
        .json()
        .await?;
    let usdc = balances["data"]
        .as_array()
        .and_then(|list| list.iter().find(|b| b["asset"] == "USDC"))
        .map(|b| b["available"]["value"].clone())
        .unwrap_or(Value::Null);
    steps.record(
        "credited",
        format!("merchant USDC available now {usdc} (less the service fee)"),
    );
    let swept_from = Instant::now();
    let sweep_tx = loop {
        if let Some(tx) = sweep_transaction(&http, rpc, &address, &treasury).await? {
            break tx;
        }
        if swept_from.elapsed() > timeout {
            bail!("invoice {id} not swept after {timeout:?} (logs: .dev/logs/devhost.log)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let left = usdc_balance(&http, rpc, &address).await?;
    let treasury_after = usdc_balance(&http, rpc, &treasury).await?;
    if left != 0 || treasury_after < treasury_before + units {
        bail!(
            "after sweep {sweep_tx}: deposit address holds {left}, treasury {treasury_before} -> {treasury_after}"
        );
    }
    steps.record(
        "swept",
        format!(
            "tx {sweep_tx}: deposit address empty, treasury {treasury} +{amount_usdc} USDC ({:?} after paid)",
            swept_from.elapsed()
        ),
    );
    steps.say(format_args!(
        "pay page: {}",
        created["pay_url"].as_str().unwrap_or_default()
    ));
    Ok(())
}

async fn rpc_call(
    http: &reqwest::Client,
    rpc: &str,
    method: &str,
    params: Value,
) -> anyhow::Result<Value> {
    let reply: Value = http
        .post(rpc)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await?
        .json()
        .await?;
    match reply.get("result") {
        Some(result) => Ok(result.clone()),
        None => bail!("{method}: {reply}"),
    }
}

/// The factory's treasury (`treasury()`).
async fn treasury(http: &reqwest::Client, rpc: &str) -> anyhow::Result<String> {
    let selector = &alloy::primitives::keccak256("treasury()")[..4];
    let data = format!("0x{}", alloy::hex::encode(selector));
    let word = rpc_call(
        http,
        rpc,
        "eth_call",
        json!([{"to": FACTORY, "data": data}, "latest"]),
    )
    .await?;
    let word = word.as_str().context("treasury()")?;
    let address: alloy::primitives::Address =
        format!("0x{}", &word[word.len().saturating_sub(40)..])
            .parse()
            .context("treasury() answer")?;
    Ok(address.to_checksum(None))
}

/// `owner`'s dev USDC balance.
async fn usdc_balance(http: &reqwest::Client, rpc: &str, owner: &str) -> anyhow::Result<u128> {
    let data = format!(
        "0x70a08231{:0>64}",
        owner.trim_start_matches("0x").to_ascii_lowercase()
    );
    let word = rpc_call(
        http,
        rpc,
        "eth_call",
        json!([{"to": USDC, "data": data}, "latest"]),
    )
    .await?;
    let hex = word.as_str().context("balanceOf")?.trim_start_matches("0x");
    Ok(u128::from_str_radix(
        &hex[hex.len().saturating_sub(32)..],
        16,
    )?)
}

/// The transaction that moved USDC from `deposit` to `treasury`, once mined.
async fn sweep_transaction(
    http: &reqwest::Client,
    rpc: &str,
    deposit: &str,
    treasury: &str,
) -> anyhow::Result<Option<String>> {
    let word = |a: &str| format!("0x{:0>64}", a.trim_start_matches("0x").to_ascii_lowercase());
    let logs = rpc_call(
        http,
        rpc,
        "eth_getLogs",
        json!([{"fromBlock": "0x0", "toBlock": "latest", "address": USDC,
                "topics": [TRANSFER_TOPIC, word(deposit), word(treasury)]}]),
    )
    .await?;
    Ok(logs
        .as_array()
        .and_then(|l| l.first())
        .and_then(|l| l["transactionHash"].as_str())
        .map(str::to_owned))
}

/// `eth_sendTransaction` from an unlocked dev account, then waits for a successful receipt.
async fn send(http: &reqwest::Client, rpc: &str, tx: Value) -> anyhow::Result<String> {
    let call = |method: &str, params: Value| {
        http.post(rpc)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
    };
    let reply: Value = call("eth_sendTransaction", json!([tx]))
        .await?
        .json()
        .await?;
    let hash = reply["result"]
        .as_str()
        .context(format!("eth_sendTransaction: {reply}"))?
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let receipt: Value = call("eth_getTransactionReceipt", json!([hash]))
            .await?
            .json()
            .await?;
        if let Some(status) = receipt["result"]["status"].as_str() {
            if status != "0x1" {
                bail!("transaction {hash} reverted");
            }
            return Ok(hash);
        }
        if Instant::now() > deadline {
            bail!("transaction {hash} not mined within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
