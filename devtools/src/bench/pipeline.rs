//! Payments through the whole pipeline: one at a time (what meshpay adds on top of the chain)
//! and N at a concurrency (payments/s).

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt as _;
use meshpay_domain::PaymentId;
use meshpay_testkit::api::{Client, Method};
use meshpay_testkit::merchant::Merchant;
use meshpay_testkit::payment::RECIPIENT;
use meshpay_testkit::stack::Stack;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{BLOCK_TIME_SECS, CONFIRMATIONS, percentile, progress};

/// Longest wait for one payment, or for the whole pipeline run, to settle.
const SINGLE_TIMEOUT: Duration = Duration::from_secs(120);
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);
/// Pause between two reads of a payment's status (a read takes a few ms locally).
const POLL: Duration = Duration::from_millis(20);
/// Pause between two reads of anvil's head while a single payment runs.
const HEAD_POLL: Duration = Duration::from_millis(5);
/// A client's retries of a request answered 503 (or in flight), and the pause between them.
const RETRIES: usize = 40;
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Sequential payments: authorize → settled, and that minus the chain's own time.
#[derive(Debug, Clone, Default)]
pub struct Single {
    pub payments: usize,
    pub total_p50: Duration,
    pub overhead_p50: Duration,
    pub overhead_p90: Duration,
    pub overhead_min: Duration,
    pub overhead_max: Duration,
    /// authorize → settled minus the chain's part (the wait for the inclusion block and the
    /// confirmations): what meshpay itself takes, p50 and p90.
    pub own_p50: Duration,
    pub own_p90: Duration,
    /// Where each payment's time went, p50 and p90 over the payments (see [`Phases`]).
    pub steps: Vec<(String, Duration, Duration)>,
}

/// One payment's time split at the moments the bench saw: its status changes (database clock)
/// and the moments its inclusion block and the block that made it final appeared on anvil (the
/// bench reads the head every few ms, on the same machine's clock).
#[derive(Debug, Clone, Copy)]
struct Phases {
    /// `POST /payments` sent → `authorized` event (the API).
    authorize: Duration,
    /// `authorized` → `broadcast` (queue hop, signing, send).
    broadcast: Duration,
    /// `broadcast` → its block appeared (the chain: the wait for the next block).
    inclusion: Duration,
    /// Inclusion block → the block that makes it final appeared (the chain: confirmations).
    finality: Duration,
    /// Final block appeared → `confirmed` (confirm noticing: poll lag, wake-up, the reads).
    notice: Duration,
    /// `confirmed` → `settled` (queue hop, settle's canonical re-check, the postings).
    settle: Duration,
}

impl Phases {
    const NAMES: [&'static str; 6] = [
        "request → authorized",
        "authorized → broadcast",
        "broadcast → block (chain)",
        "block → final (chain)",
        "final block → confirmed",
        "confirmed → settled",
    ];

    fn values(&self) -> [Duration; 6] {
        [
            self.authorize,
            self.broadcast,
            self.inclusion,
            self.finality,
            self.notice,
            self.settle,
        ]
    }
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub payments: usize,
    pub concurrency: usize,
    pub wall: Duration,
    pub per_sec: f64,
    /// Created → settled per payment (database clock).
    pub settle_p50: Duration,
    pub settle_p99: Duration,
}

/// Sends until the answer is not a retryable one (503, or 409 for the same key in flight), as
/// a client does: the same request, the same Idempotency-Key.
async fn send_retrying(
    api: &Client,
    path: &str,
    key: &str,
    idempotency: Option<&str>,
    body: String,
) -> anyhow::Result<Value> {
    for _ in 0..RETRIES {
        let reply = api
            .send(
                Method::POST,
                path,
                Some(key),
                idempotency,
                Some(body.clone()),
            )
            .await;
        match reply.status {
            201 => return Ok(reply.body),
            503 => {}
            409 if reply.code() == "idempotency_key_in_flight" => {}
            _ => bail!("POST {path}: {} {}", reply.status, reply.body),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    bail!("POST {path}: still unavailable after {RETRIES} tries")
}

pub(super) async fn quote(api: &Client, key: &str) -> anyhow::Result<String> {
    let body = json!({"chain": "anvil", "asset": "USDC", "amount": "1.00", "recipient": RECIPIENT});
    let reply = send_retrying(api, "/quotes", key, None, body.to_string()).await?;
    reply["id"]
        .as_str()
        .map(str::to_owned)
        .context("quote without an id")
}

async fn authorize(api: &Client, key: &str, quote: &str) -> anyhow::Result<PaymentId> {
    let body = json!({ "quote_id": quote }).to_string();
    let idempotency = uuid::Uuid::new_v4().to_string();
    let reply = send_retrying(api, "/payments", key, Some(&idempotency), body).await?;
    let id = reply["id"].as_str().context("payment without an id")?;
    Ok(PaymentId::from_str(id)?)
}

/// The payment's status changes with their database times.
async fn events(stack: &Stack, id: PaymentId) -> anyhow::Result<Vec<(String, OffsetDateTime)>> {
    let rows: Vec<(String, OffsetDateTime)> = sqlx::query_as(
        "SELECT to_status, created_at FROM payment_events WHERE payment_id = $1 ORDER BY version",
    )
    .bind(id.as_uuid())
    .fetch_all(stack.db.pool())
    .await
    .context("reading payment events")?;
    Ok(rows)
}

/// The chain-webhook path: the signing key of the handler's `MESHPAY_CHAIN_WEBHOOK_KEY`, with
/// which the bench plays the provider (an Alchemy Address Activity hint posted the moment the
/// payment's transaction has a receipt on anvil).
pub struct WebhookHints<'a> {
    pub key: &'a str,
}

impl WebhookHints<'_> {
    /// Posts the hint once the transaction of `id` is mined; `true` once posted.
    async fn post_when_mined(&self, stack: &Stack, id: PaymentId) -> anyhow::Result<bool> {
        let Some(payment) = stack.store.get_payment_unscoped(id).await? else {
            return Ok(false);
        };
        let Some(tx_hash) = payment.tx_hash else {
            return Ok(false);
        };
        let receipt = stack
            .anvil()
            .rpc("eth_getTransactionReceipt", json!([tx_hash]))
            .await;
        if receipt.is_null() {
            return Ok(false);
        }
        let body = json!({
            "webhookId": "wh_bench", "id": format!("whevt_{}", uuid::Uuid::new_v4().simple()),
            "createdAt": OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)?,
            "type": "ADDRESS_ACTIVITY",
            "event": {"network": "ETH_MAINNET", "activity": [{
                "hash": tx_hash.to_string(), "category": "token", "asset": "USDC",
            }]}
        })
        .to_string();
        let key = meshpay_confirm::webhook::WebhookKey::new(self.key.to_owned());
        let signature = meshpay_confirm::webhook::sign_alchemy(&key, body.as_bytes())
            .context("signing the chain webhook")?;
        let reply = stack
            .api()
            .post_unauthenticated(
                "webhooks/chain",
                &body,
                &[("X-Alchemy-Signature", signature)],
            )
            .await;
        if reply.status != 200 {
            bail!("chain webhook answered {} {}", reply.status, reply.body);
        }
        Ok(true)
    }
}

/// When each block number was first seen (wall clock of this machine).
type BlockTimes = std::sync::Mutex<std::collections::BTreeMap<u64, OffsetDateTime>>;

/// Reads anvil's head every [`HEAD_POLL`] and records when each block first appeared; never
/// returns (raced against the payment's wait).
async fn watch_blocks(stack: &Stack, seen: &BlockTimes) {
    loop {
        let head = stack.anvil().rpc("eth_blockNumber", json!([])).await;
        let now = OffsetDateTime::now_utc();
        if let Some(number) = head
            .as_str()
            .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            && let Ok(mut seen) = seen.lock()
        {
            seen.entry(number).or_insert(now);
        }
        tokio::time::sleep(HEAD_POLL).await;
    }
}

/// One payment from `POST /payments` to `settled`, with its time split into [`Phases`].
async fn one_single(
    stack: &Stack,
    key: &str,
    hints: Option<&WebhookHints<'_>>,
    blocks: &BlockTimes,
) -> anyhow::Result<(Duration, Phases)> {
    let api = stack.api();
    let quote = quote(&api, key).await?;
    let requested = OffsetDateTime::now_utc();
    let started = Instant::now();
    let id = authorize(&api, key, &quote).await?;
    let mut hinted = hints.is_none();
    loop {
        if !hinted && let Some(hints) = hints {
            hinted = hints.post_when_mined(stack, id).await?;
        }
        let view = api.get(&format!("/payments/{id}"), key).await;
        match view.body["status"].as_str() {
            Some("settled") => break,
            Some("failed" | "canceled") => bail!("payment {id}: {}", view.body),
            _ if started.elapsed() > SINGLE_TIMEOUT => bail!("payment {id} not settled"),
            _ => tokio::time::sleep(POLL).await,
        }
    }
    let total = started.elapsed();
    let events = events(stack, id).await?;
    let at = |status: &str| {
        events
            .iter()
            .find(|(to, _)| to == status)
            .map(|(_, at)| *at)
            .with_context(|| format!("payment {id} has no {status} event"))
    };
    let (authorized, broadcast) = (at("authorized")?, at("broadcast")?);
    let (confirmed, settled) = (at("confirmed")?, at("settled")?);
    let payment = stack
        .store
        .get_payment_unscoped(id)
        .await?
        .context("payment vanished")?;
    let block = payment.block_number.context("settled without a block")?;
    let appeared = |number: u64| {
        blocks
            .lock()
            .ok()
            .and_then(|seen| seen.get(&number).copied())
            .with_context(|| format!("block {number} was not seen by the bench"))
    };
    let (included, final_block) = (appeared(block)?, appeared(block + CONFIRMATIONS)?);
    let gap = |from: OffsetDateTime, to: OffsetDateTime| (to - from).unsigned_abs();
    Ok((
        total,
        Phases {
            authorize: gap(requested, authorized),
            broadcast: gap(authorized, broadcast),
            inclusion: gap(broadcast, included),
            finality: gap(included, final_block),
            notice: gap(final_block, confirmed),
            settle: gap(confirmed, settled),
        },
    ))
}

pub async fn single(
    stack: &Stack,
    merchant: &Merchant,
    payments: usize,
    hints: Option<&WebhookHints<'_>>,
) -> anyhow::Result<Single> {
    let key = merchant.key.as_str();
    let chain_time = Duration::from_secs(CONFIRMATIONS * BLOCK_TIME_SECS);
    let what = if hints.is_some() {
        "single payments (webhook)"
    } else {
        "single payments (polling)"
    };
    let bar = progress(payments, what);
    let blocks = BlockTimes::default();
    let mut totals = Vec::new();
    let mut own = Vec::new();
    let mut phases = Vec::new();
    for i in 0..payments {
        // Started one after the other, the payments would all reach the chain at the same
        // moment of the block interval (a fixed delay after the block that settled the one
        // before) and share one inclusion wait. Real payments arrive at any moment: spread the
        // starts evenly over the interval (golden-ratio steps, the same every run).
        let phase = (i as f64 * 0.618_034).fract() * (BLOCK_TIME_SECS as f64);
        tokio::time::sleep(Duration::from_secs_f64(phase)).await;
        let (total, split) = tokio::select! {
            done = one_single(stack, key, hints, &blocks) => done?,
            () = watch_blocks(stack, &blocks) => unreachable!("the block watch never ends"),
        };
        totals.push(total);
        own.push(total.saturating_sub(split.inclusion + split.finality));
        phases.push(split);
        bar.inc(1);
    }
    bar.finish_and_clear();
    totals.sort();
    own.sort();
    let overheads: Vec<Duration> = totals
        .iter()
        .map(|t| t.saturating_sub(chain_time))
        .collect();
    let steps = Phases::NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut gaps: Vec<Duration> = phases.iter().map(|p| p.values()[i]).collect();
            gaps.sort();
            (
                (*name).to_owned(),
                percentile(&gaps, 0.5),
                percentile(&gaps, 0.9),
            )
        })
        .collect();
    Ok(Single {
        payments,
        total_p50: percentile(&totals, 0.5),
        overhead_p50: percentile(&overheads, 0.5),
        overhead_p90: percentile(&overheads, 0.9),
        overhead_min: overheads.first().copied().unwrap_or_default(),
        overhead_max: overheads.last().copied().unwrap_or_default(),
        own_p50: percentile(&own, 0.5),
        own_p90: percentile(&own, 0.9),
        steps,
    })
}

pub async fn run(
    stack: &Stack,
    merchant: &Merchant,
    payments: usize,
    concurrency: usize,
) -> anyhow::Result<Pipeline> {
    let api = stack.api();
    let key = merchant.key.as_str();
    let started = Instant::now();
    let submitted: Vec<anyhow::Result<PaymentId>> = futures::stream::iter(0..payments)
        .map(|_| {
            let api = &api;
            async move { authorize(api, key, &quote(api, key).await?).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let ids: Vec<uuid::Uuid> = submitted
        .into_iter()
        .map(|id| id.map(|id| id.as_uuid()))
        .collect::<anyhow::Result<_>>()?;
    let bar = progress(payments, "pipeline: settled");
    loop {
        let (settled, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'settled'),
                    count(*) FILTER (WHERE status IN ('failed', 'canceled'))
             FROM payments WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_one(stack.db.pool())
        .await?;
        bar.set_position(settled as u64);
        if failed > 0 {
            bail!("{failed} payment(s) of the pipeline run failed");
        }
        if settled as usize == payments {
            break;
        }
        if started.elapsed() > RUN_TIMEOUT {
            bail!("{settled} of {payments} settled after {RUN_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = started.elapsed();
    bar.finish_and_clear();
    let mut settle: Vec<Duration> = sqlx::query_scalar::<_, f64>(
        "SELECT extract(epoch FROM e.created_at - p.created_at)::float8
         FROM payments p JOIN payment_events e ON e.payment_id = p.id AND e.to_status = 'settled'
         WHERE p.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(stack.db.pool())
    .await?
    .into_iter()
    .map(|secs| Duration::from_secs_f64(secs.max(0.0)))
    .collect();
    settle.sort();
    Ok(Pipeline {
        payments,
        concurrency,
        wall,
        per_sec: payments as f64 / wall.as_secs_f64(),
        settle_p50: percentile(&settle, 0.5),
        settle_p99: percentile(&settle, 0.99),
    })
}
