//! Sweeps on a real anvil (automine, finality 1 block) and a fresh PostgreSQL database: final
//! invoices are flushed to the treasury by a hot wallet in one batched `sweep(salts, tokens)`,
//! posted once (payins → hot wallets, gas → network fees), and a run stopped after any step (as
//! a crash) is finished by the next one with exactly one transaction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use meshpay_chain::rpc::AlloyRpc;
use meshpay_confirm::{ConfirmConfig, Pipeline};
use meshpay_domain::{Address, AssetId, InvoiceStatus, U256};
use meshpay_payins::detect::{DetectConfig, Detector};
use meshpay_payins::sweep::{StopAfter, SweepConfig, SweepError, Sweeper};
use meshpay_relay::{DynTxSigner, LazyRelay, Relay, RelayConfig};
use meshpay_store::Invoice;
use meshpay_store::books::Mined;
use meshpay_store::sweeps::{Sweep, SweepStatus};
use meshpay_testkit::anvil::{
    DEV_DEPOSIT_FACTORY_ADDRESS, DEV_USDC_ADDRESS, HOT_WALLET_ACCOUNTS, HOT_WALLETS,
};
use serde_json::json;
use time::OffsetDateTime;

mod support;

use support::{PAYER, PayinStack, USDC, eth_asset, usdc_asset};

struct Env {
    base: PayinStack,
    detector: Detector,
    relay: LazyRelay,
}

impl std::ops::Deref for Env {
    type Target = PayinStack;
    fn deref(&self) -> &PayinStack {
        &self.base
    }
}

async fn env() -> Env {
    let base = PayinStack::start(1, 1_000_000 * USDC).await;
    let detector = Detector::new(
        base.store.clone(),
        base.chains.clone(),
        DetectConfig::default(),
    );
    let signers: Vec<DynTxSigner> = HOT_WALLET_ACCOUNTS
        .iter()
        .map(|&i| {
            Arc::new(PrivateKeySigner::from_str(base.anvil.private_key(i)).unwrap()) as DynTxSigner
        })
        .collect();
    let rpc = Arc::new(AlloyRpc::new(
        base.anvil.url().parse().unwrap(),
        Duration::from_secs(10),
    ));
    let relay = Relay::new(base.store.clone(), RelayConfig::default())
        .with_chain(base.chains.chain("anvil").unwrap().clone(), rpc, signers)
        .unwrap();
    Env {
        base,
        detector,
        relay: LazyRelay::ready(Arc::new(relay)),
    }
}

const ETH: u128 = 1_000_000_000_000_000_000;

fn treasury() -> Address {
    Address::from_str(HOT_WALLETS[0]).unwrap()
}

impl Env {
    fn sweeper(&self, stop: Option<StopAfter>) -> Sweeper {
        Sweeper::new(
            self.store.clone(),
            self.chains.clone(),
            self.relay.clone(),
            SweepConfig::default(),
        )
        .stopping_after(stop)
    }

    /// An invoice of `amount` USDC, paid in full and final.
    async fn paid_invoice(&self, amount: u128) -> Invoice {
        let invoice = self.invoice_in(usdc_asset(), amount).await;
        let data = format!(
            "0xa9059cbb{:0>64}{amount:064x}",
            invoice
                .deposit_address
                .to_string()
                .trim_start_matches("0x")
                .to_ascii_lowercase()
        );
        self.anvil
            .send_and_wait(
                json!({"from": self.anvil.address(PAYER), "to": DEV_USDC_ADDRESS, "data": data}),
            )
            .await;
        invoice
    }

    /// An invoice of `amount` base units of `asset`, unpaid.
    async fn invoice_in(&self, asset: AssetId, amount: u128) -> Invoice {
        self.base
            .invoice_in(asset, amount, Duration::from_secs(3600))
            .await
    }

    /// An invoice of 1 ETH, paid in full and final.
    async fn paid_eth_invoice(&self) -> Invoice {
        let invoice = self.invoice_in(eth_asset(), ETH).await;
        self.anvil
            .send_and_wait(self.eth_payment(&invoice, ETH))
            .await;
        self.detect().await;
        assert_eq!(self.status(&invoice).await, InvoiceStatus::Paid);
        invoice
    }

    /// The 1 ETH invoice recorded 1 ETH and then `more` wei as two payments: overpaid.
    async fn overpaid_by(&self, invoice: &Invoice, more: u128) {
        assert_eq!(
            self.native_recorded(invoice).await,
            [ETH.to_string(), more.to_string()]
        );
        assert_eq!(self.status(invoice).await, InvoiceStatus::Overpaid);
    }

    /// A final invoice of `amount` USDC whose sweep is planned (nonce and fees stored) and
    /// not signed yet.
    async fn planned_sweep(&self, amount: u128) -> (Invoice, Sweep) {
        let invoice = self.paid_invoice(amount).await;
        self.detect_final(&[&invoice]).await;
        let stopped = self.sweeper(Some(StopAfter::Plan)).run().await;
        assert!(matches!(
            stopped.as_slice(),
            [Err(SweepError::Stopped(StopAfter::Plan))]
        ));
        let planned = self.store.open_sweeps("anvil").await.unwrap().remove(0);
        (invoice, planned)
    }

    /// The sweep covering the invoice.
    async fn sweep_of(&self, invoice: &Invoice) -> Sweep {
        self.store
            .sweep_of_invoice(invoice.id)
            .await
            .unwrap()
            .unwrap()
    }

    /// The payer's ETH transfer of `wei` to the invoice's deposit address (not waited for).
    fn eth_payment(&self, invoice: &Invoice, wei: u128) -> serde_json::Value {
        json!({"from": self.anvil.address(PAYER), "to": invoice.deposit_address.to_string(),
               "value": format!("{wei:#x}")})
    }

    /// Detection after two more blocks (final with 1-block finality).
    async fn detect(&self) {
        self.anvil.mine(2).await;
        for report in self.detector.run(OffsetDateTime::now_utc()).await {
            assert_eq!(report.unwrap().failed, 0);
        }
    }

    async fn status(&self, invoice: &Invoice) -> InvoiceStatus {
        self.invoice_now(invoice).await.status
    }

    /// The native amounts recorded for an invoice, in order, not removed.
    async fn native_recorded(&self, invoice: &Invoice) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT amount::text FROM invoice_payments
              WHERE invoice_id = $1 AND token = $2 AND status <> 'removed'
              ORDER BY block_number",
        )
        .bind(invoice.id.as_uuid())
        .bind(Address::ZERO.to_checksum(None))
        .fetch_all(self.store.pool())
        .await
        .unwrap()
    }

    /// What a sweep's deposit address sent of a token, from `sweep_flows`.
    async fn swept_flow(&self, invoice: &Invoice, token: Address) -> String {
        sqlx::query_scalar(
            "SELECT coalesce(sum(amount), 0)::text FROM sweep_flows
              WHERE deposit_address = $1 AND token = $2",
        )
        .bind(invoice.deposit_address.to_checksum(None))
        .bind(token.to_checksum(None))
        .fetch_one(self.store.pool())
        .await
        .unwrap()
    }

    /// Detection until every invoice given is paid (final).
    async fn detect_final(&self, invoices: &[&Invoice]) {
        self.anvil.mine(2).await;
        for report in self.detector.run(OffsetDateTime::now_utc()).await {
            assert_eq!(report.unwrap().failed, 0);
        }
        for invoice in invoices {
            let seen = self.invoice_now(invoice).await;
            assert_eq!(seen.status, InvoiceStatus::Paid, "{seen:?}");
        }
    }

    /// Sweep runs (a block mined between them) until the chain has no sweep in flight.
    async fn sweep_until_settled(&self, sweeper: &Sweeper) {
        for _ in 0..6 {
            for report in sweeper.run().await {
                report.unwrap();
            }
            if self.store.open_sweeps("anvil").await.unwrap().is_empty() {
                return;
            }
            self.anvil.mine(1).await;
        }
        panic!("sweep still in flight");
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }

    /// The `sweep` postings of an account kind in an asset (signed sum, base units).
    async fn posted(&self, kind: &str, asset: &str) -> String {
        sqlx::query_scalar(
            "SELECT coalesce(sum(e.amount), 0)::text FROM ledger_entries e
               JOIN ledger_transactions t ON t.id = e.transaction_id AND t.kind = 'sweep'
               JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = $1
              WHERE e.asset = $2",
        )
        .bind(kind)
        .bind(asset)
        .fetch_one(self.store.pool())
        .await
        .unwrap()
    }

    /// The number of transactions `wallet` has mined.
    async fn chain_nonce(&self, wallet: Address) -> u64 {
        let nonce = self
            .anvil
            .rpc(
                "eth_getTransactionCount",
                json!([wallet.to_string(), "latest"]),
            )
            .await;
        u64::try_from(hex_u128(&nonce)).unwrap()
    }

    async fn receipt(&self, hash: &str) -> serde_json::Value {
        self.anvil
            .rpc("eth_getTransactionReceipt", json!([hash]))
            .await
    }

    /// The receipt of `hash` once anvil has one: automine answers a send before the block that
    /// mines it is stored, so a receipt read right after a send can still be null.
    async fn mined_receipt(&self, hash: &str) -> serde_json::Value {
        for _ in 0..200 {
            let receipt = self.receipt(hash).await;
            if !receipt.is_null() {
                return receipt;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{hash} not mined after 10 s");
    }
}

fn hex_u128(v: &serde_json::Value) -> u128 {
    u128::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// What a receipt charged its sender (anvil has no L1 fee).
fn receipt_fee(receipt: &serde_json::Value) -> u128 {
    hex_u128(&receipt["gasUsed"]) * hex_u128(&receipt["effectiveGasPrice"])
}

#[tokio::test]
async fn two_final_invoices_are_swept_in_one_transaction_posted_once_and_never_twice() {
    let env = env().await;
    let a = env.paid_invoice(25 * USDC).await;
    let b = env.paid_invoice(40 * USDC).await;
    env.detect_final(&[&a, &b]).await;
    let treasury_before = env.anvil.usdc_balance(treasury()).await;

    let sweeper = env.sweeper(None);
    env.sweep_until_settled(&sweeper).await;

    // One sweep, one signed transaction, covering both invoices.
    assert_eq!(env.count("SELECT count(*) FROM sweeps").await, 1);
    assert_eq!(
        env.count("SELECT count(*) FROM sweep_transactions").await,
        1
    );
    assert_eq!(
        env.count("SELECT count(DISTINCT invoice_id) FROM sweep_payments")
            .await,
        2
    );
    let sweep = env.sweep_of(&a).await;
    assert_eq!(sweep.status, SweepStatus::Confirmed);
    assert_eq!(env.sweep_of(&b).await.id, sweep.id);
    // Deposit addresses empty, forwarders deployed, the treasury up by the sum.
    assert_eq!(env.anvil.usdc_balance(a.deposit_address).await, 0);
    assert_eq!(env.anvil.usdc_balance(b.deposit_address).await, 0);
    assert_eq!(
        env.anvil.usdc_balance(treasury()).await,
        treasury_before + 65 * USDC
    );
    // Ledger: 65 USDC from payins to the hot wallets, the receipt's fee to network fees.
    let tx_hash = sweep.tx_hash.unwrap().to_string();
    let receipt = env.receipt(&tx_hash).await;
    let fee = receipt_fee(&receipt);
    assert_eq!(
        env.posted("hot_wallets", "anvil:USDC").await,
        (65 * USDC).to_string()
    );
    assert_eq!(
        env.posted("payins", "anvil:USDC").await,
        format!("-{}", 65 * USDC)
    );
    assert_eq!(
        env.posted("network_fees", "anvil:ETH").await,
        fee.to_string()
    );
    assert_eq!(
        env.posted("hot_wallets", "anvil:ETH").await,
        format!("-{fee}")
    );
    env.store.check_ledger_invariants().await.unwrap();
    println!(
        "batched sweep of 2 invoices (2 forwarder deploys + USDC flushes): gas used {}",
        hex_u128(&receipt["gasUsed"])
    );

    // Later runs, as a duplicate trigger or a redelivery would make, do nothing more.
    let nonce_after = env.chain_nonce(sweep.wallet).await;
    for _ in 0..3 {
        for report in sweeper.run().await {
            let report = report.unwrap();
            assert!(
                report.planned.is_none() && report.sent.is_empty(),
                "{report:?}"
            );
        }
        env.anvil.mine(1).await;
    }
    assert_eq!(env.count("SELECT count(*) FROM sweeps").await, 1);
    assert_eq!(
        env.count("SELECT count(*) FROM ledger_transactions WHERE kind = 'sweep'")
            .await,
        1
    );
    assert_eq!(env.chain_nonce(sweep.wallet).await, nonce_after);
    // The events tell the state machine's path.
    let path: Vec<(String, String)> = sqlx::query_as(
        "SELECT from_status, to_status FROM sweep_events WHERE sweep_id = $1 ORDER BY version",
    )
    .bind(sweep.id)
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    let path: Vec<(&str, &str)> = path.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        path,
        [
            ("new", "planned"),
            ("planned", "broadcast"),
            ("broadcast", "confirmed")
        ]
    );
}

/// A run stopped right after `step`, then ordinary runs: one transaction on the chain, the
/// deposit address empty, posted once.
async fn resumes_after(step: StopAfter) {
    let env = env().await;
    let invoice = env.paid_invoice(12 * USDC).await;
    env.detect_final(&[&invoice]).await;
    let treasury_before = env.anvil.usdc_balance(treasury()).await;

    let crashing = env.sweeper(Some(step));
    let stopped = crashing.run().await;
    assert!(
        matches!(stopped.as_slice(), [Err(SweepError::Stopped(s))] if *s == step),
        "{stopped:?}"
    );
    env.anvil.mine(1).await;
    env.sweep_until_settled(&env.sweeper(None)).await;

    let sweep = env.sweep_of(&invoice).await;
    assert_eq!(sweep.status, SweepStatus::Confirmed, "{step:?}");
    assert_eq!(env.count("SELECT count(*) FROM sweeps").await, 1);
    // Exactly one transaction from the sweeping wallet, on the planned nonce.
    let mined = env.chain_nonce(sweep.wallet).await;
    assert_eq!(mined, sweep.nonce + 1, "{step:?}");
    assert_eq!(env.anvil.usdc_balance(invoice.deposit_address).await, 0);
    assert_eq!(
        env.anvil.usdc_balance(treasury()).await,
        treasury_before + 12 * USDC
    );
    assert_eq!(
        env.count("SELECT count(*) FROM ledger_transactions WHERE kind = 'sweep'")
            .await,
        1
    );
    assert_eq!(
        env.posted("hot_wallets", "anvil:USDC").await,
        (12 * USDC).to_string()
    );
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn a_sweep_stopped_after_planning_or_signing_is_signed_again_on_its_nonce_and_finished() {
    resumes_after(StopAfter::Plan).await;
    resumes_after(StopAfter::Sign).await;
}

#[tokio::test]
async fn a_sweep_stopped_after_storing_or_sending_is_sent_again_and_finished_once() {
    resumes_after(StopAfter::Store).await;
    resumes_after(StopAfter::Send).await;
}

#[tokio::test]
async fn a_batched_sweep_costs_less_gas_than_one_sweep_per_invoice() {
    const N: usize = 4;
    let batched = {
        let env = env().await;
        let mut invoices = Vec::new();
        for i in 0..N {
            invoices.push(env.paid_invoice((10 + i as u128) * USDC).await);
        }
        env.detect_final(&invoices.iter().collect::<Vec<_>>()).await;
        env.sweep_until_settled(&env.sweeper(None)).await;
        let hashes: Vec<(String,)> = sqlx::query_as("SELECT tx_hash FROM sweeps")
            .fetch_all(env.store.pool())
            .await
            .unwrap();
        assert_eq!(hashes.len(), 1);
        hex_u128(&env.receipt(&hashes[0].0).await["gasUsed"])
    };
    let single = {
        let env = env().await;
        let mut total = 0;
        for i in 0..N {
            let invoice = env.paid_invoice((10 + i as u128) * USDC).await;
            env.detect_final(&[&invoice]).await;
            env.sweep_until_settled(&env.sweeper(None)).await;
            let sweep = env.sweep_of(&invoice).await;
            total += hex_u128(&env.receipt(&sweep.tx_hash.unwrap().to_string()).await["gasUsed"]);
        }
        total
    };
    println!(
        "sweep gas, {N} USDC invoices: one batched transaction {batched} ({} per invoice), \
         {N} single sweeps {single} ({} per invoice): batching saves {} %",
        batched / N as u128,
        single / N as u128,
        (single - batched) * 100 / single
    );
    assert!(batched < single, "batched {batched}, single {single}");
}

#[tokio::test]
async fn an_operator_sweeps_an_unrecognized_token_to_the_treasury_posted_apart_from_merchants() {
    let env = env().await;
    let invoice = env.paid_invoice(5 * USDC).await;
    // A token the chain's configuration does not know, paid to the same deposit address.
    let stray = env.anvil.deploy_dev_usdc().await;
    env.anvil
        .mint_usdc(&stray, env.anvil.address(PAYER), 7 * USDC)
        .await;
    let data = format!(
        "0xa9059cbb{:0>64}{:064x}",
        invoice
            .deposit_address
            .to_string()
            .trim_start_matches("0x")
            .to_ascii_lowercase(),
        7 * USDC
    );
    env.anvil
        .send_and_wait(json!({"from": env.anvil.address(PAYER), "to": stray, "data": data}))
        .await;
    env.detect_final(&[&invoice]).await;
    let sweeper = env.sweeper(None);
    // The timer sweeps the USDC and leaves the stray token where it is.
    env.sweep_until_settled(&sweeper).await;
    let deposit = invoice.deposit_address.to_string();
    assert_eq!(env.anvil.usdc_balance(&deposit).await, 0);
    assert_eq!(env.anvil.erc20_balance(&stray, &deposit).await, 7 * USDC);
    let available_before = env
        .store
        .balances(env.merchant)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.asset.to_string(), b.available))
        .collect::<Vec<_>>();

    let token = Address::from_str(&stray).unwrap();
    // A configured token is the timer's, not the operator's.
    let refused = sweeper
        .operator_sweep(invoice.id, Address::from_str(DEV_USDC_ADDRESS).unwrap())
        .await;
    assert!(
        matches!(refused, Err(SweepError::Refused(_))),
        "{refused:?}"
    );
    let treasury_before = env
        .anvil
        .erc20_balance(&stray, &treasury().to_string())
        .await;
    let report = sweeper.operator_sweep(invoice.id, token).await.unwrap();
    assert_eq!(report.sent.len(), 1, "{report:?}");
    env.anvil.mine(1).await;
    env.sweep_until_settled(&sweeper).await;

    assert_eq!(env.anvil.erc20_balance(&stray, &deposit).await, 0);
    assert_eq!(
        env.anvil
            .erc20_balance(&stray, &treasury().to_string())
            .await,
        treasury_before + 7 * USDC
    );
    let chain = env.chains.chain("anvil").unwrap();
    let asset = meshpay_payins::sweep::unrecognized_asset(chain, token)
        .unwrap()
        .to_string();
    assert_eq!(
        env.posted("unrecognized", &asset).await,
        (7 * USDC).to_string()
    );
    assert_eq!(env.posted("payins", &asset).await, format!("-{}", 7 * USDC));
    // Never a merchant's: balances unchanged.
    let available_after = env
        .store
        .balances(env.merchant)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.asset.to_string(), b.available))
        .collect::<Vec<_>>();
    assert_eq!(available_before, available_after);
    // A second operator sweep finds nothing left to move.
    let again = sweeper.operator_sweep(invoice.id, token).await;
    assert!(matches!(again, Err(SweepError::Refused(_))), "{again:?}");
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn a_sweep_priced_under_a_risen_base_fee_is_replaced_on_its_nonce_and_charged_the_mined_fee()
{
    const GWEI: u128 = 1_000_000_000;
    let env = env().await;
    // Planned (nonce and fees stored) at today's low base fee...
    let (invoice, planned) = env.planned_sweep(9 * USDC).await;
    // ...then the base fee jumps far above the planned max fee; blocks are mined by the test.
    env.anvil.rpc("evm_setAutomine", json!([false])).await;
    let high = 40 * GWEI;
    assert!(planned.max_fee_per_gas_wei < high);
    env.anvil
        .rpc(
            "anvil_setNextBlockBaseFeePerGas",
            json!([format!("{high:#x}")]),
        )
        .await;
    env.anvil.mine(1).await;
    let sweeper = env.sweeper(None);
    for _ in 0..6 {
        for report in sweeper.run().await {
            report.unwrap();
        }
        if env.store.open_sweeps("anvil").await.unwrap().is_empty() {
            break;
        }
        // Later blocks' base fees follow EIP-1559 down from there.
        env.anvil.mine(1).await;
    }
    let sweep = env.sweep_of(&invoice).await;
    assert_eq!(sweep.status, SweepStatus::Confirmed);
    let attempts = env.store.sweep_attempts(sweep.id).await.unwrap();
    assert!(attempts.len() >= 2, "{attempts:?}");
    assert!(
        !attempts[0].live,
        "the under-priced transaction was replaced"
    );
    let mined = attempts
        .iter()
        .find(|a| Some(a.tx_hash) == sweep.tx_hash)
        .unwrap();
    // Priced for the next base fee after the jump (7/8 of it), not the planned fee.
    assert!(mined.max_fee_per_gas_wei >= high * 7 / 8, "{mined:?}");
    // Exactly one transaction on the nonce, the treasury up once, the mined one's fee posted.
    let nonce = env.chain_nonce(sweep.wallet).await;
    assert_eq!(nonce, sweep.nonce + 1);
    assert_eq!(env.anvil.usdc_balance(invoice.deposit_address).await, 0);
    let receipt = env.receipt(&mined.tx_hash.to_string()).await;
    let fee = receipt_fee(&receipt);
    assert_eq!(
        env.posted("network_fees", "anvil:ETH").await,
        fee.to_string()
    );
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn a_reverted_sweep_fails_with_its_gas_posted_and_the_next_sweep_moves_its_invoices() {
    use alloy::sol_types::SolCall;
    use meshpay_payins::deposit::IDepositFactory;
    let env = env().await;
    let (invoice, planned) = env.planned_sweep(3 * USDC).await;
    // The factory's admin revokes the planned wallet: its sweep is mined and reverts.
    let set = |allowed: bool| {
        let data = IDepositFactory::setSweeperCall {
            sweeper: planned.wallet,
            allowed,
        }
        .abi_encode();
        json!({
            "from": env.anvil.address(meshpay_testkit::anvil::DEPOSIT_FACTORY_ADMIN_ACCOUNT),
            "to": DEV_DEPOSIT_FACTORY_ADDRESS,
            "data": format!("0x{}", alloy::hex::encode(data)),
        })
    };
    env.anvil.send_and_wait(set(false)).await;
    let sweeper = env.sweeper(None);
    for _ in 0..4 {
        // Once failed, the invoice is due again, but the revoked wallet's estimate reverts:
        // nothing more is planned or signed while it stays revoked.
        let _ = sweeper.run().await;
        let status = env.store.sweep(planned.id).await.unwrap().unwrap().status;
        if status == SweepStatus::Failed {
            break;
        }
        env.anvil.mine(1).await;
    }
    assert_eq!(env.count("SELECT count(*) FROM sweeps").await, 1);
    let failed = env.store.sweep(planned.id).await.unwrap().unwrap();
    assert_eq!(failed.status, SweepStatus::Failed);
    assert_eq!(
        env.anvil.usdc_balance(invoice.deposit_address).await,
        3 * USDC
    );
    let receipt = env.receipt(&failed.tx_hash.unwrap().to_string()).await;
    assert_eq!(receipt["status"], "0x0");
    let fee = receipt_fee(&receipt);
    assert_eq!(
        env.posted("network_fees", "anvil:ETH").await,
        fee.to_string()
    );
    assert_eq!(env.posted("hot_wallets", "anvil:USDC").await, "0");

    // Allowed again: the invoice is due again and the next sweep moves it.
    env.anvil.send_and_wait(set(true)).await;
    env.sweep_until_settled(&sweeper).await;
    let swept = env.sweep_of(&invoice).await;
    assert_ne!(swept.id, failed.id);
    assert_eq!(swept.status, SweepStatus::Confirmed);
    assert_eq!(env.anvil.usdc_balance(invoice.deposit_address).await, 0);
    assert_eq!(
        env.posted("hot_wallets", "anvil:USDC").await,
        (3 * USDC).to_string()
    );
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn native_coin_paid_after_a_sweep_is_detected_at_its_own_amount_and_swept_once() {
    let env = env().await;
    let invoice = env.paid_eth_invoice().await;
    let sweeper = env.sweeper(None);
    env.sweep_until_settled(&sweeper).await;
    assert_eq!(
        env.anvil.eth_balance(invoice.deposit_address).await,
        U256::ZERO
    );
    assert_eq!(
        env.swept_flow(&invoice, Address::ZERO).await,
        ETH.to_string()
    );

    // A later payment to the same (now empty) address: 0.3 ETH over, seen as 0.3 ETH.
    let over = 3 * ETH / 10;
    env.anvil
        .send_and_wait(env.eth_payment(&invoice, over))
        .await;
    env.detect().await;
    env.overpaid_by(&invoice, over).await;

    // Swept in turn; the books then expect an empty address and record nothing more.
    env.sweep_until_settled(&sweeper).await;
    assert_eq!(
        env.count("SELECT count(*) FROM sweeps WHERE status = 'confirmed'")
            .await,
        2
    );
    env.detect().await;
    env.detect().await;
    assert_eq!(env.native_recorded(&invoice).await.len(), 2);
    assert_eq!(
        env.posted("payins", "anvil:ETH").await,
        format!("-{}", ETH + over)
    );
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn native_coin_paid_in_the_sweeps_block_before_it_is_swept_posted_and_then_detected() {
    let env = env().await;
    let invoice = env.paid_eth_invoice().await;

    // 0.2 ETH more and the sweep land in one block, the payment first (a higher tip).
    let extra = 2 * ETH / 10;
    env.anvil.rpc("evm_setAutomine", json!([false])).await;
    let mut payment = env.eth_payment(&invoice, extra);
    payment["maxPriorityFeePerGas"] = json!(format!("{:#x}", 50_000_000_000u128));
    payment["maxFeePerGas"] = json!(format!("{:#x}", 100_000_000_000u128));
    let paid = env.anvil.rpc("eth_sendTransaction", json!([payment])).await;
    let sweeper = env.sweeper(None);
    for report in sweeper.run().await {
        assert_eq!(report.unwrap().sent.len(), 1);
    }
    env.anvil.rpc("evm_setAutomine", json!([true])).await;
    env.anvil.mine(1).await;
    env.sweep_until_settled(&sweeper).await;
    let sweep = env.sweep_of(&invoice).await;
    let sweep_receipt = env.receipt(&sweep.tx_hash.unwrap().to_string()).await;
    let paid_receipt = env.receipt(paid.as_str().unwrap()).await;
    assert_eq!(sweep_receipt["blockNumber"], paid_receipt["blockNumber"]);
    assert!(
        hex_u128(&paid_receipt["transactionIndex"]) < hex_u128(&sweep_receipt["transactionIndex"])
    );

    // Everything the address held moved, and exactly that is posted and recorded per deposit.
    assert_eq!(
        env.anvil.eth_balance(invoice.deposit_address).await,
        U256::ZERO
    );
    assert_eq!(
        env.posted("payins", "anvil:ETH").await,
        format!("-{}", ETH + extra)
    );
    assert_eq!(
        env.swept_flow(&invoice, Address::ZERO).await,
        (ETH + extra).to_string()
    );
    // Detection never saw the 0.2 ETH at the address: the sweep's record of it is the proof.
    env.detect().await;
    env.overpaid_by(&invoice, extra).await;
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn a_sweep_reorged_out_and_mined_again_elsewhere_has_its_recorded_block_follow_the_chain() {
    let env = env().await;
    let invoice = env.paid_invoice(7 * USDC).await;
    env.detect_final(&[&invoice]).await;
    env.sweep_until_settled(&env.sweeper(None)).await;
    let sweep = env.sweep_of(&invoice).await;
    assert_eq!(sweep.status, SweepStatus::Confirmed);
    let hash = sweep.tx_hash.unwrap().to_string();
    let recorded_block = |env: &Env| {
        let pool = env.store.pool().clone();
        async move {
            let block: i64 = sqlx::query_scalar("SELECT block_number FROM sweeps WHERE id = $1")
                .bind(sweep.id)
                .fetch_one(&pool)
                .await
                .unwrap();
            u64::try_from(block).unwrap()
        }
    };
    let old_block = recorded_block(&env).await;
    assert_eq!(
        hex_u128(&env.receipt(&hash).await["blockNumber"]),
        u128::from(old_block)
    );

    // A reorg from the sweep's block takes it off the chain (anvil does not return it to its
    // pool); healing sends the same bytes again and they are mined in a later block.
    let head = hex_u128(&env.anvil.rpc("eth_blockNumber", json!([])).await);
    let depth = u64::try_from(head).unwrap() - old_block + 1;
    env.anvil.rpc("anvil_reorg", json!([depth, []])).await;
    assert!(env.receipt(&hash).await.is_null());
    let relay = env.relay.get().await.unwrap();
    let healed = relay.heal_wallet("anvil", sweep.wallet).await.unwrap();
    assert!(healed.resent >= 1, "{healed:?}");
    let mined_again = env.mined_receipt(&hash).await;
    let new_block = u64::try_from(hex_u128(&mined_again["blockNumber"])).unwrap();
    assert_ne!(new_block, old_block);
    env.anvil.mine(2).await;

    // The books' re-check finds it there: the recorded block follows, once, with its event;
    // the fee the new block charged is what the books hold; the deposit address is read empty
    // at the new block; nothing is reported.
    let books = Pipeline::new(
        env.store.clone(),
        env.chains.clone(),
        ConfirmConfig::default(),
    );
    let (report, open) = books.reconcile_books_now().await;
    assert!(open.is_empty(), "{open:?}");
    assert!(report.violations.is_empty(), "{report:?}");
    assert_eq!(recorded_block(&env).await, new_block);
    let mined = Mined::Sweep {
        id: sweep.id,
        status: SweepStatus::Confirmed,
    };
    assert_eq!(
        env.store.inclusion_moves(&mined).await.unwrap(),
        vec![(old_block, new_block)]
    );
    assert_eq!(env.sweep_of(&invoice).await.status, SweepStatus::Confirmed);
    let fee = receipt_fee(&mined_again);
    let fees: String = sqlx::query_scalar(
        "SELECT coalesce(sum(e.amount), 0)::text FROM ledger_entries e
           JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'network_fees'
          WHERE e.asset = 'anvil:ETH'",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(fees, fee.to_string());
    assert_eq!(
        env.count("SELECT count(*) FROM sweeps WHERE deposits_verified_at IS NOT NULL")
            .await,
        1
    );
    // A second run finds the record true and moves nothing.
    let (_, open) = books.reconcile_books_now().await;
    assert!(open.is_empty(), "{open:?}");
    assert_eq!(env.store.inclusion_moves(&mined).await.unwrap().len(), 1);
    env.store.check_ledger_invariants().await.unwrap();
}
