//! Payments that ended on a receipt stay true: a sample of those inside the depth window
//! (settled, cancelled by their mined replacement, failed with a fee charged) is re-checked each
//! run. The receipt naming the recorded block proves it; otherwise only positive evidence
//! counts: the canonical block at the recorded height has another hash. Then the payment is
//! reported (`settled_reorged`, or `receipt_reorged` for the others) and handed to the reorg
//! path: the reorg is recorded on its confirm record and its stored signed bytes are sent again
//! if no node knows them (the same bytes, same nonce: it can be mined once at most). Once the
//! transaction is in a canonical final block again, the payment's recorded inclusion follows it
//! (an appended inclusion move; a different fee charged there is posted as a
//! `fee_adjustment`) and the discrepancy resolves. The payment's status never changes here: the
//! same transaction was mined, so what it ended in still holds.

use meshpay_chain::Chain;
use meshpay_chain::rpc::{BooksRpc, PinnedBlock};
use meshpay_domain::PaymentStatus;
use meshpay_store::books::{FoundDiscrepancy, InclusionRef};
use serde_json::json;

use super::BooksReport;
use crate::{ConfirmError, Pipeline};

/// The discrepancy kind of a recorded inclusion whose block left the chain.
fn reorged_kind(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Settled => "settled_reorged",
        _ => "receipt_reorged",
    }
}

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
            let kind = reorged_kind(recorded.status);
            let key = format!("{kind}:{}", recorded.payment_id);
            let receipt = rpc.receipt(recorded.tx_hash).await?;
            if receipt
                .as_ref()
                .is_some_and(|r| r.block_hash == recorded.block_hash)
            {
                self.store
                    .record_inclusion_recheck(recorded.payment_id, "canonical")
                    .await?;
                cleared.push(key);
                continue;
            }
            let canonical = rpc.block_hash(recorded.block_number).await?;
            if canonical.is_none_or(|h| h == recorded.block_hash) {
                // One node's missing receipt proves nothing while the block is still there.
                self.store
                    .record_inclusion_recheck(recorded.payment_id, "inconclusive")
                    .await?;
                continue;
            }
            report.settled_reorged += 1;
            // Found again in a canonical, final block: the payment stands, in that block.
            if let Some(r) = receipt.as_ref().filter(|r| r.block_number <= pin.number)
                && rpc.block_hash(r.block_number).await? == Some(r.block_hash)
            {
                let moved = self
                    .store
                    .move_inclusion(&recorded, r.block_number, r.block_hash, r.network_fee_wei())
                    .await?;
                self.store
                    .record_inclusion_recheck(recorded.payment_id, "canonical")
                    .await?;
                tracing::warn!(payment = %recorded.payment_id, status = %recorded.status,
                    from = recorded.block_number, to = r.block_number,
                    fee_adjustment = ?moved.and_then(|m| m.fee_adjustment),
                    "payment's transaction re-included in another block after a reorg");
                cleared.push(key);
                continue;
            }
            let detail = self.hand_to_reorg_path(chain, &recorded, canonical).await?;
            self.store
                .record_inclusion_recheck(recorded.payment_id, "reorged")
                .await?;
            found.push(FoundDiscrepancy {
                dedupe_key: key,
                kind,
                chain: chain.name.clone(),
                wallet: recorded.wallet.map(|w| w.to_string()),
                asset: None,
                payment_id: Some(recorded.payment_id),
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

    /// Records the reorg on the payment's confirm record and sends its stored bytes again when
    /// no node knows them. Returns the report's text.
    async fn hand_to_reorg_path(
        &self,
        chain: &Chain,
        recorded: &InclusionRef,
        canonical: Option<meshpay_domain::B256>,
    ) -> Result<String, ConfirmError> {
        let (_, rpc) = self.chain(&chain.name)?;
        let mut detail = format!(
            "{} payment's block {} ({}) left the chain: block {} is now {}",
            recorded.status,
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
        self.store
            .record_reorg(recorded.payment_id, &detail)
            .await?;
        tracing::error!(payment = %recorded.payment_id, %detail, "mined payment reorged");
        Ok(detail)
    }
}
