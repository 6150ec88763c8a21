//! Confirm and settle through devhost + `meshpay` against PostgreSQL, Azurite and anvil, with
//! the real broadcast step in front. anvil mines only when a test says so (automine off), so
//! every "not final yet" and every reorg happens at a chosen moment. Payments are quoted and
//! authorized over HTTP; the pipeline runs on its queues; results are read from the chain
//! (Transfer logs) and the database. After every test: the ledger sums to zero per asset, every
//! settled payment has exactly one on-chain transfer, and no payment is left in flight without
//! an active confirm chain or a recorded reason.

use std::time::{Duration, Instant};

use meshpay_confirm::webhook::{WebhookKey, sign_alchemy, sign_standard};
use meshpay_domain::{Address, Amount, PaymentId, PaymentStatus};
use meshpay_store::Payment;
use meshpay_store::confirmations::CheckOutcome;
use meshpay_testkit::anvil::{DEV_USDC_ADDRESS, HOT_WALLETS};
use meshpay_testkit::hex::{hex_u64, hex_u128};
use meshpay_testkit::payment::fresh_recipient as recipient;
use meshpay_testkit::stack::HandlerSettings;
use serde_json::{Value, json};

use crate::support::{
    LOG_LINES, MERCHANT_ETH, MERCHANT_USDC, PipelineStack, RECONCILE_IDLE, WAIT, funded_merchant,
    on_demand_chain,
};

/// base64("meshpay-e2e-chain-webhook-key-32b").
const WEBHOOK_KEY: &str = "whsec_bWVzaHBheS1lMmUtY2hhaW4td2ViaG9vay1rZXktMzJi";

#[derive(Debug, Clone)]
struct Options {
    settle_disabled: bool,
    /// `MESHPAY_CONFIRM_MAX_WAIT_SECS`: a small value makes a polling chain give up quickly.
    max_wait_secs: u64,
    reconcile_schedule: &'static str,
    /// Confirm checks a pending transaction once a minute and never on a new head: only a
    /// chain webhook hint brings a check forward.
    hints_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            settle_disabled: false,
            max_wait_secs: 600,
            reconcile_schedule: RECONCILE_IDLE,
            hints_only: false,
        }
    }
}

/// The full stack (anvil mining on demand, the dev signers) and a funded merchant with a key.
struct ConfirmSettle;
type Ctx = PipelineStack<ConfirmSettle>;

/// The handler's settings for `options`: fast polling, the chain webhook key, a reconcile run
/// that considers a payment stale after a second.
fn settings(options: &Options) -> HandlerSettings {
    let settings = HandlerSettings::default()
        .dev_signers()
        .env("MESHPAY_CHAIN_WEBHOOK_KEY", WEBHOOK_KEY)
        .env("MESHPAY_CONFIRM_POLL_INTERVAL_MS", "100")
        .env("MESHPAY_CONFIRM_INVOCATION_WAIT_MS", "1500")
        .env(
            "MESHPAY_CONFIRM_MAX_WAIT_SECS",
            options.max_wait_secs.to_string(),
        )
        .env("MESHPAY_RECONCILE_STALE_SECS", "1")
        .env("RECONCILE_SCHEDULE", options.reconcile_schedule)
        .env(
            "AzureWebJobs.settle.Disabled",
            if options.settle_disabled {
                "true"
            } else {
                "false"
            },
        );
    if !options.hints_only {
        return settings;
    }
    settings
        .env("MESHPAY_CONFIRM_POLL_MIN_MS", "60000")
        .env("MESHPAY_CONFIRM_POLL_INTERVAL_MS", "60000")
        .env("MESHPAY_CONFIRM_INVOCATION_WAIT_MS", "120000")
        .env("MESHPAY_CONFIRM_HEAD_POLL_MS", "0")
}

impl PipelineStack<ConfirmSettle> {
    async fn start(options: Options) -> Ctx {
        Ctx::start_with(
            on_demand_chain().devhost(settings(&options)),
            funded_merchant(),
        )
        .await
    }

    /// (Re)starts devhost + meshpay on the same database, queues and chain.
    async fn start_devhost(&mut self, options: &Options) {
        self.stack.restart_devhost(settings(options)).await;
    }

    /// Quotes and authorizes `amount` USDC to a fresh recipient over HTTP; returns (payment id,
    /// quoted base units, recipient).
    async fn pay_usdc(&self, amount: &str) -> (PaymentId, u128, String) {
        let to = recipient();
        let (id, quoted) = self.pay("USDC", amount, &to).await;
        (id, quoted, to)
    }

    /// What the chain charged for the payment's transaction, from anvil's receipt:
    /// `gasUsed × effectiveGasPrice` (wei).
    async fn charged_fee(&self, payment: &Payment) -> u128 {
        let receipt = self
            .anvil()
            .rpc(
                "eth_getTransactionReceipt",
                json!([payment.tx_hash.unwrap()]),
            )
            .await;
        hex_u128(&receipt["gasUsed"]) * hex_u128(&receipt["effectiveGasPrice"])
    }

    async fn balance(&self, symbol: &str) -> (Amount, Amount) {
        let balances = self.store.balances(self.merchant.id).await.unwrap();
        let b = balances
            .iter()
            .find(|b| b.asset.symbol() == symbol)
            .unwrap();
        (b.available, b.held)
    }

    async fn wait_for_status(&self, id: PaymentId, status: PaymentStatus, mine: bool) -> Payment {
        self.wait_until(id, mine, |p| p.status == status).await
    }

    /// Waits (without mining) until the payment's confirm polling has recorded `outcome`.
    async fn wait_for_check(&self, id: PaymentId, outcome: CheckOutcome) {
        let deadline = Instant::now() + WAIT;
        loop {
            let state = self.store.confirmation(id).await.unwrap();
            if state.as_ref().and_then(|s| s.last_outcome) == Some(outcome) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id}: {state:?}\n{}",
                self.log_tail(LOG_LINES)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn block_number(&self) -> u64 {
        hex_u64(&self.anvil().rpc("eth_blockNumber", json!([])).await)
    }

    /// Sets `wallet`'s DevUSDC balance to zero (storage slot of `balanceOf[wallet]`).
    async fn drain_usdc(&self, wallet: Address) {
        let key = format!("0x{:0>64}{:0>64}", hex_of(wallet), "1");
        let slot = self.anvil().rpc("web3_sha3", json!([key])).await;
        let zero = format!("0x{}", "0".repeat(64));
        self.anvil()
            .rpc("anvil_setStorageAt", json!([DEV_USDC_ADDRESS, slot, zero]))
            .await;
    }

    /// An Alchemy Address Activity webhook naming `tx_hash`, with a made-up value (which must
    /// be ignored).
    fn alchemy_body(tx_hash: &str) -> String {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        json!({
            "webhookId": "wh_e2e", "id": format!("whevt_{}", uuid::Uuid::new_v4().simple()),
            "createdAt": now, "type": "ADDRESS_ACTIVITY",
            "event": {"network": "ETH_MAINNET", "activity": [{
                "hash": tx_hash, "value": 1_000_000, "asset": "USDC", "category": "token",
                "fromAddress": HOT_WALLETS[0], "toAddress": HOT_WALLETS[1],
            }]}
        })
        .to_string()
    }

    async fn post_webhook(&self, body: &str, headers: &[(&str, String)]) -> (u16, Value) {
        let reply = self
            .api()
            .post_unauthenticated("webhooks/chain", body, headers)
            .await;
        (reply.status, reply.body)
    }

    async fn post_alchemy(&self, body: &str, key: &str) -> (u16, Value) {
        let signature = sign_alchemy(&WebhookKey::new(key.into()), body.as_bytes()).unwrap();
        self.post_webhook(body, &[("X-Alchemy-Signature", signature)])
            .await
    }

    async fn event_names(&self, id: PaymentId) -> Vec<String> {
        self.store
            .payment_events(id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect()
    }

    /// What must hold after every test.
    async fn finish(self) {
        self.assert_ledger_invariants().await;
        let rows: Vec<(uuid::Uuid,)> = sqlx::query_as("SELECT id FROM payments")
            .fetch_all(self.store.pool())
            .await
            .unwrap();
        for (id,) in rows {
            let payment = self.payment(PaymentId::from_uuid(id)).await;
            match payment.status {
                PaymentStatus::Settled => {
                    let recipient = payment.recipient.to_checksum(None);
                    assert_eq!(
                        self.anvil().usdc_transfers_to(&recipient).await,
                        [payment.charges.amount.base_units().to::<u128>()],
                        "settled {} must have exactly one on-chain transfer",
                        payment.id
                    );
                }
                PaymentStatus::Failed | PaymentStatus::Cancelled | PaymentStatus::Expired => {
                    if payment.status == PaymentStatus::Failed {
                        assert!(
                            payment.failure_reason.is_some(),
                            "{} failed without a reason",
                            payment.id
                        );
                    }
                }
                in_flight => {
                    let state = self.store.confirmation(payment.id).await.unwrap();
                    let pending = state.as_ref().is_some_and(|s| s.poller.is_some());
                    let reason = state.as_ref().and_then(|s| s.last_detail.clone());
                    assert!(
                        pending || reason.is_some(),
                        "{} is {in_flight} without a pending message or a reason: {state:?}",
                        payment.id
                    );
                }
            }
        }
    }
}

fn hex_of(address: Address) -> String {
    address
        .to_checksum(None)
        .trim_start_matches("0x")
        .to_ascii_lowercase()
}

#[tokio::test]
async fn authorized_payment_settles_through_the_polling_path_without_a_webhook() {
    let stack = Ctx::start(Options::default()).await;
    let (id, amount, to) = stack.pay_usdc("125.50").await;
    let settled = stack
        .wait_for_status(id, PaymentStatus::Settled, true)
        .await;

    assert_eq!(stack.anvil().usdc_transfers_to(&to).await, [amount]);
    assert_eq!(
        stack.event_names(id).await,
        ["authorize", "broadcast", "confirm", "settle"]
    );
    let receipt = stack
        .anvil()
        .rpc(
            "eth_getTransactionReceipt",
            json!([settled.tx_hash.unwrap()]),
        )
        .await;
    assert_eq!(
        receipt["blockHash"].as_str().unwrap(),
        settled.block_hash.unwrap().to_string()
    );
    // The merchant paid the quoted total once: held funds were captured, nothing is held.
    let balances = stack.store.balances(stack.merchant.id).await.unwrap();
    let usdc = balances
        .iter()
        .find(|b| b.asset.symbol() == "USDC")
        .unwrap();
    assert_eq!(usdc.held, Amount::ZERO);
    assert_eq!(
        usdc.available,
        Amount::from_u128(MERCHANT_USDC)
            .checked_sub(settled.charges.total_debit)
            .unwrap()
    );
    // The native balance paid the network fee the chain charged, not the quoted maximum: the
    // unused part of the held fee was released.
    let charged = stack.charged_fee(&settled).await;
    let quoted = settled.charges.network_fee.base_units().to::<u128>();
    assert!(
        charged > 0 && charged < quoted,
        "charged {charged}, quoted {quoted}"
    );
    assert_eq!(
        stack.balance("ETH").await,
        (Amount::from_u128(MERCHANT_ETH - charged), Amount::ZERO)
    );
    let view = stack.payment_view(id).await;
    assert_eq!(
        view["fees"]["network"]["actual"]["base_units"],
        charged.to_string(),
        "{view}"
    );
    assert_eq!(
        view["fees"]["network"]["amount"]["base_units"],
        quoted.to_string()
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM chain_webhook_receipts")
            .await,
        0
    );
    stack.finish().await;
}

#[tokio::test]
async fn a_signed_webhook_confirms_a_payment_whose_polling_gave_up() {
    let stack = Ctx::start(Options {
        max_wait_secs: 1,
        ..Options::default()
    })
    .await;
    let (id, amount, to) = stack.pay_usdc("40.00").await;
    // Nothing is mined: the polling chain the broadcast step started gives up with a reason.
    stack.wait_for_check(id, CheckOutcome::Stalled).await;
    let payment = stack.payment(id).await;
    assert_eq!(payment.status, PaymentStatus::Broadcast);
    stack.anvil().mine(2).await;

    let body = Ctx::alchemy_body(&payment.tx_hash.unwrap().to_string());
    let (status, reply) = stack.post_alchemy(&body, WEBHOOK_KEY).await;
    assert_eq!(
        (status, &reply["status"], &reply["enqueued"]),
        (200, &json!("accepted"), &json!(1))
    );
    stack
        .wait_for_status(id, PaymentStatus::Settled, false)
        .await;
    assert_eq!(stack.anvil().usdc_transfers_to(&to).await, [amount]);
    // The same delivery again (the provider retried): acknowledged, no effect.
    let (status, reply) = stack.post_alchemy(&body, WEBHOOK_KEY).await;
    assert_eq!((status, &reply["status"]), (200, &json!("duplicate")));
    assert_eq!(
        stack
            .count("SELECT count(*) FROM chain_webhook_receipts")
            .await,
        1
    );
    stack.finish().await;
}

#[tokio::test]
async fn a_signed_webhook_makes_the_running_polling_chain_check_at_once() {
    let stack = Ctx::start(Options {
        hints_only: true,
        ..Options::default()
    })
    .await;
    let (id, amount, to) = stack.pay_usdc("15.00").await;
    let payment = stack
        .wait_for_status(id, PaymentStatus::Broadcast, false)
        .await;
    // The broadcast step's message started a chain; its first check found nothing mined and
    // it now waits a minute before the next.
    let deadline = Instant::now() + WAIT;
    while stack
        .store
        .confirmation(id)
        .await
        .unwrap()
        .is_none_or(|s| s.poller.is_none())
    {
        assert!(Instant::now() < deadline, "{}", stack.log_tail(LOG_LINES));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.anvil().mine(2).await;

    let body = Ctx::alchemy_body(&payment.tx_hash.unwrap().to_string());
    let (status, reply) = stack.post_alchemy(&body, WEBHOOK_KEY).await;
    assert_eq!((status, &reply["status"]), (200, &json!("accepted")));
    // Well before the chain's next check by its cadence (a minute after the first).
    let woken_by = Instant::now() + Duration::from_secs(30);
    while stack.payment(id).await.status != PaymentStatus::Settled {
        assert!(
            Instant::now() < woken_by,
            "the hint did not wake the running chain\n{}",
            stack.log_tail(LOG_LINES)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stack.anvil().usdc_transfers_to(&to).await, [amount]);
    stack.finish().await;
}

#[tokio::test]
async fn forged_or_stale_webhooks_change_nothing() {
    let stack = Ctx::start(Options {
        max_wait_secs: 1,
        ..Options::default()
    })
    .await;
    let (id, _, _) = stack.pay_usdc("12.00").await;
    stack.wait_for_check(id, CheckOutcome::Stalled).await;
    stack.anvil().mine(2).await;
    let before = stack.store.confirmation(id).await.unwrap().unwrap();
    let tx_hash = stack.payment(id).await.tx_hash.unwrap().to_string();
    let body = Ctx::alchemy_body(&tx_hash);

    // Signed with another key, unsigned, and a Standard Webhooks delivery from an hour ago.
    let (status, reply) = stack.post_alchemy(&body, "whsec_attacker").await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = stack.post_webhook(&body, &[]).await;
    assert_eq!(status, 401);
    let standard =
        json!({"type": "chain.transactions", "data": {"tx_hashes": [tx_hash]}}).to_string();
    let old = time::OffsetDateTime::now_utc().unix_timestamp() - 3600;
    let signature = sign_standard(
        &WebhookKey::new(WEBHOOK_KEY.into()),
        "msg_old",
        old,
        standard.as_bytes(),
    )
    .unwrap();
    let headers = [
        ("webhook-id", "msg_old".to_owned()),
        ("webhook-timestamp", old.to_string()),
        ("webhook-signature", signature),
    ];
    let (status, _) = stack.post_webhook(&standard, &headers).await;
    assert_eq!(status, 401);
    // Too large: refused before anything is read.
    let (status, _) = stack.post_webhook(&" ".repeat(256 * 1024 + 1), &[]).await;
    assert_eq!(status, 413);

    // Nothing was recorded, enqueued or checked because of them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stack
            .count("SELECT count(*) FROM chain_webhook_receipts")
            .await,
        0
    );
    let after = stack.store.confirmation(id).await.unwrap().unwrap();
    assert_eq!(after.total_checks, before.total_checks);
    assert_eq!(stack.payment(id).await.status, PaymentStatus::Broadcast);

    // The genuine Standard Webhooks form works, and the payment settles.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = sign_standard(
        &WebhookKey::new(WEBHOOK_KEY.into()),
        "msg_now",
        now,
        standard.as_bytes(),
    )
    .unwrap();
    let headers = [
        ("webhook-id", "msg_now".to_owned()),
        ("webhook-timestamp", now.to_string()),
        ("webhook-signature", signature),
    ];
    let (status, reply) = stack.post_webhook(&standard, &headers).await;
    assert_eq!((status, &reply["enqueued"]), (200, &json!(1)));
    stack
        .wait_for_status(id, PaymentStatus::Settled, false)
        .await;
    stack.finish().await;
}

#[tokio::test]
async fn a_reverted_erc20_transfer_fails_the_payment_charges_its_gas_and_releases_the_rest() {
    let stack = Ctx::start(Options::default()).await;
    let (id, _, to) = stack.pay_usdc("75.00").await;
    let broadcast = stack
        .wait_for_status(id, PaymentStatus::Broadcast, false)
        .await;
    // The hot wallet's tokens are gone before the transfer is mined: it reverts on chain.
    stack.drain_usdc(broadcast.hot_wallet.unwrap()).await;
    let failed = stack.wait_for_status(id, PaymentStatus::Failed, true).await;

    let reason = failed.failure_reason.clone().unwrap();
    assert!(reason.contains("reverted"), "{reason}");
    let receipt = stack
        .anvil()
        .rpc(
            "eth_getTransactionReceipt",
            json!([failed.tx_hash.unwrap()]),
        )
        .await;
    assert_eq!(receipt["status"], "0x0");
    assert!(stack.anvil().usdc_transfers_to(&to).await.is_empty());
    // The token hold is back in full; the gas the reverted transaction burnt is paid from the
    // network-fee hold and only the rest of it released.
    let charged = stack.charged_fee(&failed).await;
    assert!(charged > 0, "a mined transaction costs gas");
    assert_eq!(
        stack.balance("USDC").await,
        (Amount::from_u128(MERCHANT_USDC), Amount::ZERO)
    );
    assert_eq!(
        stack.balance("ETH").await,
        (Amount::from_u128(MERCHANT_ETH - charged), Amount::ZERO)
    );
    let view = stack.payment_view(id).await;
    assert_eq!(view["status"], "failed");
    assert_eq!(
        view["fees"]["network"]["actual"]["base_units"],
        charged.to_string(),
        "{view}"
    );
    assert_eq!(
        stack.event_names(id).await,
        ["authorize", "broadcast", "fail"]
    );
    stack.finish().await;
}

#[tokio::test]
async fn a_reorg_after_confirmation_is_detected_and_healed() {
    // Settle is switched off at first so the payment rests in `confirmed`.
    let mut stack = Ctx::start(Options {
        settle_disabled: true,
        ..Options::default()
    })
    .await;
    let (id, amount, to) = stack.pay_usdc("33.00").await;
    let confirmed = stack
        .wait_for_status(id, PaymentStatus::Confirmed, true)
        .await;
    let first_block = confirmed.block_hash.unwrap();
    // The confirming block and everything after it leave the chain; anvil drops the
    // transaction with them.
    let depth = stack.block_number().await - confirmed.block_number.unwrap() + 1;
    stack.anvil().rpc("anvil_reorg", json!([depth, []])).await;
    assert!(stack.anvil().usdc_transfers_to(&to).await.is_empty());

    // Settle comes back: it finds the block gone, the payment returns to broadcast, polling
    // re-sends the stored transaction, it is confirmed in a new block and settled.
    stack.start_devhost(&Options::default()).await;
    let settled = stack
        .wait_for_status(id, PaymentStatus::Settled, true)
        .await;
    assert_ne!(settled.block_hash.unwrap(), first_block);
    assert_eq!(
        settled.tx_hash, confirmed.tx_hash,
        "the same signed transaction"
    );
    assert_eq!(
        stack.event_names(id).await,
        [
            "authorize",
            "broadcast",
            "confirm",
            "reorg",
            "confirm",
            "settle"
        ]
    );
    assert_eq!(stack.anvil().usdc_transfers_to(&to).await, [amount]);
    // Seen by settle; anvil dropped the transaction with its block, so polling re-sent it.
    let state = stack.store.confirmation(id).await.unwrap().unwrap();
    assert!(state.reorgs_seen >= 1 && state.resends >= 1, "{state:?}");
    stack.finish().await;
}

#[tokio::test]
async fn the_reconcile_timer_restarts_polling_for_a_payment_left_without_a_message() {
    let stack = Ctx::start(Options {
        max_wait_secs: 1,
        reconcile_schedule: "*/1 * * * * *",
        ..Options::default()
    })
    .await;
    let (id, amount, to) = stack.pay_usdc("9.99").await;
    // Polling gives up (nothing mined); reconcile notices the payment has no pending message.
    let deadline = Instant::now() + WAIT;
    while stack
        .count(&format!(
            "SELECT count(*) FROM reconcile_nudges WHERE step = 'confirm' AND payment_id = '{}'",
            id.as_uuid()
        ))
        .await
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "never nudged\n{}",
            stack.log_tail(LOG_LINES)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack
        .wait_for_status(id, PaymentStatus::Settled, true)
        .await;
    assert_eq!(stack.anvil().usdc_transfers_to(&to).await, [amount]);
    assert!(stack.count("SELECT count(*) FROM reconcile_runs").await >= 1);
    assert_eq!(
        stack
            .count("SELECT count(*) FROM reconcile_runs WHERE cardinality(violations) > 0")
            .await,
        0
    );
    stack.finish().await;
}
