//! [`Pipeline::confirm`]: one delivery of a `payments-confirm` message.
//!
//! ```text
//! broadcast ─claim lease─▶ loop (paced by cadence::next_check, brought forward by a hint or
//!                                the final block appearing (`wake`), up to invocation_wait):
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
//! checked is still one of the payment's attempts on its live nonce (the broadcast step may
//! have replaced it since).
//!
//! Attempts on the live nonce (the live one and those it replaced: fee bumps, a cancellation)
//! are all watched: whichever is mined decides, and its own receipt gives the fee charged. A
//! mined cancellation (`cancelling` payment) ends the payment `cancelled` with its fee charged;
//! a mined transfer confirms it whatever its status (`broadcast`, `stalled`, `cancelling`).
//! Attempts on other nonces (a re-sign) mined park the payment for review before anything is
//! re-sent. While the live transaction is pending, each invocation's last check hands the
//! payment to the broadcast step too, which re-prices it when due (`meshpay_relay::fee_policy`).

mod decide;
mod observe;

use std::time::Instant;

use meshpay_chain::rpc::ConfirmRpc;
use meshpay_domain::{B256, PaymentId, PaymentStatus};
use meshpay_store::Payment;
use meshpay_store::confirmations::{
    CheckOutcome, CheckRecord, ConfirmClaim, Inclusion, QueueDelivery,
};
use meshpay_store::replacements::is_cancellation;
use meshpay_store::transactions::TxAttempt;

use crate::finality::FinalityPolicy;
use crate::receipt::{ExpectedTransfer, ReceiptFacts, Verdict, check_signed_bytes};
use crate::wake::{self, HeadWake, PauseWakes};
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
    /// Flagged for review: nothing moves it until an operator clears the flag.
    UnderReview,
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
    /// The payment's cancellation was mined: cancelled, its network fee charged, the rest of
    /// the hold released; the recipient received nothing.
    Cancelled {
        payment_id: PaymentId,
        tx_hash: B256,
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
    /// Another transaction of the payment than the live one is mined: an operator decides
    /// (nothing is re-sent, confirmed or failed).
    Review(String),
    Final {
        /// The attempt of the live nonce that is mined.
        mined: Box<TxAttempt>,
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
    /// The attempts the live one replaced on its nonce (fee bumps, the transfer a cancellation
    /// replaced): any of them may be the one mined.
    rivals: Vec<TxAttempt>,
    /// The payment's transactions on other nonces (earlier attempts): watched too, so one of
    /// them being mined is seen.
    earlier: Vec<TxAttempt>,
    expected: ExpectedTransfer,
}

/// The stored bytes say what the attempt claims: the payment's transfer, or (a cancellation)
/// a 0-value transfer from the hot wallet to itself.
fn check_attempt_bytes(attempt: &TxAttempt, transfer: &ExpectedTransfer) -> Result<(), String> {
    if is_cancellation(attempt) {
        let cancel = ExpectedTransfer::Native {
            from: attempt.from,
            to: attempt.from,
            amount: meshpay_domain::U256::ZERO,
        };
        return check_signed_bytes(&attempt.raw, attempt.tx_hash, &cancel);
    }
    check_signed_bytes(&attempt.raw, attempt.tx_hash, transfer)
}

impl Pipeline {
    /// Handles one delivery of a confirm message whose queue metadata is unknown.
    pub async fn confirm(&self, message: ConfirmMessage) -> Result<ConfirmOutcome, ConfirmError> {
        self.confirm_delivery(message, None).await
    }

    /// Handles one delivery of a confirm message. `delivery`: the queue message's id and
    /// dequeue count, which let the host's redelivery of a message whose invocation died resume
    /// the polling chain that invocation claimed (see `meshpay_store::confirmations`).
    pub async fn confirm_delivery(
        &self,
        message: ConfirmMessage,
        delivery: Option<QueueDelivery>,
    ) -> Result<ConfirmOutcome, ConfirmError> {
        let payment_id = message.payment_id;
        let ignored = |reason| Ok(ConfirmOutcome::Ignored { payment_id, reason });
        let Some(payment) = self.store.get_payment_unscoped(payment_id).await? else {
            return ignored(Ignored::UnknownPayment);
        };
        match payment.status {
            PaymentStatus::Broadcast | PaymentStatus::Stalled | PaymentStatus::Cancelling => {}
            PaymentStatus::Confirmed => return Ok(ConfirmOutcome::AlreadyConfirmed { payment_id }),
            status => return ignored(Ignored::Status(status)),
        }
        if self
            .store
            .confirmation(payment_id)
            .await?
            .is_some_and(|state| state.last_outcome == Some(CheckOutcome::NeedsReview))
        {
            return ignored(Ignored::UnderReview);
        }
        let lease = self.config.lease();
        let Some(claim) = self
            .store
            .claim_confirm_poller(payment_id, message.chain(), delivery.as_ref(), lease)
            .await?
        else {
            return ignored(Ignored::ChainActive);
        };
        if claim.resumed {
            tracing::info!(
                payment = %payment_id, poller = %claim.poller, seq = claim.next_seq,
                "confirm chain resumed by the redelivery of its message"
            );
        }
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
        let (rivals, earlier): (Vec<_>, Vec<_>) = self
            .store
            .payment_transactions(payment.id)
            .await?
            .into_iter()
            .filter(|other| other.id != attempt.id)
            .partition(|other| other.nonce == attempt.nonce && other.from == attempt.from);
        for watched in std::iter::once(&attempt).chain(&rivals) {
            if let Err(problem) = check_attempt_bytes(watched, &expected) {
                return Ok(Err(format!(
                    "stored transaction {} does not match the payment: {problem}",
                    watched.tx_hash
                )));
            }
        }
        Ok(Ok(Target {
            rpc: rpc.as_ref(),
            policy: FinalityPolicy::of(chain),
            attempt,
            rivals,
            earlier,
            expected,
        }))
    }

    /// The pause before the next check of `attempt` (see [`crate::cadence`]): its age counts
    /// from its first send, or from when it was signed if no send is recorded.
    fn next_check(&self, attempt: &TxAttempt) -> std::time::Duration {
        let sent = attempt.first_sent_at.unwrap_or(attempt.created_at);
        let age = (time::OffsetDateTime::now_utc() - sent)
            .try_into()
            .unwrap_or_default();
        crate::cadence::next_check(
            age,
            self.config.poll_interval_min,
            self.config.poll_interval,
        )
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
        // Registered before the first check, so a hint that arrives while a check runs still
        // brings the next one forward.
        let mut hints = self.wakers.register(payment.id);
        let mut head = match self.heads.get(payment.chain()) {
            Some(watch) if !target.policy.use_finalized => Some(watch.subscribe()),
            _ => None,
        };
        let mut last_seen = claim.last_seen;
        let (mut reorg_seen, mut resent) = (false, false);
        loop {
            hints.checking();
            let head_before = head.as_ref().map_or(0, wake::HeadView::now);
            match self.observe(&target, last_seen, &mut resent).await? {
                Observation::Review(reason) => {
                    tracing::error!(payment = %payment.id, %reason, "parked for review");
                    let record = CheckRecord {
                        detail: Some(reason),
                        reorg_seen,
                        resent,
                        ..CheckRecord::new(CheckOutcome::NeedsReview)
                    };
                    return self.park(payment.id, claim, record).await;
                }
                Observation::Final {
                    mined,
                    receipt,
                    verdict,
                } => {
                    let seen = Seen {
                        reorg: reorg_seen,
                        resent,
                    };
                    return self
                        .decide(payment, claim, &mined, receipt, verdict, seen)
                        .await;
                }
                Observation::Pending {
                    mut record,
                    rebroadcast,
                } => {
                    reorg_seen |= record.reorg_seen;
                    last_seen = record.seen;
                    let checked = tokio::time::Instant::now();
                    let pause = self.next_check(&target.attempt);
                    let out_of_time = Instant::now() + pause > deadline;
                    if rebroadcast || out_of_time {
                        // Still pending after this invocation: the broadcast step checks
                        // whether it is due for re-pricing (or a cancellation is to be sent).
                        let fee_check = record.outcome == CheckOutcome::NotMined
                            || payment.status == PaymentStatus::Cancelling
                                && !is_cancellation(&target.attempt);
                        record.reorg_seen = reorg_seen;
                        record.resent = resent;
                        return self
                            .wait_more(payment.id, claim, record, rebroadcast || fee_check)
                            .await;
                    }
                    // Mined: the block that makes it final; not mined: any new block.
                    let final_block = record.seen.map(|seen| {
                        seen.block_number
                            .saturating_add(target.policy.confirmations)
                    });
                    let wakes = PauseWakes {
                        hint: Some(&mut hints),
                        head: head.as_mut().map(|view| HeadWake {
                            view,
                            above: head_before,
                            target: final_block,
                        }),
                        floor: self.config.poll_interval_min,
                    };
                    let woken = wake::pause(checked, pause, wakes).await;
                    tracing::debug!(
                        payment = %payment.id, woken = woken.as_str(), "confirm checks again"
                    );
                }
            }
        }
    }
}
