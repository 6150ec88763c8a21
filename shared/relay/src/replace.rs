//! [`Relay::reprice`]: a payment's transaction re-priced on its own nonce (fee replacement),
//! or replaced by a cancellation, within the merchant's hold. The arithmetic is
//! [`crate::fee_policy`].
//!
//! ```text
//! in flight (broadcast | stalled | cancelling), live attempt L on nonce n
//!   ─ due? (next base fee > L's max fee, or waited `replace_after` and outbid or next in line
//!     on its wallet yet unmined; a cancellation not sent yet is always due)
//!     ── no ──▶ stalled? → Resume (fees allow L again)
//!   ─ fees = max(bump of the highest attempt of n, fresh) ≤ ceiling ── above ──▶ broadcast?
//!     → Stall ("fee market above the quoted maximum"), nothing signed
//!   ─ sign on nonce n (no lock held) ─▶ ONE db transaction under the payment's row lock:
//!     L still live? → L `replaced`, new attempt live, payment points at it (stalled → Resume)
//!   ─▶ record the send's start ─▶ send ─▶ record the answer
//! ```
//!
//! Where it runs: the confirm step polls every in-flight payment; while its live transaction is
//! pending it hands the payment to the `payments-broadcast` queue, whose handler runs this
//! before anything else for an in-flight payment (and `meshpay admin payments replace|cancel`
//! runs it at once). It is idempotent and crash-safe: it acts only if the attempt it priced is
//! still live when the payment's row is locked (a duplicate delivery finds the new one live and
//! is not due), the new bytes are stored before they are sent, and their exposure is recorded
//! before the send ([`meshpay_store::Store::begin_send`]); a crash in between leaves a stored
//! live attempt that the confirm step re-sends. Every replaced attempt keeps its row and may
//! still be mined: the confirm step watches all attempts of the nonce and settles (or cancels)
//! by whichever one is mined, at the fee its receipt shows.

use std::time::Duration;

use meshpay_chain::fees::NATIVE_TRANSFER_GAS;
use meshpay_chain::rpc::{RpcFailure, SendClass, classify_send};
use meshpay_domain::{Amount, AssetKind, B256, PaymentEvent, PaymentId, PaymentStatus};
use meshpay_store::replacements::{is_cancellation, store_replacement};
use meshpay_store::transactions::{self, NewTxAttempt, TxAttempt};
use meshpay_store::{Payment, PaymentPatch, Transition, apply_transition};
use serde_json::json;

use crate::fee_policy::{self, FeePair, Waiting};
use crate::transfer::{self, TransferCall, TxParams};
use crate::{
    Ack, BroadcastOutcome, ChainContext, Relay, RelayConfigError, RelayError, SentTransaction,
};

/// Whether to re-price only when the policy says it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepriceMode {
    /// The pipeline's check: only when due.
    IfDue,
    /// An operator's `replace`: bump now (still within the ceiling).
    Now,
}

/// A replacement that was signed, stored and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub payment_id: PaymentId,
    pub attempt: i32,
    pub nonce: u64,
    pub tx_hash: B256,
    pub replaced: B256,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    /// A 0-value self-transfer cancelling the payment.
    pub cancellation: bool,
    /// The payment left `stalled` with it.
    pub resumed: bool,
    /// The node's refusal, if it refused the new bytes (the replaced one may still be pooled:
    /// the next check bumps again).
    pub refused: Option<String>,
}

/// What [`Relay::reprice`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepriceOutcome {
    /// Nothing to re-price: not in flight, no live transaction, or changed meanwhile.
    NotApplicable(String),
    /// The live transaction can be mined at its price; `resumed`: the payment left `stalled`.
    NotDue {
        resumed: bool,
    },
    Replaced(Replacement),
    /// No replacement fits under the ceiling; `stalled_now`: the payment moved to `stalled`
    /// with `reason` (it was `broadcast`).
    AboveCeiling {
        reason: String,
        stalled_now: bool,
    },
}

impl Relay {
    /// Re-prices (or, for a `cancelling` payment, cancels) the payment's transaction on its
    /// nonce when due (`mode`), within the hold. See the module docs.
    pub async fn reprice(
        &self,
        payment_id: PaymentId,
        mode: RepriceMode,
    ) -> Result<RepriceOutcome, RelayError> {
        let not_applicable = |why: String| Ok(RepriceOutcome::NotApplicable(why));
        let Some(payment) = self.store.get_payment_unscoped(payment_id).await? else {
            return not_applicable(format!("payment {payment_id} does not exist"));
        };
        if !payment.status.is_in_flight() {
            return not_applicable(format!(
                "payment {payment_id} is {}: only a broadcast, stalled or cancelling payment \
                 has a pending transaction to replace",
                payment.status
            ));
        }
        let Some(live) = self.store.live_attempt(payment_id).await? else {
            return not_applicable(format!("payment {payment_id} has no live transaction"));
        };
        let ctx = self
            .chains
            .get(&live.chain)
            .ok_or_else(|| RelayConfigError::UnknownChain(live.chain.clone()))?;
        let cancelling = payment.status == PaymentStatus::Cancelling;
        let must_cancel = cancelling && !is_cancellation(&live);
        let fresh = ctx.fees.fees(ctx.rpc.as_ref()).await?;
        let fresh = FeePair {
            max_fee_per_gas_wei: fresh.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fresh.max_priority_fee_per_gas_wei,
        };
        let base_fee = ctx.rpc.next_base_fee().await?;
        let signed = fee_pair(&live);
        let mut waiting = Waiting {
            long_enough: age(&live) >= self.config.replace_after,
            next_in_line: false,
        };
        let mut due = fee_policy::replacement_due(signed, fresh, base_fee, waiting);
        if !due && waiting.long_enough && mode == RepriceMode::IfDue && !must_cancel {
            // Asked only once the fees alone do not make it due: two reads per check of a
            // transaction that has waited.
            waiting.next_in_line = self.unmined_next_in_line(ctx, &live).await;
            due = fee_policy::replacement_due(signed, fresh, base_fee, waiting);
        }
        if mode == RepriceMode::IfDue && !must_cancel && !due {
            let resumed = payment.status == PaymentStatus::Stalled
                && self
                    .change_status(
                        &payment,
                        PaymentEvent::Resume,
                        json!({ "next_base_fee": base_fee.map(|b| b.to_string()),
                                "max_fee_per_gas": live.max_fee_per_gas_wei.to_string() }),
                    )
                    .await?;
            return Ok(RepriceOutcome::NotDue { resumed });
        }
        let gas_limit = if cancelling {
            NATIVE_TRANSFER_GAS
        } else {
            live.gas_limit
        };
        let ceiling = if cancelling {
            fee_policy::ceiling_for_hold(payment.charges.network_fee.base_units(), gas_limit)
                .min(ctx.chain.max_fee_per_gas_cap_wei)
        } else {
            payment.max_fee_per_gas
        };
        let siblings = self.store.payment_transactions(payment_id).await?;
        let previous = highest_of_nonce(&live, &siblings);
        let fees = match fee_policy::replacement(previous, fresh, base_fee, ceiling) {
            Ok(fees) => fees,
            Err(above) => {
                let reason = above.to_string();
                let stalled_now = payment.status == PaymentStatus::Broadcast
                    && self
                        .change_status(
                            &payment,
                            PaymentEvent::stall(reason.clone()),
                            json!({ "needed_wei": above.needed_wei.to_string(),
                                    "ceiling_wei": above.ceiling_wei.to_string(),
                                    "tx_hash": live.tx_hash }),
                        )
                        .await?;
                tracing::warn!(payment = %payment_id, %reason, stalled_now, "no replacement within the hold");
                return Ok(RepriceOutcome::AboveCeiling {
                    reason,
                    stalled_now,
                });
            }
        };
        let call = match self.call_for(ctx, &payment, &live, cancelling) {
            Ok(call) => call,
            Err(why) => return not_applicable(why),
        };
        let signer = ctx
            .wallets
            .signer(live.from)
            .ok_or(RelayConfigError::NoSigner(live.from))?;
        let params = TxParams {
            chain_id: ctx.chain.chain_id,
            nonce: live.nonce,
            gas_limit,
            max_fee_per_gas_wei: fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fees.max_priority_fee_per_gas_wei,
        };
        // Signed before any lock is taken: the row lock below only guards the swap.
        let signed_tx = transfer::sign(signer.as_ref(), live.from, &call, params).await?;
        let new = NewTxAttempt {
            payment_id,
            chain: live.chain.clone(),
            chain_id: live.chain_id,
            from: live.from,
            nonce: live.nonce,
            to: call.to,
            value_wei: call.value_wei,
            gas_limit,
            max_fee_per_gas_wei: fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fees.max_priority_fee_per_gas_wei,
            tx_hash: signed_tx.hash,
            raw: signed_tx.raw,
        };
        let Some((attempt, resumed)) = self.store_swap(&payment, &live, &new).await? else {
            return not_applicable(format!("payment {payment_id} changed meanwhile"));
        };
        tracing::info!(
            payment = %payment_id, nonce = attempt.nonce, replaced = %live.tx_hash,
            tx_hash = %attempt.tx_hash, max_fee = fees.max_fee_per_gas_wei,
            tip = fees.max_priority_fee_per_gas_wei, cancellation = cancelling,
            "transaction replaced on its nonce"
        );
        let refused = self.send_replacement(ctx, &attempt).await?;
        Ok(RepriceOutcome::Replaced(Replacement {
            payment_id,
            attempt: attempt.attempt,
            nonce: attempt.nonce,
            tx_hash: attempt.tx_hash,
            replaced: live.tx_hash,
            max_fee_per_gas_wei: fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fees.max_priority_fee_per_gas_wei,
            cancellation: cancelling,
            resumed,
            refused,
        }))
    }

    /// Whether the wallet's nonce at the node's head is the live attempt's own: every earlier
    /// nonce mined, this one not, so the next block could include it at its price. `false`
    /// when the node cannot say (a failed read proves nothing; a lagging node reports a lower
    /// nonce, which also says `false`).
    async fn unmined_next_in_line(&self, ctx: &ChainContext, live: &TxAttempt) -> bool {
        let read = async {
            let head = ctx.rpc.head(false).await?;
            ctx.rpc.nonce_at(live.from, head.latest).await
        };
        match read.await {
            Ok(nonce) => nonce == live.nonce,
            Err(error) => {
                tracing::debug!(payment = %live.payment_id, %error,
                    "wallet nonce at the head unknown: not re-pricing for it");
                false
            }
        }
    }

    /// The call of the replacement: the payment's own transfer again, or the cancellation (a
    /// 0-value transfer from the wallet to itself).
    fn call_for(
        &self,
        ctx: &ChainContext,
        payment: &Payment,
        live: &TxAttempt,
        cancelling: bool,
    ) -> Result<TransferCall, String> {
        if cancelling {
            return Ok(TransferCall::new(
                AssetKind::Native,
                live.from,
                Amount::ZERO,
            ));
        }
        let asset = ctx
            .chain
            .asset(payment.charges.asset.symbol())
            .ok_or_else(|| format!("asset {} is not configured", payment.charges.asset))?;
        let call = TransferCall::new(asset.kind(), payment.recipient, payment.charges.amount);
        if call.to != live.to || call.value_wei != live.value_wei {
            return Err(format!(
                "the live transaction {} is not the payment's transfer",
                live.tx_hash
            ));
        }
        Ok(call)
    }

    /// The swap under the payment's row lock; `None` when the payment or its live attempt
    /// changed since they were read.
    async fn store_swap(
        &self,
        payment: &Payment,
        live: &TxAttempt,
        new: &NewTxAttempt,
    ) -> Result<Option<(TxAttempt, bool)>, RelayError> {
        let mut db = self.store.begin().await?;
        match transactions::lock_payment(&mut db, payment.id).await? {
            Some((status, version)) if status == payment.status && version == payment.version => {}
            _ => return Ok(None),
        }
        let current = transactions::live_attempt(&mut db, payment.id).await?;
        if current.is_none_or(|current| current.id != live.id) {
            return Ok(None);
        }
        let attempt = store_replacement(&mut db, live, new).await?;
        let resumed = payment.status == PaymentStatus::Stalled;
        if resumed {
            let mut t = Transition::new(payment.id, payment.version, PaymentEvent::Resume);
            t.patch = PaymentPatch {
                tx_hash: Some(attempt.tx_hash),
                ..PaymentPatch::default()
            };
            t.data = json!({ "replaced": live.tx_hash, "tx_hash": attempt.tx_hash });
            apply_transition(&mut db, &t).await?;
        }
        db.commit().await?;
        Ok(Some((attempt, resumed)))
    }

    /// Sends the stored replacement (its start recorded first). `Some(error)`: the node
    /// refused it outright (nothing exposed); an unknown outcome counts as exposed.
    async fn send_replacement(
        &self,
        ctx: &ChainContext,
        attempt: &TxAttempt,
    ) -> Result<Option<String>, RelayError> {
        if !self.store.begin_send(attempt).await? {
            return Ok(Some("no longer the payment's live transaction".into()));
        }
        let failure = match ctx.rpc.send_raw(&attempt.raw).await {
            Ok(_) => None,
            Err(failure) if classify_send(&failure) == SendClass::AlreadyKnown => None,
            Err(failure) => Some(failure),
        };
        let Some(failure) = failure else {
            self.store.record_send(attempt.id, Ok(())).await?;
            return Ok(None);
        };
        let error = failure.to_string();
        if classify_send(&failure) == SendClass::Unknown {
            self.store.record_send(attempt.id, Err(&error)).await?;
        } else {
            self.store.record_refusal(attempt.id, &error).await?;
        }
        tracing::warn!(payment = %attempt.payment_id, tx_hash = %attempt.tx_hash, %error,
            "replacement not accepted by the node");
        Ok(Some(error))
    }

    /// A status change without a new transaction (stall, resume), under the payment's row lock
    /// and version; `false` if the payment changed meanwhile.
    async fn change_status(
        &self,
        payment: &Payment,
        event: PaymentEvent,
        data: serde_json::Value,
    ) -> Result<bool, RelayError> {
        let mut db = self.store.begin().await?;
        match transactions::lock_payment(&mut db, payment.id).await? {
            Some((status, version)) if status == payment.status && version == payment.version => {}
            _ => return Ok(false),
        }
        let mut t = Transition::new(payment.id, payment.version, event);
        t.data = data;
        apply_transition(&mut db, &t).await?;
        db.commit().await?;
        Ok(true)
    }
}

/// Whether a node refused the bytes for their price alone (below its minimum tip, or cheaper
/// than everything in a full pool: "transaction underpriced"; a max fee below the base fee).
/// Not "replacement transaction underpriced": that is another transaction on the nonce.
pub(crate) fn is_fee_refusal(failure: &RpcFailure) -> bool {
    let Some(message) = failure.node_message() else {
        return false;
    };
    let message = message.to_ascii_lowercase();
    (message.contains("underpriced") && !message.contains("replacement"))
        || message.contains("less than block base fee")
}

impl Relay {
    /// The node refused the payment's live attempt for its price ([`is_fee_refusal`]): the
    /// same bump path re-prices it on its nonce now (within the ceiling, or the payment
    /// stalls), instead of retrying the same bytes and parking the payment with its nonce.
    pub(crate) async fn reprice_refused(
        &self,
        ctx: &ChainContext,
        attempt: &TxAttempt,
        failure: RpcFailure,
    ) -> Result<BroadcastOutcome, RelayError> {
        tracing::warn!(
            payment = %attempt.payment_id, tx_hash = %attempt.tx_hash, %failure,
            "refused for its price: re-pricing on its nonce"
        );
        match self.reprice(attempt.payment_id, RepriceMode::Now).await? {
            RepriceOutcome::Replaced(r) if r.refused.is_none() => {
                Ok(BroadcastOutcome::Sent(SentTransaction {
                    payment_id: r.payment_id,
                    chain: ctx.chain.name.clone(),
                    from: attempt.from,
                    nonce: r.nonce,
                    tx_hash: r.tx_hash,
                    attempt: r.attempt,
                    ack: Ack::Accepted,
                }))
            }
            outcome @ RepriceOutcome::AboveCeiling { .. } => {
                Ok(BroadcastOutcome::Repriced(outcome))
            }
            // Refused again, or changed meanwhile: the redelivery looks again (and bumps again
            // while the refusal is about the price, up to the ceiling).
            _ => Err(RelayError::Send {
                class: classify_send(&failure),
                failure,
            }),
        }
    }
}

fn fee_pair(attempt: &TxAttempt) -> FeePair {
    FeePair {
        max_fee_per_gas_wei: attempt.max_fee_per_gas_wei,
        max_priority_fee_per_gas_wei: attempt.max_priority_fee_per_gas_wei,
    }
}

/// The fees to bump from: the highest max fee and tip among the payment's attempts on the live
/// one's nonce (any of them may be the one a node holds).
fn highest_of_nonce(live: &TxAttempt, all: &[TxAttempt]) -> FeePair {
    all.iter()
        .filter(|a| a.nonce == live.nonce && a.from == live.from)
        .fold(fee_pair(live), |acc, a| FeePair {
            max_fee_per_gas_wei: acc.max_fee_per_gas_wei.max(a.max_fee_per_gas_wei),
            max_priority_fee_per_gas_wei: acc
                .max_priority_fee_per_gas_wei
                .max(a.max_priority_fee_per_gas_wei),
        })
}

/// How long the attempt has been waiting since it was signed.
fn age(attempt: &TxAttempt) -> Duration {
    let waited = time::OffsetDateTime::now_utc() - attempt.created_at;
    Duration::try_from(waited).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(message: &str) -> RpcFailure {
        RpcFailure::Rpc {
            method: "eth_sendRawTransaction",
            code: -32000,
            message: message.into(),
        }
    }

    #[test]
    fn refusals_for_the_price_alone_take_the_bump_path_and_a_rival_on_the_nonce_does_not() {
        assert!(is_fee_refusal(&refusal("transaction underpriced")));
        assert!(is_fee_refusal(&refusal(
            "max fee per gas less than block base fee: address 0x.., maxFeePerGas: 1, baseFee: 7"
        )));
        assert!(!is_fee_refusal(&refusal(
            "replacement transaction underpriced"
        )));
        assert!(!is_fee_refusal(&refusal("nonce too low")));
        assert!(!is_fee_refusal(&RpcFailure::Timeout {
            method: "eth_sendRawTransaction"
        }));
    }
}
