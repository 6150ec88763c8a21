//! [`Pipeline::confirm`]: one delivery of a `payments-confirm` message.
//!
//! ```text
//! broadcast ─claim lease─▶ loop (every poll_interval, up to invocation_wait):
//!     receipt? ── none ──▶ known to the node? ── no ──▶ re-send stored raw bytes (once)
//!        │                        └─ yes: pending
//!        └─ mined ──▶ head (+ finalized) ──▶ final? ── no: wait
//!                                            └─ yes ──▶ verify receipt ──▶ decide
//! decide: transferred → confirmed (+ settle message) │ reverted / no Transfer → failed: the
//!         network fee the chain charged is paid from the hold, the rest released │ mismatch, or
//!         a charged fee above the hold → parked for review (reason recorded)
//! undecided → fresh message for the chain (or stalled after max_chain_wait)
//! ```
//!
//! A status change is applied under the payment's row lock and only if the transaction we
//! checked is still the payment's live attempt (the broadcast step may have replaced it).

use std::time::Instant;

use meshpay_domain::{B256, Charges, PaymentEvent, PaymentId, PaymentStatus, ResolveError};
use meshpay_relay::{SendClass, classify_send};
use meshpay_store::confirmations::{self, CheckOutcome, CheckRecord, ConfirmClaim, Inclusion};
use meshpay_store::transactions::{self, TxAttempt};
use meshpay_store::{Payment, PaymentPatch, Transition, apply_transition};
use serde_json::json;

use crate::finality::FinalityPolicy;
use crate::receipt::{ExpectedTransfer, ReceiptFacts, Verdict, check_signed_bytes, verify_receipt};
use crate::rpc::ConfirmRpc;
use crate::{ConfirmError, ConfirmMessage, Pipeline};

/// Why a message needed no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    UnknownPayment,
    /// Not waiting for confirmation (authorized, settled, failed, ...).
    Status(PaymentStatus),
    /// Another polling chain holds the payment's lease (or this delivery is a duplicate).
    ChainActive,
    /// The payment or its transaction changed while we checked; whoever changed it carries on.
    Raced,
}

/// What a delivery achieved; each completes the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// Confirmed now: the settle step takes over.
    Confirmed {
        payment_id: PaymentId,
        tx_hash: B256,
        block_number: u64,
        block_hash: B256,
    },
    /// Confirmed earlier: send the settle message again (the first may have been lost).
    AlreadyConfirmed { payment_id: PaymentId },
    /// Failed (reverted on chain): the network fee the chain charged was paid from the hold,
    /// the rest released.
    Failed {
        payment_id: PaymentId,
        reason: String,
    },
    /// Not final yet: write `next` to `payments-confirm`. `rebroadcast`: re-sending the stored
    /// bytes was refused, so the broadcast step (which owns that policy) gets a message too.
    Waiting {
        next: ConfirmMessage,
        outcome: CheckOutcome,
        rebroadcast: bool,
    },
    /// The chain of messages ended without a decision; the reason is recorded.
    Parked {
        payment_id: PaymentId,
        outcome: CheckOutcome,
        reason: String,
    },
    Ignored {
        payment_id: PaymentId,
        reason: Ignored,
    },
}

/// One check's result.
enum Observation {
    Final {
        receipt: ReceiptFacts,
        verdict: Verdict,
    },
    Pending {
        record: CheckRecord,
        rebroadcast: bool,
    },
}

fn pending(outcome: CheckOutcome, detail: String, seen: Option<Inclusion>) -> Observation {
    Observation::Pending {
        record: CheckRecord {
            detail: Some(detail),
            seen,
            ..CheckRecord::new(outcome)
        },
        rebroadcast: false,
    }
}

/// What earlier checks of this invocation saw.
#[derive(Debug, Clone, Copy)]
struct Seen {
    reorg: bool,
    resent: bool,
}

/// What one invocation checks against.
struct Target<'a> {
    rpc: &'a dyn ConfirmRpc,
    policy: FinalityPolicy,
    attempt: TxAttempt,
    expected: ExpectedTransfer,
}

impl Pipeline {
    /// Handles one delivery of a confirm message.
    pub async fn confirm(&self, message: ConfirmMessage) -> Result<ConfirmOutcome, ConfirmError> {
        let payment_id = message.payment_id;
        let ignored = |reason| Ok(ConfirmOutcome::Ignored { payment_id, reason });
        let Some(payment) = self.store.get_payment_unscoped(payment_id).await? else {
            return ignored(Ignored::UnknownPayment);
        };
        match payment.status {
            PaymentStatus::Broadcast => {}
            PaymentStatus::Confirmed => return Ok(ConfirmOutcome::AlreadyConfirmed { payment_id }),
            status => return ignored(Ignored::Status(status)),
        }
        let lease = self.config.lease();
        let Some(claim) = self
            .store
            .claim_confirm_poller(payment_id, message.chain(), lease)
            .await?
        else {
            return ignored(Ignored::ChainActive);
        };
        let result = self.poll(&payment, &claim).await;
        if result.is_err() {
            // Let the redelivery (or reconcile) start a new chain at once.
            if let Err(error) = self
                .store
                .release_confirm_poller(payment_id, claim.poller)
                .await
            {
                tracing::warn!(payment = %payment_id, %error, "confirm lease not released");
            }
        }
        result
    }

    /// Everything a check needs, or why the payment cannot be checked (parked with a reason).
    async fn target(&self, payment: &Payment) -> Result<Result<Target<'_>, String>, ConfirmError> {
        let (chain, rpc) = match self.chain(payment.chain()) {
            Ok(found) => found,
            Err(error) => return Ok(Err(error.to_string())),
        };
        let Some(asset) = chain.asset(payment.charges.asset.symbol()) else {
            return Ok(Err(format!(
                "asset {} is not configured",
                payment.charges.asset
            )));
        };
        let Some(attempt) = self.store.live_attempt(payment.id).await? else {
            return Ok(Err("broadcast payment without a live transaction".into()));
        };
        let expected = ExpectedTransfer::new(
            asset.kind(),
            attempt.from,
            payment.recipient,
            payment.charges.amount.base_units(),
        );
        if let Err(problem) = check_signed_bytes(&attempt.raw, attempt.tx_hash, &expected) {
            return Ok(Err(format!(
                "stored transaction does not match the payment: {problem}"
            )));
        }
        Ok(Ok(Target {
            rpc: rpc.as_ref(),
            policy: FinalityPolicy::of(chain),
            attempt,
            expected,
        }))
    }

    async fn poll(
        &self,
        payment: &Payment,
        claim: &ConfirmClaim,
    ) -> Result<ConfirmOutcome, ConfirmError> {
        let target = match self.target(payment).await? {
            Ok(target) => target,
            Err(reason) => {
                tracing::error!(payment = %payment.id, %reason, "payment cannot be confirmed");
                let record = CheckRecord {
                    detail: Some(reason),
                    ..CheckRecord::new(CheckOutcome::NeedsReview)
                };
                return self.park(payment.id, claim, record).await;
            }
        };
        let deadline = Instant::now() + self.config.invocation_wait;
        let mut last_seen = claim.last_seen;
        let (mut reorg_seen, mut resent) = (false, false);
        loop {
            match self.observe(&target, last_seen, &mut resent).await? {
                Observation::Final { receipt, verdict } => {
                    let seen = Seen {
                        reorg: reorg_seen,
                        resent,
                    };
                    return self
                        .decide(payment, claim, &target, receipt, verdict, seen)
                        .await;
                }
                Observation::Pending {
                    mut record,
                    rebroadcast,
                } => {
                    reorg_seen |= record.reorg_seen;
                    last_seen = record.seen;
                    let out_of_time = Instant::now() + self.config.poll_interval > deadline;
                    if rebroadcast || out_of_time {
                        record.reorg_seen = reorg_seen;
                        record.resent = resent;
                        return self.wait_more(payment.id, claim, record, rebroadcast).await;
                    }
                    tokio::time::sleep(self.config.poll_interval).await;
                }
            }
        }
    }

    /// One look at the chain.
    async fn observe(
        &self,
        target: &Target<'_>,
        last_seen: Option<Inclusion>,
        resent: &mut bool,
    ) -> Result<Observation, ConfirmError> {
        let hash = target.attempt.tx_hash;
        let receipt = match target.rpc.receipt(hash).await {
            Ok(receipt) => receipt,
            Err(failure) => {
                return Ok(pending(
                    CheckOutcome::RpcError,
                    failure.to_string(),
                    last_seen,
                ));
            }
        };
        let Some(receipt) = receipt else {
            return self.not_mined(target, last_seen.is_some(), resent).await;
        };
        let seen = Inclusion {
            tx_hash: hash,
            block_number: receipt.block_number,
            block_hash: receipt.block_hash,
        };
        let moved = last_seen.is_some_and(|s| s.block_hash != receipt.block_hash);
        if moved {
            tracing::warn!(
                payment = %target.attempt.payment_id, tx_hash = %hash,
                block = receipt.block_number, "transaction is now in another block (reorg)"
            );
        }
        let head = match target.rpc.head(target.policy.use_finalized).await {
            Ok(head) => head,
            Err(failure) => {
                let mut observation =
                    pending(CheckOutcome::RpcError, failure.to_string(), Some(seen));
                if let Observation::Pending { record, .. } = &mut observation {
                    record.reorg_seen = moved;
                }
                return Ok(observation);
            }
        };
        let depth = target.policy.depth(receipt.block_number, head);
        if !depth.is_final() {
            let detail = format!("mined in block {}: {depth}", receipt.block_number);
            let mut observation = pending(CheckOutcome::NotFinal, detail, Some(seen));
            if let Observation::Pending { record, .. } = &mut observation {
                record.reorg_seen = moved;
            }
            return Ok(observation);
        }
        let verdict = verify_receipt(&target.expected, &receipt);
        Ok(Observation::Final { receipt, verdict })
    }

    /// No receipt: pending in the pool, or dropped (never arrived, evicted, or its block left
    /// the chain), in which case the stored bytes are sent again, once per invocation.
    async fn not_mined(
        &self,
        target: &Target<'_>,
        was_mined: bool,
        resent: &mut bool,
    ) -> Result<Observation, ConfirmError> {
        let attempt = &target.attempt;
        if was_mined {
            tracing::warn!(
                payment = %attempt.payment_id, tx_hash = %attempt.tx_hash,
                "transaction left the chain (reorg)"
            );
        }
        let with_reorg = |mut observation: Observation| {
            if let Observation::Pending { record, .. } = &mut observation {
                record.reorg_seen = was_mined;
            }
            observation
        };
        let known = match target.rpc.transaction_known(attempt.tx_hash).await {
            Ok(known) => known,
            Err(failure) => {
                return Ok(with_reorg(pending(
                    CheckOutcome::RpcError,
                    failure.to_string(),
                    None,
                )));
            }
        };
        if known || *resent {
            let detail = if known {
                "pending in the node's pool"
            } else {
                "re-sent; not seen yet"
            };
            return Ok(with_reorg(pending(
                CheckOutcome::NotMined,
                detail.into(),
                None,
            )));
        }
        *resent = true;
        Ok(with_reorg(self.resend(target).await?))
    }

    async fn resend(&self, target: &Target<'_>) -> Result<Observation, ConfirmError> {
        let attempt = &target.attempt;
        let failure = match target.rpc.send_raw(&attempt.raw).await {
            Ok(_) => None,
            Err(failure) if classify_send(&failure) == SendClass::AlreadyKnown => None,
            Err(failure) => Some(failure),
        };
        let Some(failure) = failure else {
            self.store.record_send(attempt.id, Ok(())).await?;
            tracing::warn!(
                payment = %attempt.payment_id, tx_hash = %attempt.tx_hash, nonce = attempt.nonce,
                "dropped transaction re-sent from its stored bytes"
            );
            return Ok(pending(
                CheckOutcome::Resent,
                "re-sent the stored transaction".into(),
                None,
            ));
        };
        let error = failure.to_string();
        self.store.record_send(attempt.id, Err(&error)).await?;
        let class = classify_send(&failure);
        // Refused for a reason the broadcast step decides on (nonce taken by another
        // transaction, invalid, underpriced): hand the payment over to it.
        let rebroadcast = class != SendClass::Unknown;
        tracing::warn!(payment = %attempt.payment_id, %class, %error, rebroadcast, "re-send failed");
        Ok(Observation::Pending {
            record: CheckRecord {
                detail: Some(format!("re-send failed ({class}): {error}")),
                ..CheckRecord::new(CheckOutcome::RpcError)
            },
            rebroadcast,
        })
    }

    /// A final receipt: confirm, fail, or park for review. `earlier`: what this invocation's
    /// previous checks saw (kept in the record).
    async fn decide(
        &self,
        payment: &Payment,
        claim: &ConfirmClaim,
        target: &Target<'_>,
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
        let network_fee =
            Charges::network_fee_charged(receipt.gas_used, receipt.effective_gas_price_wei);
        let data = json!({
            "tx_hash": receipt.tx_hash,
            "block_number": receipt.block_number,
            "block_hash": receipt.block_hash,
            "gas_used": receipt.gas_used,
            "effective_gas_price": receipt.effective_gas_price_wei.to_string(),
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
        let (event, outcome, detail) = match verdict {
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
            block_hash: Some(receipt.block_hash),
            block_number: Some(receipt.block_number),
            ..PaymentPatch::default()
        };
        if !self
            .commit(
                payment.id,
                claim,
                &target.attempt,
                event,
                patch,
                data,
                &record,
            )
            .await?
        {
            return Ok(ConfirmOutcome::Ignored {
                payment_id: payment.id,
                reason: Ignored::Raced,
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
    /// is no longer in broadcast or its live transaction is another one (nothing written).
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
        let Some((PaymentStatus::Broadcast, version)) =
            transactions::lock_payment(&mut db, payment_id).await?
        else {
            drop(db);
            self.store
                .release_confirm_poller(payment_id, claim.poller)
                .await?;
            return Ok(false);
        };
        let live = transactions::live_attempt(&mut db, payment_id).await?;
        if live.is_none_or(|live| live.id != attempt.id) {
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
    async fn park(
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
    async fn wait_more(
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
