//! Broadcast throughput with a Key Vault-like signer: the real broadcast path
//! ([`Relay::broadcast`]: real PostgreSQL, anvil with automine) over two hot wallets whose
//! keys sit in in-process Key Vault doubles (`meshpay_signer::testing`) that answer every sign
//! after a fixed latency and throttle bursts of requests with 429 + `Retry-After`, reached
//! through the real `KeyVaultSigner` (its retry loop included). Prints figures; asserts
//! nothing about speed.
//!
//!   cargo bench -p meshpay-relay --bench signing --profile dev   # quick, unoptimized
//!   cargo bench -p meshpay-relay --bench signing                 # optimized
//!
//! Env (defaults in brackets): `BENCH_PAYMENTS` [500], `BENCH_CONCURRENCY` [32] (deliveries in
//! flight, as a Functions instance runs a queue batch), `BENCH_SIGN_LATENCY_MS` [90],
//! `BENCH_THROTTLE_EVERY` [100] and `BENCH_THROTTLE_BURST` [3] (of every 100 sign requests the
//! first 3 get 429 `Retry-After: 1`; 0 turns bursts off), `BENCH_REDELIVERY_MS` [200] (pause
//! before a delivery that ended in an error is delivered again; the host waits its
//! `visibilityTimeout`).
//!
//! Broadcast latency is per payment, from its first delivery to the node's acknowledgement,
//! redeliveries included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use meshpay_domain::PaymentId;
use meshpay_relay::testing::RelayStack;
use meshpay_relay::{BroadcastOutcome, Delivery, Relay, RelayConfig};
use meshpay_signer::RetryConfig;
use meshpay_signer::testing::{DoubleOptions, ThrottleBursts};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Load {
    payments: usize,
    concurrency: usize,
    sign_latency: Duration,
    throttle: Option<ThrottleBursts>,
    redelivery: Duration,
}

impl Load {
    fn from_env() -> Load {
        let every = env_u64("BENCH_THROTTLE_EVERY", 100);
        let burst = env_u64("BENCH_THROTTLE_BURST", 3);
        Load {
            payments: env_u64("BENCH_PAYMENTS", 500) as usize,
            concurrency: env_u64("BENCH_CONCURRENCY", 32) as usize,
            sign_latency: Duration::from_millis(env_u64("BENCH_SIGN_LATENCY_MS", 90)),
            throttle: (every > 0 && burst > 0).then_some(ThrottleBursts {
                every,
                burst,
                retry_after_secs: 1,
            }),
            redelivery: Duration::from_millis(env_u64("BENCH_REDELIVERY_MS", 200)),
        }
    }
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
    runtime.block_on(run(Load::from_env()));
}

/// Delivers the payment's message until a node has its transaction; the time that took.
async fn deliver(relay: &Relay, id: PaymentId, redelivery: Duration) -> (Duration, u64) {
    let started = Instant::now();
    let mut errors = 0;
    for dequeue_count in 1.. {
        match relay.broadcast(id, Delivery { dequeue_count }).await {
            Ok(BroadcastOutcome::Sent(_)) => return (started.elapsed(), errors),
            Ok(other) => panic!("{id}: {other:?}"),
            Err(_) => {
                errors += 1;
                tokio::time::sleep(redelivery).await;
            }
        }
    }
    unreachable!()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1)]
}

async fn run(load: Load) {
    let stack = RelayStack::start().await;
    let (doubles, signers) = stack
        .key_vault_signers(
            || DoubleOptions {
                sign_latency: load.sign_latency,
                throttle: load.throttle,
                ..DoubleOptions::new()
            },
            // The production retry limits.
            RetryConfig::default(),
        )
        .await;
    let relay = stack.relay_signing_with(
        signers,
        RelayConfig {
            // Every delivery is retried here until sent: none may be the last.
            max_deliveries: u64::MAX,
            ..RelayConfig::default()
        },
    );
    let mut ids = Vec::with_capacity(load.payments);
    for i in 0..load.payments {
        let symbol = if i % 2 == 0 { "ETH" } else { "USDC" };
        ids.push(stack.payment(symbol, 1_000 + i as u128).await.id);
    }

    let started = Instant::now();
    let results: Vec<(Duration, u64)> = futures::stream::iter(ids.iter())
        .map(|&id| deliver(&relay, id, load.redelivery))
        .buffer_unordered(load.concurrency)
        .collect()
        .await;
    let wall = started.elapsed();

    let mut latencies: Vec<Duration> = results.iter().map(|(latency, _)| *latency).collect();
    latencies.sort();
    let redeliveries: u64 = results.iter().map(|(_, errors)| errors).sum();
    let (requests, throttled) = doubles.iter().fold((0, 0), |(r, t), double| {
        let stats = double.sign_stats();
        (r + stats.requests, t + stats.throttled)
    });
    let throttle = load.throttle.map_or("off".to_owned(), |t| {
        format!(
            "{} of every {} sign requests get 429 Retry-After: {} s",
            t.burst, t.every, t.retry_after_secs
        )
    });
    println!(
        "Key Vault double: {} ms per sign, {throttle}; {} payments (half ETH, half USDC), \
         2 hot wallets, concurrency {}",
        load.sign_latency.as_millis(),
        load.payments,
        load.concurrency
    );
    println!(
        "broadcast: {:.1} payments/s ({wall:.2?}), latency p50 {:.0} ms, p99 {:.0} ms, \
         max {:.0} ms; sign calls {requests}, 429s {throttled}, redeliveries {redeliveries}",
        load.payments as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );

    stack.mine_all().await;
    for &wallet in &stack.wallets {
        let state = stack
            .store
            .wallet_nonce("anvil", wallet)
            .await
            .unwrap()
            .unwrap();
        let mined = stack.mined_nonce(wallet).await;
        println!(
            "wallet {wallet}: next nonce {}, mined nonce {mined}, gaps {:?}",
            state.next_nonce, state.gaps
        );
        assert_eq!(mined, state.next_nonce, "every allocated nonce mined");
    }
    drop(doubles);
    stack.finish().await;
}
