//! `meshpay admin payments review|requeue` as a process, against a fresh PostgreSQL database
//! and a real Azurite: the requeue message lands on the step's queue with the step's body.

use std::process::Output;

use meshpay_domain::{MerchantId, PaymentId};
use meshpay_testkit::assets::usdc;
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::payment::PaymentSetup;
use meshpay_testkit::stack::Stack;
use serde_json::{Value, json};

use crate::support::{admin_command, json_answer};

/// A database and Azurite, no chain and no host: the admin commands run on their own.
struct Ctx {
    stack: Stack,
}

impl Ctx {
    async fn new() -> Ctx {
        Ctx {
            stack: Stack::builder().without_chain().start().await,
        }
    }

    fn admin_command(&self, args: &[&str]) -> std::process::Command {
        let mut command = admin_command(&self.stack, args);
        command
            .env(
                "AzureWebJobsStorage",
                self.stack.azurite.connection_string(),
            )
            .env_remove("MESHPAY_CHAINS_CONFIG");
        command
    }

    fn admin(&self, args: &[&str]) -> Output {
        self.admin_command(args).output().unwrap()
    }

    fn admin_ok(&self, args: &[&str]) -> Value {
        json_answer(&mut self.admin_command(args))
    }

    /// An authorized 1 USDC payment of a fresh funded merchant.
    async fn payment(&self) -> (MerchantId, PaymentId) {
        let store = &self.stack.store;
        let m = MerchantSetup::funded(10_000_000, 10u128.pow(18))
            .fee_bps(0)
            .create(store)
            .await;
        let payment = PaymentSetup::new(usdc(), 1_000_000)
            .recipient(
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                    .parse()
                    .unwrap(),
            )
            .ttl(time::Duration::seconds(60))
            .authorize(store, m)
            .await;
        (m, payment.id)
    }
}

#[tokio::test]
async fn requeue_clears_the_flag_and_writes_the_broadcast_message_for_an_authorized_payment() {
    let ctx = Ctx::new().await;
    let (m, id) = ctx.payment().await;
    ctx.stack
        .store
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
        .stack
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
        .stack
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
    ctx.stack.store.flag_for_review(id, "parked").await.unwrap();
    ctx.stack.store.cancel_payment(m, id).await.unwrap();

    let out = ctx.admin(&["payments", "requeue", "--payment", &id.to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("terminal"), "stderr: {stderr}");
    let queue = ctx.stack.azurite.queue("payments-broadcast").await;
    assert!(queue.peek(32).await.unwrap().is_empty());
    // The flag row is untouched (the payment is terminal, so it is not listed either).
    let state = ctx.stack.store.confirmation(id).await.unwrap().unwrap();
    assert_eq!(state.last_outcome.map(|o| o.as_str()), Some("needs_review"));
}

#[tokio::test]
async fn a_halted_wallet_is_listed_and_resumed_at_the_operators_nonce() {
    let ctx = Ctx::new().await;
    let store = &ctx.stack.store;
    let wallet: meshpay_domain::Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        .parse()
        .unwrap();
    // The counter (next nonce 1) was found behind the chain (pending nonce 3).
    let mut db = store.begin().await.unwrap();
    meshpay_store::transactions::allocate_nonce(&mut db, "anvil", wallet, 0)
        .await
        .unwrap();
    db.commit().await.unwrap();
    store
        .halt_wallet(
            "anvil",
            wallet,
            "the chain's pending nonce 3 is above the counter 1",
        )
        .await
        .unwrap();

    let listed = ctx.admin_ok(&["wallets", "halted"]);
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["wallets"][0]["chain"], json!("anvil"));
    assert!(
        listed["wallets"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("pending nonce 3")
    );

    let wallet_arg = wallet.to_checksum(None);
    let args = [
        "wallets",
        "resume",
        "--chain",
        "anvil",
        "--wallet",
        &wallet_arg,
        "--nonce",
        "3",
    ];
    let resumed = ctx.admin_ok(&args);
    assert_eq!(resumed["resumed_at_nonce"], 3);
    let state = store.wallet_nonce("anvil", wallet).await.unwrap().unwrap();
    assert_eq!((state.next_nonce, state.halted), (3, None));
    // Resuming a wallet that is not halted is refused.
    assert!(!ctx.admin(&args).status.success());
    assert_eq!(ctx.admin_ok(&["wallets", "halted"])["count"], 0);
}
