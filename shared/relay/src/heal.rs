//! [`Relay::heal_wallet`]: re-sends a wallet's stored transactions that the chain has not seen;
//! [`Relay::heal_wallets`]: every wallet, within a budget (the reconcile timer's pass).
//!
//! By construction every nonce between the chain's pending nonce and the wallet's counter has
//! stored signed bytes (or is a handed-back gap the next allocation fills), so a counter ahead
//! of the chain is repaired by re-sending, lowest nonce first, never by rewinding over
//! transactions that may still be mined (the jam of OpenZeppelin relayer #818/#843). This is
//! per wallet what a confirm check does per payment, but it does not wait for each payment's
//! confirm chain to notice: one lost send stalls every later nonce of the wallet.
//!
//! Whatever holds a nonce is re-sent: a gap fill, an in-flight payment's live attempt, a
//! sweep's transaction, and the attempt a final payment's receipt named (settled, or cancelled
//! by its self-transfer). The last matters after a reorg: nodes need not put reorged
//! transactions back into their pools, and one missing mined cancellation would hold every
//! later nonce. The bytes sent are the ones already signed for that nonce, so at most one of
//! them is ever mined: the pending-nonce read is proof enough.
//!
//! A live attempt's re-send starts by recording the send under the payment's row lock, and only
//! while the attempt is still the payment's live transaction (`Store::begin_send`), so the
//! broadcast step (which takes the same lock to fail a payment) never fails a payment whose
//! bytes are on their way to a node. A mined attempt's re-send is only counted. Re-sending
//! stored bytes never signs anything and never changes a payment's status.

use std::time::Instant;

use alloy::primitives::Address;
use meshpay_store::sweeps::SweepTx;
use meshpay_store::transactions::{NonceHolder, TxAttempt};
use serde::Serialize;

use crate::{ChainContext, Relay, RelayConfigError, RelayError};
use meshpay_chain::rpc::{SendClass, classify_send};

/// Most transactions re-sent per call of [`Relay::heal_wallet`].
const HEAL_BATCH: u32 = 256;

/// Limits of one [`Relay::heal_wallets`] pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealBudget {
    /// No send starts after this (each send is itself bounded by the RPC timeout).
    pub deadline: Instant,
    /// Most `eth_sendRawTransaction` calls in the pass, all wallets together.
    pub max_sends: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HealReport {
    /// The chain's pending nonce for the wallet before healing.
    pub chain_nonce: u64,
    /// The wallet's counter (next nonce to hand out), if it has one.
    pub next_nonce: Option<u64>,
    /// Transactions a node accepted again (including "already known").
    pub resent: u32,
    /// The first transaction the node refused, with the error; later ones were not tried
    /// (they cannot be mined before it anyway).
    pub stopped_at: Option<(u64, String)>,
    /// The budget ran out before every candidate was tried (the next pass carries on).
    pub out_of_budget: bool,
    /// `eth_sendRawTransaction` calls made.
    #[serde(skip)]
    sends: u32,
}

/// One wallet's result in a [`Relay::heal_wallets`] pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalletHeal {
    pub chain: String,
    pub wallet: Address,
    pub report: Option<HealReport>,
    /// Why the wallet could not be healed (RPC or database down); the pass went on.
    pub error: Option<String>,
}

impl WalletHeal {
    /// Whether an operator should hear of it: a failure, or a refused re-send.
    pub fn is_problem(&self) -> bool {
        self.error.is_some() || self.report.as_ref().is_some_and(|r| r.stopped_at.is_some())
    }

    /// Whether anything was re-sent or went wrong (quiet wallets are left out of reports).
    pub fn is_eventful(&self) -> bool {
        self.is_problem() || self.report.as_ref().is_some_and(|r| r.resent > 0)
    }
}

impl Relay {
    pub async fn heal_wallet(
        &self,
        chain: &str,
        wallet: Address,
    ) -> Result<HealReport, RelayError> {
        let ctx = self
            .chains
            .get(chain)
            .ok_or_else(|| RelayConfigError::UnknownChain(chain.to_owned()))?;
        self.heal(ctx, wallet, HEAL_BATCH, None).await
    }

    /// Heals every hot wallet of every chain (chains by name, wallets in pool order) until
    /// `budget` is spent. A wallet that cannot be healed is reported and the pass goes on.
    pub async fn heal_wallets(&self, budget: HealBudget) -> Vec<WalletHeal> {
        let mut chains: Vec<(&String, &ChainContext)> = self.chains.iter().collect();
        chains.sort_by(|a, b| a.0.cmp(b.0));
        let mut sends_left = budget.max_sends;
        let mut results = Vec::new();
        for (name, ctx) in chains {
            for wallet in ctx.wallets.addresses() {
                if sends_left == 0 || Instant::now() >= budget.deadline {
                    return results;
                }
                let limit = sends_left.min(HEAL_BATCH);
                let (report, error) =
                    match self.heal(ctx, wallet, limit, Some(budget.deadline)).await {
                        Ok(report) => {
                            sends_left = sends_left.saturating_sub(report.sends);
                            (Some(report), None)
                        }
                        Err(error) => {
                            tracing::error!(chain = %name, %wallet, %error, "wallet not healed");
                            (None, Some(error.to_string()))
                        }
                    };
                results.push(WalletHeal {
                    chain: name.clone(),
                    wallet,
                    report,
                    error,
                });
            }
        }
        results
    }

    async fn heal(
        &self,
        ctx: &ChainContext,
        wallet: Address,
        max_sends: u32,
        deadline: Option<Instant>,
    ) -> Result<HealReport, RelayError> {
        let chain = ctx.chain.name.as_str();
        let chain_nonce = ctx.rpc.pending_nonce(wallet).await?;
        let counter = self.store.wallet_nonce(chain, wallet).await?;
        let next_nonce = counter.as_ref().map(|w| w.next_nonce);
        if let Some(counter) = &counter {
            // Counter minus the chain's pending nonce: negative is the incident that halts a
            // wallet; positive is nonces handed out that the node has not seen.
            let lag = i128::from(counter.next_nonce) - i128::from(chain_nonce);
            meshpay_telemetry::metrics::wallet_health(
                chain,
                &wallet.to_checksum(None),
                i64::try_from(lag).unwrap_or(i64::MAX),
                counter.halted.is_some(),
            );
        }
        let mut report = HealReport {
            chain_nonce,
            next_nonce,
            ..HealReport::default()
        };
        if next_nonce.is_none_or(|next| next <= chain_nonce) {
            // Nothing of ours is missing from the node's view (the usual case: one RPC call).
            return Ok(report);
        }
        // Gap fills first: they are the lowest nonces a stalled wallet waits for.
        for fill in self
            .store
            .gap_fills_from(chain, wallet, chain_nonce)
            .await?
        {
            if report.sends >= max_sends || deadline.is_some_and(|d| Instant::now() >= d) {
                report.out_of_budget = true;
                return Ok(report);
            }
            report.sends += 1;
            match self.send_fill(ctx, &fill).await? {
                Ok(()) => report.resent += 1,
                Err(error) => {
                    report.stopped_at = Some((fill.nonce, error));
                    return Ok(report);
                }
            }
        }
        // One more than may be sent, to tell "all done" from "budget spent".
        let holders = self
            .store
            .nonce_holders_from(chain, wallet, chain_nonce, max_sends.saturating_add(1))
            .await?;
        for holder in holders {
            if report.sends >= max_sends || deadline.is_some_and(|d| Instant::now() >= d) {
                report.out_of_budget = true;
                break;
            }
            let outcome = match &holder {
                NonceHolder::Live(attempt) => self.resend_locked(ctx, attempt, &mut report).await?,
                NonceHolder::Mined(attempt) => {
                    report.sends += 1;
                    self.resend_mined(ctx, attempt).await?
                }
                NonceHolder::Sweep { tx, .. } => {
                    report.sends += 1;
                    self.resend_sweep(ctx, tx).await?
                }
            };
            match outcome {
                Resend::Accepted => report.resent += 1,
                Resend::Skipped => {}
                Resend::Refused(error) => {
                    report.stopped_at = Some((holder.nonce(), error));
                    break;
                }
            }
        }
        if report.resent > 0 || report.stopped_at.is_some() {
            tracing::warn!(%chain, %wallet, ?report, "wallet healed");
        }
        Ok(report)
    }

    /// Re-sends one stored transaction if it is still the payment's live transaction; the
    /// send's start is recorded first, under the payment's row lock.
    async fn resend_locked(
        &self,
        ctx: &ChainContext,
        attempt: &TxAttempt,
        report: &mut HealReport,
    ) -> Result<Resend, RelayError> {
        if !self.store.begin_send(attempt).await? {
            return Ok(Resend::Skipped);
        }
        report.sends += 1;
        let outcome = match ctx.rpc.send_raw(&attempt.raw).await.err() {
            None => {
                self.store.record_send(attempt.id, Ok(())).await?;
                Resend::Accepted
            }
            Some(failure) => {
                let error = failure.to_string();
                match classify_send(&failure) {
                    SendClass::AlreadyKnown => {
                        self.store.record_send(attempt.id, Ok(())).await?;
                        Resend::Accepted
                    }
                    // Mined meanwhile, or taken by another sender: the payment's own
                    // redelivery decides which (and re-signs if needed).
                    SendClass::NonceTooLow => {
                        self.store.record_refusal(attempt.id, &error).await?;
                        Resend::Skipped
                    }
                    SendClass::Unknown => {
                        self.store.record_send(attempt.id, Err(&error)).await?;
                        Resend::Refused(error)
                    }
                    SendClass::NonceInUse | SendClass::Rejected | SendClass::Invalid => {
                        self.store.record_refusal(attempt.id, &error).await?;
                        Resend::Refused(error)
                    }
                }
            }
        };
        Ok(outcome)
    }
}

impl Relay {
    /// Re-sends the bytes a final payment's receipt named, after a reorg took them out of the
    /// chain: the same transaction, so it cannot pay twice. Only the send is recorded; the
    /// payment and the attempt keep their status, and a refusal is reported, never stored
    /// against the payment.
    async fn resend_mined(
        &self,
        ctx: &ChainContext,
        attempt: &TxAttempt,
    ) -> Result<Resend, RelayError> {
        let outcome = match ctx.rpc.send_raw(&attempt.raw).await.err() {
            None => Resend::Accepted,
            Some(failure) => match classify_send(&failure) {
                SendClass::AlreadyKnown => Resend::Accepted,
                // The chain has the nonce again (these bytes, mined anew).
                SendClass::NonceTooLow => return Ok(Resend::Skipped),
                _ => Resend::Refused(failure.to_string()),
            },
        };
        if matches!(outcome, Resend::Accepted) {
            self.store.record_mined_resend(attempt.id).await?;
            tracing::warn!(payment = %attempt.payment_id, tx_hash = %attempt.tx_hash,
                nonce = attempt.nonce, "mined transaction re-sent after a reorg removed it");
        }
        Ok(outcome)
    }

    /// Re-sends a sweep's stored transaction (its mined one, or its live one), recorded as the
    /// sweep step records its own sends.
    async fn resend_sweep(&self, ctx: &ChainContext, tx: &SweepTx) -> Result<Resend, RelayError> {
        self.store.begin_sweep_send(tx.id).await?;
        let Err(failure) = ctx.rpc.send_raw(&tx.raw).await else {
            self.store.record_sweep_send(tx.id, Ok(()), true).await?;
            return Ok(Resend::Accepted);
        };
        let error = failure.to_string();
        let class = classify_send(&failure);
        if class == SendClass::AlreadyKnown {
            self.store.record_sweep_send(tx.id, Ok(()), true).await?;
            return Ok(Resend::Accepted);
        }
        let exposed = class == SendClass::Unknown;
        self.store
            .record_sweep_send(tx.id, Err(&error), exposed)
            .await?;
        Ok(if class == SendClass::NonceTooLow {
            Resend::Skipped
        } else {
            Resend::Refused(error)
        })
    }
}

enum Resend {
    Accepted,
    /// No longer live, or its nonce was already used.
    Skipped,
    Refused(String),
}
