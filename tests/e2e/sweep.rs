//! Sweeps through devhost and `meshpay` on anvil (a block a second, finality 1 block): an
//! invoice paid in USDC turns paid, the `sweep` timer flushes its deposit address to the
//! factory's treasury through a hot wallet, and `meshpay admin reconcile --json` finds the
//! books and the chain in agreement (the sweep's gas and the treasury's inflow counted, the
//! deposit address read empty at the sweep's block). A token the configuration does not know is
//! left where it is until an operator runs `meshpay admin invoices sweep`.

use std::time::{Duration, Instant};

use meshpay_testkit::anvil::HOT_WALLETS;
use meshpay_testkit::stack::{ChainSetup, HandlerSettings, Stack};
use serde_json::{Value, json};

use crate::invoices_support::{USDC, block_every_second, create_invoice, pay_token, pay_usdc};
use crate::support::{admin_command, json_answer};

const WAIT: Duration = Duration::from_secs(90);

async fn start() -> Stack {
    let settings = HandlerSettings::default()
        .dev_signers()
        .env("INVOICES_DETECT_SCHEDULE", "*/1 * * * * *")
        .env("SWEEP_SCHEDULE", "*/1 * * * * *")
        // Reconcile runs only when the test runs it.
        .env("RECONCILE_SCHEDULE", "0 0 0 1 1 *");
    let stack = Stack::builder()
        .chain(ChainSetup {
            hot_wallet_usdc: 10u128.pow(12),
            automine: true,
        })
        .devhost(settings)
        .start()
        .await;
    // The set-up's transfers sink below the pinned block before the books open.
    stack.anvil().mine(2).await;
    stack
}

/// `meshpay admin reconcile --json`: (exit code, report).
fn reconcile(stack: &Stack) -> (i32, Value) {
    let out = admin_command(stack, &["reconcile", "--json"])
        .env("MESHPAY_CHAINS_CONFIG", stack.chains_path())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "reconcile output: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

async fn wait_until(stack: &Stack, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what} not reached: {}",
            stack.log_tail(60)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `count_sql` counts exactly one row.
async fn wait_for_one(stack: &Stack, what: &str, count_sql: &str) {
    wait_until(stack, what, async || stack.count(count_sql).await == 1).await;
}

#[tokio::test]
async fn an_invoice_paid_in_usdc_is_swept_to_the_treasury_and_the_books_stay_clean() {
    let stack = start().await;
    let (code, opening) = reconcile(&stack);
    assert_eq!(code, 0, "books open clean: {opening:#}");
    let merchant = stack.merchant().await;
    let key = &merchant.key;
    let created = create_invoice(&stack, key, "25.00").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let deposit = created["deposit_address"].as_str().unwrap().to_owned();
    let treasury = HOT_WALLETS[0];
    let treasury_before = stack.anvil().usdc_balance(treasury).await;

    let miner = block_every_second(&stack);
    pay_usdc(&stack, &deposit, 25 * USDC).await;
    let mined = Instant::now();
    wait_until(&stack, "invoice paid", async || {
        stack.api().get(&format!("invoices/{id}"), key).await.body["status"] == "paid"
    })
    .await;
    let paid = mined.elapsed();
    wait_until(&stack, "deposit address swept", async || {
        stack.anvil().usdc_balance(&deposit).await == 0
    })
    .await;
    let swept = mined.elapsed();
    wait_for_one(
        &stack,
        "sweep confirmed",
        "SELECT count(*) FROM sweeps WHERE status = 'confirmed'",
    )
    .await;
    let confirmed = mined.elapsed();
    miner.abort();
    println!(
        "sweep e2e: payer's transfer mined -> invoice paid {paid:?}, -> deposit swept on chain \
         {swept:?} ({:?} after paid), -> sweep confirmed and posted {confirmed:?}",
        swept - paid
    );

    assert_eq!(
        stack.anvil().usdc_balance(treasury).await,
        treasury_before + 25 * USDC
    );
    assert_eq!(stack.count("SELECT count(*) FROM sweeps").await, 1);
    assert_eq!(
        stack
            .count("SELECT count(*) FROM ledger_transactions WHERE kind = 'sweep'")
            .await,
        1
    );
    stack.assert_ledger_invariants().await;

    // The sweep's nonce below the pinned block: the books count its gas and the treasury's
    // 25 USDC, and agree with the chain.
    stack.anvil().mine(2).await;
    let (code, report) = reconcile(&stack);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["discrepancies"], json!([]), "{report:#}");
    // The books read the deposit address empty at the sweep's block.
    assert_eq!(
        stack
            .count("SELECT count(*) FROM sweeps WHERE deposits_verified_at IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn an_unrecognized_token_is_swept_only_by_the_operator_command_and_audited() {
    let stack = start().await;
    let merchant = stack.merchant().await;
    let key = &merchant.key;
    let created = create_invoice(&stack, key, "10.00").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let deposit = created["deposit_address"].as_str().unwrap().to_owned();
    let miner = block_every_second(&stack);
    let stray = stack.anvil().deploy_dev_usdc().await;
    pay_token(&stack, &stray, &deposit, 4 * USDC).await;
    wait_for_one(
        &stack,
        "wrong token recorded final",
        "SELECT count(*) FROM invoice_payments WHERE asset IS NULL AND status = 'final'",
    )
    .await;
    // The timer never moves it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.count("SELECT count(*) FROM sweeps").await, 0);
    assert_eq!(
        stack.anvil().erc20_balance(&stray, &deposit).await,
        4 * USDC
    );

    let answer = json_answer(
        admin_command(&stack, &["invoices", "sweep", &id, "--token", &stray])
            .env("MESHPAY_CHAINS_CONFIG", stack.chains_path())
            .env(
                "MESHPAY_SIGNERS_CONFIG",
                meshpay_testkit::ports::repo_root().join("signers.dev.toml"),
            )
            .env(
                "MESHPAY_WEBHOOK_SECRET_KEY",
                "ZGV2LW9ubHktd2ViaG9vay1rZXktbm90LXNlY3JldCE=",
            ),
    );
    assert_eq!(answer["sent"].as_array().unwrap().len(), 1, "{answer:#}");
    wait_for_one(
        &stack,
        "operator sweep confirmed",
        "SELECT count(*) FROM sweeps WHERE kind = 'operator' AND status = 'confirmed'",
    )
    .await;
    miner.abort();
    assert_eq!(stack.anvil().erc20_balance(&stray, &deposit).await, 0);
    assert_eq!(
        stack.anvil().erc20_balance(&stray, HOT_WALLETS[0]).await,
        4 * USDC
    );
    assert_eq!(
        stack
            .count(
                "SELECT count(*) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
                  WHERE a.kind = 'unrecognized' AND e.amount = 4000000"
            )
            .await,
        1
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM admin_audit WHERE command LIKE 'invoices sweep%' AND outcome = 'ok'")
            .await,
        1
    );
    stack.assert_ledger_invariants().await;
}
