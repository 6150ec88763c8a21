//! Broadcast throughput on the local stack (real anvil + PostgreSQL, two hot wallets) and the
//! local signing rate. Prints figures; asserts nothing about speed.
//!
//!   cargo bench -p meshpay-relay --bench throughput                 # optimized
//!   cargo bench -p meshpay-relay --bench throughput --profile dev   # quick, unoptimized
//!
//! Env: `BENCH_PAYMENTS` (default 400), `BENCH_CONCURRENCY` (default 32), `BENCH_SIGNS`
//! (default 2000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use meshpay_relay::testing as support;

use std::time::Instant;

use alloy::primitives::{Address, B256};
use alloy::signers::SignerSync as _;
use alloy::signers::local::PrivateKeySigner;
use futures::StreamExt as _;
use meshpay_domain::{Amount, AssetKind};
use meshpay_relay::transfer::{self, TransferCall, TxParams};
use meshpay_relay::{BroadcastOutcome, Delivery};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "profile: {}",
        if cfg!(debug_assertions) {
            "dev (unoptimized)"
        } else {
            "optimized"
        }
    );
    runtime.block_on(sign_rate(env_usize("BENCH_SIGNS", 2_000)));
    runtime.block_on(broadcast(
        env_usize("BENCH_PAYMENTS", 400),
        env_usize("BENCH_CONCURRENCY", 32),
    ));
}

async fn sign_rate(n: usize) {
    let signer = PrivateKeySigner::random();
    let from = signer.address();
    let call = TransferCall::new(
        AssetKind::Native,
        Address::repeat_byte(0x11),
        Amount::from_u128(1),
    );
    let started = Instant::now();
    for nonce in 0..n as u64 {
        let params = TxParams {
            chain_id: 31337,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas_wei: 2_000_000_000,
            max_priority_fee_per_gas_wei: 1_000_000_000,
        };
        transfer::sign(&signer, from, &call, params).await.unwrap();
    }
    let relay_rate = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for i in 0..n as u64 {
        signer
            .sign_hash_sync(&B256::left_padding_from(&i.to_be_bytes()))
            .unwrap();
    }
    let raw_rate = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "local sign rate: {relay_rate:.0} tx/s (EIP-1559 sign + recovery check + encode), \
         {raw_rate:.0} sig/s (k256 sign_hash alone), {n} each"
    );
}

async fn broadcast(n: usize, concurrency: usize) {
    let stack = support::RelayStack::start().await;
    let relay = stack.relay();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let symbol = if i % 2 == 0 { "ETH" } else { "USDC" };
        ids.push(stack.payment(symbol, 1_000 + i as u128).await.id);
    }
    let started = Instant::now();
    let outcomes: Vec<_> = futures::stream::iter(ids.iter())
        .map(|&id| relay.broadcast(id, Delivery::FIRST))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let sent_in = started.elapsed();
    let sent = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(BroadcastOutcome::Sent(_))))
        .count();
    assert_eq!(sent, n, "every payment sent");
    stack.mine_all().await;
    let mined_in = started.elapsed();
    println!(
        "broadcast: {n} payments (half ETH, half USDC), 2 hot wallets, concurrency {concurrency}: \
         {:.0} tx/s signed+stored+sent ({sent_in:.2?}), {:.0} tx/s to all mined ({mined_in:.2?}) \
         [anvil automine + PostgreSQL on this machine]",
        n as f64 / sent_in.as_secs_f64(),
        n as f64 / mined_in.as_secs_f64(),
    );
    stack.finish().await;
}
