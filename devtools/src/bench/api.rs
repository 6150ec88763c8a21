//! `POST /quotes` and `POST /payments` through devhost at concurrency 1, 8 and 64.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt as _;
use meshpay_testkit::api::{Client, Method};
use meshpay_testkit::merchant::Merchant;
use meshpay_testkit::payment::RECIPIENT;
use meshpay_testkit::stack::Stack;
use serde_json::json;

use super::{percentile, progress};

pub const CONCURRENCY: [usize; 3] = [1, 8, 64];

/// One row: an endpoint at one concurrency.
#[derive(Debug, Clone)]
pub struct ApiRow {
    pub endpoint: &'static str,
    pub concurrency: usize,
    pub requests: usize,
    /// Requests answered with an error (kept out of the latencies).
    pub errors: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub per_sec: f64,
}

fn quote_body() -> String {
    json!({"chain": "anvil", "asset": "USDC", "amount": "1.00", "recipient": RECIPIENT}).to_string()
}

async fn post_quote(api: &Client, key: &str) -> anyhow::Result<String> {
    let reply = api
        .send(Method::POST, "/quotes", Some(key), None, Some(quote_body()))
        .await;
    match (reply.status, reply.body["id"].as_str()) {
        (201, Some(id)) => Ok(id.to_owned()),
        _ => bail!("POST /quotes: {} {}", reply.status, reply.body),
    }
}

async fn post_payment(api: &Client, key: &str, quote: &str) -> anyhow::Result<()> {
    let body = json!({ "quote_id": quote }).to_string();
    let idempotency = uuid::Uuid::new_v4().to_string();
    let reply = api
        .send(
            Method::POST,
            "/payments",
            Some(key),
            Some(&idempotency),
            Some(body),
        )
        .await;
    if reply.status != 201 {
        bail!("POST /payments: {} {}", reply.status, reply.body);
    }
    Ok(())
}

/// Runs `requests` calls of `call(i)` with `concurrency` in flight; latencies and wall time.
async fn measure<F, Fut>(
    requests: usize,
    concurrency: usize,
    what: &str,
    call: F,
) -> anyhow::Result<(Vec<Duration>, usize, Duration)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let bar = progress(requests, what);
    let started = Instant::now();
    let results: Vec<anyhow::Result<Duration>> = futures::stream::iter(0..requests)
        .map(|i| {
            let call = &call;
            let bar = &bar;
            async move {
                let t = Instant::now();
                call(i).await?;
                bar.inc(1);
                Ok(t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = started.elapsed();
    bar.finish_and_clear();
    let mut latencies = Vec::with_capacity(results.len());
    let mut errors = 0;
    for result in results {
        match result {
            Ok(latency) => latencies.push(latency),
            Err(error) => {
                errors += 1;
                if errors == 1 {
                    bar.println(format!("{what}: {error:#} (counted as an error)"));
                }
            }
        }
    }
    latencies.sort();
    Ok((latencies, errors, wall))
}

fn row(
    endpoint: &'static str,
    concurrency: usize,
    (sorted, errors, wall): (Vec<Duration>, usize, Duration),
) -> ApiRow {
    ApiRow {
        endpoint,
        concurrency,
        requests: sorted.len() + errors,
        errors,
        p50: percentile(&sorted, 0.50),
        p99: percentile(&sorted, 0.99),
        per_sec: sorted.len() as f64 / wall.as_secs_f64(),
    }
}

pub async fn run(
    stack: &Stack,
    merchant: &Merchant,
    requests: usize,
) -> anyhow::Result<Vec<ApiRow>> {
    let api = stack.api();
    let key = merchant.key.as_str();
    // Warm-up: connections, prepared statements, the handler's caches (answers not checked).
    for _ in 0..20 {
        if let Ok(quote) = super::pipeline::quote(&api, key).await {
            let _ = post_payment(&api, key, &quote).await;
        }
    }
    let mut rows = Vec::new();
    for concurrency in CONCURRENCY {
        let what = format!("POST /quotes c={concurrency}");
        let timed = measure(requests, concurrency, &what, |_| async {
            post_quote(&api, key).await.map(drop)
        })
        .await?;
        rows.push(row("POST /quotes", concurrency, timed));
    }
    for concurrency in CONCURRENCY {
        let mut quotes = Vec::with_capacity(requests);
        let bar = progress(requests, "quotes for POST /payments");
        for _ in 0..requests {
            quotes.push(super::pipeline::quote(&api, key).await?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let what = format!("POST /payments c={concurrency}");
        let quotes = &quotes;
        let timed = measure(requests, concurrency, &what, |i| {
            let api = &api;
            async move { post_payment(api, key, &quotes[i]).await }
        })
        .await?;
        rows.push(row("POST /payments", concurrency, timed));
    }
    Ok(rows)
}

/// Cancels what the API rows authorized and empties the broadcast queue, so the pipeline
/// phases start with no backlog (the API stage ran with the pipeline switched off).
pub async fn cancel_leftovers(stack: &Stack, merchant: &Merchant) -> anyhow::Result<()> {
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM payments WHERE status = 'authorized'")
            .fetch_all(stack.db.pool())
            .await?;
    let api = stack.api();
    let key = merchant.key.as_str();
    let bar = progress(ids.len(), "canceling API-row payments");
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(&ids)
        .map(|id| {
            let (api, bar) = (&api, &bar);
            async move {
                let path = format!(
                    "/payments/{}/cancel",
                    meshpay_domain::PaymentId::from_uuid(*id)
                );
                let reply = api.send(Method::POST, &path, Some(key), None, None).await;
                if reply.status != 200 {
                    bail!("POST {path}: {} {}", reply.status, reply.body);
                }
                bar.inc(1);
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    bar.finish_and_clear();
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    stack
        .azurite
        .queue("payments-broadcast")
        .await
        .clear()
        .await?;
    Ok(())
}
