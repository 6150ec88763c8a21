//! Before anything is sent: the plan (gas, fees, nonce floor), a short transaction that
//! reserves the nonce with the transaction's fields, the signature with no lock held, and a
//! short transaction that stores the bytes.

use alloy::primitives::Address;
use meshpay_domain::{PaymentEvent, PaymentStatus};
use meshpay_store::transactions::{
    self, NewReservation, NewTxAttempt, NonceAllocation, NonceReservation, NonceSource, TxAttempt,
    WalletHealth,
};
use meshpay_store::{Payment, PaymentPatch, StoreError, Transition, apply_transition};
use serde_json::json;

use super::refused::attempt_json;
use super::{Plan, PlanError, Step};
use crate::fault::{FaultMode, FaultPoint};
use crate::fees::{self, Bounded, Fees, QuotedGas};
use crate::transfer::{self, SignedTransfer, TransferCall, TxParams};
use crate::{BroadcastOutcome, Delivery, Relay, RelayConfigError, RelayError};

impl Relay {
    pub(super) async fn plan(&self, payment: &Payment) -> Result<Plan<'_>, PlanError> {
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
            None => {
                // A halted wallet takes no new payments (its own ones wait for the operator);
                // a stuck one takes none while another wallet is healthy.
                let unhealthy = self
                    .store
                    .unhealthy_wallets(chain_name, self.config.wallet_stuck_after)
                    .await
                    .map_err(|error| PlanError::Retry(error.into()))?;
                let (mut halted, mut stuck) = (Vec::new(), Vec::new());
                for (wallet, health) in unhealthy {
                    match health {
                        WalletHealth::Halted => halted.push(wallet),
                        WalletHealth::Stuck => stuck.push(wallet),
                    }
                }
                ctx.wallets
                    .pick_healthy(payment.id, &halted, &stuck)
                    .ok_or_else(|| {
                        PlanError::Retry(RelayError::AllWalletsHalted(chain_name.to_owned()))
                    })?
            }
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

    /// The first short transaction: the payment still `authorized` at the version read, a
    /// nonce allocated (the wallet's row is locked only until this commits), the window
    /// checked, and every field of the transaction to sign stored as the payment's
    /// reservation. `None`: another delivery moved the payment on first. A reservation another
    /// delivery made meanwhile is returned as it is (both sign the same transaction; one
    /// stores it).
    pub(super) async fn reserve(
        &self,
        payment: &Payment,
        plan: &Plan<'_>,
    ) -> Result<Option<NonceReservation>, RelayError> {
        let ctx = plan.ctx;
        let mut db = self.store.begin().await?;
        transactions::set_timeouts(&mut db, self.config.db_timeouts).await?;
        match transactions::lock_payment(&mut db, payment.id).await? {
            Some((PaymentStatus::Authorized, version)) if version == payment.version => {}
            _ => return Ok(None),
        }
        if let Some(reserved) = transactions::reservation_of(&mut db, payment.id).await? {
            return Ok(Some(reserved));
        }
        let alloc = match transactions::allocate_nonce(
            &mut db,
            &ctx.chain.name,
            plan.wallet,
            plan.nonce_floor,
        )
        .await
        {
            Ok(alloc) => alloc,
            Err(error) => return Err(self.refused_allocation(db, error).await),
        };
        // Over the window: rolled back (dropping `db`), so no nonce is handed out.
        self.check_backlog(plan.wallet, alloc)?;
        check_within_hold(payment, plan.gas_limit, plan.fees.max_fee_per_gas_wei)?;
        let new = NewReservation {
            payment_id: payment.id,
            chain: ctx.chain.name.clone(),
            chain_id: ctx.chain.chain_id,
            from: plan.wallet,
            nonce: alloc.nonce,
            to: plan.call.to,
            value_wei: plan.call.value_wei,
            input: plan.call.input.to_vec(),
            gas_limit: plan.gas_limit,
            max_fee_per_gas_wei: plan.fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: plan.fees.max_priority_fee_per_gas_wei,
            fee_capped: plan.fees.capped,
            source: alloc.source,
        };
        let reserved = transactions::insert_reservation(&mut db, &new).await?;
        db.commit().await?;
        tracing::debug!(
            payment = %payment.id, chain = %ctx.chain.name, from = %plan.wallet,
            nonce = alloc.nonce, source = ?alloc.source, in_flight = alloc.in_flight,
            "nonce reserved"
        );
        Ok(Some(reserved))
    }

    /// Signs the reserved transaction with no transaction open and no row locked, so the
    /// signer's latency and its retries (Key Vault throttling) hold up nothing but this
    /// payment. A failure hands the nonce back (see [`Relay::release_reserved`]) before the
    /// error is returned for the message to be retried.
    pub(super) async fn sign_reserved(
        &self,
        reserved: &NonceReservation,
    ) -> Result<SignedTransfer, RelayError> {
        let signed = async {
            let ctx = self
                .chains
                .get(&reserved.chain)
                .ok_or_else(|| RelayConfigError::UnknownChain(reserved.chain.clone()))?;
            let signer = ctx
                .wallets
                .signer(reserved.from)
                .ok_or(RelayConfigError::NoSigner(reserved.from))?;
            let (call, params) = reserved_transaction(reserved);
            transfer::sign(signer.as_ref(), reserved.from, &call, params).await
        }
        .await;
        match signed {
            Ok(signed) => Ok(signed),
            Err(error) => {
                self.release_reserved(reserved, &error).await?;
                Err(error)
            }
        }
    }

    /// Hands a reservation's nonce back after its signing failed: the counter rewinds, or the
    /// nonce becomes a gap the wallet's next allocation (or reconcile's gap fill) takes. No
    /// signed bytes exist that anyone holds, so the nonce is free; the next delivery reserves
    /// afresh.
    async fn release_reserved(
        &self,
        reserved: &NonceReservation,
        error: &RelayError,
    ) -> Result<(), RelayError> {
        let mut db = self.store.begin().await?;
        transactions::set_timeouts(&mut db, self.config.db_timeouts).await?;
        transactions::lock_payment(&mut db, reserved.payment_id).await?;
        let release = transactions::release_reservation(&mut db, reserved).await?;
        db.commit().await?;
        tracing::warn!(
            payment = %reserved.payment_id, from = %reserved.from, nonce = reserved.nonce,
            ?release, %error, "signing failed: reserved nonce handed back"
        );
        Ok(())
    }

    /// The second short transaction: the signed bytes stored as the payment's attempt, its
    /// reservation taken, authorized → broadcast. `None`: the reservation is gone (another
    /// delivery stored its own signature of it, or it was handed back) or the payment left
    /// `authorized`; these bytes are dropped unsent. A payment that left `authorized` without
    /// a transaction (cancelled meanwhile) hands the reserved nonce back here.
    pub(super) async fn store_signed(
        &self,
        payment: &Payment,
        reserved: &NonceReservation,
        signed: SignedTransfer,
    ) -> Result<Option<TxAttempt>, RelayError> {
        let mut db = self.store.begin().await?;
        transactions::set_timeouts(&mut db, self.config.db_timeouts).await?;
        let version = match transactions::lock_payment(&mut db, payment.id).await? {
            Some((PaymentStatus::Authorized, version)) => version,
            Some(_) => {
                if let Some(release) = transactions::release_reservation(&mut db, reserved).await? {
                    tracing::warn!(
                        payment = %payment.id, nonce = reserved.nonce, ?release,
                        "payment left authorized while signing: reserved nonce handed back"
                    );
                }
                db.commit().await?;
                return Ok(None);
            }
            None => return Ok(None),
        };
        if !transactions::take_reservation(&mut db, reserved.id).await? {
            return Ok(None);
        }
        let new = NewTxAttempt {
            payment_id: payment.id,
            chain: reserved.chain.clone(),
            chain_id: reserved.chain_id,
            from: reserved.from,
            nonce: reserved.nonce,
            to: reserved.to,
            value_wei: reserved.value_wei,
            gas_limit: reserved.gas_limit,
            max_fee_per_gas_wei: reserved.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: reserved.max_priority_fee_per_gas_wei,
            tx_hash: signed.hash,
            raw: signed.raw,
        };
        let attempt = transactions::insert_attempt(&mut db, &new).await?;
        let mut t = Transition::new(payment.id, version, PaymentEvent::Broadcast);
        t.patch = PaymentPatch {
            hot_wallet: Some(reserved.from),
            tx_hash: Some(attempt.tx_hash),
            nonce: Some(attempt.nonce),
            ..PaymentPatch::default()
        };
        t.data = attempt_json(&attempt, Some(reserved.source), reserved.fee_capped);
        apply_transition(&mut db, &t).await?;
        db.commit().await?;
        tracing::info!(
            payment = %payment.id, chain = %reserved.chain, from = %reserved.from,
            nonce = attempt.nonce, tx_hash = %attempt.tx_hash, source = ?reserved.source,
            "transaction signed and stored"
        );
        Ok(Some(attempt))
    }

    /// An allocation the store refused: a counter found behind the chain halts the wallet (in a
    /// transaction of its own, once `db`, which holds the wallet's row lock, is rolled back).
    /// Either way nothing is signed: the message is retried and waits for an operator.
    pub(super) async fn refused_allocation(
        &self,
        db: sqlx::Transaction<'static, sqlx::Postgres>,
        error: StoreError,
    ) -> RelayError {
        let StoreError::WalletBehindChain { chain, wallet, .. } = &error else {
            return error.into();
        };
        if let Err(rollback) = db.rollback().await {
            return StoreError::from(rollback).into();
        }
        let reason = error.to_string();
        if let Err(halt) = self.store.halt_wallet(chain, *wallet, &reason).await {
            return halt.into();
        }
        tracing::error!(%chain, %wallet, %reason, "hot wallet halted: counter behind the chain");
        StoreError::WalletHalted {
            chain: chain.clone(),
            wallet: *wallet,
            reason,
        }
        .into()
    }

    pub(super) fn check_backlog(
        &self,
        wallet: Address,
        alloc: NonceAllocation,
    ) -> Result<(), RelayError> {
        let limit = self.config.max_in_flight_per_wallet;
        // A gap below the counter is always filled: the backlog behind it cannot be mined
        // until it is, so refusing it (and rolling the allocation back) would stall the
        // wallet for good.
        if alloc.source != NonceSource::Gap && alloc.in_flight > limit {
            return Err(RelayError::WalletBacklog {
                wallet,
                in_flight: alloc.in_flight,
                limit,
            });
        }
        Ok(())
    }

    /// `MESHPAY_FAULT`: stop at `point` if that fault is armed, on the first delivery only (so
    /// the redelivery shows what recovery does).
    pub(super) fn fault_point(
        &self,
        point: FaultPoint,
        delivery: Delivery,
    ) -> Result<(), RelayError> {
        let Some(fault) = self.config.fault.filter(|fault| fault.point == point) else {
            return Ok(());
        };
        if delivery.dequeue_count > 1 {
            return Ok(());
        }
        tracing::warn!(?fault, "injected fault: stopping at {}", point.as_str());
        match fault.mode {
            FaultMode::Abort => std::process::abort(),
            FaultMode::Error => Err(RelayError::InjectedFault(point.as_str())),
        }
    }

    /// Fails a payment that has no transaction (nothing signed): releases its hold.
    pub(super) async fn fail_unsigned(
        &self,
        payment: &Payment,
        reason: String,
    ) -> Result<Step, RelayError> {
        let mut db = self.store.begin().await?;
        match transactions::lock_payment(&mut db, payment.id).await? {
            Some((PaymentStatus::Authorized, version)) if version == payment.version => {}
            _ => return Ok(Step::Raced),
        }
        // A reservation of an earlier delivery goes back with the payment's failure.
        let release = match transactions::reservation_of(&mut db, payment.id).await? {
            Some(reserved) => transactions::release_reservation(&mut db, &reserved).await?,
            None => None,
        };
        let mut t = Transition::new(
            payment.id,
            payment.version,
            PaymentEvent::fail(reason.clone()),
        );
        t.data = json!({ "stage": "before_signing" });
        if let Some(release) = release {
            t.data["nonce_release"] = json!(format!("{release:?}").to_ascii_lowercase());
        }
        apply_transition(&mut db, &t).await?;
        db.commit().await?;
        tracing::warn!(payment = %payment.id, %reason, "payment failed before signing");
        Ok(Step::Done(BroadcastOutcome::Failed {
            payment_id: payment.id,
            reason,
        }))
    }
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
pub(super) fn bound(
    payment: &Payment,
    gas_needed: u64,
    fresh: Fees,
) -> Result<Bounded, RelayError> {
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

pub(super) fn log_bounded(payment: &Payment, fresh: Fees, bounded: &Bounded) {
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
pub(super) fn check_within_hold(
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

/// The call and parameters a reservation stands for (what is signed, field for field).
fn reserved_transaction(reserved: &NonceReservation) -> (TransferCall, TxParams) {
    (
        TransferCall {
            to: reserved.to,
            value_wei: reserved.value_wei,
            input: reserved.input.clone().into(),
        },
        TxParams {
            chain_id: reserved.chain_id,
            nonce: reserved.nonce,
            gas_limit: reserved.gas_limit,
            max_fee_per_gas_wei: reserved.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: reserved.max_priority_fee_per_gas_wei,
        },
    )
}
