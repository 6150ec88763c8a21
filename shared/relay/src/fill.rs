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
//! [`RelayConfig::gap_fill_after`]: crate::RelayConfig::gap_fill_after

use std::time::Instant;

use alloy::primitives::{Address, B256, Bytes, U256};
use meshpay_chain::rpc::{SendClass, classify_send};
use meshpay_store::transactions::{self, GapFill, NewGapFill, StaleGap};
use serde::Serialize;

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

    /// Sends a stored fill, its start recorded first. `Err(message)`: not acknowledged.
    pub(crate) async fn send_fill(
        &self,
        ctx: &ChainContext,
        fill: &GapFill,
    ) -> Result<Result<(), String>, RelayError> {
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
        Ok(Err(error))
    }
}
