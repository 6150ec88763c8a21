//! What wallet healing re-sends for a sweep's nonce: its live transaction while it is in
//! flight, and once a receipt is recorded exactly the mined one (even a replaced one).

use std::time::Duration;

use meshpay_domain::{Address, B256};
use meshpay_store::Store;
use meshpay_store::sweeps::{NewSweep, NewSweepTx, PlanOutcome, Sweep, SweepKind};
use meshpay_store::transactions::{NonceHolder, TxTimeouts};

use crate::support::Ctx;

const CHAIN: &str = "anvil";
const WALLET: Address = Address::repeat_byte(0x11);
const TIMEOUTS: TxTimeouts = TxTimeouts {
    lock: Duration::from_secs(5),
    statement: Duration::from_secs(5),
};

fn signed(byte: u8, max_fee: u128) -> NewSweepTx {
    NewSweepTx {
        tx_hash: B256::repeat_byte(byte),
        raw: vec![byte; 8],
        max_fee_per_gas_wei: max_fee,
        max_priority_fee_per_gas_wei: 1,
    }
}

async fn planned(store: &Store, chain_floor: u64) -> Sweep {
    let new = NewSweep {
        chain: CHAIN.into(),
        kind: SweepKind::Operator,
        wallet: WALLET,
        chain_floor,
        factory: Address::repeat_byte(0x22),
        treasury: Address::repeat_byte(0x33),
        input: vec![1, 2, 3],
        tokens: vec![Address::repeat_byte(0x44)],
        gas_limit: 100_000,
        max_fee_per_gas_wei: 10,
        max_priority_fee_per_gas_wei: 1,
        payments: Vec::new(),
    };
    match store.plan_sweep(&new, TIMEOUTS).await.unwrap() {
        PlanOutcome::Planned(sweep, _) => *sweep,
        PlanOutcome::InFlight => panic!("another sweep in flight"),
    }
}

/// (nonce, hash) of each sweep holder from `from` on.
async fn sweep_holders(store: &Store, from: u64) -> Vec<(u64, B256)> {
    store
        .nonce_holders_from(CHAIN, WALLET, from, 16)
        .await
        .unwrap()
        .into_iter()
        .map(|holder| match holder {
            NonceHolder::Sweep { nonce, tx } => (nonce, tx.tx_hash),
            other => panic!("expected a sweep, got {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_sweeps_nonce_is_held_by_its_live_transaction_then_by_the_mined_one_only() {
    let ctx = Ctx::new().await;
    let store = &ctx.store;
    let sweep = planned(store, 5).await;
    assert_eq!(sweep.nonce, 5);
    assert!(
        sweep_holders(store, 0).await.is_empty(),
        "nothing signed yet"
    );

    let first = store
        .store_sweep_attempt(sweep.id, &signed(0xa1, 10), TIMEOUTS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sweep_holders(store, 5).await, [(5, first.tx_hash)]);
    assert!(
        sweep_holders(store, 6).await.is_empty(),
        "the chain is past it"
    );

    let second = store
        .replace_sweep_attempt(&first, &signed(0xa2, 20), TIMEOUTS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sweep_holders(store, 0).await, [(5, second.tx_hash)]);

    // The replaced transaction is the one a block mined: only its bytes may be re-sent.
    sqlx::query(
        "UPDATE sweeps SET status = 'confirmed', version = version + 1, tx_hash = $2,
                block_number = 40, block_hash = $3 WHERE id = $1",
    )
    .bind(sweep.id)
    .bind(first.tx_hash.to_string())
    .bind(B256::repeat_byte(0xbb).to_string())
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(sweep_holders(store, 0).await, [(5, first.tx_hash)]);
    ctx.finish().await;
}
