//! Mined transactions stay where the books say: a sample of the payments that ended on a
//! receipt inside the depth window (settled, cancelled by their mined replacement, failed with
//! a fee charged) and of the finished sweeps there is re-checked each run. The receipt naming
//! the recorded block proves it; otherwise only positive evidence counts: the canonical block
//! at the recorded height has another hash. Then it is reported (`settled_reorged`,
//! `receipt_reorged` for the other payments, `sweep_reorged`) and handed to the reorg path: a
//! payment's reorg is recorded on its confirm record, and the stored signed bytes are sent again
//! if no node knows them (the same bytes, same nonce: mined once at most). Once the transaction
//! is in a canonical final block again with the same outcome, the recorded inclusion follows it
//! (an appended inclusion move; a different fee charged there is posted as a
//! `fee_adjustment`) and the discrepancy resolves. The status never changes here: the same
//! transaction was mined. A sweep re-mined with another outcome or other amounts than it posted
//! (a deposit address received more in between) stays reported for an operator.

use std::collections::BTreeMap;

use meshpay_chain::Chain;
use meshpay_chain::rpc::{BooksRpc, PinnedBlock, ReceiptFacts};
use meshpay_domain::{Address, B256, U256};
use meshpay_store::books::{FoundDiscrepancy, InclusionRef, Mined};
use meshpay_store::sweeps::SweepStatus;
use serde_json::json;

use super::BooksReport;
use crate::{ConfirmError, Pipeline};

impl Pipeline {
    pub(super) async fn recheck_inclusions(
        &self,
        chain: &Chain,
        rpc: &dyn BooksRpc,
        pin: PinnedBlock,
        run_id: i64,
        report: &mut BooksReport,
    ) -> Result<(), ConfirmError> {
        let c = &self.config.reconcile;
        if c.settled_sample == 0 {
            return Ok(());
        }
        let head = rpc.head(false).await?;
        let from = head.latest.saturating_sub(c.settled_window_blocks);
        let sample = self
            .store
            .inclusion_sample(&chain.name, from, c.settled_sample)
            .await?;
        let mut found = Vec::new();
        let mut cleared = Vec::new();
        for recorded in sample {
            report.settled_checked += 1;
            let mined = recorded.mined;
            let kind = mined.reorged_kind();
            let key = match mined {
                Mined::Payment { id, .. } => format!("{kind}:{id}"),
                Mined::Sweep { id, .. } => format!("{kind}:{id}"),
            };
            let receipt = rpc.receipt(recorded.tx_hash).await?;
            if receipt
                .as_ref()
                .is_some_and(|r| r.block_hash == recorded.block_hash)
            {
                self.store
                    .record_inclusion_recheck(&mined, "canonical")
                    .await?;
                cleared.push(key);
                continue;
            }
            let canonical = rpc.block_hash(recorded.block_number).await?;
            if canonical.is_none_or(|h| h == recorded.block_hash) {
                // One node's missing receipt proves nothing while the block is still there.
                self.store
                    .record_inclusion_recheck(&mined, "inconclusive")
                    .await?;
                continue;
            }
            report.settled_reorged += 1;
            // Found again in a canonical, final block: it stands, in that block.
            let again = match receipt.filter(|r| r.block_number <= pin.number) {
                Some(r) if rpc.block_hash(r.block_number).await? == Some(r.block_hash) => Some(r),
                _ => None,
            };
            let detail = match again {
                Some(r) => match self.same_outcome(&mined, &r).await? {
                    None => {
                        let moved = self
                            .store
                            .move_inclusion(
                                &recorded,
                                r.block_number,
                                r.block_hash,
                                r.network_fee_wei(),
                                chain.native.id(),
                            )
                            .await?;
                        self.store
                            .record_inclusion_recheck(&mined, "canonical")
                            .await?;
                        tracing::warn!(%mined, from = recorded.block_number, to = r.block_number,
                            fee_adjustment = ?moved.and_then(|m| m.fee_adjustment),
                            "mined transaction re-included in another block after a reorg");
                        cleared.push(key);
                        continue;
                    }
                    Some(difference) => format!(
                        "{mined}'s transaction {} was mined again in block {} ({}), but {difference}",
                        recorded.tx_hash, r.block_number, r.block_hash
                    ),
                },
                None => self.hand_to_reorg_path(chain, &recorded, canonical).await?,
            };
            self.store
                .record_inclusion_recheck(&mined, "reorged")
                .await?;
            found.push(FoundDiscrepancy {
                dedupe_key: key,
                kind,
                chain: chain.name.clone(),
                wallet: recorded.wallet.map(|w| w.to_string()),
                asset: None,
                payment_id: mined.payment_id(),
                expected: None,
                actual: None,
                difference: None,
                transactions: json!([{
                    "tx_hash": recorded.tx_hash, "block_number": recorded.block_number,
                    "block_hash": recorded.block_hash, "canonical_block_hash": canonical,
                }]),
                detail,
            });
        }
        self.settle_findings(run_id, found, cleared, report).await
    }

    /// `None` when the transaction mined again ended as recorded; otherwise what differs. A
    /// payment's transaction is the one whose receipt ended it (any outcome of the same bytes
    /// is what the chain did); a sweep's posting came from its receipt's outcome and `Flushed`
    /// logs, which the chain state of another block can change.
    async fn same_outcome(
        &self,
        mined: &Mined,
        receipt: &ReceiptFacts,
    ) -> Result<Option<String>, ConfirmError> {
        let Mined::Sweep { id, status } = *mined else {
            return Ok(None);
        };
        if receipt.success != (status == SweepStatus::Confirmed) {
            return Ok(Some(format!(
                "it {} there",
                if receipt.success {
                    "succeeded"
                } else {
                    "reverted"
                }
            )));
        }
        let deposits = self.store.sweep_deposits(id).await?;
        let mut moved: BTreeMap<(Address, Address), U256> = BTreeMap::new();
        for log in receipt.logs.iter().filter_map(|l| l.flushed()) {
            if deposits.contains(&log.deposit) && !log.amount.is_zero() {
                let sum = moved.entry((log.deposit, log.token)).or_default();
                *sum = sum.saturating_add(log.amount);
            }
        }
        let posted: BTreeMap<(Address, Address), U256> = self
            .store
            .sweep_flows(id)
            .await?
            .into_iter()
            .map(|f| ((f.deposit, f.token), f.amount.base_units()))
            .collect();
        Ok((moved != posted)
            .then(|| format!("it moved {moved:?} there, other amounts than the {posted:?} posted")))
    }

    /// Records a payment's reorg on its confirm record and sends the stored bytes again when
    /// no node knows them. Returns the report's text.
    async fn hand_to_reorg_path(
        &self,
        chain: &Chain,
        recorded: &InclusionRef,
        canonical: Option<B256>,
    ) -> Result<String, ConfirmError> {
        let (_, rpc) = self.chain(&chain.name)?;
        let mut detail = format!(
            "{}'s block {} ({}) left the chain: block {} is now {}",
            recorded.mined,
            recorded.block_number,
            recorded.block_hash,
            recorded.block_number,
            canonical.map(|h| h.to_string()).unwrap_or_default()
        );
        if !rpc.transaction_known(recorded.tx_hash).await? {
            match self.store.raw_transaction(recorded.tx_hash).await? {
                Some(raw) => match rpc.send_raw(&raw).await {
                    Ok(_) => detail.push_str("; its signed transaction was sent again"),
                    Err(error) => detail.push_str(&format!("; sending it again failed: {error}")),
                },
                None => detail.push_str("; no stored bytes to send again"),
            }
        }
        if let Some(payment) = recorded.mined.payment_id() {
            self.store.record_reorg(payment, &detail).await?;
        }
        tracing::error!(mined = %recorded.mined, %detail, "mined transaction reorged");
        Ok(detail)
    }
}
