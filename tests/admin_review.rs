//! `meshpay admin payments review|requeue` as a process, against a fresh PostgreSQL database
//! and a real Azurite: the requeue message lands on the step's queue with the step's body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

use meshpay_domain::{Amount, AssetId, Charges, FeeBps, IdempotencyKey, MerchantId, PaymentId};
use meshpay_store::{
    AuthorizeOutcome, AuthorizeRequest, NewMerchant, NewQuote, Store, StoredResponse,
    request_fingerprint,
};
use meshpay_testkit::azurite::Azurite;
use meshpay_testkit::postgres::TestDb;
use serde_json::{Value, json};

struct Ctx {
    store: Store,
    db: TestDb,
    azurite: Azurite,
}

impl Ctx {
    async fn new() -> Ctx {
        let db = TestDb::create_migrated(&meshpay_store::MIGRATOR).await;
        let store = Store::connect(db.url(), 2).await.unwrap();
        Ctx {
            store,
            db,
            azurite: Azurite::start().await,
        }
    }

    fn admin(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_meshpay"))
            .arg("admin")
            .args(args)
            .env("DATABASE_URL", self.db.url())
            .env("AzureWebJobsStorage", self.azurite.connection_string())
            .env_remove("MESHPAY_CHAINS_CONFIG")
            .output()
            .unwrap()
    }

    fn admin_ok(&self, args: &[&str]) -> Value {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// An authorized 1 USDC payment of a fresh funded merchant.
    async fn payment(&self) -> (MerchantId, PaymentId) {
        let s = &self.store;
        let usdc: AssetId = "anvil:USDC".parse().unwrap();
        let eth: AssetId = "anvil:ETH".parse().unwrap();
        let m = s
            .create_merchant(&NewMerchant {
                name: "review".into(),
                service_fee_bps: FeeBps::new(0).unwrap(),
                limits: vec![],
            })
            .await
            .unwrap()
            .id;
        s.fund(m, &usdc, Amount::from(10_000_000u64), "seed-usdc")
            .await
            .unwrap();
        s.fund(m, &eth, Amount::from(10u64.pow(18)), "seed-eth")
            .await
            .unwrap();
        let fee = Charges::network_fee_for(65_000, 2_000_000_000);
        let charges = Charges::compute(
            usdc,
            Amount::from(1_000_000u64),
            FeeBps::new(0).unwrap(),
            eth,
            fee,
        )
        .unwrap();
        let quote = s
            .insert_quote(&NewQuote {
                merchant_id: m,
                charges,
                recipient: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                    .parse()
                    .unwrap(),
                gas_limit: 65_000,
                max_fee_per_gas: 2_000_000_000,
                max_priority_fee_per_gas: 1_000_000_000,
                expires_at: time::OffsetDateTime::now_utc() + time::Duration::seconds(60),
            })
            .await
            .unwrap();
        let body = json!({ "quote_id": quote.id });
        let request = AuthorizeRequest {
            merchant_id: m,
            idempotency_key: IdempotencyKey::new("review-1").unwrap(),
            request_hash: request_fingerprint(&body),
            quote_id: quote.id,
            reference: None,
            metadata: None,
            hot_wallet: None,
        };
        let render = |_: &meshpay_store::Payment| StoredResponse {
            status: 201,
            body: json!({}),
        };
        match s.authorize_payment(&request, render).await.unwrap() {
            AuthorizeOutcome::Created { payment, .. } => (m, payment.id),
            other => panic!("expected a new payment, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn requeue_clears_the_flag_and_writes_the_broadcast_message_for_an_authorized_payment() {
    let ctx = Ctx::new().await;
    let (m, id) = ctx.payment().await;
    ctx.store
        .flag_for_review(id, "nonce held by another transaction")
        .await
        .unwrap();

    let listed = ctx.admin_ok(&["payments", "review"]);
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["payments"][0]["id"], id.to_string());
    assert_eq!(listed["payments"][0]["merchant_id"], m.to_string());
    assert_eq!(listed["payments"][0]["status"], "authorized");
    assert_eq!(listed["payments"][0]["chain"], "anvil");
    assert_eq!(
        listed["payments"][0]["reason"],
        "nonce held by another transaction"
    );

    let out = ctx.admin_ok(&["payments", "requeue", "--payment", &id.to_string()]);
    assert_eq!(out["queue"], "payments-broadcast");
    assert_eq!(out["was_flagged"], true);
    assert_eq!(out["cleared_reason"], "nonce held by another transaction");

    let bodies = ctx
        .azurite
        .wait_for_messages("payments-broadcast", 1, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(bodies.len(), 1);
    let body: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body, json!({ "v": 1, "payment_id": id.to_string() }));
    assert_eq!(ctx.admin_ok(&["payments", "review"])["count"], 0);

    // An explicit step picks that step's queue.
    let out = ctx.admin_ok(&[
        "payments",
        "requeue",
        "--payment",
        &id.to_string(),
        "--step",
        "confirm",
    ]);
    assert_eq!(out["queue"], "payments-confirm");
    assert_eq!(out["was_flagged"], false);
    let bodies = ctx
        .azurite
        .wait_for_messages("payments-confirm", 1, std::time::Duration::from_secs(10))
        .await;
    let body: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body, json!({ "v": 1, "payment_id": id.to_string() }));
}

#[tokio::test]
async fn requeue_refuses_a_terminal_payment_and_sends_nothing() {
    let ctx = Ctx::new().await;
    let (m, id) = ctx.payment().await;
    ctx.store.flag_for_review(id, "parked").await.unwrap();
    ctx.store.cancel_payment(m, id).await.unwrap();

    let out = ctx.admin(&["payments", "requeue", "--payment", &id.to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("terminal"), "stderr: {stderr}");
    let queue = ctx.azurite.queue("payments-broadcast").await;
    assert!(queue.peek(32).await.unwrap().is_empty());
    // The flag row is untouched (the payment is terminal, so it is not listed either).
    let state = ctx.store.confirmation(id).await.unwrap().unwrap();
    assert_eq!(state.last_outcome.map(|o| o.as_str()), Some("needs_review"));
}
