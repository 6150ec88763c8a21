//! What the pay-in end-to-end tests share: creating an invoice over the API, paying it from
//! anvil account 5, waiting for a status, and the one check every case ends with: the ledger balanced, the invoice's
//! final recognized transfers each credited exactly once (amount − fee, none reversed unless
//! removed), the merchant's share being the credit less the fee (posted by the credit itself,
//! checked by the ledger invariants), and its webhook events queued once each, in version order;
//! then, once the `sweep` timer has moved every final recognized payment: the deposit address
//! empty of the invoice's asset and of native coin, the treasury up by the sum of the final
//! recognized transfers since it was measured, each sweep's gas posted to network fees, the
//! ledger still summing to zero; an invoice with nothing final and recognized swept by nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use base64::Engine as _;
use meshpay_testkit::anvil::{DEV_USDC_ADDRESS, HOT_WALLETS};
use meshpay_testkit::api::Method;
use meshpay_testkit::hex::hex_u128;
use meshpay_testkit::stack::{HandlerSettings, Stack};
use serde_json::{Value, json};

/// The payer: anvil account 5.
pub const PAYER: usize = 5;
pub const USDC: u128 = 1_000_000;

/// What the merchant webhooks need in the handler: the `notify` timer every second, delivery to
/// a loopback endpoint allowed.
pub fn with_webhooks(settings: HandlerSettings) -> HandlerSettings {
    settings
        .env("NOTIFY_SCHEDULE", "* * * * * *")
        .env("MESHPAY_WEBHOOK_URL_POLICY", "allow-private")
        .env(
            "MESHPAY_WEBHOOK_SECRET_KEY",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        )
}

/// The `sweep` timer every second with the dev hot wallets' keys: final invoices are flushed to
/// the treasury while a case runs.
pub fn with_sweeps(settings: HandlerSettings) -> HandlerSettings {
    settings
        .dev_signers()
        .env("SWEEP_SCHEDULE", "*/1 * * * * *")
}

/// The factory's treasury (hot wallet account 1) and its DevUSDC balance when measured: before
/// the payer's first transfer, so what a case sweeps is the growth since.
pub struct Treasury {
    address: &'static str,
    before: u128,
}

impl Treasury {
    pub async fn measure(stack: &Stack) -> Treasury {
        let address = HOT_WALLETS[0];
        Treasury {
            address,
            before: stack.anvil().usdc_balance(address).await,
        }
    }
}

/// A merchant's webhook endpoint on 127.0.0.1 that records every event body it is sent and
/// answers 200 (signatures are verified by `tests/e2e/webhooks.rs`).
#[derive(Clone)]
pub struct Receiver {
    received: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    /// Starts it and registers it for the merchant of `key`.
    pub async fn start(stack: &Stack, key: &str) -> Receiver {
        let receiver = Receiver {
            received: Arc::default(),
        };
        let app = axum::Router::new()
            .route(
                "/hook",
                post(
                    |State(r): State<Receiver>, Json(body): Json<Value>| async move {
                        r.received.lock().unwrap().push(body);
                    },
                ),
            )
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        stack
            .api()
            .create_webhook_endpoint(key, &format!("http://{addr}/hook"))
            .await;
        receiver
    }

    /// The event types received for `invoice_id`, in arrival order.
    fn types_for(&self, invoice_id: &str) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["data"]["id"] == invoice_id)
            .map(|b| b["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// `POST /api/invoices` for `amount` USDC on anvil, which must succeed.
pub async fn create_invoice(stack: &Stack, key: &str, amount: &str) -> Value {
    let body = json!({"chain": "anvil", "asset": "USDC", "amount": amount, "reference": "order-7"});
    let reply = stack
        .api()
        .send(
            Method::POST,
            "invoices",
            Some(key),
            Some(&uuid::Uuid::new_v4().to_string()),
            Some(body.to_string()),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

/// Mints `amount` of DevUSDC to the payer, who sends it to `to`; returns once mined.
pub async fn pay_usdc(stack: &Stack, to: &str, amount: u128) {
    pay_token(stack, DEV_USDC_ADDRESS, to, amount).await;
}

/// The same with any DevUSDC instance (`token`).
pub async fn pay_token(stack: &Stack, token: &str, to: &str, amount: u128) {
    stack
        .anvil()
        .mint_usdc(token, stack.anvil().address(PAYER), amount)
        .await;
    let data = format!(
        "0xa9059cbb{:0>64}{amount:064x}",
        to.trim_start_matches("0x").to_ascii_lowercase()
    );
    stack
        .anvil()
        .send_and_wait(json!({"from": stack.anvil().address(PAYER), "to": token, "data": data}))
        .await;
}

/// Mines a block a second, as the dev chain does, until dropped.
pub fn block_every_second(stack: &Stack) -> tokio::task::JoinHandle<()> {
    let url = stack.anvil().url().to_owned();
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = http
                .post(&url)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}))
                .send()
                .await;
        }
    })
}

/// Polls `GET /api/invoices/{id}` until its status is `want` (60 s at most).
pub async fn wait_for_status(stack: &Stack, key: &str, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = stack.api().get(&format!("invoices/{id}"), key).await;
        if reply.body["status"] == want {
            return reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "invoice {id} is {}, not {want}: {}",
            reply.body["status"],
            stack.log_tail(60)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `credited`: the sum of the invoice's transfers that must stand credited (base units).
/// `receiver`: the merchant's endpoint, which must get the invoice's events once each, in order.
/// `treasury`: measured before the case's first transfer.
pub async fn assert_invoice_books(
    stack: &Stack,
    receiver: &Receiver,
    treasury: &Treasury,
    invoice_id: &str,
    credited: u128,
) {
    stack.assert_ledger_invariants().await;
    let pool = stack.store.pool();
    let reference = format!("{invoice_id}:%");
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT kind, reference, (details->>'amount') FROM ledger_transactions
         WHERE kind IN ('invoice_credit', 'invoice_reversal') AND reference LIKE $1",
    )
    .bind(&reference)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut standing: i128 = 0;
    for (kind, _, amount) in &rows {
        let amount: i128 = amount.parse().unwrap();
        standing += if kind == "invoice_credit" {
            amount
        } else {
            -amount
        };
    }
    assert_eq!(standing, credited as i128, "credited once: {rows:?}");
    // Each reference credited at most once and reversed at most once (a reversal only of a
    // credit): what "credited exactly once per final transfer" means in the ledger.
    for (kind, reference, _) in &rows {
        let same = rows
            .iter()
            .filter(|(k, r, _)| k == kind && r == reference)
            .count();
        assert_eq!(same, 1, "{kind} {reference} posted {same} times");
        if kind == "invoice_reversal" {
            assert!(
                rows.iter()
                    .any(|(k, r, _)| k == "invoice_credit" && r == reference)
            );
        }
    }
    let events: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT payload->>'type', (payload->>'version')::bigint FROM outbox
         WHERE payload->>'invoice_id' = $1 ORDER BY id",
    )
    .bind(invoice_id)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        events.windows(2).all(|w| w[0].1 < w[1].1),
        "webhooks once each, in order: {events:?}"
    );
    let queued: Vec<String> = events.into_iter().filter_map(|(t, _)| t).collect();
    assert!(
        credited == 0 || !queued.is_empty(),
        "no webhook for {invoice_id}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered = receiver.types_for(invoice_id);
        if delivered == queued {
            break;
        }
        assert!(
            delivered.len() < queued.len() && queued.starts_with(&delivered),
            "delivered {delivered:?}, queued {queued:?}"
        );
        assert!(
            Instant::now() < deadline,
            "delivered {delivered:?} of {queued:?}\n{}",
            stack.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_swept(stack, treasury, invoice_id).await;
}

/// The sweep half of [`assert_invoice_books`]: waits (mining a block every 200 ms, so each
/// sweep gets its confirmation) until no final recognized payment on the chain lacks a
/// confirmed sweep and none is in flight, then checks the invoice's deposit address, the
/// treasury, the sweeps' receipts and gas postings against the chain.
async fn assert_swept(stack: &Stack, treasury: &Treasury, invoice_id: &str) {
    let pool = stack.store.pool();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let unswept = stack
            .count(
                "SELECT count(*) FROM invoice_payments p
                  WHERE p.status = 'final' AND p.asset IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM sweep_payments sp JOIN sweeps s ON s.id = sp.sweep_id
                                     WHERE sp.invoice_id = p.invoice_id AND sp.tx_hash = p.tx_hash
                                       AND sp.log_index = p.log_index AND s.status = 'confirmed')",
            )
            .await;
        let in_flight = stack
            .count("SELECT count(*) FROM sweeps WHERE status IN ('planned', 'broadcast')")
            .await;
        if unswept == 0 && in_flight == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unswept} final payments unswept, {in_flight} sweeps in flight\n{}",
            stack.log_tail(40)
        );
        stack.anvil().mine(1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        stack
            .count("SELECT count(*) FROM sweeps WHERE status = 'failed'")
            .await,
        0,
        "no sweep reverted"
    );
    stack.assert_ledger_invariants().await;

    // The treasury: up by every final recognized transfer on the chain, which the sweeps'
    // postings carried from pay-ins to the hot wallets.
    let (final_sum,): (String,) = sqlx::query_as(
        "SELECT COALESCE(sum(amount), 0)::text FROM invoice_payments
          WHERE status = 'final' AND asset IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let final_sum: u128 = final_sum.parse().unwrap();
    let treasury_now = stack.anvil().usdc_balance(treasury.address).await;
    assert_eq!(
        treasury_now,
        treasury.before + final_sum,
        "treasury up by the final recognized transfers"
    );
    let (posted,): (String,) = sqlx::query_as(
        "SELECT COALESCE(sum(e.amount), 0)::text FROM ledger_entries e
           JOIN ledger_accounts a ON a.id = e.account_id
           JOIN ledger_transactions t ON t.id = e.transaction_id
          WHERE t.kind = 'sweep' AND a.kind = 'hot_wallets' AND a.asset = 'anvil:USDC'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        posted,
        final_sum.to_string(),
        "sweeps posted what they moved"
    );

    // This invoice: what it holds now, and what its sweeps moved out of it.
    let id = invoice_id
        .parse::<meshpay_domain::InvoiceId>()
        .unwrap()
        .as_uuid();
    let (deposit, invoice_final): (String, String) = sqlx::query_as(
        "SELECT i.deposit_address,
                (SELECT COALESCE(sum(p.amount), 0)::text FROM invoice_payments p
                  WHERE p.invoice_id = i.id AND p.status = 'final' AND p.asset IS NOT NULL)
           FROM invoices i WHERE i.id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    let invoice_final: u128 = invoice_final.parse().unwrap();
    assert_eq!(stack.anvil().usdc_balance(&deposit).await, 0, "{deposit}");
    assert!(
        stack.anvil().eth_balance(&deposit).await.is_zero(),
        "{deposit} holds native coin"
    );
    let sweeps: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT DISTINCT s.id::text, s.tx_hash, s.network_fee::text
           FROM sweeps s JOIN sweep_payments sp ON sp.sweep_id = s.id
          WHERE sp.invoice_id = $1 AND s.status = 'confirmed'",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap();
    if invoice_final == 0 {
        assert_eq!(sweeps, [], "nothing to sweep, nothing swept");
        let unrecognized: Vec<(String, String)> = sqlx::query_as(
            "SELECT token, sum(amount)::text FROM invoice_payments
              WHERE invoice_id = $1 AND status = 'final' AND asset IS NULL GROUP BY token",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        for (token, amount) in unrecognized {
            assert_eq!(
                stack
                    .anvil()
                    .erc20_balance(&token, &deposit)
                    .await
                    .to_string(),
                amount,
                "an unrecognized token stays until an operator sweeps it"
            );
        }
        return;
    }
    let mut moved = 0u128;
    for (sweep, tx_hash, fee) in &sweeps {
        let receipt = stack
            .anvil()
            .rpc("eth_getTransactionReceipt", json!([tx_hash]))
            .await;
        assert_eq!(receipt["status"], "0x1", "{receipt}");
        let gas = hex_u128(&receipt["gasUsed"]) * hex_u128(&receipt["effectiveGasPrice"]);
        assert_eq!(fee, &gas.to_string(), "sweep {sweep}: fee of its receipt");
        let (to_fees,): (String,) = sqlx::query_as(
            "SELECT COALESCE(sum(e.amount), 0)::text FROM ledger_entries e
               JOIN ledger_accounts a ON a.id = e.account_id
               JOIN ledger_transactions t ON t.id = e.transaction_id
              WHERE t.reference = $1 AND a.kind = 'network_fees'",
        )
        .bind(format!("sweep:{sweep}"))
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            to_fees,
            gas.to_string(),
            "sweep {sweep}: gas to network fees"
        );
        moved += transfers(&receipt, &deposit, treasury.address);
    }
    assert_eq!(moved, invoice_final, "swept from {deposit} to the treasury");
}

/// The DevUSDC `Transfer` logs of `receipt` from `from` to `to`, summed.
fn transfers(receipt: &Value, from: &str, to: &str) -> u128 {
    let topic = |a: &str| format!("0x{:0>64}", a.trim_start_matches("0x").to_ascii_lowercase());
    receipt["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|log| {
            log["address"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(DEV_USDC_ADDRESS))
                && log["topics"][1].as_str() == Some(topic(from).as_str())
                && log["topics"][2].as_str() == Some(topic(to).as_str())
        })
        .map(|log| hex_u128(&log["data"]))
        .sum()
}
