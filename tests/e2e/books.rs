//! The books against the chain, end to end: devhost + `meshpay` pay on anvil, and
//! `meshpay admin reconcile --json` (a process, as an operator runs it) compares the books with
//! the chain at a pinned block. Transfers "behind meshpay's back" are sent from the hot wallets
//! with anvil's unlocked dev accounts.

use std::process::Output;
use std::time::{Duration, Instant};

use meshpay_domain::{PaymentId, PaymentStatus};
use meshpay_testkit::anvil::{DEV_ADDRESSES, DEV_USDC_ADDRESS, HOT_WALLETS};
use meshpay_testkit::hex::{hex_u64, hex_u128};
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::payment::fresh_recipient as recipient;
use meshpay_testkit::stack::{ChainSetup, HandlerSettings, Stack};
use serde_json::{Value, json};

use crate::support::{PipelineStack, admin_command, json_answer};

const WAIT: Duration = Duration::from_secs(120);
/// Never within a test run: reconcile runs only when the test runs it.
const RECONCILE_IDLE: &str = "0 0 0 1 1 *";
const LOG_LINES: usize = 60;

struct Books;
type Ctx = PipelineStack<Books>;

fn settings(broadcast: bool) -> HandlerSettings {
    settings_with(broadcast, true)
}

fn settings_with(broadcast: bool, settle: bool) -> HandlerSettings {
    HandlerSettings::default()
        .dev_signers()
        .env("MESHPAY_CONFIRM_POLL_INTERVAL_MS", "100")
        .env("MESHPAY_CONFIRM_INVOCATION_WAIT_MS", "1500")
        .env("RECONCILE_SCHEDULE", RECONCILE_IDLE)
        .env(
            "AzureWebJobs.broadcast.Disabled",
            if broadcast { "false" } else { "true" },
        )
        .env(
            "AzureWebJobs.settle.Disabled",
            if settle { "false" } else { "true" },
        )
}

fn transfer_data(to: &str, amount: u128) -> String {
    format!(
        "0xa9059cbb{:0>64}{amount:064x}",
        to.trim_start_matches("0x").to_ascii_lowercase()
    )
}

impl PipelineStack<Books> {
    async fn start(broadcast: bool) -> Ctx {
        Ctx::start_with_settings(settings(broadcast)).await
    }

    async fn start_with_settings(settings: HandlerSettings) -> Ctx {
        let builder = Stack::builder()
            .chain(ChainSetup {
                hot_wallet_usdc: 10u128.pow(12),
                automine: true,
            })
            .devhost(settings);
        let ctx = Ctx::start_with(
            builder,
            MerchantSetup::funded(10u128.pow(15), 10u128.pow(23)),
        )
        .await;
        // The set-up's transfers (DevUSDC minted to the hot wallets) sink below the pinned
        // block before the first run records the openings.
        ctx.anvil().mine(2).await;
        ctx
    }

    fn admin_command(&self, args: &[&str]) -> std::process::Command {
        let mut command = admin_command(&self.stack, args);
        command.env("MESHPAY_CHAINS_CONFIG", self.stack.chains_path());
        command
    }

    fn admin(&self, args: &[&str]) -> Output {
        self.admin_command(args).output().unwrap()
    }

    fn admin_ok(&self, args: &[&str]) -> Value {
        json_answer(&mut self.admin_command(args))
    }

    /// `meshpay admin reconcile --json`: (exit code, report).
    fn reconcile(&self) -> (i32, Value) {
        parse_reconcile(&self.admin(&["reconcile", "--json"]))
    }

    /// A run that must find nothing open.
    fn reconcile_clean(&self) -> Value {
        let (code, report) = self.reconcile();
        assert_eq!(code, 0, "{report:#}");
        assert_eq!(report["discrepancies"], json!([]), "{report:#}");
        report
    }

    async fn wait_settled(&self, ids: &[PaymentId]) {
        self.wait_for(ids, PaymentStatus::Settled).await;
    }

    async fn wait_for(&self, ids: &[PaymentId], status: PaymentStatus) {
        let deadline = Instant::now() + WAIT;
        for id in ids {
            loop {
                let p = self.store.get_payment_unscoped(*id).await.unwrap().unwrap();
                if p.status == status {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{id} still {} ({:?})\n{}",
                    p.status,
                    p.failure_reason,
                    self.log_tail(LOG_LINES)
                );
                self.anvil().mine(1).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Sends `tx` from an unlocked account, waits for it: (hash, fee charged in wei).
    async fn send(&self, tx: Value) -> (String, u128) {
        let receipt = self.anvil().send_and_wait(tx).await;
        let fee = hex_u128(&receipt["gasUsed"]) * hex_u128(&receipt["effectiveGasPrice"]);
        (receipt["transactionHash"].as_str().unwrap().to_owned(), fee)
    }
}

fn parse_reconcile(out: &Output) -> (i32, Value) {
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "reconcile output: {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// The open discrepancy of `kind` matching `pick`.
fn find<'a>(report: &'a Value, kind: &str, pick: impl Fn(&Value) -> bool) -> &'a Value {
    report["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == kind && pick(d))
        .unwrap_or_else(|| panic!("no {kind} discrepancy in {report:#}"))
}

fn ids(report: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = report["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn books_agree_after_mixed_traffic_and_every_transfer_behind_meshpays_back_is_reported() {
    // Broadcast off at first, so some payments can be cancelled before they are sent.
    let mut ctx = Ctx::start(false).await;
    let opened = ctx.reconcile_clean();
    assert_eq!(opened["wallets"][0]["status"], "opened", "{opened:#}");

    let mut payments = Vec::new();
    for i in 0..50 {
        let (asset, amount) = if i % 2 == 0 {
            ("ETH", "0.01")
        } else {
            ("USDC", "1.5")
        };
        payments.push(ctx.pay(asset, amount, &recipient()).await.0);
    }
    for id in payments.iter().step_by(6) {
        let reply = ctx
            .api()
            .post(
                &format!("/payments/{id}/cancel"),
                &ctx.merchant.key,
                &json!({}),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    ctx.stack.restart_devhost(settings(true)).await;
    let sent: Vec<PaymentId> = payments
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 6 != 0)
        .map(|(_, id)| *id)
        .collect();
    ctx.wait_settled(&sent).await;
    ctx.assert_ledger_invariants().await;
    ctx.anvil().mine(2).await;
    let clean = ctx.reconcile_clean();
    let walked: u64 = clean["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["walked"].as_u64().unwrap())
        .sum();
    assert_eq!(
        walked,
        sent.len() as u64,
        "every mined payment accounted: {clean:#}"
    );

    // Behind meshpay's back: 0.123 ETH and 2.5 USDC out of hot wallet 1.
    let wallet = HOT_WALLETS[0];
    let thief = recipient();
    let eth_value: u128 = 123_000_000_000_000_000;
    let (eth_hash, eth_fee) = ctx
        .send(json!({"from": wallet, "to": thief, "value": format!("{eth_value:#x}")}))
        .await;
    let (usdc_hash, usdc_fee) = ctx
        .send(json!({"from": wallet, "to": DEV_USDC_ADDRESS, "data": transfer_data(&thief, 2_500_000)}))
        .await;
    ctx.anvil().mine(2).await;
    let (code, report) = ctx.reconcile();
    eprintln!("admin reconcile --json after the transfers behind meshpay's back:\n{report:#}");
    assert_eq!(code, 1, "open discrepancies exit non-zero");
    assert_eq!(report["open"], 5, "{report:#}");
    let eth = find(&report, "unknown_transaction", |d| {
        d["transactions"][0]["tx_hash"] == eth_hash.as_str()
    });
    assert_eq!(eth["wallet"], wallet);
    assert_eq!(eth["transactions"][0]["value"], eth_value.to_string());
    assert_eq!(eth["transactions"][0]["fee"], eth_fee.to_string());
    assert_eq!(eth["difference"], format!("-{}", eth_value + eth_fee));
    let usdc = find(&report, "unknown_transaction", |d| {
        d["transactions"][0]["tx_hash"] == usdc_hash.as_str()
    });
    assert_eq!(
        usdc["transactions"][0]["token_transfers"][0]["amount"],
        "2500000"
    );
    let nonce = find(&report, "nonce", |d| d["wallet"] == wallet);
    assert_eq!(nonce["difference"], "2");
    let balance_eth = find(&report, "balance", |d| d["asset"] == "anvil:ETH");
    assert_eq!(balance_eth["wallet"], wallet);
    assert_eq!(
        balance_eth["difference"],
        format!("-{}", eth_value + eth_fee + usdc_fee)
    );
    let balance_usdc = find(&report, "balance", |d| d["asset"] == "anvil:USDC");
    assert_eq!(balance_usdc["difference"], "-2500000");
    assert_eq!(
        balance_usdc["actual"],
        ctx.anvil().usdc_balance(wallet).await.to_string()
    );

    // Two runs at once: the same discrepancies, stored once.
    let outputs: Vec<Output> = [
        ctx.admin_command(&["reconcile", "--json"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        ctx.admin_command(&["reconcile", "--json"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ]
    .into_iter()
    .map(|child| child.wait_with_output().unwrap())
    .collect();
    for out in &outputs {
        let (code, parallel) = parse_reconcile(out);
        assert_eq!(code, 1);
        assert_eq!(ids(&parallel), ids(&report), "{parallel:#}");
    }
    assert_eq!(
        ctx.count("SELECT count(*) FROM reconcile_discrepancies")
            .await,
        5,
        "found again, never stored twice"
    );

    // Money in that nobody recorded: a discrepancy until the top-up is recorded.
    let funder = DEV_ADDRESSES[3];
    ctx.anvil()
        .mint_usdc(DEV_USDC_ADDRESS, funder, 7_000_000)
        .await;
    let (topup_hash, _) = ctx
        .send(json!({"from": funder, "to": DEV_USDC_ADDRESS, "data": transfer_data(HOT_WALLETS[1], 7_000_000)}))
        .await;
    ctx.anvil().mine(2).await;
    let (_, report) = ctx.reconcile();
    let incoming = find(&report, "balance", |d| d["wallet"] == HOT_WALLETS[1]);
    assert_eq!(incoming["asset"], "anvil:USDC");
    assert_eq!(incoming["difference"], "7000000");
    let incoming_id = incoming["id"].as_i64().unwrap();
    let topup = ctx.admin_ok(&[
        "wallets",
        "topup",
        "--chain",
        "anvil",
        "--asset",
        "USDC",
        "--tx",
        &topup_hash,
    ]);
    assert_eq!(topup["recorded"][0]["amount"], "7000000", "{topup:#}");
    assert_eq!(topup["recorded"][0]["created"], true);
    let again = ctx.admin_ok(&[
        "wallets",
        "topup",
        "--chain",
        "anvil",
        "--asset",
        "USDC",
        "--tx",
        &topup_hash,
    ]);
    assert_eq!(
        again["recorded"][0]["created"], false,
        "idempotent per transaction and log"
    );
    let (code, report) = ctx.reconcile();
    assert_eq!(code, 1);
    assert!(
        report["resolved_by_this_run"]
            .as_array()
            .unwrap()
            .contains(&json!(incoming_id)),
        "{report:#}"
    );
    assert_eq!(report["open"], 5, "{report:#}");

    // The operator explains the two transfers: the books count them, everything agrees again.
    for hash in [&eth_hash, &usdc_hash] {
        let id = find(&report, "unknown_transaction", |d| {
            d["transactions"][0]["tx_hash"] == hash.as_str()
        })["id"]
            .as_i64()
            .unwrap();
        let resolved = ctx.admin_ok(&[
            "discrepancies",
            "resolve",
            "--id",
            &id.to_string(),
            "--note",
            "treasury sweep by the operator, ticket OPS-42",
        ]);
        assert_eq!(
            resolved["resolution_note"],
            "treasury sweep by the operator, ticket OPS-42"
        );
    }
    ctx.reconcile_clean();
    let listed = ctx.admin_ok(&["discrepancies", "list", "--all"]);
    assert_eq!(listed["count"], 6, "{listed:#}");
    ctx.assert_ledger_invariants().await;
}

#[tokio::test]
async fn a_settled_payment_whose_block_is_reorged_away_is_reported_and_handed_to_the_reorg_path() {
    let ctx = Ctx::start(true).await;
    ctx.reconcile_clean();
    let (id, _) = ctx.pay("ETH", "0.02", &recipient()).await;
    ctx.wait_settled(&[id]).await;
    ctx.anvil().mine(2).await;
    let clean = ctx.reconcile_clean();
    assert!(clean["settled_checked"].as_u64().unwrap() >= 1, "{clean:#}");

    let settled = ctx.store.get_payment_unscoped(id).await.unwrap().unwrap();
    let block = settled.block_number.unwrap();
    let latest = hex_u64(&ctx.anvil().rpc("eth_blockNumber", json!([])).await);
    // Whatever the reorg drops stays out of blocks until the test mines.
    ctx.anvil().rpc("evm_setAutomine", json!([false])).await;
    ctx.anvil()
        .rpc("anvil_reorg", json!([latest - block + 1, []]))
        .await;
    let (code, report) = ctx.reconcile();
    assert_eq!(code, 1, "{report:#}");
    let reorged = find(&report, "settled_reorged", |d| {
        d["payment_id"] == id.to_string()
    });
    assert!(
        reorged["detail"]
            .as_str()
            .unwrap()
            .contains("left the chain"),
        "{reorged:#}"
    );
    let confirm = ctx.store.confirmation(id).await.unwrap().unwrap();
    assert!(
        confirm.reorgs_seen >= 1,
        "recorded on the reorg path: {confirm:?}"
    );

    // The signed bytes are mined again: the payment's inclusion follows, nothing stays open.
    ctx.anvil().mine(3).await;
    let healed = ctx.reconcile_clean();
    assert!(
        healed["resolved_by_this_run"]
            .as_array()
            .unwrap()
            .contains(&reorged["id"]),
        "{healed:#}"
    );
    let moved = ctx.store.get_payment_unscoped(id).await.unwrap().unwrap();
    assert_eq!(moved.status, PaymentStatus::Settled);
    assert_ne!(moved.block_hash, settled.block_hash);
    let receipt = ctx
        .anvil()
        .rpc(
            "eth_getTransactionReceipt",
            json!([settled.tx_hash.unwrap()]),
        )
        .await;
    assert_eq!(receipt["blockHash"], json!(moved.block_hash.unwrap()));
    ctx.assert_ledger_invariants().await;
}

#[tokio::test]
async fn a_run_during_traffic_counts_mined_payments_in_flight_and_a_bounded_walk_catches_up() {
    // Settle is off: mined payments stay `confirmed`, their books not posted yet.
    let mut ctx = Ctx::start_with_settings(settings_with(true, false)).await;
    ctx.reconcile_clean();
    let mut ids = Vec::new();
    for asset in ["ETH", "USDC", "ETH", "USDC"] {
        ids.push(ctx.pay(asset, "0.5", &recipient()).await.0);
    }
    ctx.wait_for(&ids, PaymentStatus::Confirmed).await;
    ctx.anvil().mine(2).await;

    // One nonce per wallet and run: the walk carries on over several runs, comparing nothing
    // until it has caught up.
    let bounded = |ctx: &Ctx| {
        parse_reconcile(
            &ctx.admin_command(&["reconcile", "--json"])
                .env("MESHPAY_RECONCILE_NONCES_PER_WALLET", "1")
                .output()
                .unwrap(),
        )
    };
    let mut runs = 0;
    let report = loop {
        let (code, report) = bounded(&ctx);
        assert_eq!(code, 0, "{report:#}");
        runs += 1;
        let statuses: Vec<&str> = report["wallets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["status"].as_str().unwrap())
            .collect();
        if statuses.iter().all(|s| *s == "checked") {
            break report;
        }
        assert!(
            statuses
                .iter()
                .all(|s| *s == "catching_up" || *s == "checked"),
            "{report:#}"
        );
        assert!(runs < 10, "{report:#}");
    };
    assert!(
        runs >= 2,
        "a bounded walk takes more than one run: {report:#}"
    );
    let in_flight: Vec<&Value> = report["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["balances"].as_array().unwrap())
        .flat_map(|b| b["in_flight_payments"].as_array().unwrap())
        .collect();
    assert!(
        !in_flight.is_empty(),
        "mined, unsettled payments counted from the chain: {report:#}"
    );
    for id in &ids {
        assert!(
            in_flight.contains(&&json!(id.to_string())),
            "{id}: {report:#}"
        );
    }

    // The reconcile timer runs the same books check (with the nudges and wallet healing).
    ctx.stack
        .restart_devhost(settings_with(true, false).env("RECONCILE_SCHEDULE", "*/1 * * * * *"))
        .await;
    let sql = "SELECT count(*) FROM reconcile_runs
               WHERE jsonb_typeof(report->'books') = 'object'
                 AND report->'books'->'errors' = '[]'::jsonb
                 AND jsonb_array_length(report->'books'->'wallets') = 2";
    let deadline = Instant::now() + WAIT;
    while ctx.count(sql).await == 0 {
        assert!(Instant::now() < deadline, "{}", ctx.log_tail(LOG_LINES));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        ctx.count("SELECT count(*) FROM reconcile_discrepancies")
            .await,
        0
    );
    ctx.assert_ledger_invariants().await;
}
