//! [`Relay::broadcast`]: one delivery of a `payments-broadcast` message.
//!
//! ```text
//! authorized ─plan (gas, fees, nonce floor: RPC, no locks)─▶ reserve (short db transaction,
//!     lock and statement timeouts): lock payment row → allocate nonce (wallet row lock, held
//!     only for the counter bump) → in-flight window check → store the reservation (every
//!     field of the transaction) → commit
//!   ─(fault hook)─▶ sign the reservation (no transaction open, no lock held; Key Vault's
//!     latency and 429 retries delay only this payment; a failure hands the nonce back)
//!   ─(fault hook)─▶ store (short db transaction): lock payment row → take the reservation →
//!     store attempt → authorized→broadcast (event) → commit
//!   ─(fault hook)─▶ record the send's start (payment lock) ─▶ send stored bytes ─(fault hook)─▶
//!   record the answer ─▶ classify
//! authorized with a reservation (an earlier delivery stopped before storing) ─▶ sign the
//!     reserved transaction again (same fields, same nonce) ─▶ store ─▶ send
//! broadcast ─▶ send the stored live attempt again (never a new nonce)
//! ```
//!
//! Every way out either completes the message with an outcome (sent, failed with a reason,
//! ignored) or returns an error so the queue redelivers it; the next delivery resumes from the
//! database. What happens per failure class is in [`meshpay_chain::rpc::classify_send`].
//! Failing a payment after signing (hold released, nonce handed back in the same transaction)
//! is only done when none of its signed bytes can be mined: refused outright, never possibly in
//! a pool, none known to the node. When that cannot be shown the payment is parked for review
//! instead (still `broadcast`, nonce and hold kept).
//!
//! The signed transaction can never cost more than the merchant's hold (quoted `gas_limit ×
//! max_fee_per_gas`): fees are clamped to the quote and the quoted gas limit is signed
//! ([`fees::bound_to_quote`]), on the first signature and on re-signs alike; a transfer that
//! now needs more gas than quoted is not signed (retried, then failed).

mod proof;
mod refused;
mod send;
mod sign;

use alloy::primitives::Address;
use meshpay_domain::PaymentStatus;
use meshpay_store::Payment;
use meshpay_store::transactions::NonceReservation;

use crate::fault::FaultPoint;
use crate::fees::Fees;
use crate::transfer::TransferCall;
use crate::{
    BroadcastOutcome, ChainContext, Delivery, Ignored, Relay, RelayConfigError, RelayError,
};

/// Re-reads after losing a race with another delivery of the same message.
const MAX_RACES: usize = 3;

/// Result of a step that may have lost a race (then: re-read and dispatch again).
pub(super) enum Step {
    Done(BroadcastOutcome),
    Raced,
}

/// What to send, decided before any lock is taken.
pub(super) struct Plan<'a> {
    ctx: &'a ChainContext,
    wallet: Address,
    call: TransferCall,
    gas_limit: u64,
    fees: Fees,
    nonce_floor: u64,
}

/// Why no plan: `Fatal` fails the payment now (nothing was signed); `Retry` is retried, and
/// fails the payment on the last delivery.
pub(super) enum PlanError {
    Fatal(String),
    Retry(RelayError),
}

impl Relay {
    /// Handles one delivery of the broadcast message for `payment_id`.
    pub async fn broadcast(
        &self,
        payment_id: meshpay_domain::PaymentId,
        delivery: Delivery,
    ) -> Result<BroadcastOutcome, RelayError> {
        for _ in 0..MAX_RACES {
            let Some(payment) = self.store.get_payment_unscoped(payment_id).await? else {
                return Ok(BroadcastOutcome::Ignored {
                    payment_id,
                    reason: Ignored::UnknownPayment,
                });
            };
            match payment.status {
                // A suspended merchant's payouts stop before signing; bytes already signed are
                // exposed, so a `broadcast` payment is still re-sent.
                PaymentStatus::Authorized
                    if self.store.merchant_suspended(payment.merchant_id).await? =>
                {
                    let reason = "merchant suspended: requeue after `admin merchant resume`";
                    self.store.flag_for_review(payment_id, reason).await?;
                    return Ok(BroadcastOutcome::Parked {
                        payment_id,
                        reason: reason.to_owned(),
                    });
                }
                PaymentStatus::Authorized => {
                    if let Step::Done(outcome) = self.first_send(&payment, delivery).await? {
                        return Ok(outcome);
                    }
                }
                status if status.is_in_flight() => {
                    // A pending transaction is re-priced first when due; otherwise a broadcast
                    // payment's stored bytes are sent again as before.
                    let repriced = self
                        .reprice(payment_id, crate::RepriceMode::IfDue)
                        .await
                        .inspect_err(|error| {
                            tracing::warn!(payment = %payment_id, %error, "fee check failed")
                        });
                    return match repriced {
                        // Resumed from `stalled`: its bytes may have left every pool meanwhile.
                        Ok(crate::RepriceOutcome::NotDue { resumed: true }) => {
                            self.resend(&payment, delivery).await
                        }
                        Ok(crate::RepriceOutcome::NotDue { .. }) | Err(_)
                            if status == PaymentStatus::Broadcast =>
                        {
                            self.resend(&payment, delivery).await
                        }
                        Ok(outcome) => Ok(BroadcastOutcome::Repriced(outcome)),
                        Err(error) => Err(error),
                    };
                }
                status => {
                    return Ok(BroadcastOutcome::Ignored {
                        payment_id,
                        reason: Ignored::Status(status),
                    });
                }
            }
        }
        Err(RelayError::Contended)
    }

    fn is_last(&self, delivery: Delivery) -> bool {
        delivery.dequeue_count >= self.config.max_deliveries
    }

    async fn first_send(&self, payment: &Payment, delivery: Delivery) -> Result<Step, RelayError> {
        if let Some(reserved) = self.store.nonce_reservation(payment.id).await? {
            tracing::info!(
                payment = %payment.id, from = %reserved.from, nonce = reserved.nonce,
                age = ?reserved.age(), "signing the nonce an earlier delivery reserved"
            );
            return self.sign_store_send(payment, reserved, delivery).await;
        }
        let plan = match self.plan(payment).await {
            Ok(plan) => plan,
            Err(PlanError::Fatal(reason)) => return self.fail_unsigned(payment, reason).await,
            Err(PlanError::Retry(error)) if self.is_last(delivery) => {
                let reason = format!(
                    "{error} (still failing on delivery {})",
                    delivery.dequeue_count
                );
                return self.fail_unsigned(payment, reason).await;
            }
            Err(PlanError::Retry(error)) => return Err(error),
        };
        let Some(reserved) = self.reserve(payment, &plan).await? else {
            return Ok(Step::Raced);
        };
        self.sign_store_send(payment, reserved, delivery).await
    }

    /// A reserved nonce: sign (no lock held), store, send. Also where a delivery resumes when
    /// an earlier one reserved the nonce and stopped before storing: the same transaction is
    /// signed again.
    async fn sign_store_send(
        &self,
        payment: &Payment,
        reserved: NonceReservation,
        delivery: Delivery,
    ) -> Result<Step, RelayError> {
        self.fault_point(FaultPoint::AfterReserveBeforeSign, delivery)?;
        let signed = self.sign_reserved(&reserved).await?;
        self.fault_point(FaultPoint::AfterSignBeforeStore, delivery)?;
        let Some(attempt) = self.store_signed(payment, &reserved, signed).await? else {
            return Ok(Step::Raced);
        };
        self.fault_point(FaultPoint::AfterPersistBeforeSend, delivery)?;
        let ctx = self
            .chains
            .get(&attempt.chain)
            .ok_or_else(|| RelayConfigError::UnknownChain(attempt.chain.clone()))?;
        let outcome = self.send(ctx, attempt, delivery).await?;
        Ok(Step::Done(outcome))
    }
}
