//! Sends the node refused: the transfer re-signed on a fresh nonce when another transaction
//! provably took ours, or the payment failed (hold released, nonce handed back) when none of
//! its bytes can be mined.

use alloy::consensus::TxEnvelope;
use alloy::eips::eip2718::Decodable2718;
use meshpay_chain::rpc::{RpcFailure, SendClass};
use meshpay_domain::{PaymentEvent, PaymentStatus};
use meshpay_store::transactions::{self, AttemptStatus, NewTxAttempt, NonceSource, TxAttempt};
use meshpay_store::{Transition, apply_transition};
use serde_json::json;

use super::proof::Consumer;
use super::send::{Known, known_transaction, other_known};
use super::sign::{bound, check_within_hold, log_bounded};
use crate::fees::Fees;
use crate::transfer::{self, TransferCall, TxParams};
use crate::{Ack, BroadcastOutcome, ChainContext, Delivery, Relay, RelayConfigError, RelayError};

/// What [`Relay::replace_consumed`] did.
pub(super) enum Replacement {
    /// Re-signed on a fresh nonce: send this one.
    Resigned(Box<TxAttempt>),
    /// Nothing re-signed; the delivery ends with this outcome.
    Done(BroadcastOutcome),
}

impl Relay {
    /// "nonce too low" and the node does not know our hash: another transaction may have taken
    /// the nonce. The transfer is signed again on a fresh nonce (after resyncing the counter to
    /// the chain), in one transaction, only with proof that the old bytes can never be mined:
    /// they were never exposed, or a final block shows the nonce used by a transaction that is
    /// none of the payment's ([`Relay::nonce_consumer`]). A final block showing one of ours
    /// settles the question the other way (sent). Without proof nothing is signed: the message
    /// is retried, and on its last delivery the payment is parked for review.
    pub(super) async fn replace_consumed(
        &self,
        ctx: &ChainContext,
        old: &TxAttempt,
        failure: RpcFailure,
        delivery: Delivery,
    ) -> Result<Replacement, RelayError> {
        if old.attempt >= self.config.max_attempts {
            return Err(RelayError::TooManyAttempts(old.attempt));
        }
        let floor = ctx.rpc.pending_nonce(old.from).await?;
        if floor <= old.nonce {
            // The chain still expects our nonce: the error was not about us (another node's
            // view, a reorg). Send again later rather than replace.
            return Err(RelayError::Send {
                class: SendClass::NonceTooLow,
                failure,
            });
        }
        let current = self
            .store
            .live_attempt(old.payment_id)
            .await?
            .filter(|live| live.id == old.id)
            .ok_or(RelayError::Contended)?;
        let proof = if current.may_be_public() {
            let all = self.store.payment_transactions(old.payment_id).await?;
            match self.nonce_consumer(ctx, old.from, old.nonce, &all).await? {
                Consumer::Foreign { hash, block } => format!(
                    "nonce {} was used by transaction {hash} in final block {block}, which is \
                     not one of this payment's",
                    old.nonce
                ),
                Consumer::Ours(mined) if mined.id == current.id => {
                    let outcome = self.sent(ctx, current, Ack::OnChain).await?;
                    return Ok(Replacement::Done(outcome));
                }
                Consumer::Ours(mined) => {
                    let reason = other_known(&current, &mined);
                    return Ok(Replacement::Done(self.park(&current, reason).await?));
                }
                Consumer::Unproven(why) if self.is_last(delivery) => {
                    let reason = format!(
                        "the node answers \"nonce too low\" for nonce {} of {} and does not know \
                         {}, but those bytes may be public and no final block shows who used \
                         the nonce ({why}): not re-signing on a guess",
                        old.nonce, old.from, old.tx_hash
                    );
                    return Ok(Replacement::Done(self.park(&current, reason).await?));
                }
                Consumer::Unproven(why) => {
                    tracing::warn!(
                        payment = %old.payment_id, nonce = old.nonce, %why,
                        "nonce too low without proof of who used it: waiting"
                    );
                    return Err(RelayError::Send {
                        class: SendClass::NonceTooLow,
                        failure,
                    });
                }
            }
        } else {
            format!(
                "nonce {} was used by another transaction; ours was never exposed",
                old.nonce
            )
        };
        let signer = ctx
            .wallets
            .signer(old.from)
            .ok_or(RelayConfigError::NoSigner(old.from))?;
        // Same bound as the first signature (the stored bytes may predate it).
        let payment = self
            .store
            .get_payment_unscoped(old.payment_id)
            .await?
            .ok_or(RelayError::Contended)?;
        let (call, stored) = decode_stored(old)?;
        let stored_fees = Fees {
            max_fee_per_gas_wei: stored.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: stored.max_priority_fee_per_gas_wei,
            capped: false,
        };
        let bounded = bound(&payment, stored.gas_limit, stored_fees)?;
        log_bounded(&payment, stored_fees, &bounded);
        check_within_hold(
            &payment,
            bounded.gas_limit,
            bounded.fees.max_fee_per_gas_wei,
        )?;
        let mut db = self.store.begin().await?;
        let Some(live) = locked_live_attempt(&mut db, old).await? else {
            return Err(RelayError::Contended);
        };
        if !current.may_be_public() && live.may_be_public() {
            // Sent meanwhile by another delivery: "never exposed" no longer holds.
            return Err(RelayError::Contended);
        }
        transactions::set_attempt_status(&mut db, old.id, AttemptStatus::Superseded, Some(&proof))
            .await?;
        let resynced = transactions::resync_nonce(&mut db, &old.chain, old.from, floor).await;
        let allocated = match resynced {
            Ok(()) => transactions::allocate_nonce(&mut db, &old.chain, old.from, floor).await,
            Err(error) => Err(error),
        };
        let alloc = match allocated {
            Ok(alloc) => alloc,
            Err(error) => return Err(self.refused_allocation(db, error).await),
        };
        self.check_backlog(old.from, alloc)?;
        let params = TxParams {
            nonce: alloc.nonce,
            gas_limit: bounded.gas_limit,
            max_fee_per_gas_wei: bounded.fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: bounded.fees.max_priority_fee_per_gas_wei,
            ..stored
        };
        let signed = transfer::sign(signer.as_ref(), old.from, &call, params).await?;
        let new = NewTxAttempt {
            payment_id: old.payment_id,
            chain: old.chain.clone(),
            chain_id: old.chain_id,
            from: old.from,
            nonce: alloc.nonce,
            to: call.to,
            value_wei: call.value_wei,
            gas_limit: params.gas_limit,
            max_fee_per_gas_wei: params.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: params.max_priority_fee_per_gas_wei,
            tx_hash: signed.hash,
            raw: signed.raw,
        };
        let attempt = transactions::insert_attempt(&mut db, &new).await?;
        transactions::point_payment_at(&mut db, &attempt).await?;
        db.commit().await?;
        tracing::warn!(
            payment = %old.payment_id, old_nonce = old.nonce, nonce = attempt.nonce,
            tx_hash = %attempt.tx_hash, %proof, "nonce consumed elsewhere; transaction re-signed"
        );
        Ok(Replacement::Resigned(Box::new(attempt)))
    }

    /// The node refused the bytes. Fails the payment, releases its hold and hands the nonce
    /// back, in one transaction, only if none of its signed bytes can be mined (see
    /// [`meshpay_chain::rpc::classify_send`]): this attempt was never possibly in a pool, and the node knows none
    /// of the payment's transactions. Both are checked under the payment's row lock, which
    /// [`Relay::heal_wallet`] takes for its re-sends too. Otherwise the payment is parked.
    pub(super) async fn fail_signed(
        &self,
        ctx: &ChainContext,
        attempt: &TxAttempt,
        failure: &RpcFailure,
    ) -> Result<BroadcastOutcome, RelayError> {
        let floor = ctx.rpc.pending_nonce(attempt.from).await?;
        let node_says = failure
            .node_message()
            .unwrap_or_else(|| failure.to_string());
        let mut db = self.store.begin().await?;
        let Some((PaymentStatus::Broadcast, version)) =
            transactions::lock_payment(&mut db, attempt.payment_id).await?
        else {
            return Err(RelayError::Contended);
        };
        // Re-read: the stored state (status, exposure) is what counts, not our copy.
        let live = transactions::live_attempt(&mut db, attempt.payment_id).await?;
        let Some(live) = live.filter(|live| live.id == attempt.id) else {
            return Err(RelayError::Contended);
        };
        let blocker = if live.may_be_public() {
            Some(format!(
                "the node refused the transaction ({node_says}), but an earlier send of it was \
                 accepted or went unanswered, so it may be in a pool and can still be mined; \
                 the payment keeps its nonce and hold"
            ))
        } else {
            let all = transactions::payment_attempts(&mut db, live.payment_id).await?;
            match known_transaction(ctx, &live, &all).await? {
                Known::None => None,
                Known::Live => {
                    drop(db);
                    return self.sent(ctx, live, Ack::Known).await;
                }
                Known::Other(other) => Some(other_known(&live, &other)),
            }
        };
        if let Some(reason) = blocker {
            drop(db);
            return self.park(&live, reason).await;
        }
        let reason = format!("transaction refused by the node: {node_says}");
        transactions::set_attempt_status(
            &mut db,
            live.id,
            AttemptStatus::Rejected,
            Some(&failure.to_string()),
        )
        .await?;
        let release = transactions::release_nonce(
            &mut db,
            &live.chain,
            live.from,
            live.nonce,
            floor,
            live.payment_id,
        )
        .await?;
        let mut t = Transition::new(live.payment_id, version, PaymentEvent::fail(reason.clone()));
        let mut data = attempt_json(&live, None, false);
        data["nonce_release"] = json!(format!("{release:?}").to_ascii_lowercase());
        data["error"] = json!(failure.to_string());
        t.data = data;
        apply_transition(&mut db, &t).await?;
        db.commit().await?;
        tracing::warn!(
            payment = %live.payment_id, nonce = live.nonce, ?release, %reason,
            "payment failed: transaction refused"
        );
        Ok(BroadcastOutcome::Failed {
            payment_id: live.payment_id,
            reason,
        })
    }
}

/// Locks the attempt's payment and returns its live transaction as stored now, if that is
/// still `attempt`.
async fn locked_live_attempt(
    db: &mut sqlx::PgConnection,
    attempt: &TxAttempt,
) -> Result<Option<TxAttempt>, RelayError> {
    let Some((PaymentStatus::Broadcast, _)) =
        transactions::lock_payment(db, attempt.payment_id).await?
    else {
        return Ok(None);
    };
    let live = transactions::live_attempt(db, attempt.payment_id).await?;
    Ok(live.filter(|live| live.id == attempt.id))
}

/// The call and parameters of a stored attempt, from its signed bytes.
fn decode_stored(attempt: &TxAttempt) -> Result<(TransferCall, TxParams), RelayError> {
    let corrupt = || RelayError::CorruptStoredTransaction(attempt.tx_hash);
    let envelope = TxEnvelope::decode_2718(&mut attempt.raw.as_slice()).map_err(|_| corrupt())?;
    let signed = envelope.as_eip1559().ok_or_else(corrupt)?;
    let tx = signed.tx();
    let to = tx.to.to().copied().ok_or_else(corrupt)?;
    Ok((
        TransferCall {
            to,
            value_wei: tx.value,
            input: tx.input.clone(),
        },
        TxParams {
            chain_id: tx.chain_id,
            nonce: tx.nonce,
            gas_limit: tx.gas_limit,
            max_fee_per_gas_wei: tx.max_fee_per_gas,
            max_priority_fee_per_gas_wei: tx.max_priority_fee_per_gas,
        },
    ))
}

/// Event data recorded with broadcast/fail events: the attempt's identity and fees.
pub(super) fn attempt_json(
    attempt: &TxAttempt,
    source: Option<NonceSource>,
    capped: bool,
) -> serde_json::Value {
    let mut data = json!({
        "tx_hash": attempt.tx_hash,
        "from": attempt.from,
        "nonce": attempt.nonce,
        "attempt": attempt.attempt,
        "gas_limit": attempt.gas_limit,
        "max_fee_per_gas": attempt.max_fee_per_gas_wei.to_string(),
        "max_priority_fee_per_gas": attempt.max_priority_fee_per_gas_wei.to_string(),
    });
    if let Some(source) = source {
        data["nonce_source"] = json!(format!("{source:?}").to_ascii_lowercase());
    }
    if capped {
        data["fee_capped"] = json!(true);
    }
    data
}
