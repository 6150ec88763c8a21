//! The books against the chain ([`Pipeline::check_books`]), one part of every reconcile run.
//!
//! Per chain, every read is pinned to one block: `finalized` (chains with `use_finalized`) or
//! `latest - confirmations`, by hash (EIP-1898), so all reads of a check see the same state or
//! fail, and blocks the check counts are final. Per hot wallet, under the wallet's books lock:
//!
//! 1. **Opening.** The first run that sees a wallet records its nonce and its balance of every
//!    asset at the pinned block as the opening (a `wallet_opening` posting per asset); later
//!    money in is a top-up (`meshpay admin wallets topup`), and everything the wallet does after
//!    the opening block is accounted nonce by nonce.
//! 2. **Nonce walk.** Each nonce from the cursor up to the chain's nonce at the pinned block is
//!    matched with the transaction that consumed it: first the receipts of every transaction
//!    meshpay signed on it (payment attempts of any kind, gap fills), accepted only in a block at
//!    or below the pin that is still canonical; without one, the block that used the nonce is
//!    found by bisecting `eth_getTransactionCount` over block numbers and the transaction read
//!    from it. A transaction found there that meshpay did not sign is mined-but-unknown
//!    (positive evidence: it is in a canonical final block); a missing receipt or block is never
//!    evidence of anything, the walk stops there and the next run carries on. At most
//!    `nonces_per_wallet` nonces per run; comparisons wait until the walk has caught up.
//! 3. **Comparisons** at the pinned block: the nonce (opening nonce + meshpay's transactions ==
//!    the chain's), every unknown transaction, the balance of every asset against the books
//!    ([`meshpay_store::books::expected`]), and settled payments whose nonce another
//!    transaction used.
//! 4. **Payments that ended on a receipt** (settled, cancelled by their mined replacement,
//!    failed with a fee charged) inside the depth window are re-checked on a sample
//!    ([`inclusions`]), before the wallets (a re-inclusion's fee adjustment belongs in their
//!    balances).
//! 5. **Swept deposit addresses** are empty after their sweep ([`sweeps`]).
//!
//! Each finding is a [`FoundDiscrepancy`] stored under its dedupe key (the open row is
//! refreshed, never duplicated); a scope checked clean resolves its open rows.

mod inclusions;
mod sweeps;
mod topup;
mod wallet;

use std::time::Instant;

use meshpay_chain::Chain;
use meshpay_chain::rpc::{BooksRpc, PinnedBlock};
use meshpay_domain::U256;
use meshpay_store::books::{Discrepancy, DiscrepancyFilter, ExpectedBalance, FoundDiscrepancy};
use serde::Serialize;

use crate::{ConfirmError, Pipeline};

pub use topup::{RecordedTopup, TopupError};
pub use wallet::WalletReport;

/// Open discrepancies listed in a report at most.
const OPEN_LISTED: u32 = 500;

/// What the books part of one run did and found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BooksReport {
    /// Per chain: the block the reads were pinned to.
    pub pinned: Vec<PinnedReport>,
    pub wallets: Vec<WalletReport>,
    /// Payments that ended on a receipt re-checked (settled, cancelled, failed with a fee), and
    /// those whose block left the chain.
    pub settled_checked: u32,
    pub settled_reorged: u32,
    /// Found by this run (new or still open).
    pub found: Vec<FoundDiscrepancy>,
    /// Discrepancy ids this run opened, and resolved (their scope checked clean).
    pub opened: Vec<i64>,
    pub resolved: Vec<i64>,
    /// Chains or wallets not checked (RPC or database errors); the next run tries again.
    pub errors: Vec<String>,
    /// Wallets not reached before the run's deadline.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinnedReport {
    pub chain: String,
    pub block: u64,
    pub block_hash: String,
}

/// An open discrepancy in the operator's form: base units as decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscrepancyView {
    pub id: i64,
    pub kind: String,
    pub chain: String,
    pub wallet: Option<String>,
    pub asset: Option<String>,
    pub payment_id: Option<String>,
    pub expected: Option<String>,
    pub actual: Option<String>,
    pub difference: Option<String>,
    pub transactions: serde_json::Value,
    pub detail: String,
    pub first_seen: String,
    pub last_seen: String,
    pub first_run_id: i64,
    pub last_run_id: i64,
    pub resolved_at: Option<String>,
    pub resolution_note: Option<String>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl From<Discrepancy> for DiscrepancyView {
    fn from(d: Discrepancy) -> Self {
        DiscrepancyView {
            id: d.id,
            kind: d.kind,
            chain: d.chain,
            wallet: d.wallet,
            asset: d.asset,
            payment_id: d.payment_id.map(|p| p.to_string()),
            expected: d.expected,
            actual: d.actual,
            difference: d.difference,
            transactions: d.transactions,
            detail: d.detail,
            first_seen: rfc3339(d.first_seen),
            last_seen: rfc3339(d.last_seen),
            first_run_id: d.first_run_id,
            last_run_id: d.last_run_id,
            resolved_at: d.resolved_at.map(rfc3339),
            resolution_note: d.resolution_note,
        }
    }
}

/// `actual - expected` as signed decimal text (`expected` is signed text).
pub(crate) fn difference(actual: U256, expected: &str) -> String {
    let (negative, digits) = match expected.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, expected),
    };
    let Ok(magnitude) = digits.parse::<U256>() else {
        return format!("{actual} - ({expected})");
    };
    if negative {
        return actual.saturating_add(magnitude).to_string();
    }
    if actual >= magnitude {
        (actual - magnitude).to_string()
    } else {
        format!("-{}", magnitude - actual)
    }
}

/// Whether the books' `expected` text is exactly `actual`.
pub(crate) fn agrees(actual: U256, expected: &ExpectedBalance) -> bool {
    expected.expected.parse::<U256>().ok() == Some(actual)
}

impl Pipeline {
    /// The books part of run `run_id`: every configured chain and hot wallet, then the settled
    /// sample; findings stored. Never fails as a whole (errors are in the report).
    pub async fn check_books(&self, run_id: i64, deadline: Instant) -> BooksReport {
        let mut report = BooksReport::default();
        for chain in self.chains.chains() {
            if Instant::now() > deadline {
                report.skipped.push(format!("chain {}", chain.name));
                continue;
            }
            let Some(rpc) = self.books_rpcs.get(&chain.name).cloned() else {
                report.errors.push(format!("{}: no RPC", chain.name));
                continue;
            };
            let pin = match pinned_block(chain, rpc.as_ref()).await {
                Ok(pin) => pin,
                Err(error) => {
                    report
                        .errors
                        .push(format!("{}: pinned block: {error}", chain.name));
                    continue;
                }
            };
            report.pinned.push(PinnedReport {
                chain: chain.name.clone(),
                block: pin.number,
                block_hash: pin.hash.to_string(),
            });
            // Mined payments first: a re-inclusion after a reorg may post a fee adjustment
            // that the wallets' balances then include.
            if let Err(error) = self
                .recheck_inclusions(chain, rpc.as_ref(), pin, run_id, &mut report)
                .await
            {
                report
                    .errors
                    .push(format!("{}: inclusion re-check: {error}", chain.name));
            }
            if let Err(error) = self
                .check_swept_deposits(chain, rpc.as_ref(), pin, run_id, &mut report)
                .await
            {
                report
                    .errors
                    .push(format!("{}: swept deposits: {error}", chain.name));
            }
            for wallet in &chain.hot_wallets {
                if Instant::now() > deadline {
                    report.skipped.push(format!("{}/{wallet}", chain.name));
                    continue;
                }
                match self
                    .check_wallet(
                        chain,
                        rpc.as_ref(),
                        *wallet,
                        pin,
                        run_id,
                        deadline,
                        &mut report,
                    )
                    .await
                {
                    Ok(wallet) => report.wallets.push(wallet),
                    Err(error) => report
                        .errors
                        .push(format!("{}/{wallet}: {error}", chain.name)),
                }
            }
        }
        for error in &report.errors {
            tracing::error!(%error, "books check incomplete");
        }
        for found in &report.found {
            tracing::error!(key = %found.dedupe_key, detail = %found.detail,
                difference = ?found.difference, "books and chain disagree");
        }
        report
    }

    /// Stores what a check found and resolves what it checked clean.
    pub(crate) async fn settle_findings(
        &self,
        run_id: i64,
        found: Vec<FoundDiscrepancy>,
        cleared: Vec<String>,
        report: &mut BooksReport,
    ) -> Result<(), ConfirmError> {
        for f in found {
            let recorded = self.store.record_discrepancy(run_id, &f).await?;
            // Counted on every run that finds it, so an alert keeps firing while it is open.
            meshpay_telemetry::metrics::reconcile_discrepancies(f.kind, 1);
            if recorded.new {
                report.opened.push(recorded.id);
            }
            report.found.push(f);
        }
        report
            .resolved
            .extend(self.store.clear_discrepancies(run_id, &cleared).await?);
        Ok(())
    }

    /// Every open discrepancy, newest first, in the operator's form.
    pub async fn open_discrepancies(&self) -> Result<Vec<DiscrepancyView>, ConfirmError> {
        Ok(self
            .store
            .discrepancies(DiscrepancyFilter::Open, OPEN_LISTED)
            .await?
            .into_iter()
            .map(DiscrepancyView::from)
            .collect())
    }
}

/// The block a chain's check reads at: `finalized`, or `latest - confirmations`.
async fn pinned_block(chain: &Chain, rpc: &dyn BooksRpc) -> Result<PinnedBlock, ConfirmError> {
    let head = rpc.head(chain.use_finalized).await?;
    let number = if chain.use_finalized {
        head.finalized.ok_or_else(|| {
            ConfirmError::Inconclusive("the node reports no finalized block".into())
        })?
    } else {
        head.latest.saturating_sub(chain.confirmations)
    };
    let hash = rpc.block_hash(number).await?.ok_or_else(|| {
        ConfirmError::Inconclusive(format!("the node does not have block {number}"))
    })?;
    Ok(PinnedBlock { number, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_is_actual_minus_expected_with_a_sign() {
        let n = |v: u64| U256::from(v);
        assert_eq!(difference(n(10), "7"), "3");
        assert_eq!(difference(n(7), "10"), "-3");
        assert_eq!(difference(n(5), "-2"), "7");
        assert_eq!(difference(n(5), "5"), "0");
    }
}
