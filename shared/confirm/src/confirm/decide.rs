//! Acting on what the checks saw: confirm, fail or park a final receipt, or wait for more.

use meshpay_domain::{PaymentEvent, PaymentId, PaymentStatus, ResolveError, transition};
use meshpay_store::confirmations::{self, CheckOutcome, CheckRecord, ConfirmClaim, Inclusion};
use meshpay_store::replacements::is_cancellation;
use meshpay_store::transactions::{self, TxAttempt};
use meshpay_store::{Payment, PaymentPatch, Transition, apply_transition};
use serde_json::json;

use super::{ConfirmOutcome, Ignored, Seen};
use crate::receipt::{ReceiptFacts, Verdict};
use crate::{ConfirmError, ConfirmMessage, Pipeline};

impl Pipeline {
    /// A final receipt of `mined` (an attempt of the live nonce): confirm, fail, cancel, or
    /// park for review. `earlier`: what this invocation's previous checks saw (kept in the
    /// record).
    pub(super) async fn decide(
        &self,
        payment: &Payment,
        claim: &ConfirmClaim,
        mined: &TxAttempt,
        receipt: ReceiptFacts,
        verdict: Verdict,
        earlier: Seen,
    ) -> Result<ConfirmOutcome, ConfirmError> {
        let seen = Inclusion {
            tx_hash: receipt.tx_hash,
            block_number: receipt.block_number,
            block_hash: receipt.block_hash,
        };
        // The gas a mined transaction burnt is spent whatever the verdict.
        let network_fee = meshpay_domain::Amount::from_base_units(receipt.network_fee_wei());
        let data = json!({
            "tx_hash": receipt.tx_hash,
            "block_number": receipt.block_number,
            "block_hash": receipt.block_hash,
            "gas_used": receipt.gas_used,
            "effective_gas_price": receipt.effective_gas_price_wei.to_string(),
            "l1_fee": receipt.l1_fee_wei.to_string(),
            "network_fee": network_fee,
        });
        let review = |reason: String| CheckRecord {
            detail: Some(reason),
            seen: Some(seen),
            reorg_seen: earlier.reorg,
            resent: earlier.resent,
            ..CheckRecord::new(CheckOutcome::NeedsReview)
        };
        let failed = |reason: String| {
            (
                PaymentEvent::fail_mined(reason.clone(), network_fee),
                CheckOutcome::Reverted,
                Some(reason),
            )
        };
        let cancellation = is_cancellation(mined);
        let (event, outcome, detail) = match verdict {
            _ if cancellation && payment.status != PaymentStatus::Cancelling => {
                let reason = format!(
                    "a cancellation of this payment ({}) is mined while the payment is {}",
                    receipt.tx_hash, payment.status
                );
                return self.park(payment.id, claim, review(reason)).await;
            }
            // Whatever it did besides, the nonce is used by the cancellation: the transfer can
            // never be mined; the gas it burnt is the merchant's.
            _ if cancellation => (
                PaymentEvent::CancelMined { network_fee },
                CheckOutcome::Cancelled,
                Some(format!(
                    "cancelled by transaction {} in block {}",
                    receipt.tx_hash, receipt.block_number
                )),
            ),
            Verdict::Transferred => (PaymentEvent::Confirm, CheckOutcome::Confirmed, None),
            Verdict::Reverted => failed(format!(
                "transaction {} reverted in block {}",
                receipt.tx_hash, receipt.block_number
            )),
            Verdict::NoTransfer(reason) => failed(reason),
            Verdict::Mismatch(reason) => {
                tracing::error!(payment = %payment.id, tx_hash = %receipt.tx_hash, %reason,
                    "receipt does not prove the payment: parked for review");
                return self.park(payment.id, claim, review(reason)).await;
            }
        };
        // A failure pays its fee from the hold; one the hold cannot cover (the transaction was
        // priced above the quote) is never taken from the merchant: an operator decides. (A
        // transfer is checked at settlement, where its fee is posted.)
        if detail.is_some()
            && let Err(ResolveError::NetworkFeeExceedsHold { charged, held }) =
                payment.charges.charge_network_fee(network_fee)
        {
            let reason = format!(
                "transaction {} failed on chain and was charged a network fee of {charged}, \
                 more than the {held} held for it",
                receipt.tx_hash
            );
            tracing::error!(payment = %payment.id, %reason, "network fee above the hold: parked for review");
            return self.park(payment.id, claim, review(reason)).await;
        }
        let record = CheckRecord {
            detail: detail.clone(),
            seen: Some(seen),
            reorg_seen: earlier.reorg,
            resent: earlier.resent,
            ..CheckRecord::new(outcome)
        };
        let patch = PaymentPatch {
            tx_hash: Some(mined.tx_hash),
            block_hash: Some(receipt.block_hash),
            block_number: Some(receipt.block_number),
            ..PaymentPatch::default()
        };
        if !self
            .commit(payment.id, claim, mined, event, patch, data, &record)
            .await?
        {
            return Ok(ConfirmOutcome::Ignored {
                payment_id: payment.id,
                reason: Ignored::Raced,
            });
        }
        if cancellation {
            tracing::info!(payment = %payment.id, tx_hash = %receipt.tx_hash, %network_fee,
                "payment cancelled on chain; cancellation fee charged, rest of the hold released");
            return Ok(ConfirmOutcome::Cancelled {
                payment_id: payment.id,
                tx_hash: receipt.tx_hash,
            });
        }
        Ok(match detail {
            None => {
                tracing::info!(payment = %payment.id, tx_hash = %receipt.tx_hash,
                    block = receipt.block_number, "payment confirmed");
                ConfirmOutcome::Confirmed {
                    payment_id: payment.id,
                    tx_hash: receipt.tx_hash,
                    block_number: receipt.block_number,
                    block_hash: receipt.block_hash,
                }
            }
            Some(reason) => {
                tracing::warn!(payment = %payment.id, %reason, %network_fee,
                    "payment failed on chain; network fee charged, rest of the hold released");
                ConfirmOutcome::Failed {
                    payment_id: payment.id,
                    reason,
                }
            }
        })
    }

    /// Applies the status change and ends the chain in one transaction. `false`: the payment
    /// is no longer in flight, `attempt` is not on its live nonce any more, or the chain lost
    /// its lease (a review flag) (nothing written).
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        payment_id: PaymentId,
        claim: &ConfirmClaim,
        attempt: &TxAttempt,
        event: PaymentEvent,
        patch: PaymentPatch,
        data: serde_json::Value,
        record: &CheckRecord,
    ) -> Result<bool, ConfirmError> {
        let mut db = self.store.begin().await?;
        let Some((status, version)) = transactions::lock_payment(&mut db, payment_id)
            .await?
            .filter(|(status, _)| status.is_in_flight())
        else {
            drop(db);
            self.store
                .release_confirm_poller(payment_id, claim.poller)
                .await?;
            return Ok(false);
        };
        let live = transactions::live_attempt(&mut db, payment_id).await?;
        let chain_holds =
            confirmations::lock_confirm_chain(&mut db, payment_id, claim.poller).await?;
        let on_live_nonce = live.is_some_and(|live| {
            live.id == attempt.id || (live.nonce == attempt.nonce && live.from == attempt.from)
        });
        if !chain_holds || !on_live_nonce || transition(status, &event).is_err() {
            drop(db);
            self.store
                .release_confirm_poller(payment_id, claim.poller)
                .await?;
            return Ok(false);
        }
        let mut t = Transition::new(payment_id, version, event);
        t.patch = patch;
        t.data = data;
        apply_transition(&mut db, &t).await?;
        confirmations::finish_confirm_chain(&mut db, payment_id, claim.poller, record).await?;
        db.commit().await?;
        Ok(true)
    }

    /// Ends the chain without a status change, keeping the reason.
    pub(super) async fn park(
        &self,
        payment_id: PaymentId,
        claim: &ConfirmClaim,
        record: CheckRecord,
    ) -> Result<ConfirmOutcome, ConfirmError> {
        self.store
            .record_confirm_check(payment_id, claim.poller, &record, None)
            .await?;
        Ok(ConfirmOutcome::Parked {
            payment_id,
            outcome: record.outcome,
            reason: record.detail.unwrap_or_default(),
        })
    }

    /// Not decided in this invocation: continue the chain, or stop it after its total wait.
    pub(super) async fn wait_more(
        &self,
        payment_id: PaymentId,
        claim: &ConfirmClaim,
        mut record: CheckRecord,
        rebroadcast: bool,
    ) -> Result<ConfirmOutcome, ConfirmError> {
        let waited = time::OffsetDateTime::now_utc() - claim.chain_started_at;
        if waited > self.config.max_chain_wait {
            let last = record.detail.take().unwrap_or_default();
            record.detail = Some(format!(
                "no final receipt after {} s of polling (last check: {} {last})",
                waited.whole_seconds(),
                record.outcome.as_str()
            ));
            record.outcome = CheckOutcome::Stalled;
            tracing::warn!(payment = %payment_id, detail = ?record.detail, "confirm polling stalled");
            return self.park(payment_id, claim, record).await;
        }
        self.store
            .record_confirm_check(payment_id, claim.poller, &record, Some(self.config.lease()))
            .await?;
        Ok(ConfirmOutcome::Waiting {
            next: ConfirmMessage::chained(payment_id, claim.poller, claim.next_seq),
            outcome: record.outcome,
            rebroadcast,
        })
    }
}
