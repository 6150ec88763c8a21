//! Settled payments stay true: a sample of those settled inside the depth window is re-checked
//! each run. The receipt naming the recorded block proves it; otherwise only positive evidence
//! counts: the canonical block at the recorded height has another hash. Then the payment is
//! reported (`settled_reorged`) and handed to the reorg path: the reorg is recorded on its
//! confirm record and its stored signed bytes are sent again if no node knows them (the same
//! bytes, same nonce: it can be mined once at most). Once the transaction is in a canonical
//! final block again, the payment's recorded inclusion follows it (a different fee charged
//! there is posted as a `fee_adjustment`) and the discrepancy resolves.

use meshpay_chain::Chain;
use meshpay_chain::rpc::{BooksRpc, PinnedBlock};
use meshpay_store::books::{FoundDiscrepancy, SettledRef};
use serde_json::json;

use super::BooksReport;
use crate::{ConfirmError, Pipeline};

impl Pipeline {
    pub(super) async fn recheck_settled(
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
            .settled_sample(&chain.name, from, c.settled_sample)
            .await?;
        let mut found = Vec::new();
        let mut cleared = Vec::new();
        for settled in sample {
            report.settled_checked += 1;
            let key = format!("settled_reorged:{}", settled.payment_id);
            let receipt = rpc.receipt(settled.tx_hash).await?;
            if receipt
                .as_ref()
                .is_some_and(|r| r.block_hash == settled.block_hash)
            {
                self.store
                    .record_settled_recheck(settled.payment_id, "canonical")
                    .await?;
                cleared.push(key);
                continue;
            }
            let canonical = rpc.block_hash(settled.block_number).await?;
            if canonical.is_none_or(|h| h == settled.block_hash) {
                // One node's missing receipt proves nothing while the block is still there.
                self.store
                    .record_settled_recheck(settled.payment_id, "inconclusive")
                    .await?;
                continue;
            }
            report.settled_reorged += 1;
            // Found again in a canonical, final block: the payment stands, in that block.
            if let Some(r) = receipt.as_ref().filter(|r| r.block_number <= pin.number)
                && rpc.block_hash(r.block_number).await? == Some(r.block_hash)
            {
                let fee = meshpay_domain::U256::from(r.gas_used)
                    .saturating_mul(meshpay_domain::U256::from(r.effective_gas_price_wei));
                let adjusted = self
                    .store
                    .move_settled_inclusion(settled.payment_id, r.block_number, r.block_hash, fee)
                    .await?;
                self.store
                    .record_settled_recheck(settled.payment_id, "canonical")
                    .await?;
                tracing::warn!(payment = %settled.payment_id, from = settled.block_number,
                    to = r.block_number, fee_adjustment = ?adjusted,
                    "settled payment re-included in another block after a reorg");
                cleared.push(key);
                continue;
            }
            let detail = self.hand_to_reorg_path(chain, &settled, canonical).await?;
            self.store
                .record_settled_recheck(settled.payment_id, "reorged")
                .await?;
            found.push(FoundDiscrepancy {
                dedupe_key: key,
                kind: "settled_reorged",
                chain: chain.name.clone(),
                wallet: settled.wallet.map(|w| w.to_string()),
                asset: None,
                payment_id: Some(settled.payment_id),
                expected: None,
                actual: None,
                difference: None,
                transactions: json!([{
                    "tx_hash": settled.tx_hash, "block_number": settled.block_number,
                    "block_hash": settled.block_hash, "canonical_block_hash": canonical,
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
        settled: &SettledRef,
        canonical: Option<meshpay_domain::B256>,
    ) -> Result<String, ConfirmError> {
        let (_, rpc) = self.chain(&chain.name)?;
        let mut detail = format!(
            "settled payment's block {} ({}) left the chain: block {} is now {}",
            settled.block_number,
            settled.block_hash,
            settled.block_number,
            canonical.map(|h| h.to_string()).unwrap_or_default()
        );
        if !rpc.transaction_known(settled.tx_hash).await? {
            match self.store.raw_transaction(settled.tx_hash).await? {
                Some(raw) => match rpc.send_raw(&raw).await {
                    Ok(_) => detail.push_str("; its signed transaction was sent again"),
                    Err(error) => detail.push_str(&format!("; sending it again failed: {error}")),
                },
                None => detail.push_str("; no stored bytes to send again"),
            }
        }
        self.store.record_reorg(settled.payment_id, &detail).await?;
        tracing::error!(payment = %settled.payment_id, %detail, "settled payment reorged");
        Ok(detail)
    }
}
