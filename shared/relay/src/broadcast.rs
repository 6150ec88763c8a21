//! [`Relay::broadcast`]: one delivery of a `payments-broadcast` message.
//!
//! ```text
//! authorized ─plan (gas, fees, nonce floor: RPC, no locks)─▶ ONE db transaction:
//!     lock payment row → allocate nonce (wallet row lock) → sign → store attempt
//!     → authorized→broadcast (version check, event) → commit
//!   ─(fault hook)─▶ send stored bytes ─▶ classify
//! broadcast ─▶ send the stored live attempt again (never a new nonce)
//! ```
//!
//! Every way out either completes the message with an outcome (sent, failed with a reason,
//! ignored) or returns an error so the queue redelivers it; the next delivery resumes from the
//! database. What happens per failure class is in [`meshpay_chain::rpc::classify_send`]. Failing a payment after
//! signing (hold released, nonce handed back in the same transaction) is only done when none of
//! its signed bytes can be mined: refused outright, never possibly in a pool, none known to the
//! node. When that cannot be shown the payment is parked for review instead (still `broadcast`,
//! nonce and hold kept).
//!
//! The signed transaction can never cost more than the merchant's hold (quoted `gas_limit ×
//! max_fee_per_gas`): fees are clamped to the quote and the quoted gas limit is signed
//! ([`fees::bound_to_quote`]), on the first signature and on re-signs alike; a transfer that
//! now needs more gas than quoted is not signed (retried, then failed).

use alloy::consensus::TxEnvelope;
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::Address;
use meshpay_domain::{PaymentEvent, PaymentStatus};
use meshpay_store::transactions::{self, AttemptStatus, NewTxAttempt, NonceAllocation, TxAttempt};
use meshpay_store::{Payment, PaymentPatch, Transition, apply_transition};
use serde_json::json;

use crate::fault::FaultMode;
use crate::fees::{self, Bounded, Fees, QuotedGas};
use crate::transfer::{self, TransferCall, TxParams};
use crate::{
    Ack, BroadcastOutcome, ChainContext, Delivery, Ignored, Relay, RelayError, SentTransaction,
};
use meshpay_chain::rpc::{RpcFailure, SendClass, classify_send};

/// Re-reads after losing a race with another delivery of the same message.
const MAX_RACES: usize = 3;

/// Result of a step that may have lost a race (then: re-read and dispatch again).
enum Step {
    Done(BroadcastOutcome),
    Raced,
}

/// What to send, decided before any lock is taken.
struct Plan<'a> {
    ctx: &'a ChainContext,
    wallet: Address,
    call: TransferCall,
    gas_limit: u64,
    fees: Fees,
    nonce_floor: u64,
}

/// Why no plan: `Fatal` fails the payment now (nothing was signed); `Retry` is retried, and
/// fails the payment on the last delivery.
enum PlanError {
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
                PaymentStatus::Authorized => {
                    if let Step::Done(outcome) = self.first_send(&payment, delivery).await? {
                        return Ok(outcome);
                    }
                }
                PaymentStatus::Broadcast => return self.resend(&payment, delivery).await,
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
        let Some(attempt) = self.sign_and_store(payment, &plan).await? else {
            return Ok(Step::Raced);
        };
        self.fault_point(delivery)?;
        let outcome = self.send(plan.ctx, attempt, delivery).await?;
        Ok(Step::Done(outcome))
    }

    async fn plan(&self, payment: &Payment) -> Result<Plan<'_>, PlanError> {
        let chain_name = payment.chain();
        let ctx = self.chains.get(chain_name).ok_or_else(|| {
            PlanError::Fatal(format!(
                "chain {chain_name} is not configured for broadcasting"
            ))
        })?;
        let symbol = payment.charges.asset.symbol();
        let asset = ctx.chain.asset(symbol).ok_or_else(|| {
            PlanError::Fatal(format!("asset {} is not configured", payment.charges.asset))
        })?;
        let wallet = match payment.hot_wallet {
            Some(wallet) if ctx.wallets.signer(wallet).is_some() => wallet,
            Some(wallet) => {
                return Err(PlanError::Fatal(format!(
                    "no signer for the payment's hot wallet {wallet}"
                )));
            }
            None => ctx.wallets.pick(payment.id),
        };
        let call = TransferCall::new(asset.kind(), payment.recipient, payment.charges.amount);
        let estimate = ctx
            .rpc
            .estimate_gas(call.estimate_request(wallet))
            .await
            .map_err(|failure| PlanError::Retry(RelayError::Rpc(failure)))?;
        let gas_needed = fees::gas_limit(estimate, !call.input.is_empty());
        let fresh = ctx
            .fees
            .fees(ctx.rpc.as_ref())
            .await
            .map_err(|f| PlanError::Retry(f.into()))?;
        let Bounded {
            gas_limit, fees, ..
        } = bound(payment, gas_needed, fresh)
            .inspect(|bounded| log_bounded(payment, fresh, bounded))
            .map_err(PlanError::Retry)?;
        // Nothing signed yet: a row whose hold does not cover its own quote fails now.
        check_within_hold(payment, gas_limit, fees.max_fee_per_gas_wei)
            .map_err(|error| PlanError::Fatal(error.to_string()))?;
        let nonce_floor = ctx
            .rpc
            .pending_nonce(wallet)
            .await
            .map_err(|f| PlanError::Retry(f.into()))?;
        Ok(Plan {
            ctx,
            wallet,
            call,
            gas_limit,
            fees,
            nonce_floor,
        })
    }

    /// The one transaction: nonce, signature, stored bytes and the status change commit
    /// together or not at all. `None`: another delivery got here first.
    async fn sign_and_store(
        &self,
        payment: &Payment,
        plan: &Plan<'_>,
    ) -> Result<Option<TxAttempt>, RelayError> {
        let ctx = plan.ctx;
        let signer = ctx
            .wallets
            .signer(plan.wallet)
            .ok_or_else(|| RelayError::Config(format!("no signer for {}", plan.wallet)))?;
        let mut db = self.store.begin().await?;
        match transactions::lock_payment(&mut db, payment.id).await? {
            Some((PaymentStatus::Authorized, version)) if version == payment.version => {}
            _ => return Ok(None),
        }
        let alloc =
            transactions::allocate_nonce(&mut db, &ctx.chain.name, plan.wallet, plan.nonce_floor)
                .await?;
        self.check_backlog(plan.wallet, alloc)?;
        check_within_hold(payment, plan.gas_limit, plan.fees.max_fee_per_gas_wei)?;
        let params = TxParams {
            chain_id: ctx.chain.chain_id,
            nonce: alloc.nonce,
            gas_limit: plan.gas_limit,
            max_fee_per_gas_wei: plan.fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: plan.fees.max_priority_fee_per_gas_wei,
        };
        let signed = transfer::sign(signer.as_ref(), plan.wallet, &plan.call, params).await?;
        let new = NewTxAttempt {
            payment_id: payment.id,
            chain: ctx.chain.name.clone(),
            chain_id: ctx.chain.chain_id,
            from: plan.wallet,
            nonce: alloc.nonce,
            to: plan.call.to,
            value_wei: plan.call.value_wei,
            gas_limit: plan.gas_limit,
            max_fee_per_gas_wei: plan.fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: plan.fees.max_priority_fee_per_gas_wei,
            tx_hash: signed.hash,
            raw: signed.raw,
        };
        let attempt = transactions::insert_attempt(&mut db, &new).await?;
        let mut t = Transition::new(payment.id, payment.version, PaymentEvent::Broadcast);
        t.patch = PaymentPatch {
            hot_wallet: Some(plan.wallet),
            tx_hash: Some(attempt.tx_hash),
            nonce: Some(attempt.nonce),
            ..PaymentPatch::default()
        };
        t.data = attempt_json(&attempt, Some(alloc), plan.fees.capped);
        apply_transition(&mut db, &t).await?;
        db.commit().await?;
        tracing::info!(
            payment = %payment.id, chain = %ctx.chain.name, from = %plan.wallet,
            nonce = alloc.nonce, tx_hash = %attempt.tx_hash, source = ?alloc.source,
            "transaction signed and stored"
        );
        Ok(Some(attempt))
    }

    fn check_backlog(&self, wallet: Address, alloc: NonceAllocation) -> Result<(), RelayError> {
        let limit = self.config.max_in_flight_per_wallet;
        if alloc.in_flight > limit {
            return Err(RelayError::WalletBacklog {
                wallet,
                in_flight: alloc.in_flight,
                limit,
            });
        }
        Ok(())
    }

    /// `MESHPAY_FAULT`: stop between storing and sending, on the first delivery only (so the
    /// redelivery shows what recovery does).
    fn fault_point(&self, delivery: Delivery) -> Result<(), RelayError> {
        let Some(fault) = self.config.fault else {
            return Ok(());
        };
        if delivery.dequeue_count > 1 {
            return Ok(());
        }
        tracing::warn!(
            ?fault,
            "injected fault: stopping after persist, before send"
        );
        match fault.mode {
            FaultMode::Abort => std::process::abort(),
            FaultMode::Error => Err(RelayError::InjectedFault(
                crate::Fault::AFTER_PERSIST_BEFORE_SEND,
            )),
        }
    }

    /// Fails a payment that has no transaction (nothing signed): releases its hold.
    async fn fail_unsigned(&self, payment: &Payment, reason: String) -> Result<Step, RelayError> {
        let mut db = self.store.begin().await?;
        match transactions::lock_payment(&mut db, payment.id).await? {
            Some((PaymentStatus::Authorized, version)) if version == payment.version => {}
            _ => return Ok(Step::Raced),
        }
        let mut t = Transition::new(
            payment.id,
            payment.version,
            PaymentEvent::fail(reason.clone()),
        );
        t.data = json!({ "stage": "before_signing" });
        apply_transition(&mut db, &t).await?;
        db.commit().await?;
        tracing::warn!(payment = %payment.id, %reason, "payment failed before signing");
        Ok(Step::Done(BroadcastOutcome::Failed {
            payment_id: payment.id,
            reason,
        }))
    }

    async fn resend(
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
        let ctx = self.chains.get(&attempt.chain).ok_or_else(|| {
            RelayError::Config(format!("chain {} is not configured", attempt.chain))
        })?;
        tracing::info!(
            payment = %payment.id, tx_hash = %attempt.tx_hash, nonce = attempt.nonce,
            dequeue_count = delivery.dequeue_count, "re-sending the stored transaction"
        );
        self.send(ctx, attempt, delivery).await
    }

    /// Sends the stored bytes and acts on the answer (see [`meshpay_chain::rpc::classify_send`]).
    async fn send(
        &self,
        ctx: &ChainContext,
        mut attempt: TxAttempt,
        delivery: Delivery,
    ) -> Result<BroadcastOutcome, RelayError> {
        loop {
            let failure = match ctx.rpc.send_raw(&attempt.raw).await {
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
            match class {
                SendClass::NonceTooLow => {
                    attempt = self.replace_consumed(ctx, &attempt, failure).await?;
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
    /// payment with its nonce. Once the other transaction is mined, a re-send gets "nonce too
    /// low" and the payment is re-signed on a fresh nonce.
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
             the payment keeps its nonce and hold: once that transaction is mined, a new \
             broadcast message re-signs it on a fresh nonce",
            attempt.nonce, attempt.from
        );
        self.park(attempt, reason).await
    }

    /// Leaves the payment in `broadcast` (nonce and hold kept) and flags it for an operator;
    /// the reconcile timer reports it until someone looks.
    async fn park(
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

    async fn sent(
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

    /// "nonce too low" and the chain does not know our hash: another transaction of the wallet
    /// took the nonce, so ours can never be mined. Supersede it with the same transfer on a
    /// fresh nonce (after resyncing the counter to the chain), in one transaction.
    async fn replace_consumed(
        &self,
        ctx: &ChainContext,
        old: &TxAttempt,
        failure: RpcFailure,
    ) -> Result<TxAttempt, RelayError> {
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
        let signer = ctx
            .wallets
            .signer(old.from)
            .ok_or_else(|| RelayError::Config(format!("no signer for {}", old.from)))?;
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
        if !holds_live_attempt(&mut db, old).await? {
            return Err(RelayError::Contended);
        }
        let reason = format!("nonce {} was consumed by another transaction", old.nonce);
        transactions::set_attempt_status(&mut db, old.id, AttemptStatus::Superseded, Some(&reason))
            .await?;
        transactions::resync_nonce(&mut db, &old.chain, old.from, floor).await?;
        let alloc = transactions::allocate_nonce(&mut db, &old.chain, old.from, floor).await?;
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
            tx_hash = %attempt.tx_hash, "nonce consumed elsewhere; transaction re-signed"
        );
        Ok(attempt)
    }

    /// The node refused the bytes. Fails the payment, releases its hold and hands the nonce
    /// back, in one transaction, only if none of its signed bytes can be mined (see
    /// [`meshpay_chain::rpc::classify_send`]): this attempt was never possibly in a pool, and the node knows none
    /// of the payment's transactions. Both are checked under the payment's row lock, which
    /// [`Relay::heal_wallet`] takes for its re-sends too. Otherwise the payment is parked.
    async fn fail_signed(
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

/// What the node knows of a payment's transactions.
enum Known {
    None,
    /// The attempt being sent.
    Live,
    /// An earlier (superseded) attempt.
    Other(Box<TxAttempt>),
}

/// Whether the node knows any of the payment's transactions (`all` of its attempts): `live`
/// first, then the earlier ones (one of those known means two transactions of the payment may
/// be mined).
async fn known_transaction(
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
fn other_known(live: &TxAttempt, other: &TxAttempt) -> String {
    format!(
        "an earlier transaction of this payment (attempt {}, nonce {}, {}) is known to the node \
         while attempt {} (nonce {}, {}) is the live one: both may be mined; nothing more is \
         sent or signed until an operator decides",
        other.attempt, other.nonce, other.tx_hash, live.attempt, live.nonce, live.tx_hash
    )
}

/// Locks the attempt's payment and checks `attempt` is still its live transaction.
async fn holds_live_attempt(
    db: &mut sqlx::PgConnection,
    attempt: &TxAttempt,
) -> Result<bool, RelayError> {
    let Some((PaymentStatus::Broadcast, _)) =
        transactions::lock_payment(db, attempt.payment_id).await?
    else {
        return Ok(false);
    };
    let live = transactions::live_attempt(db, attempt.payment_id).await?;
    Ok(live.is_some_and(|live| live.id == attempt.id))
}

/// The call and parameters of a stored attempt, from its signed bytes.
fn decode_stored(attempt: &TxAttempt) -> Result<(TransferCall, TxParams), RelayError> {
    let corrupt = || {
        RelayError::Config(format!(
            "stored transaction {} does not decode",
            attempt.tx_hash
        ))
    };
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
fn attempt_json(
    attempt: &TxAttempt,
    alloc: Option<NonceAllocation>,
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
    if let Some(alloc) = alloc {
        data["nonce_source"] = json!(format!("{:?}", alloc.source).to_ascii_lowercase());
    }
    if capped {
        data["fee_capped"] = json!(true);
    }
    data
}

/// The payment's quoted gas terms.
fn quoted_gas(payment: &Payment) -> QuotedGas {
    QuotedGas {
        gas_limit: payment.gas_limit,
        max_fee_per_gas_wei: payment.max_fee_per_gas,
        max_priority_fee_per_gas_wei: payment.max_priority_fee_per_gas,
    }
}

/// [`fees::bound_to_quote`] for `payment`, refusal as the relay's error.
fn bound(payment: &Payment, gas_needed: u64, fresh: Fees) -> Result<Bounded, RelayError> {
    fees::bound_to_quote(quoted_gas(payment), gas_needed, fresh).map_err(|above| {
        tracing::warn!(
            payment = %payment.id, needed = above.needed, quoted = above.quoted,
            "transfer needs more gas than quoted: not signing"
        );
        RelayError::GasAboveQuote {
            needed: above.needed,
            quoted: above.quoted,
        }
    })
}

fn log_bounded(payment: &Payment, fresh: Fees, bounded: &Bounded) {
    if bounded.clamped {
        tracing::info!(
            payment = %payment.id,
            fresh_max_fee = fresh.max_fee_per_gas_wei,
            fresh_priority_fee = fresh.max_priority_fee_per_gas_wei,
            max_fee = bounded.fees.max_fee_per_gas_wei,
            priority_fee = bounded.fees.max_priority_fee_per_gas_wei,
            "fees clamped to the quote (the transaction may wait for cheaper blocks)"
        );
    }
    if fresh.capped {
        tracing::warn!(payment = %payment.id, "fee estimate clamped to the chain's cap");
    }
}

/// The last check before signing: the transaction's worst case fits the merchant's hold.
fn check_within_hold(
    payment: &Payment,
    gas_limit: u64,
    max_fee_per_gas: u128,
) -> Result<(), RelayError> {
    let worst_case = meshpay_domain::Charges::network_fee_for(gas_limit, max_fee_per_gas);
    if worst_case > payment.charges.network_fee {
        return Err(RelayError::FeeAboveHold {
            worst_case,
            held: payment.charges.network_fee,
        });
    }
    Ok(())
}
