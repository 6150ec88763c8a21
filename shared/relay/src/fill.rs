//! [`Relay::fill_stale_gaps`]: a handed-back nonce (a gap) is normally reused by the wallet's
//! next payment; on a quiet wallet none comes, and every later nonce of the wallet waits
//! behind the hole. The reconcile timer therefore fills gaps older than
//! [`RelayConfig::gap_fill_after`] with a 0-value transfer from the wallet to itself at that
//! nonce: priced like a payment's send (the chain's fee oracle), signed by the wallet's
//! signer before any lock is taken, stored (`wallet_gap_fills`, taking the gap off the list
//! in the same transaction) before it is sent, with the send's start recorded first. Halted wallets are skipped. A
//! fill's send that fails is retried by wallet healing, like a payment's lost send. Each pass
//! first hands back the nonces reserved for payments that left `authorized` unsigned, so they
//! become gaps like any other.
//!
//! A fill priced under the market is re-priced on its nonce by the same bump rule as a
//! payment's transaction ([`crate::fee_policy`], capped by the chain's cap): when a node
//! refuses it for its price, and, in every pass, when one still pending has a max fee below
//! the next block's base fee.
//!
//! [`RelayConfig::gap_fill_after`]: crate::RelayConfig::gap_fill_after

use std::time::Instant;

use alloy::primitives::{Address, B256, Bytes, U256};
use meshpay_chain::rpc::{SendClass, classify_send};
use meshpay_store::transactions::{self, GapFill, NewGapFill, StaleGap};
use serde::Serialize;

use crate::fee_policy::{self, FeePair};
use crate::replace::is_fee_refusal;
use crate::transfer::{self, TransferCall, TxParams};
use crate::{ChainContext, Relay, RelayConfigError, RelayError};

/// Gas of a plain value transfer to an account without code (a hot wallet).
const SELF_TRANSFER_GAS: u64 = 21_000;

/// One stale gap a [`Relay::fill_stale_gaps`] pass dealt with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GapFillReport {
    pub chain: String,
    pub wallet: Address,
    pub nonce: u64,
    /// The fill's transaction (`None`: nothing was signed, see `error`, or the gap was gone).
    pub tx_hash: Option<B256>,
    /// Why the gap was not filled, or the fill's send not acknowledged (the next pass, or
    /// wallet healing, carries on).
    pub error: Option<String>,
}

impl GapFillReport {
    pub fn is_problem(&self) -> bool {
        self.error.is_some()
    }
}

impl Relay {
    /// Fills the stale gaps of every chain's wallets, at most `max_fills` in all, none started
    /// after `deadline`.
    pub async fn fill_stale_gaps(&self, max_fills: u32, deadline: Instant) -> Vec<GapFillReport> {
        let mut chains: Vec<(&String, &ChainContext)> = self.chains.iter().collect();
        chains.sort_by(|a, b| a.0.cmp(b.0));
        let mut reports = Vec::new();
        let mut tried: u32 = 0;
        for (_, ctx) in &chains {
            if Instant::now() < deadline {
                reports.extend(self.reprice_pending_fills(ctx).await);
            }
        }
        for (name, ctx) in chains {
            let left = max_fills.saturating_sub(tried);
            if left == 0 || Instant::now() >= deadline {
                break;
            }
            self.release_orphan_reservations(name).await;
            let gaps = match self
                .store
                .stale_gaps(name, self.config.gap_fill_after, left)
                .await
            {
                Ok(gaps) => gaps,
                Err(error) => {
                    tracing::error!(chain = %name, %error, "stale gaps not read");
                    continue;
                }
            };
            for gap in gaps {
                if Instant::now() >= deadline {
                    break;
                }
                tried += 1;
                // Only wallets the relay signs for (the chain's pool).
                if ctx.wallets.signer(gap.wallet).is_none() {
                    continue;
                }
                let (tx_hash, error) = match self.fill_gap(ctx, gap).await {
                    Ok(Some((hash, sent))) => (Some(hash), sent.err()),
                    Ok(None) => (None, None),
                    Err(error) => (None, Some(error.to_string())),
                };
                if let Some(error) = &error {
                    tracing::error!(chain = %name, wallet = %gap.wallet, nonce = gap.nonce, %error, "nonce gap not filled");
                } else if let Some(hash) = tx_hash {
                    tracing::warn!(chain = %name, wallet = %gap.wallet, nonce = gap.nonce, tx_hash = %hash, "stale nonce gap filled with a self-transfer");
                }
                reports.push(GapFillReport {
                    chain: name.clone(),
                    wallet: gap.wallet,
                    nonce: gap.nonce,
                    tx_hash,
                    error,
                });
            }
        }
        reports
    }

    /// Hands back, as gaps, the nonces reserved for payments that left `authorized` without a
    /// stored transaction (a crash between reserving and storing, then a cancel): no delivery
    /// comes back for them, and later nonces of the wallet wait behind them.
    async fn release_orphan_reservations(&self, chain: &str) {
        match self
            .store
            .release_orphan_reservations(chain, self.config.db_timeouts)
            .await
        {
            Ok(released) => {
                for (wallet, nonce) in released {
                    tracing::warn!(%chain, %wallet, nonce, "nonce reserved for a payment that left authorized handed back");
                }
            }
            Err(error) => tracing::error!(%chain, %error, "orphan nonce reservations not released"),
        }
    }

    /// Signs the fill, then claims the gap and stores the fill in one transaction, then sends
    /// it. `None`: the gap is no longer there (reused by a payment, or consumed on chain). The
    /// inner result is the send's outcome (the fill is stored either way).
    async fn fill_gap(
        &self,
        ctx: &ChainContext,
        gap: StaleGap,
    ) -> Result<Option<(B256, Result<(), String>)>, RelayError> {
        let chain = ctx.chain.name.as_str();
        let signer = ctx
            .wallets
            .signer(gap.wallet)
            .ok_or(RelayConfigError::NoSigner(gap.wallet))?;
        let floor = ctx.rpc.pending_nonce(gap.wallet).await?;
        let fees = ctx.fees.fees(ctx.rpc.as_ref()).await?;
        // Signed before the gap is claimed, so no lock is held while the signer works; the
        // bytes are dropped unsent when the claim finds the gap taken meanwhile.
        let call = TransferCall {
            to: gap.wallet,
            value_wei: U256::ZERO,
            input: Bytes::new(),
        };
        let params = TxParams {
            chain_id: ctx.chain.chain_id,
            nonce: gap.nonce,
            gas_limit: SELF_TRANSFER_GAS,
            max_fee_per_gas_wei: fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fees.max_priority_fee_per_gas_wei,
        };
        let signed = transfer::sign(signer.as_ref(), gap.wallet, &call, params).await?;
        let mut db = self.store.begin().await?;
        transactions::set_timeouts(&mut db, self.config.db_timeouts).await?;
        if !transactions::claim_gap(&mut db, chain, gap.wallet, gap.nonce, floor).await? {
            // Commits the forgetting of gaps the chain has consumed.
            db.commit().await.map_err(meshpay_store::StoreError::from)?;
            return Ok(None);
        }
        let new = NewGapFill {
            chain: chain.to_owned(),
            wallet: gap.wallet,
            nonce: gap.nonce,
            gas_limit: SELF_TRANSFER_GAS,
            max_fee_per_gas_wei: fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fees.max_priority_fee_per_gas_wei,
            tx_hash: signed.hash,
            raw: signed.raw,
        };
        let fill = transactions::insert_gap_fill(&mut db, &new).await?;
        db.commit().await.map_err(meshpay_store::StoreError::from)?;
        let sent = self.send_fill(ctx, &fill).await?;
        Ok(Some((fill.tx_hash, sent)))
    }

    /// Sends a stored fill, its start recorded first; one refused for its price is re-priced
    /// on its nonce and the replacement sent. `Err(message)`: not acknowledged.
    pub(crate) async fn send_fill(
        &self,
        ctx: &ChainContext,
        fill: &GapFill,
    ) -> Result<Result<(), String>, RelayError> {
        match self.send_fill_bytes(ctx, fill).await? {
            Err(Refusal::Price(error)) => {
                tracing::warn!(chain = %fill.chain, wallet = %fill.wallet, nonce = fill.nonce,
                    %error, "gap fill refused for its price: re-pricing on its nonce");
                Ok(match self.reprice_fill(ctx, fill).await? {
                    Ok(replacement) => self
                        .send_fill_bytes(ctx, &replacement)
                        .await?
                        .map_err(Refusal::into_message),
                    Err(why) => Err(format!("{error}; not re-priced: {why}")),
                })
            }
            other => Ok(other.map_err(Refusal::into_message)),
        }
    }

    /// Re-prices the fills still pending on the wallets' nonces whose max fee is below the
    /// next block's base fee (a node keeps them, and every later nonce waits).
    async fn reprice_pending_fills(&self, ctx: &ChainContext) -> Vec<GapFillReport> {
        let chain = ctx.chain.name.as_str();
        let mut reports = Vec::new();
        let base_fee = match ctx.rpc.next_base_fee().await {
            Ok(Some(base_fee)) => base_fee,
            Ok(None) => return reports,
            Err(error) => {
                tracing::warn!(%chain, %error, "base fee not read: fills not re-priced");
                return reports;
            }
        };
        for wallet in ctx.wallets.addresses() {
            let pending = async {
                let head = ctx.rpc.head(false).await?;
                let mined = ctx.rpc.nonce_at(wallet, head.latest).await?;
                let fills = self.store.gap_fills_from(chain, wallet, mined).await?;
                Ok::<_, RelayError>(fills)
            };
            let fills = match pending.await {
                Ok(fills) => fills,
                Err(error) => {
                    tracing::warn!(%chain, %wallet, %error, "pending fills not read");
                    continue;
                }
            };
            for fill in fills {
                let below_base = match self.store.gap_fill_fees(fill.id).await {
                    Ok(Some((max_fee, _))) => max_fee < base_fee,
                    _ => false,
                };
                if !below_base {
                    continue;
                }
                let (tx_hash, error) = match self.reprice_fill(ctx, &fill).await {
                    Ok(Ok(replacement)) => {
                        let error = match self.send_fill(ctx, &replacement).await {
                            Ok(Ok(())) => None,
                            Ok(Err(error)) => Some(error),
                            Err(error) => Some(error.to_string()),
                        };
                        (Some(replacement.tx_hash), error)
                    }
                    Ok(Err(why)) => (None, Some(why)),
                    Err(error) => (None, Some(error.to_string())),
                };
                reports.push(GapFillReport {
                    chain: chain.to_owned(),
                    wallet,
                    nonce: fill.nonce,
                    tx_hash,
                    error,
                });
            }
        }
        reports
    }

    /// Signs and stores a re-priced self-transfer on the fill's nonce (bump rule, the chain's
    /// cap as ceiling). The inner `Err`: no replacement fits under the cap, or another run
    /// replaced it first.
    async fn reprice_fill(
        &self,
        ctx: &ChainContext,
        fill: &GapFill,
    ) -> Result<Result<GapFill, String>, RelayError> {
        let Some((max_fee, tip)) = self.store.gap_fill_fees(fill.id).await? else {
            return Ok(Err("the fill is gone".into()));
        };
        let fresh = ctx.fees.fees(ctx.rpc.as_ref()).await?;
        let base_fee = ctx.rpc.next_base_fee().await?;
        let previous = FeePair {
            max_fee_per_gas_wei: max_fee,
            max_priority_fee_per_gas_wei: tip,
        };
        let fresh = FeePair {
            max_fee_per_gas_wei: fresh.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fresh.max_priority_fee_per_gas_wei,
        };
        let fees = match fee_policy::replacement(
            previous,
            fresh,
            base_fee,
            ctx.chain.max_fee_per_gas_cap_wei,
        ) {
            Ok(fees) => fees,
            Err(above) => return Ok(Err(above.to_string())),
        };
        let signer = ctx
            .wallets
            .signer(fill.wallet)
            .ok_or(RelayConfigError::NoSigner(fill.wallet))?;
        let call = TransferCall {
            to: fill.wallet,
            value_wei: U256::ZERO,
            input: Bytes::new(),
        };
        let params = TxParams {
            chain_id: ctx.chain.chain_id,
            nonce: fill.nonce,
            gas_limit: SELF_TRANSFER_GAS,
            max_fee_per_gas_wei: fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fees.max_priority_fee_per_gas_wei,
        };
        let signed = transfer::sign(signer.as_ref(), fill.wallet, &call, params).await?;
        let new = NewGapFill {
            chain: fill.chain.clone(),
            wallet: fill.wallet,
            nonce: fill.nonce,
            gas_limit: SELF_TRANSFER_GAS,
            max_fee_per_gas_wei: fees.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: fees.max_priority_fee_per_gas_wei,
            tx_hash: signed.hash,
            raw: signed.raw,
        };
        Ok(match self.store.replace_gap_fill(fill, &new).await? {
            Some(replacement) => {
                tracing::warn!(chain = %fill.chain, wallet = %fill.wallet, nonce = fill.nonce,
                    replaced = %fill.tx_hash, tx_hash = %replacement.tx_hash,
                    max_fee = fees.max_fee_per_gas_wei, "gap fill re-priced on its nonce");
                Ok(replacement)
            }
            None => Err("re-priced by another run meanwhile".into()),
        })
    }

    /// Sends a stored fill's bytes once, its start recorded first.
    async fn send_fill_bytes(
        &self,
        ctx: &ChainContext,
        fill: &GapFill,
    ) -> Result<Result<(), Refusal>, RelayError> {
        self.store.begin_fill_send(fill.id).await?;
        let Err(failure) = ctx.rpc.send_raw(&fill.raw).await else {
            self.store.record_fill_send(fill.id, Ok(()), true).await?;
            return Ok(Ok(()));
        };
        let error = failure.to_string();
        let class = classify_send(&failure);
        if class == SendClass::AlreadyKnown {
            self.store.record_fill_send(fill.id, Ok(()), true).await?;
            return Ok(Ok(()));
        }
        // An unknown outcome may have reached a node; a refusal did not.
        let exposed = class == SendClass::Unknown;
        self.store
            .record_fill_send(fill.id, Err(&error), exposed)
            .await?;
        Ok(Err(if is_fee_refusal(&failure) {
            Refusal::Price(error)
        } else {
            Refusal::Other(error)
        }))
    }
}

/// Why a fill's send was not acknowledged.
enum Refusal {
    /// Refused for its price alone: the bump path applies.
    Price(String),
    Other(String),
}

impl Refusal {
    fn into_message(self) -> String {
        match self {
            Refusal::Price(message) | Refusal::Other(message) => message,
        }
    }
}
