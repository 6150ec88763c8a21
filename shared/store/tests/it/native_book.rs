//! What native detection expects a deposit address to hold at a block: recorded less what
//! confirmed sweeps mined at or below that block took; a sweep sent and not finished makes it
//! wait; a planned or failed one changes nothing.

use meshpay_domain::{Address, Amount, B256, InvoiceId};
use meshpay_store::Store;
use meshpay_store::invoices::detection::{NativeBook, ObservedTransfer};
use uuid::Uuid;

use crate::support::{Ctx, merchant_with_usdc, usdc_invoice};

const DEPOSIT: Address = Address::repeat_byte(0xde);

async fn sweep(store: &Store, invoice: InvoiceId, nonce: i64, status: &str, block: i64) -> Uuid {
    let id = Uuid::now_v7();
    let wallet = Address::repeat_byte(0x11).to_checksum(None);
    sqlx::query(
        "INSERT INTO wallet_nonces (chain, address, next_nonce, chain_nonce)
         SELECT chain, $2, 0, 0 FROM invoices WHERE id = $1 ON CONFLICT DO NOTHING",
    )
    .bind(invoice.as_uuid())
    .bind(&wallet)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sweeps (id, chain, kind, status, version, wallet, nonce, factory, treasury,
             input, tokens, gas_limit, max_fee_per_gas, max_priority_fee_per_gas, block_number)
         SELECT $2, chain, 'invoices', $3, 1, $4, $5, 'f', 't', '\\x00', '{}', 1, 1, 1, $6
           FROM invoices WHERE id = $1",
    )
    .bind(invoice.as_uuid())
    .bind(id)
    .bind(status)
    .bind(&wallet)
    .bind(nonce)
    .bind(block)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sweep_payments (sweep_id, invoice_id, tx_hash, log_index)
         SELECT $2, invoice_id, tx_hash, log_index FROM invoice_payments WHERE invoice_id = $1",
    )
    .bind(invoice.as_uuid())
    .bind(id)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sweep_flows (sweep_id, deposit_address, token, amount)
         VALUES ($1, $2, $3, 7)",
    )
    .bind(id)
    .bind(DEPOSIT.to_checksum(None))
    .bind(Address::ZERO.to_checksum(None))
    .execute(store.pool())
    .await
    .unwrap();
    id
}

async fn set_status(store: &Store, sweep: Uuid, status: &str) {
    sqlx::query("UPDATE sweeps SET status = $2 WHERE id = $1")
        .bind(sweep)
        .bind(status)
        .execute(store.pool())
        .await
        .unwrap();
}

fn book(recorded: u128, swept: u128, sweep_in_flight: bool) -> NativeBook {
    NativeBook {
        recorded: Amount::from_u128(recorded),
        swept: Amount::from_u128(swept),
        sweep_in_flight,
    }
}

#[tokio::test]
async fn only_confirmed_sweeps_at_or_below_the_block_are_subtracted_and_a_sent_one_waits() {
    let ctx = Ctx::new().await;
    let store = &ctx.store;
    let merchant = merchant_with_usdc(store, 0, 0).await;
    let id = usdc_invoice(store, merchant, DEPOSIT).await;
    store
        .record_invoice_transfer(&ObservedTransfer {
            invoice: id,
            tx_hash: B256::ZERO,
            log_index: 10,
            token: Address::ZERO,
            asset: None,
            amount: Amount::from_u128(7),
            block_number: 10,
            block_hash: B256::repeat_byte(0xb1),
            dust: false,
        })
        .await
        .unwrap();
    assert_eq!(store.native_book(id, 20).await.unwrap(), book(7, 0, false));

    // Planned: never sent, so it moved nothing yet.
    let first = sweep(store, id, 0, "planned", 15).await;
    assert_eq!(store.native_book(id, 20).await.unwrap(), book(7, 0, false));
    // Broadcast: it may be mined already, by an amount only its receipt tells.
    set_status(store, first, "broadcast").await;
    assert!(store.native_book(id, 20).await.unwrap().sweep_in_flight);
    // Confirmed in block 15: subtracted at 15 and above, not before.
    set_status(store, first, "confirmed").await;
    assert_eq!(store.native_book(id, 20).await.unwrap(), book(7, 7, false));
    assert_eq!(store.native_book(id, 15).await.unwrap(), book(7, 7, false));
    assert_eq!(store.native_book(id, 14).await.unwrap(), book(7, 0, false));
    // Failed: reverted, moved nothing.
    let second = sweep(store, id, 1, "failed", 18).await;
    assert_eq!(store.native_book(id, 20).await.unwrap(), book(7, 7, false));
    set_status(store, second, "confirmed").await;
    assert_eq!(store.native_book(id, 20).await.unwrap(), book(7, 14, false));
}
