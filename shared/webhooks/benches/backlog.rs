//! Merchant webhook throughput with a backlog: the real dispatcher (`Dispatcher::run_once`, as
//! the `notify` timer runs it) on PostgreSQL, sending to a local endpoint that acknowledges at
//! once, after `BENCH_PAYMENTS` payments each made four events (authorized, broadcast, confirmed,
//! settled) while nothing was sent: what a merchant waits for after an outage or a burst. The
//! table's statistics are the ones taken before the backlog (autovacuum off for the run), the
//! worst case a claim plan must survive. Prints figures; asserts only that every event arrived
//! once, each payment's in order.
//!
//!   cargo bench -p meshpay-webhooks --bench backlog --profile dev   # quick, unoptimized
//!   cargo bench -p meshpay-webhooks --bench backlog                 # optimized
//!
//! Env (defaults in brackets): `BENCH_PAYMENTS` [1000], `BENCH_CLAIMS` [20] (claims timed alone
//! on the full backlog, each released again).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/it/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use meshpay_domain::{Amount, PaymentEvent};
use meshpay_store::webhooks::ClaimLimits;
use meshpay_webhooks::DispatchLimits;

use support::{Ctx, Hook};

const PIPELINE: [PaymentEvent; 3] = [
    PaymentEvent::Broadcast,
    PaymentEvent::Confirm,
    PaymentEvent::Settle {
        network_fee: Amount::ZERO,
    },
];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let payments = env("BENCH_PAYMENTS", 1000);
    let claims = env("BENCH_CLAIMS", 20);
    let ctx = Ctx::new().await;
    // 25 USDC a payment, with room for every one of them.
    let funds = 25_000_000 * 2 * u128::try_from(payments).unwrap();
    let m = meshpay_testkit::merchant::funded_merchant(&ctx.store, funds, 10u128.pow(18)).await;
    let hook = Hook::start(&[], 200).await;
    ctx.endpoint(m, &hook.url("/hook"), None).await;
    // Statistics from before the backlog, when nothing was pending (as when an outage begins),
    // kept for the whole run: the plans must not depend on the analyzer catching up.
    for statement in [
        "ANALYZE webhook_deliveries",
        "ALTER TABLE webhook_deliveries SET (autovacuum_enabled = false)",
    ] {
        sqlx::query(statement)
            .execute(ctx.store.pool())
            .await
            .unwrap();
    }

    let started = Instant::now();
    let made: Vec<String> = futures::stream::iter(0..payments)
        .map(|_| async {
            let p = ctx.payment(m).await;
            ctx.advance(p, &PIPELINE).await.id.to_string()
        })
        .buffer_unordered(16)
        .collect()
        .await;
    println!(
        "{payments} payments × 4 events made in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut fanned = 0;
    loop {
        let batch = ctx
            .store
            .fan_out_webhook_events(DispatchLimits::default().fan_out_batch, |e, p| {
                meshpay_webhooks::events::render(e, p, &ctx.chains)
            })
            .await
            .unwrap();
        fanned += batch.deliveries;
        if batch.outbox_rows == 0 {
            break;
        }
    }
    let fan_out = started.elapsed();

    // One claim on the whole backlog, timed alone, then released (lease back to now).
    let limits = DispatchLimits::default();
    let claim = ClaimLimits {
        batch: limits.claim_batch,
        per_endpoint: limits.per_endpoint,
        lease: Duration::from_secs(30),
    };
    let mut times = Vec::with_capacity(claims);
    for _ in 0..claims {
        let t = Instant::now();
        let claimed = ctx.store.claim_webhook_deliveries(claim).await.unwrap();
        times.push(t.elapsed());
        assert!(!claimed.is_empty());
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts - 1, next_attempt_at = now()
             WHERE status = 'pending' AND next_attempt_at > now()",
        )
        .execute(ctx.store.pool())
        .await
        .unwrap();
    }
    times.sort_unstable();
    let claim_p50 = times[times.len() / 2];
    let claim_max = times[times.len() - 1];

    let dispatcher = ctx.dispatcher("0,5s");
    let started = Instant::now();
    let mut runs = 0;
    while hook.received().len() < fanned as usize {
        dispatcher.run_once().await.unwrap();
        runs += 1;
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "not drained after 30 min"
        );
    }
    let drain = started.elapsed();

    // Every event once; each payment's four in the order they happened.
    let received = hook.received();
    assert_eq!(received.len(), fanned as usize, "an event arrived twice");
    let mut per_payment: HashMap<String, Vec<u64>> = HashMap::new();
    for r in &received {
        let body = r.json();
        let id = body["data"]["id"].as_str().unwrap().to_owned();
        per_payment
            .entry(id)
            .or_default()
            .push(body["data"]["version"].as_u64().unwrap());
    }
    assert_eq!(per_payment.len(), made.len());
    for versions in per_payment.values() {
        assert!(versions.is_sorted(), "out of order: {versions:?}");
    }

    let n = fanned as f64;
    println!("| notify, backlog of {fanned} deliveries (1 endpoint) | figure |");
    println!("|---|---|");
    println!(
        "| fan-out (outbox → events + deliveries) | {:.0} rows/s ({:.1} s) |",
        n / fan_out.as_secs_f64(),
        fan_out.as_secs_f64()
    );
    println!(
        "| one claim on the full backlog ({} of {claims}) | p50 {:.2} ms, max {:.2} ms |",
        claim.batch,
        ms(claim_p50),
        ms(claim_max)
    );
    println!(
        "| drain: delivered and recorded | {:.0} deliveries/s ({:.1} s, {runs} runs) |",
        n / drain.as_secs_f64(),
        drain.as_secs_f64()
    );
}
