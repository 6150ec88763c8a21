//! Wallet healing after a reorg that removes a final payment's mined transaction: anvil does not
//! put reorged transactions back into its pool, so the nonce stays open until healing re-sends
//! the exact bytes that were mined; the wallet's later payments wait behind it until then.

use alloy::primitives::{Address, B256, U256};
use meshpay_confirm::{ConfirmMessage, ConfirmOutcome, SettleOutcome};
use meshpay_domain::PaymentStatus;
use meshpay_relay::{BroadcastOutcome, Delivery, RepriceOutcome};
use meshpay_store::Payment;
use meshpay_store::books::Mined;
use meshpay_testkit::assets::asset;
use meshpay_testkit::payment::{PaymentSetup, fresh_address};

use crate::support::ConfirmStack;

const AMOUNT: u128 = 1_000_000_000_000_000;

impl ConfirmStack {
    /// Removes every block from `block` up to the head (anvil mines empty ones in their place).
    async fn reorg_from(&self, block: u64) {
        let depth = self.block_number().await - block + 1;
        self.reorg(depth).await;
    }

    /// An ETH payment from `wallet`, broadcast (in the pool, not mined).
    async fn broadcast_from(&self, wallet: Address) -> (Payment, B256) {
        let payment = PaymentSetup::new(asset("ETH"), AMOUNT)
            .recipient(fresh_address())
            .hot_wallet(Some(wallet))
            .authorize(&self.store, self.merchant)
            .await;
        match self
            .relay()
            .broadcast(payment.id, Delivery::FIRST)
            .await
            .unwrap()
        {
            BroadcastOutcome::Sent(sent) => (self.payment_now(payment.id).await, sent.tx_hash),
            other => panic!("expected Sent, got {other:?}"),
        }
    }

    /// Confirm checks (one block between them) until the payment is confirmed or cancelled.
    async fn decided(&self, payment: &Payment) -> ConfirmOutcome {
        let (outcome, _) = self
            .confirm_until(&self.pipeline(), ConfirmMessage::new(payment.id), 1, |o| {
                matches!(
                    o,
                    ConfirmOutcome::Confirmed { .. } | ConfirmOutcome::Cancelled { .. }
                )
            })
            .await;
        outcome
    }

    async fn settled(&self, payment: &Payment) {
        let outcome = self.decided(payment).await;
        assert!(
            matches!(outcome, ConfirmOutcome::Confirmed { .. }),
            "{outcome:?}"
        );
        assert!(matches!(
            self.pipeline().settle(payment.id).await.unwrap(),
            SettleOutcome::Settled { .. }
        ));
    }

    fn inclusion_block(receipt: &serde_json::Value) -> u64 {
        let hex = receipt["blockNumber"].as_str().unwrap();
        u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap()
    }

    /// The next payment of the wallet is stuck behind the reorged nonce; healing re-sends the
    /// mined bytes (`mined`) and the next payment settles. Returns the next payment.
    async fn heal_and_move_on(&self, wallet: Address, mined: B256) -> Payment {
        let (next, next_hash) = self.broadcast_from(wallet).await;
        self.mine(2).await;
        assert!(
            self.receipt(next_hash).await.is_null(),
            "the next nonce waits behind the hole"
        );

        let report = self.relay().heal_wallet("anvil", wallet).await.unwrap();
        assert_eq!(report.stopped_at, None, "{report:?}");
        assert!(report.resent >= 1, "{report:?}");
        self.mine(1).await;
        assert!(
            !self.receipt(mined).await.is_null(),
            "the same bytes are mined again"
        );
        self.settled(&next).await;
        // Healing again finds nothing missing.
        let quiet = self.relay().heal_wallet("anvil", wallet).await.unwrap();
        assert_eq!(quiet.resent, 0, "{quiet:?}");
        next
    }

    /// The books' re-check of payments that ended on a receipt finds `mined` in its new block:
    /// the recorded inclusion follows it (one recorded move, status and events unchanged), the
    /// ledger still balances and nothing is reported.
    async fn books_follow_the_new_block(&self, before: &Payment, mined: B256) {
        let old_block = before.block_number.expect("a mined payment has a block");
        let events = self.store.payment_events(before.id).await.unwrap().len();
        let mined_again = self.receipt(mined).await;
        let new_block = ConfirmStack::inclusion_block(&mined_again);
        assert_ne!(new_block, old_block, "re-mined in another block");
        self.mine(2).await;
        let (report, open) = self.pipeline().reconcile_books_now().await;
        assert!(
            !open
                .iter()
                .any(|d| d.kind.ends_with("_reorged") || d.kind == "balance"),
            "{open:?}"
        );
        assert!(report.violations.is_empty(), "{report:?}");
        let moved = self.payment_now(before.id).await;
        assert_eq!(moved.block_number, Some(new_block));
        assert_eq!(
            moved.block_hash.map(|h| h.to_string()),
            mined_again["blockHash"].as_str().map(str::to_owned)
        );
        assert_eq!(moved.status, before.status);
        assert_eq!(moved.version, before.version);
        assert_eq!(
            self.store.payment_events(before.id).await.unwrap().len(),
            events
        );
        let mined = Mined::Payment {
            id: before.id,
            status: before.status,
        };
        assert_eq!(
            self.store.inclusion_moves(&mined).await.unwrap(),
            vec![(old_block, new_block)]
        );
        // A second run finds the record true and moves nothing.
        self.pipeline().reconcile_books_now().await;
        assert_eq!(self.store.inclusion_moves(&mined).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_settled_payments_transfer_reorged_out_is_resent_by_healing_and_the_wallet_moves_on() {
    let stack = ConfirmStack::start(1).await;
    let (payment, hash) = stack.broadcast("ETH", AMOUNT).await;
    let wallet = payment.hot_wallet.unwrap();
    stack.mine(1).await;
    stack.settled(&payment).await;
    let events = stack.store.payment_events(payment.id).await.unwrap().len();

    let block = ConfirmStack::inclusion_block(&stack.receipt(hash).await);
    stack.reorg_from(block).await;
    assert!(stack.receipt(hash).await.is_null());

    let next = stack.heal_and_move_on(wallet, hash).await;

    let settled = stack.payment_now(payment.id).await;
    assert_eq!(settled.status, PaymentStatus::Settled);
    assert_eq!(settled.tx_hash, Some(hash));
    assert_eq!(
        stack.store.payment_events(payment.id).await.unwrap().len(),
        events,
        "re-sending mined bytes changes nothing of the payment"
    );
    stack.books_follow_the_new_block(&settled, hash).await;
    // Each recipient was paid exactly once.
    for paid in [&payment, &next] {
        assert_eq!(
            stack.anvil.eth_balance(paid.recipient).await,
            U256::from(AMOUNT)
        );
    }
    stack.finish().await;
}

#[tokio::test]
async fn a_mined_cancellation_reorged_out_is_resent_by_healing_and_the_wallet_moves_on() {
    let stack = ConfirmStack::start(1).await;
    let (payment, original) = stack.broadcast("ETH", AMOUNT).await;
    let wallet = payment.hot_wallet.unwrap();
    stack
        .store
        .request_cancel(stack.merchant, payment.id)
        .await
        .unwrap();
    let cancel = match stack
        .relay()
        .broadcast(payment.id, Delivery::FIRST)
        .await
        .unwrap()
    {
        BroadcastOutcome::Repriced(RepriceOutcome::Replaced(replacement)) => replacement,
        other => panic!("expected the cancellation, got {other:?}"),
    };
    assert!(cancel.cancellation && cancel.refused.is_none());
    stack.mine(1).await;
    let outcome = stack.decided(&payment).await;
    assert!(
        matches!(outcome, ConfirmOutcome::Cancelled { tx_hash, .. } if tx_hash == cancel.tx_hash),
        "{outcome:?}"
    );
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Cancelled);
    let events = stack.store.payment_events(payment.id).await.unwrap().len();

    let block = ConfirmStack::inclusion_block(&stack.receipt(cancel.tx_hash).await);
    stack.reorg_from(block).await;
    assert!(stack.receipt(cancel.tx_hash).await.is_null());

    stack.heal_and_move_on(wallet, cancel.tx_hash).await;

    // The cancellation was re-sent, never the transfer it replaced.
    assert!(stack.receipt(original).await.is_null());
    assert_eq!(stack.anvil.eth_balance(payment.recipient).await, U256::ZERO);
    let cancelled = stack.payment_now(payment.id).await;
    assert_eq!(cancelled.status, PaymentStatus::Cancelled);
    assert_eq!(
        stack.store.payment_events(payment.id).await.unwrap().len(),
        events
    );
    stack
        .books_follow_the_new_block(&cancelled, cancel.tx_hash)
        .await;
    stack.finish().await;
}
