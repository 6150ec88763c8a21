//! POST /api/quotes and POST /api/payments on the local stack: latency (p50/p99), requests/s and
//! the share of time spent in PostgreSQL. Prints figures; asserts nothing about timing.
//!
//! Build the release binaries first, then run the bench (also release):
//!   cargo build --release --bins -p meshpay -p devhost
//!   cargo bench -p meshpay --bench payments_api
//!
//! Stack: devhost + release `meshpay` (RUST_LOG=warn), a fresh PostgreSQL database, anvil with
//! DevUSDC (the hot wallet holds USDC, so token quotes run a real `eth_estimateGas`), Azurite.
//! One merchant: every authorization locks the same balance rows, the worst case for a tenant.
//! Rows "via devhost" take the host's path (authorize arrives as an envelope and devhost writes
//! its queue output to Azurite before answering); "handler only" posts straight to meshpay (the
//! forwarded request for quotes, the host's envelope for authorize), so the difference is the
//! host's forwarding plus the queue write.
//!
//! Database share, two ways:
//! - server side: `pg_stat_database.active_time` of the run's database (time backends spent
//!   executing statements) over the summed request latency;
//! - client side: the same store calls each handler makes (authenticate, merchant, insert
//!   quote / authorize), timed in-process at the same concurrency, over the HTTP latency.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use meshpay_domain::{Charges, IdempotencyKey, QuoteId};
use meshpay_store::{AuthorizeRequest, NewQuote, StoredResponse, request_fingerprint};
use meshpay_testkit::payment::RECIPIENT;
use meshpay_testkit::stack::{HandlerSettings, Stack};
use serde_json::{Value, json};

/// Requests per measured phase, and the concurrency levels measured.
const SEQUENTIAL_REQUESTS: usize = 200;
const CONCURRENT_REQUESTS: usize = 400;
const CONCURRENCY: usize = 8;
const WARMUP_REQUESTS: usize = 20;
/// PostgreSQL flushes a busy backend's statistics at most every second and an idle one's
/// after 10 s: wait this long before reading `pg_stat_database`.
const STATS_FLUSH_WAIT: Duration = Duration::from_secs(11);

struct Phase {
    name: String,
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Phase {
    fn print(&self, db_active: Option<Duration>, store_mean: Option<Duration>) {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let pct = |p: f64| sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1)];
        let sum: Duration = sorted.iter().sum();
        let mean = sum / sorted.len() as u32;
        let rps = sorted.len() as f64 / self.wall.as_secs_f64();
        print!(
            "{:<34} n={:<4} p50={:>7.2} ms  p99={:>7.2} ms  mean={:>7.2} ms  {:>7.1} req/s",
            self.name,
            sorted.len(),
            ms(pct(0.50)),
            ms(pct(0.99)),
            ms(mean),
            rps
        );
        if let Some(active) = db_active {
            print!(
                "  db(server)={:>4.1}%",
                100.0 * active.as_secs_f64() / sum.as_secs_f64()
            );
        }
        if let Some(store) = store_mean {
            print!(
                "  db(store calls)={:>4.1}%",
                100.0 * store.as_secs_f64() / mean.as_secs_f64()
            );
        }
        println!();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `count` requests made by `make(i)` with at most `concurrency` in flight.
async fn run<F, Fut>(name: &str, count: usize, concurrency: usize, make: F) -> Phase
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..count)
        .map(|i| {
            let request = make(i);
            async move {
                let t = Instant::now();
                request.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Phase {
        name: name.to_owned(),
        latencies,
        wall: started.elapsed(),
    }
}

/// Cumulative statement execution time of the stack's database, after stats are flushed.
async fn db_active_time(stack: &Stack) -> Duration {
    tokio::time::sleep(STATS_FLUSH_WAIT).await;
    let (ms,): (f64,) = sqlx::query_as(
        "SELECT active_time FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(stack.db.pool())
    .await
    .unwrap();
    Duration::from_secs_f64(ms / 1000.0)
}

fn quote_body() -> String {
    json!({"chain": "anvil", "asset": "USDC", "amount": "25.00", "recipient": RECIPIENT})
        .to_string()
}

/// Through devhost (the host's path), or straight to the handler (no host, no queue writes).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Devhost,
    Handler,
}

fn url(stack: &Stack, via: Via, path: &str) -> String {
    match via {
        Via::Devhost => stack.api().url(path),
        Via::Handler => stack.handler_api().url(path),
    }
}

async fn post_quote(stack: &Stack, via: Via, key: &str) -> String {
    let reply = stack
        .api()
        .send_to(
            url(stack, via, "/quotes"),
            reqwest::Method::POST,
            Some(key),
            None,
            Some(quote_body()),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn post_payment(stack: &Stack, via: Via, key: &str, quote_id: &str) {
    let body = json!({ "quote_id": quote_id }).to_string();
    let idempotency_key = format!("bench-{quote_id}");
    if via == Via::Handler {
        return invoke_authorize(stack, key, &idempotency_key, &body).await;
    }
    let reply = stack
        .api()
        .send_to(
            url(stack, via, "/payments"),
            reqwest::Method::POST,
            Some(key),
            Some(&idempotency_key),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
}

/// `authorize` has a queue output, so the host never forwards it: post the envelope the host
/// would send (`Data.req`) straight to the handler's `/authorize`.
async fn invoke_authorize(stack: &Stack, key: &str, idempotency_key: &str, body: &str) {
    let envelope = json!({
        "Data": {"req": {
            "Url": "http://127.0.0.1/api/payments",
            "Method": "POST",
            "Query": {},
            "Headers": {
                "Content-Type": ["application/json"],
                "Authorization": [format!("Bearer {key}")],
                "Idempotency-Key": [idempotency_key],
            },
            "Params": {},
            "Body": body,
        }},
        "Metadata": {"sys": {"MethodName": "authorize"}},
    });
    let url = format!("{}/authorize", stack.devhost().handler_url());
    let reply = stack
        .api()
        .send_to(
            url,
            reqwest::Method::POST,
            None,
            None,
            Some(envelope.to_string()),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let status = &reply.body["Outputs"]["res"]["statusCode"];
    assert!(status == "201" || status == 201, "{:?}", reply.body);
}

#[tokio::main]
async fn main() {
    let settings = HandlerSettings::default()
        .api_only()
        .env("MESHPAY_QUOTE_TTL_SECONDS", "3600")
        .env("RUST_LOG", "warn");
    let stack = Stack::builder().devhost(settings).start().await;
    let hot_wallet = meshpay_testkit::anvil::DEV_ADDRESSES[1];
    stack
        .anvil()
        .mint_usdc(
            meshpay_testkit::anvil::DEV_USDC_ADDRESS,
            hot_wallet,
            10u128.pow(15),
        )
        .await;
    let m = stack.merchant().await;
    stack.fund(m.id, "anvil:USDC", "100000000").await;
    stack.fund(m.id, "anvil:ETH", "1000").await;
    let key = m.key.as_str();
    println!(
        "payments API benchmark: loopback, devhost + release meshpay, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    for _ in 0..WARMUP_REQUESTS {
        for via in [Via::Devhost, Via::Handler] {
            let id = post_quote(&stack, via, key).await;
            post_payment(&stack, via, key, &id).await;
        }
    }

    // Quotes made by the quote phases are paid by the payment phases (same route, same size).
    let phases = [
        ("via devhost, c=1", Via::Devhost, SEQUENTIAL_REQUESTS, 1),
        (
            "via devhost, c=8",
            Via::Devhost,
            CONCURRENT_REQUESTS,
            CONCURRENCY,
        ),
        ("handler only, c=1", Via::Handler, SEQUENTIAL_REQUESTS, 1),
    ];
    let mut quote_batches: Vec<Vec<String>> = Vec::new();
    for (label, via, count, concurrency) in phases {
        let ids = Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let start = db_active_time(&stack).await;
        let phase = run(
            &format!("POST /api/quotes {label}"),
            count,
            concurrency,
            |_| {
                let ids = ids.clone();
                let stack = &stack;
                async move {
                    let id = post_quote(stack, via, key).await;
                    ids.lock().await.push(id);
                }
            },
        )
        .await;
        let active = db_active_time(&stack).await - start;
        let store = store_quote_time(&stack, m.id, key, count.min(200), concurrency).await;
        phase.print(Some(active), Some(store));
        quote_batches.push(ids.lock().await.drain(..).collect());
    }
    for ((label, via, count, concurrency), batch) in phases.into_iter().zip(&quote_batches) {
        let start = db_active_time(&stack).await;
        let phase = run(
            &format!("POST /api/payments {label}"),
            count,
            concurrency,
            |i| post_payment(&stack, via, key, &batch[i]),
        )
        .await;
        let active = db_active_time(&stack).await - start;
        let store = store_authorize_time(&stack, m.id, key, count.min(200), concurrency).await;
        phase.print(Some(active), Some(store));
    }
    stack.assert_ledger_invariants().await;
}

/// Mean time of the store calls `POST /quotes` makes (authenticate, merchant, insert).
async fn store_quote_time(
    stack: &Stack,
    merchant: meshpay_domain::MerchantId,
    key: &str,
    count: usize,
    concurrency: usize,
) -> Duration {
    let template = template_quote(stack, merchant, key).await;
    let phase = run("store", count, concurrency, |_| {
        let template = template.clone();
        async move {
            stack.store.authenticate(key).await.unwrap().unwrap();
            stack.store.get_merchant(merchant).await.unwrap().unwrap();
            stack
                .store
                .insert_quote(&new_quote(merchant, &template.charges, template.gas_limit))
                .await
                .unwrap();
        }
    })
    .await;
    phase.latencies.iter().sum::<Duration>() / phase.latencies.len() as u32
}

/// Mean time of the store calls `POST /payments` makes (authenticate, authorize).
async fn store_authorize_time(
    stack: &Stack,
    merchant: meshpay_domain::MerchantId,
    key: &str,
    count: usize,
    concurrency: usize,
) -> Duration {
    let template = template_quote(stack, merchant, key).await;
    let mut quotes = Vec::with_capacity(count);
    for _ in 0..count {
        let quote = stack
            .store
            .insert_quote(&new_quote(merchant, &template.charges, template.gas_limit))
            .await
            .unwrap();
        quotes.push(quote.id);
    }
    let phase = run("store", count, concurrency, |i| {
        let quote_id = quotes[i];
        async move {
            stack.store.authenticate(key).await.unwrap().unwrap();
            let body: Value = json!({ "quote_id": quote_id });
            let request = AuthorizeRequest {
                merchant_id: merchant,
                idempotency_key: IdempotencyKey::new(&format!("store-{quote_id}")).unwrap(),
                request_hash: request_fingerprint(&body),
                quote_id,
                reference: None,
                metadata: None,
                hot_wallet: None,
            };
            stack
                .store
                .authorize_payment(&request, |_| StoredResponse {
                    status: 201,
                    body: json!({}),
                })
                .await
                .unwrap();
        }
    })
    .await;
    phase.latencies.iter().sum::<Duration>() / phase.latencies.len() as u32
}

/// A quote made through the API, as the template for store-level inserts.
async fn template_quote(
    stack: &Stack,
    merchant: meshpay_domain::MerchantId,
    key: &str,
) -> meshpay_store::Quote {
    let id: QuoteId = post_quote(stack, Via::Handler, key).await.parse().unwrap();
    stack.store.get_quote(merchant, id).await.unwrap().unwrap()
}

fn new_quote(merchant: meshpay_domain::MerchantId, charges: &Charges, gas_limit: u64) -> NewQuote {
    NewQuote {
        merchant_id: merchant,
        charges: charges.clone(),
        recipient: RECIPIENT.parse().unwrap(),
        gas_limit,
        max_fee_per_gas: (charges.network_fee.base_units() / meshpay_domain::U256::from(gas_limit))
            .to::<u128>(),
        max_priority_fee_per_gas: 1,
        expires_at: time::OffsetDateTime::now_utc() + Duration::from_secs(3600),
    }
}
