//! The hot wallets' books: openings, top-ups, the nonce walk's records (a gap fill's fee),
//! discrepancies kept once per key, and the outbox's dispatch and pruning.

use std::time::Duration;

use meshpay_domain::{Address, Amount, B256, U256};
use meshpay_store::StoreError;
use meshpay_store::books::{
    ConsumedNonce, FoundDiscrepancy, NewOpening, NewTopup, NonceSource, WalletBooks,
};
use meshpay_store::topics;
use meshpay_testkit::assets::{eth, usdc};
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::payment::PaymentSetup;
use uuid::Uuid;

use crate::support::{Ctx, recipient};

const WALLET: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

fn wallet() -> Address {
    WALLET.parse().unwrap()
}

async fn open(ctx: &Ctx, eth_balance: u64) -> WalletBooks {
    ctx.store
        .open_wallet_books(&NewOpening {
            chain: "anvil".into(),
            wallet: wallet(),
            block: 10,
            block_hash: B256::repeat_byte(1),
            nonce: 0,
            balances: vec![(eth(), Amount::from(eth_balance)), (usdc(), Amount::ZERO)],
        })
        .await
        .unwrap()
}

async fn expected_eth(ctx: &Ctx, nonce: u64) -> String {
    ctx.store
        .expected_balance("anvil", wallet(), &eth(), true, 100, nonce)
        .await
        .unwrap()
        .expected
}

#[tokio::test]
async fn the_first_opening_stays_and_posts_each_non_zero_balance() {
    let ctx = Ctx::new().await;
    let books = open(&ctx, 5_000).await;
    assert_eq!((books.opening_block, books.next_nonce), (10, 0));
    let again = ctx
        .store
        .open_wallet_books(&NewOpening {
            chain: "anvil".into(),
            wallet: wallet(),
            block: 99,
            block_hash: B256::ZERO,
            nonce: 7,
            balances: vec![(eth(), Amount::from(1u64))],
        })
        .await
        .unwrap();
    assert_eq!(again, books, "an opening is recorded once");
    assert_eq!(expected_eth(&ctx, 0).await, "5000");
    ctx.finish().await;
}

#[tokio::test]
async fn a_gap_fill_found_on_chain_posts_its_fee_once_and_the_books_count_it() {
    let ctx = Ctx::new().await;
    open(&ctx, 1_000_000).await;
    let fill = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO wallet_nonces (chain, address, next_nonce, chain_nonce) VALUES ('anvil', $1, 1, 0)",
    )
    .bind(WALLET)
    .execute(ctx.store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO wallet_gap_fills (id, chain, address, nonce, gas_limit, max_fee_per_gas,
             max_priority_fee_per_gas, tx_hash, raw_tx, status)
         VALUES ($1, 'anvil', $2, 0, 21000, 10, 1, $3, '\\x00', 'sent')",
    )
    .bind(fill)
    .bind(WALLET)
    .bind(B256::repeat_byte(7).to_string())
    .execute(ctx.store.pool())
    .await
    .unwrap();
    let candidates = ctx
        .store
        .nonce_candidates("anvil", wallet(), 0)
        .await
        .unwrap();
    assert_eq!(candidates[0].source, NonceSource::GapFill(fill));
    let consumed = ConsumedNonce {
        nonce: 0,
        tx_hash: B256::repeat_byte(7),
        block_number: 11,
        block_hash: B256::repeat_byte(2),
        source: NonceSource::GapFill(fill),
        success: true,
        value: U256::ZERO,
        fee: U256::from(21_000u64 * 7),
        to: Some(wallet()),
        token_transfers: Vec::new(),
    };
    assert!(
        ctx.store
            .record_consumed_nonce("anvil", wallet(), &eth(), &consumed)
            .await
            .unwrap()
    );
    assert!(
        !ctx.store
            .record_consumed_nonce("anvil", wallet(), &eth(), &consumed)
            .await
            .unwrap(),
        "a nonce is recorded once"
    );
    assert_eq!(
        expected_eth(&ctx, 1).await,
        (1_000_000 - 21_000 * 7).to_string()
    );
    assert_eq!(
        ctx.store
            .meshpay_nonces("anvil", wallet(), 1)
            .await
            .unwrap(),
        1
    );
    let postings: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger_transactions WHERE kind = 'gap_fill_fee'")
            .fetch_one(ctx.store.pool())
            .await
            .unwrap();
    assert_eq!(postings, 1);
    ctx.finish().await;
}

#[tokio::test]
async fn top_ups_count_after_the_opening_and_are_idempotent_per_transaction_and_log() {
    let ctx = Ctx::new().await;
    open(&ctx, 100).await;
    let topup = NewTopup {
        chain: "anvil".into(),
        wallet: wallet(),
        asset: eth(),
        amount: Amount::from(40u64),
        block_number: 12,
        tx_hash: B256::repeat_byte(9),
        log_index: None,
    };
    let first = ctx.store.record_topup(&topup).await.unwrap();
    assert!(first.created && !first.in_opening);
    let replay = ctx.store.record_topup(&topup).await.unwrap();
    assert_eq!((replay.created, replay.id), (false, first.id));
    let changed = NewTopup {
        amount: Amount::from(41u64),
        ..topup.clone()
    };
    assert!(matches!(
        ctx.store.record_topup(&changed).await,
        Err(StoreError::ReferenceReused)
    ));
    assert_eq!(expected_eth(&ctx, 0).await, "140");
    // Mined at or before the opening block: already in the opening balance.
    let early = NewTopup {
        block_number: 10,
        tx_hash: B256::repeat_byte(8),
        ..topup
    };
    assert!(ctx.store.record_topup(&early).await.unwrap().in_opening);
    assert_eq!(expected_eth(&ctx, 0).await, "140");
    ctx.finish().await;
}

#[tokio::test]
async fn a_discrepancy_stays_one_open_row_until_cleared_or_resolved_with_a_note() {
    let ctx = Ctx::new().await;
    let run = ctx
        .store
        .open_reconcile_run(time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    let found = FoundDiscrepancy {
        dedupe_key: format!("balance:anvil:{WALLET}:anvil:ETH"),
        kind: "balance",
        chain: "anvil".into(),
        wallet: Some(WALLET.into()),
        asset: Some("anvil:ETH".into()),
        payment_id: None,
        expected: Some("10".into()),
        actual: Some("7".into()),
        difference: Some("-3".into()),
        transactions: serde_json::json!([]),
        detail: "three wei short".into(),
    };
    let first = ctx.store.record_discrepancy(run, &found).await.unwrap();
    let again = ctx.store.record_discrepancy(run, &found).await.unwrap();
    assert!(first.new && !again.new);
    assert_eq!(first.id, again.id);
    assert_eq!(
        ctx.store
            .clear_discrepancies(run, std::slice::from_ref(&found.dedupe_key))
            .await
            .unwrap(),
        [first.id]
    );
    let reopened = ctx.store.record_discrepancy(run, &found).await.unwrap();
    assert!(reopened.new && reopened.id != first.id);
    assert!(matches!(
        ctx.store.resolve_discrepancy(reopened.id, "  ").await,
        Err(StoreError::Invalid(_))
    ));
    let resolved = ctx
        .store
        .resolve_discrepancy(reopened.id, "counted by hand")
        .await
        .unwrap();
    assert_eq!(resolved.resolution_note.as_deref(), Some("counted by hand"));
    assert!(
        ctx.store
            .discrepancies(meshpay_store::books::DiscrepancyFilter::Open, 10)
            .await
            .unwrap()
            .is_empty()
    );
    ctx.finish().await;
}

#[tokio::test]
async fn outbox_queue_rows_are_dispatched_once_after_the_grace_and_pruned_after_retention() {
    let ctx = Ctx::new().await;
    let m = MerchantSetup::funded(10u128.pow(9), 10u128.pow(18))
        .create(&ctx.store)
        .await;
    let payment = PaymentSetup::new(usdc(), 1_000_000)
        .recipient(recipient())
        .authorize(&ctx.store, m)
        .await;
    let grace = Duration::from_secs(3600);
    assert!(
        ctx.store
            .dispatch_outbox(topics::PAYMENTS_BROADCAST, grace, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = ctx
        .store
        .dispatch_outbox(topics::PAYMENTS_BROADCAST, Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].payment_id, Some(payment.id));
    assert!(
        ctx.store
            .dispatch_outbox(topics::PAYMENTS_BROADCAST, Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ctx.store.prune_outbox(grace, 10).await.unwrap(), 0);
    assert_eq!(ctx.store.prune_outbox(Duration::ZERO, 10).await.unwrap(), 1);
    let left: Vec<(String,)> = sqlx::query_as("SELECT topic FROM outbox")
        .fetch_all(ctx.store.pool())
        .await
        .unwrap();
    assert!(
        left.iter().all(|(t,)| t == topics::WEBHOOK),
        "undelivered rows stay: {left:?}"
    );
    ctx.finish().await;
}

#[tokio::test]
async fn the_re_check_samples_every_payment_that_ended_on_a_receipt_and_no_other() {
    let ctx = Ctx::new().await;
    let merchant = MerchantSetup::funded(10u128.pow(12), 10u128.pow(20))
        .create(&ctx.store)
        .await;
    // (status, fee charged, re-checked): each with a mined transaction on record in block
    // 51 + its index.
    let cases = [
        ("settled", true, true),
        ("cancelled", true, true),
        ("failed", true, true),
        // Failed before mining, with a block left from a reorged confirmation.
        ("failed", false, false),
        ("confirmed", true, false),
        ("broadcast", false, false),
    ];
    let mut ids = Vec::new();
    for (i, (status, fee, sampled)) in cases.into_iter().enumerate() {
        let payment = PaymentSetup::new(usdc(), 1_000_000)
            .recipient(recipient())
            .authorize(&ctx.store, merchant)
            .await;
        let byte = u8::try_from(i + 1).unwrap();
        // Test-only: the pipeline's records of a mined transaction, written directly.
        sqlx::query(
            "UPDATE payments SET status = $2, tx_hash = $3, block_number = $4, block_hash = $5,
                    network_fee_actual = CASE WHEN $6 THEN 21000 END
              WHERE id = $1",
        )
        .bind(payment.id.as_uuid())
        .bind(status)
        .bind(B256::repeat_byte(byte).to_string())
        .bind(50 + i64::from(byte))
        .bind(B256::repeat_byte(0xb0 + byte).to_string())
        .bind(fee)
        .execute(ctx.store.pool())
        .await
        .unwrap();
        if sampled {
            ids.push(payment.id);
        }
    }
    let sample = ctx.store.inclusion_sample("anvil", 0, 20).await.unwrap();
    let mut sampled: Vec<_> = sample.iter().filter_map(|r| r.mined.payment_id()).collect();
    sampled.sort();
    ids.sort();
    assert_eq!(sampled, ids);
    // Each checked, all canonical but one, which a reorg took off the chain: that one comes
    // first, however recently it was checked.
    let reorged = ids[1];
    for r in &sample {
        let outcome = if r.mined.payment_id() == Some(reorged) {
            "reorged"
        } else {
            "canonical"
        };
        ctx.store
            .record_inclusion_recheck(&r.mined, outcome)
            .await
            .unwrap();
    }
    let first = ctx.store.inclusion_sample("anvil", 0, 1).await.unwrap();
    assert_eq!(first[0].mined.payment_id(), Some(reorged));
    // Below the window's first block: nothing.
    assert!(
        ctx.store
            .inclusion_sample("anvil", 60, 20)
            .await
            .unwrap()
            .is_empty()
    );
}
