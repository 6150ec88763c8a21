//! Swept deposit addresses are empty: for each confirmed sweep at or below the pinned block not
//! yet verified, every deposit address it flushed must hold none of what it flushed (the
//! native coin and the tokens it listed) in the
//! state right after the sweep's block (reads pinned to that block by hash). A balance left
//! there is a `sweep_not_empty` discrepancy (the forwarder did not move it, or a payment landed
//! in the same block after the sweep: the operator resolves it with a note, or the next sweep
//! of that invoice moves it); a sweep found empty is marked verified and not read again.

use meshpay_chain::Chain;
use meshpay_chain::rpc::{BooksRpc, PinnedBlock};
use meshpay_domain::{AssetKind, U256};
use meshpay_store::books::FoundDiscrepancy;

use super::BooksReport;
use crate::{ConfirmError, Pipeline};

/// Sweeps verified per chain and run at most (a backlog shrinks run by run).
const SWEEPS_PER_RUN: i64 = 50;

impl Pipeline {
    pub(crate) async fn check_swept_deposits(
        &self,
        chain: &Chain,
        rpc: &dyn BooksRpc,
        pin: PinnedBlock,
        run_id: i64,
        report: &mut BooksReport,
    ) -> Result<(), ConfirmError> {
        let sweeps = self
            .store
            .sweeps_to_verify(&chain.name, pin.number, SWEEPS_PER_RUN)
            .await?;
        for sweep in sweeps {
            let at = PinnedBlock {
                number: sweep.block_number,
                hash: sweep.block_hash,
            };
            let mut found = Vec::new();
            for deposit in &sweep.deposits {
                let mut checks = vec![(chain.native.id().to_string(), None)];
                checks.extend(sweep.tokens.iter().map(|token| {
                    let name = chain
                        .assets()
                        .find(|a| matches!(a.kind(), AssetKind::Erc20 { contract } if contract == *token))
                        .map_or_else(|| token.to_string(), |a| a.id().to_string());
                    (name, Some(*token))
                }));
                for (asset, token) in checks {
                    let held = match token {
                        None => rpc.balance_at(*deposit, at).await?,
                        Some(token) => rpc.token_balance_at(token, *deposit, at).await?,
                    };
                    if held == U256::ZERO {
                        continue;
                    }
                    found.push(FoundDiscrepancy {
                        dedupe_key: format!("sweep_not_empty:{}:{deposit}:{asset}", sweep.id),
                        kind: "sweep_not_empty",
                        chain: chain.name.clone(),
                        wallet: Some(deposit.to_string()),
                        asset: Some(asset.clone()),
                        payment_id: None,
                        expected: Some("0".into()),
                        actual: Some(held.to_string()),
                        difference: Some(held.to_string()),
                        transactions: serde_json::json!([]),
                        detail: format!(
                            "deposit address {deposit} still held {held} of {asset} after sweep {} (block {})",
                            sweep.id,
                            sweep.block_number
                        ),
                    });
                }
            }
            if found.is_empty() {
                self.store.mark_sweep_verified(sweep.id).await?;
            } else {
                self.settle_findings(run_id, found, Vec::new(), report)
                    .await?;
            }
        }
        Ok(())
    }
}
