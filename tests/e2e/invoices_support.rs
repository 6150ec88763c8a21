//! What the pay-in end-to-end tests share: creating an invoice over the API, paying it from
//! anvil account 5, waiting for a status, and the one check every case ends with: the ledger balanced, the invoice's
//! final recognized transfers each credited exactly once (amount − fee, none reversed unless
//! removed), the merchant's share being the credit less the fee (posted by the credit itself,
//! checked by the ledger invariants), and its webhook events queued once each, in version order. A sweep check
//! ("deposit address empty, treasury up by the sum") belongs here too once sweeps run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use base64::Engine as _;
use meshpay_testkit::anvil::DEV_USDC_ADDRESS;
use meshpay_testkit::api::Method;
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
pub async fn assert_invoice_books(
    stack: &Stack,
    receiver: &Receiver,
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
}
