//! The `broadcast` step through devhost + `meshpay` against PostgreSQL, anvil and Azurite.
//! Payments are quoted and authorized over HTTP; authorize's queue message drives the broadcast
//! function; results are read from the chain itself (receipts, balances, Transfer logs) and
//! from `GET /api/payments/{id}`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use meshpay_domain::{IdempotencyKey, PaymentId, QuoteId, U256};
use meshpay_store::{AuthorizeOutcome, AuthorizeRequest, StoredResponse, request_fingerprint};
use meshpay_testkit::anvil::{HOT_WALLETS, TRANSFER_TOPIC};
use meshpay_testkit::hex::{hex_u64, hex_u128};
use meshpay_testkit::payment::fresh_recipient as recipient;
use meshpay_testkit::stack::{ChainSetup, HandlerSettings, Stack};
use serde_json::{Value, json};

use crate::support::{PipelineStack, funded_merchant};

const WAIT: Duration = Duration::from_secs(90);

/// The full stack with the dev signers, and a funded merchant with a key.
struct Broadcast;
type Ctx = PipelineStack<Broadcast>;

/// How to start the stack.
#[derive(Default)]
struct Options {
    /// `MESHPAY_FAULT` for the handler.
    fault: Option<&'static str>,
    /// Redeliver failed messages at once (visibility timeout 0) so poisoning takes moments.
    fast_retries: bool,
}

impl PipelineStack<Broadcast> {
    async fn start(options: Options) -> Ctx {
        let mut settings = HandlerSettings::default().dev_signers();
        if let Some(fault) = options.fault {
            settings = settings.env("MESHPAY_FAULT", fault);
        }
        if options.fast_retries {
            settings = settings.fast_retries();
        }
        let builder = Stack::builder()
            .chain(ChainSetup {
                hot_wallet_usdc: 10u128.pow(12),
                ..ChainSetup::default()
            })
            .devhost(settings);
        Ctx::start_with(builder, funded_merchant()).await
    }

    /// Waits until the payment has a transaction that is mined; returns (view, receipt).
    async fn mined(&self, id: PaymentId) -> (Value, Value) {
        let deadline = Instant::now() + WAIT;
        loop {
            // Read through the reply, not `payment_view`: while a killed handler is restarted,
            // devhost answers 500 for a moment, which is "not yet" here.
            let view = self
                .api()
                .get(&format!("/payments/{id}"), &self.merchant.key)
                .await
                .body;
            if let Some(hash) = view["tx_hash"].as_str() {
                let receipt = self
                    .anvil()
                    .rpc("eth_getTransactionReceipt", json!([hash]))
                    .await;
                if !receipt.is_null() {
                    return (view, receipt);
                }
                // anvil's automine can strand a transaction that arrived before its
                // predecessor (foundry #10122): mine it.
                self.anvil().mine(1).await;
            }
            assert!(
                Instant::now() < deadline,
                "payment {id} not mined: {view}\n{}",
                self.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn nonce(&self, wallet: &str, tag: &str) -> u64 {
        hex_u64(
            &self
                .anvil()
                .rpc("eth_getTransactionCount", json!([wallet, tag]))
                .await,
        )
    }

    /// Waits until `queue` is empty, in-flight (invisible) messages included.
    async fn drained(&self, queue: &str) {
        self.stack.drained(queue, WAIT).await;
    }

    async fn finish(self) {
        self.assert_ledger_invariants().await;
    }
}

fn topic_address(topic: &Value) -> String {
    let t = topic.as_str().unwrap();
    format!("0x{}", &t[t.len() - 40..])
}

#[tokio::test]
async fn native_and_usdc_payments_land_on_chain_with_the_quoted_amounts() {
    let stack = Ctx::start(Options::default()).await;
    let eth_to = recipient();
    let usdc_to = recipient();
    let (eth_payment, eth_amount) = stack.pay("ETH", "0.25", &eth_to).await;
    let (usdc_payment, usdc_amount) = stack.pay("USDC", "250.00", &usdc_to).await;
    assert_eq!(
        (eth_amount, usdc_amount),
        (250_000_000_000_000_000, 250_000_000)
    );

    let (view, receipt) = stack.mined(eth_payment).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(
        stack.anvil().eth_balance(&eth_to).await,
        U256::from(eth_amount)
    );
    assert_eq!(view["chain"], "anvil");
    assert!(
        HOT_WALLETS.contains(&view["from"].as_str().unwrap()),
        "{view}"
    );
    assert!(view["nonce"].is_u64(), "{view}");
    assert_eq!(receipt["transactionHash"], view["tx_hash"]);

    let (view, receipt) = stack.mined(usdc_payment).await;
    assert_eq!(receipt["status"], json!("0x1"));
    let usdc_balance = stack.anvil().usdc_balance(&usdc_to).await;
    assert_eq!(usdc_balance, usdc_amount);
    let log = &receipt["logs"][0];
    let topics = log["topics"].as_array().unwrap();
    assert_eq!((topics.len(), &topics[0]), (3, &json!(TRANSFER_TOPIC)));
    assert_eq!(
        topic_address(&topics[1]),
        view["from"].as_str().unwrap().to_ascii_lowercase()
    );
    assert_eq!(topic_address(&topics[2]), usdc_to.to_ascii_lowercase());
    assert_eq!(hex_u128(&log["data"]), usdc_amount);
    let attempts = stack
        .store
        .payment_transactions(usdc_payment)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        format!("{:#x}", attempts[0].tx_hash),
        view["tx_hash"].as_str().unwrap()
    );

    // GET /api/payments/{id} shows every attempt with its hash and fees, never its bytes.
    stack.drained("payments-broadcast").await;
    let view = stack.payment_view(usdc_payment).await;
    let shown = view["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts: {view}"));
    assert_eq!(shown.len(), 1, "{view}");
    let (shown, stored) = (&shown[0], &attempts[0]);
    assert_eq!(shown["attempt"], 1);
    assert_eq!(shown["tx_hash"], view["tx_hash"]);
    assert_eq!(shown["nonce"], view["nonce"]);
    assert_eq!(shown["from"], view["from"]);
    assert_eq!(shown["status"], "sent", "{shown}");
    assert!(shown["sent_at"].is_string(), "{shown}");
    assert_eq!(
        shown["max_fee_per_gas"],
        stored.max_fee_per_gas_wei.to_string()
    );
    assert_eq!(
        shown["max_priority_fee_per_gas"],
        stored.max_priority_fee_per_gas_wei.to_string()
    );
    assert_eq!(shown["gas_limit"], stored.gas_limit.to_string());
    let raw_hex: String = stored.raw.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!view.to_string().contains(&raw_hex[..64]), "{view}");
    stack.finish().await;
}

#[tokio::test]
async fn same_broadcast_message_delivered_five_times_yields_one_transaction() {
    let stack = Ctx::start(Options::default()).await;
    let to = recipient();
    let (id, amount) = stack.pay("ETH", "0.01", &to).await;
    let (view, _) = stack.mined(id).await;
    // Four more copies of the message authorize sent (at-least-once delivery).
    let message = json!({"v": 1, "payment_id": id}).to_string();
    for _ in 0..4 {
        stack.azurite.send("payments-broadcast", &message).await;
    }
    stack.drained("payments-broadcast").await;
    let poisoned = stack.azurite.queue("payments-broadcast-poison").await;
    assert_eq!(
        poisoned.approximate_count().await.unwrap(),
        0,
        "every copy completed"
    );
    let attempts = stack.store.payment_transactions(id).await.unwrap();
    assert_eq!(
        attempts.len(),
        1,
        "one transaction, re-sent, never re-signed"
    );
    // While the payment is still `broadcast`, each copy re-sends the stored bytes (later steps
    // may already have moved it on, in which case copies are ignored).
    let status = stack.payment_view(id).await["status"].clone();
    if status == "broadcast" {
        assert_eq!(attempts[0].send_count, 5, "{attempts:?}");
    }
    let from = view["from"].as_str().unwrap();
    assert_eq!(
        stack.nonce(from, "latest").await,
        1,
        "one transaction from the wallet"
    );
    let other = HOT_WALLETS.iter().find(|w| **w != from).unwrap();
    assert_eq!(stack.nonce(other, "latest").await, 0);
    assert_eq!(stack.anvil().eth_balance(&to).await, U256::from(amount));
    stack.finish().await;
}

#[tokio::test]
async fn handler_killed_between_signing_and_sending_still_pays_exactly_once() {
    // The first delivery aborts the process after storing the signed transaction; devhost
    // restarts it and the queue redelivers the message.
    let stack = Ctx::start(Options {
        fault: Some("after_persist_before_send"),
        ..Options::default()
    })
    .await;
    let to = recipient();
    let (id, amount) = stack.pay("USDC", "12.34", &to).await;
    let (view, receipt) = stack.mined(id).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(stack.anvil().usdc_balance(&to).await, amount);
    let attempts = stack.store.payment_transactions(id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    let from = view["from"].as_str().unwrap();
    assert_eq!(
        stack.nonce(from, "latest").await,
        1,
        "exactly one on-chain transfer"
    );
    assert!(
        stack.log_tail(400).contains("injected fault"),
        "the fault fired: {}",
        stack.log_tail(40)
    );
    stack.finish().await;
}

#[tokio::test]
async fn handler_killed_after_signing_before_storing_signs_the_reserved_nonce_again_and_pays_once()
{
    // The first delivery aborts the process with the nonce reserved and the transaction signed
    // but not stored; the redelivery signs the reserved transaction again.
    let stack = Ctx::start(Options {
        fault: Some("after_sign_before_store"),
        ..Options::default()
    })
    .await;
    let to = recipient();
    let (id, amount) = stack.pay("ETH", "0.0042", &to).await;
    let (view, receipt) = stack.mined(id).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(stack.anvil().eth_balance(&to).await, U256::from(amount));
    let attempts = stack.store.payment_transactions(id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].nonce, 0, "the reserved nonce");
    assert!(stack.store.nonce_reservation(id).await.unwrap().is_none());
    let from = view["from"].as_str().unwrap();
    assert_eq!(
        stack.nonce(from, "latest").await,
        1,
        "exactly one on-chain transfer"
    );
    assert!(
        stack.log_tail(400).contains("injected fault"),
        "the fault fired: {}",
        stack.log_tail(40)
    );
    stack.finish().await;
}

#[tokio::test]
async fn two_hundred_concurrent_payments_from_two_wallets_get_gap_free_nonces() {
    let stack = Ctx::start(Options::default()).await;
    let n = 200;
    let started = Instant::now();
    let ids: Vec<PaymentId> = futures::stream::iter(0..n)
        .map(|i| {
            let stack = &stack;
            async move {
                let asset = if i % 2 == 0 { "ETH" } else { "USDC" };
                stack.pay(asset, "0.01", &recipient()).await.0
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut by_wallet: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for &id in &ids {
        let (view, receipt) = stack.mined(id).await;
        assert_eq!(receipt["status"], json!("0x1"), "{view}");
        by_wallet
            .entry(view["from"].as_str().unwrap().to_owned())
            .or_default()
            .push(view["nonce"].as_u64().unwrap());
    }
    println!(
        "{n} payments quoted, authorized, broadcast and mined in {:?}",
        started.elapsed()
    );
    assert_eq!(by_wallet.len(), 2, "both hot wallets used");
    for (wallet, nonces) in &mut by_wallet {
        nonces.sort_unstable();
        let expected: Vec<u64> = (0..nonces.len() as u64).collect();
        assert_eq!(nonces, &expected, "{wallet}: gap-free, no duplicates");
        assert_eq!(stack.nonce(wallet, "latest").await, nonces.len() as u64);
    }
    assert_eq!(by_wallet.values().map(Vec::len).sum::<usize>(), n);
    let transactions: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_transactions")
        .fetch_one(stack.db.pool())
        .await
        .unwrap();
    assert_eq!(transactions, n as i64);
    stack.finish().await;
}

#[tokio::test]
async fn bad_broadcast_messages_never_sign_and_malformed_ones_are_poisoned() {
    let stack = Ctx::start(Options {
        fast_retries: true,
        ..Options::default()
    })
    .await;
    // A payment the merchant cancelled before the broadcast step ran: authorized through the
    // store (so no queue message is emitted) and cancelled; its message is sent by hand below.
    let quote = stack
        .api()
        .quote_to(&stack.merchant.key, "ETH", "0.01", &recipient())
        .await;
    let quote_id = QuoteId::from_str(quote["id"].as_str().unwrap()).unwrap();
    let request = AuthorizeRequest {
        merchant_id: stack.merchant.id,
        idempotency_key: IdempotencyKey::new("cancelled-one").unwrap(),
        request_hash: request_fingerprint(&json!({"quote_id": quote_id})),
        quote_id,
        reference: None,
        metadata: None,
        hot_wallet: None,
    };
    let render = |_: &meshpay_store::Payment| StoredResponse {
        status: 201,
        body: json!({}),
    };
    let AuthorizeOutcome::Created { payment, .. } = stack
        .store
        .authorize_payment(&request, render)
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    let cancelled = payment.id;
    stack
        .store
        .cancel_payment(stack.merchant.id, cancelled)
        .await
        .unwrap();

    let malformed = [
        "not json at all".to_owned(),
        json!({"v": 1}).to_string(),
        json!({"v": 1, "payment_id": "pay_123"}).to_string(),
        json!({"v": 1, "payment_id": PaymentId::new(), "extra": true}).to_string(),
    ];
    for body in &malformed {
        stack.azurite.send("payments-broadcast", body).await;
    }
    let unknown = json!({"v": 1, "payment_id": PaymentId::new()}).to_string();
    stack.azurite.send("payments-broadcast", &unknown).await;
    let again = json!({"v": 1, "payment_id": cancelled}).to_string();
    stack.azurite.send("payments-broadcast", &again).await;

    let poisoned = stack
        .azurite
        .wait_for_messages("payments-broadcast-poison", malformed.len(), WAIT)
        .await;
    stack.drained("payments-broadcast").await;
    let mut poisoned_sorted = poisoned.clone();
    poisoned_sorted.sort();
    let mut expected = malformed.to_vec();
    expected.sort();
    assert_eq!(
        poisoned_sorted, expected,
        "exactly the malformed ones are poisoned"
    );
    let transactions: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_transactions")
        .fetch_one(stack.db.pool())
        .await
        .unwrap();
    assert_eq!(transactions, 0, "nothing signed");
    for wallet in HOT_WALLETS {
        assert_eq!(stack.nonce(wallet, "pending").await, 0, "nothing sent");
    }
    assert_eq!(stack.payment_view(cancelled).await["status"], "cancelled");
    stack.finish().await;
}
