//! What the pipeline's three services sustain each on its own, on the same stack: anvil
//! accepting pre-signed transactions, Azurite put+get+delete cycles, PostgreSQL commits.

use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{Address, TxKind, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use futures::StreamExt as _;
use meshpay_queue::MessageEncoding;
use meshpay_queue::SendOptions;
use meshpay_testkit::stack::Stack;
use serde_json::{Value, json};

use super::progress;

/// In flight at once while measuring a limit (the pipeline run's default concurrency).
const CONCURRENCY: usize = 32;
/// anvil account 5: no hot wallet, no deployer, so its nonces are ours alone.
const SENDER: usize = 5;

#[derive(Debug, Clone)]
pub struct Limit {
    pub name: &'static str,
    pub ops: usize,
    pub per_sec: f64,
}

pub async fn run(stack: &Stack, ops: usize) -> anyhow::Result<Vec<Limit>> {
    Ok(vec![
        anvil_sends(stack, ops).await?,
        azurite_cycles(stack, ops).await?,
        postgres_commits(stack, ops).await?,
    ])
}

/// Runs `ops` calls of `op(i)`, `CONCURRENCY` at once; operations per second.
async fn rate<F, Fut>(ops: usize, what: &str, op: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let bar = progress(ops, what);
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..ops)
        .map(|i| {
            let (op, bar) = (&op, &bar);
            async move {
                op(i).await?;
                bar.inc(1);
                Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let wall = started.elapsed();
    bar.finish_and_clear();
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(ops as f64 / wall.as_secs_f64())
}

/// `eth_sendRawTransaction` of transfers signed beforehand (signing is not timed).
async fn anvil_sends(stack: &Stack, ops: usize) -> anyhow::Result<Limit> {
    let anvil = stack.anvil();
    let signer: PrivateKeySigner = anvil.private_key(SENDER).parse()?;
    let start_nonce = hex_u64(
        &anvil
            .rpc(
                "eth_getTransactionCount",
                json!([anvil.address(SENDER), "pending"]),
            )
            .await,
    )?;
    let to: Address = anvil.address(6).parse()?;
    let mut raw = Vec::with_capacity(ops);
    for i in 0..ops as u64 {
        let tx = TxEip1559 {
            chain_id: anvil.chain_id(),
            nonce: start_nonce + i,
            gas_limit: 21_000,
            max_fee_per_gas: 100_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(to),
            value: U256::from(1u8),
            access_list: Default::default(),
            input: Default::default(),
        };
        let signature = signer.sign_hash_sync(&tx.signature_hash())?;
        let envelope: TxEnvelope = tx.into_signed(signature).into();
        raw.push(format!("0x{}", hex(&envelope.encoded_2718())));
    }
    let http = reqwest::Client::new();
    let url = anvil.url().to_owned();
    let raw = &raw;
    let per_sec = rate(ops, "anvil eth_sendRawTransaction", |i| {
        let (http, url) = (&http, &url);
        async move {
            let body = json!({"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction",
                              "params": [raw[i]]});
            let reply: Value = http.post(url).json(&body).send().await?.json().await?;
            if reply.get("error").is_some() {
                bail!("eth_sendRawTransaction: {reply}");
            }
            Ok(())
        }
    })
    .await?;
    Ok(Limit {
        name: "anvil sendRawTransaction",
        ops,
        per_sec,
    })
}

/// One message's trip through a queue as a queue-triggered step sees it: put, get, delete.
async fn azurite_cycles(stack: &Stack, ops: usize) -> anyhow::Result<Limit> {
    let queue = stack.azurite.queue("bench-limits").await;
    let queue = &queue;
    let per_sec = rate(ops, "Azurite put+get+delete", |i| async move {
        let body = format!("{{\"n\":{i}}}");
        queue
            .send(
                body.as_bytes(),
                MessageEncoding::Base64,
                SendOptions::default(),
            )
            .await?;
        // Another task may take this one's message; any message will do.
        let received = loop {
            let batch = queue.receive(1, Duration::from_secs(30)).await?;
            if let Some(message) = batch.into_iter().next() {
                break message;
            }
        };
        queue
            .delete_message(&received.id, &received.pop_receipt)
            .await?;
        Ok(())
    })
    .await?;
    Ok(Limit {
        name: "Azurite put+get+delete",
        ops,
        per_sec,
    })
}

/// One-row transactions, each committed on its own (the server's durability settings apply:
/// `scripts/postgres.sh` runs the local server with `synchronous_commit=off`).
async fn postgres_commits(stack: &Stack, ops: usize) -> anyhow::Result<Limit> {
    let pool = stack.db.pool_of(CONCURRENCY as u32).await;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_commits (id bigserial PRIMARY KEY, n bigint)")
        .execute(&pool)
        .await
        .context("creating bench_commits")?;
    let pool = &pool;
    let per_sec = rate(ops, "PostgreSQL commits", |i| async move {
        let mut tx = pool.begin().await?;
        sqlx::query("INSERT INTO bench_commits (n) VALUES ($1)")
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(Limit {
        name: "PostgreSQL commits",
        ops,
        per_sec,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_u64(value: &Value) -> anyhow::Result<u64> {
    let text = value.as_str().context("hex quantity expected")?;
    Ok(u64::from_str_radix(text.trim_start_matches("0x"), 16)?)
}
