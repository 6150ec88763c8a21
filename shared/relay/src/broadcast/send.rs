//! Sending the stored bytes and acting on the node's answer.

use meshpay_chain::rpc::{RpcFailure, SendClass, classify_send};
use meshpay_store::Payment;
use meshpay_store::transactions::TxAttempt;

use super::refused::Replacement;
use crate::fault::FaultPoint;
use crate::{
    Ack, BroadcastOutcome, ChainContext, Delivery, Ignored, Relay, RelayConfigError, RelayError,
    SentTransaction,
};

impl Relay {
    pub(super) async fn resend(
        &self,
        payment: &Payment,
        delivery: Delivery,
    ) -> Result<BroadcastOutcome, RelayError> {
        let Some(attempt) = self.store.live_attempt(payment.id).await? else {
            tracing::error!(payment = %payment.id, "broadcast payment without a live transaction");
            return Ok(BroadcastOutcome::Ignored {
                payment_id: payment.id,
                reason: Ignored::NoLiveTransaction,
            });
        };
        let ctx = self
            .chains
            .get(&attempt.chain)
            .ok_or_else(|| RelayConfigError::UnknownChain(attempt.chain.clone()))?;
        tracing::info!(
            payment = %payment.id, tx_hash = %attempt.tx_hash, nonce = attempt.nonce,
            dequeue_count = delivery.dequeue_count, "re-sending the stored transaction"
        );
        self.send(ctx, attempt, delivery).await
    }

    /// Sends the stored bytes and acts on the answer (see [`meshpay_chain::rpc::classify_send`]).
    pub(super) async fn send(
        &self,
        ctx: &ChainContext,
        mut attempt: TxAttempt,
        delivery: Delivery,
    ) -> Result<BroadcastOutcome, RelayError> {
        loop {
            // Exposure first: once this commits, nothing fails the payment on the strength of
            // this send's bytes never having left (a crash may come before its answer is kept).
            if !self.store.begin_send(&attempt).await? {
                return Err(RelayError::Contended);
            }
            let answer = ctx.rpc.send_raw(&attempt.raw).await;
            self.fault_point(FaultPoint::AfterSendBeforeRecord, delivery)?;
            let failure = match answer {
                Ok(hash) => {
                    if hash != attempt.tx_hash {
                        tracing::error!(stored = %attempt.tx_hash, node = %hash, "node reports another hash");
                    }
                    return self.sent(ctx, attempt, Ack::Accepted).await;
                }
                Err(failure) => failure,
            };
            let class = classify_send(&failure);
            tracing::warn!(
                payment = %attempt.payment_id, tx_hash = %attempt.tx_hash, %class, %failure,
                "eth_sendRawTransaction failed"
            );
            match class {
                SendClass::AlreadyKnown => {
                    return self.sent(ctx, attempt, Ack::AlreadyKnown).await;
                }
                SendClass::Unknown => {
                    // The node may have taken the bytes: from now on they count as exposed.
                    self.store
                        .record_send(attempt.id, Err(&failure.to_string()))
                        .await?;
                    return Err(RelayError::Send { class, failure });
                }
                SendClass::NonceTooLow | SendClass::NonceInUse => {
                    // Our nonce is used (mined) or held (pooled): by one of our own
                    // transactions? Before re-signing or waiting, look.
                    let all = self.store.payment_transactions(attempt.payment_id).await?;
                    match known_transaction(ctx, &attempt, &all).await? {
                        Known::Live => {
                            let ack = if class == SendClass::NonceTooLow {
                                Ack::OnChain
                            } else {
                                Ack::Known
                            };
                            return self.sent(ctx, attempt, ack).await;
                        }
                        Known::Other(other) => {
                            self.store
                                .record_refusal(attempt.id, &failure.to_string())
                                .await?;
                            return self.park(&attempt, other_known(&attempt, &other)).await;
                        }
                        Known::None => {}
                    }
                }
                SendClass::Rejected | SendClass::Invalid => {}
            }
            self.store
                .record_refusal(attempt.id, &failure.to_string())
                .await?;
            if crate::replace::is_fee_refusal(&failure) {
                return self.reprice_refused(ctx, &attempt, failure).await;
            }
            match class {
                SendClass::NonceTooLow => {
                    match self
                        .replace_consumed(ctx, &attempt, failure, delivery)
                        .await?
                    {
                        Replacement::Resigned(next) => attempt = *next,
                        Replacement::Done(outcome) => return Ok(outcome),
                    }
                }
                SendClass::NonceInUse => {
                    return self.nonce_in_use(&attempt, failure, delivery).await;
                }
                SendClass::Invalid => return self.fail_signed(ctx, &attempt, &failure).await,
                SendClass::Rejected if self.is_last(delivery) => {
                    return self.fail_signed(ctx, &attempt, &failure).await;
                }
                SendClass::AlreadyKnown | SendClass::Rejected | SendClass::Unknown => {
                    return Err(RelayError::Send { class, failure });
                }
            }
        }
    }

    /// Another sender's transaction holds the attempt's nonce in the pool (none of the payment's
    /// own is known). Failing would release the hold while ours can still be mined (the other one
    /// may be dropped), and handing the nonce back would give it to the next payment, which hits
    /// the same wall. So: wait (the message is redelivered), and on the last delivery park the
    /// payment with its nonce. Once the other transaction is in a final block, a re-send gets
    /// "nonce too low" and the payment is re-signed on a fresh nonce (see
    /// [`Relay::replace_consumed`] for the proof that needs).
    async fn nonce_in_use(
        &self,
        attempt: &TxAttempt,
        failure: RpcFailure,
        delivery: Delivery,
    ) -> Result<BroadcastOutcome, RelayError> {
        if !self.is_last(delivery) {
            return Err(RelayError::Send {
                class: SendClass::NonceInUse,
                failure,
            });
        }
        let node_says = failure
            .node_message()
            .unwrap_or_else(|| failure.to_string());
        let reason = format!(
            "nonce {} of {} is held by another transaction in the node's pool ({node_says}); \
             the payment keeps its nonce and hold: once that transaction is in a final block, \
             a new broadcast message re-signs it on a fresh nonce",
            attempt.nonce, attempt.from
        );
        self.park(attempt, reason).await
    }

    /// Leaves the payment in `broadcast` (nonce and hold kept) and flags it for an operator;
    /// the reconcile timer reports it until someone looks.
    pub(super) async fn park(
        &self,
        attempt: &TxAttempt,
        reason: String,
    ) -> Result<BroadcastOutcome, RelayError> {
        self.store
            .flag_for_review(attempt.payment_id, &reason)
            .await?;
        tracing::error!(
            payment = %attempt.payment_id, tx_hash = %attempt.tx_hash, nonce = attempt.nonce,
            %reason, "payment parked for review"
        );
        Ok(BroadcastOutcome::Parked {
            payment_id: attempt.payment_id,
            reason,
        })
    }

    pub(super) async fn sent(
        &self,
        ctx: &ChainContext,
        attempt: TxAttempt,
        ack: Ack,
    ) -> Result<BroadcastOutcome, RelayError> {
        self.store.record_send(attempt.id, Ok(())).await?;
        Ok(BroadcastOutcome::Sent(SentTransaction {
            payment_id: attempt.payment_id,
            chain: ctx.chain.name.clone(),
            from: attempt.from,
            nonce: attempt.nonce,
            tx_hash: attempt.tx_hash,
            attempt: attempt.attempt,
            ack,
        }))
    }
}

/// What the node knows of a payment's transactions.
pub(super) enum Known {
    None,
    /// The attempt being sent.
    Live,
    /// An earlier (superseded) attempt.
    Other(Box<TxAttempt>),
}

/// Whether the node knows any of the payment's transactions (`all` of its attempts): `live`
/// first, then the earlier ones (one of those known means two transactions of the payment may
/// be mined).
pub(super) async fn known_transaction(
    ctx: &ChainContext,
    live: &TxAttempt,
    all: &[TxAttempt],
) -> Result<Known, RelayError> {
    if ctx.rpc.transaction_known(live.tx_hash).await? {
        return Ok(Known::Live);
    }
    for other in all.iter().filter(|a| a.id != live.id) {
        if ctx.rpc.transaction_known(other.tx_hash).await? {
            return Ok(Known::Other(Box::new(other.clone())));
        }
    }
    Ok(Known::None)
}

/// The park reason when an earlier transaction of the payment turned up.
pub(super) fn other_known(live: &TxAttempt, other: &TxAttempt) -> String {
    format!(
        "an earlier transaction of this payment (attempt {}, nonce {}, {}) is known to the node \
         while attempt {} (nonce {}, {}) is the live one: both may be mined; nothing more is \
         sent or signed until an operator decides",
        other.attempt, other.nonce, other.tx_hash, live.attempt, live.nonce, live.tx_hash
    )
}
