//! [`Relay::heal_wallet`]: re-sends a wallet's stored transactions that the chain has not seen.
//!
//! By construction every nonce between the chain's pending nonce and the wallet's counter has a
//! stored live transaction (or is a handed-back gap the next allocation fills), so a counter
//! ahead of the chain is repaired by re-sending, lowest nonce first, never by rewinding over
//! transactions that may still be mined (the jam of OpenZeppelin relayer #818/#843). Meant for
//! a periodic reconcile job and for operators; a redelivered broadcast message does the same
//! for its own payment.

use alloy::primitives::Address;

use crate::classify::{SendClass, classify_send};
use crate::{Relay, RelayError};

/// Most transactions re-sent per call.
const HEAL_BATCH: u32 = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
            .ok_or_else(|| RelayError::Config(format!("chain {chain} is not configured")))?;
        let chain_nonce = ctx.rpc.pending_nonce(wallet).await?;
        let next_nonce = self
            .store
            .wallet_nonce(chain, wallet)
            .await?
            .map(|w| w.next_nonce);
        let mut report = HealReport {
            chain_nonce,
            next_nonce,
            ..HealReport::default()
        };
        let attempts = self
            .store
            .live_attempts_from(chain, wallet, chain_nonce, HEAL_BATCH)
            .await?;
        for attempt in attempts {
            let outcome = match ctx.rpc.send_raw(&attempt.raw).await {
                Ok(_) => Ok(()),
                Err(failure) => match classify_send(&failure) {
                    SendClass::AlreadyKnown => Ok(()),
                    // Mined meanwhile, or taken by another sender: the payment's own
                    // redelivery decides which (and re-signs if needed).
                    SendClass::NonceTooLow => continue,
                    _ => Err(failure),
                },
            };
            match outcome {
                Ok(()) => {
                    self.store.record_send(attempt.id, Ok(())).await?;
                    report.resent += 1;
                }
                Err(failure) => {
                    let error = failure.to_string();
                    self.store.record_send(attempt.id, Err(&error)).await?;
                    report.stopped_at = Some((attempt.nonce, error));
                    break;
                }
            }
        }
        if report.resent > 0 || report.stopped_at.is_some() {
            tracing::warn!(%chain, %wallet, ?report, "wallet healed");
        }
        Ok(report)
    }
}
