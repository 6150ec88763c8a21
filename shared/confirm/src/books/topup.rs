//! Top-ups: money an operator sends to a hot wallet is a ledger event, recorded with
//! `meshpay admin wallets topup` after it is verified on chain: the transaction succeeded in a
//! final block that is still canonical, and it pays a configured hot wallet of the chain (its
//! native value, or each ERC-20 Transfer log of the asset's contract to one). Recording is
//! idempotent per (chain, transaction, log).

use meshpay_domain::{Address, Amount, Asset, AssetKind, B256, U256};
use meshpay_store::books::{NewTopup, TopupOutcome};
use serde::Serialize;

use super::pinned_block;
use crate::{ConfirmError, Pipeline};

/// `Transfer(address,address,uint256)`.
const TRANSFER_TOPIC: B256 =
    alloy::primitives::b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

/// Why a transaction is not a top-up.
#[derive(Debug, thiserror::Error)]
pub enum TopupError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Pipeline(#[from] ConfirmError),
}

impl From<meshpay_store::StoreError> for TopupError {
    fn from(e: meshpay_store::StoreError) -> Self {
        TopupError::Pipeline(e.into())
    }
}

impl From<meshpay_chain::rpc::RpcFailure> for TopupError {
    fn from(e: meshpay_chain::rpc::RpcFailure) -> Self {
        TopupError::Pipeline(e.into())
    }
}

/// One recorded transfer of a top-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedTopup {
    pub wallet: Address,
    pub asset: String,
    pub amount: Amount,
    pub block_number: u64,
    pub log_index: Option<u64>,
    pub ledger_transaction_id: String,
    pub created: bool,
    /// Already in the wallet's opening balance (mined at or before the opening block).
    pub in_opening: bool,
}

impl Pipeline {
    /// Verifies `tx_hash` on `chain` as a transfer of `asset` to hot wallets and records each
    /// transfer found.
    pub async fn record_topup(
        &self,
        chain_name: &str,
        asset: &Asset,
        tx_hash: B256,
    ) -> Result<Vec<RecordedTopup>, TopupError> {
        let chain = self
            .chains
            .chain(chain_name)
            .ok_or_else(|| ConfirmError::UnknownChain(chain_name.to_owned()))?;
        let rpc = self
            .books_rpcs
            .get(chain_name)
            .ok_or_else(|| ConfirmError::NoRpc(chain_name.to_owned()))?
            .clone();
        let pin = pinned_block(chain, rpc.as_ref()).await?;
        let Some(receipt) = rpc.receipt(tx_hash).await? else {
            return Err(TopupError::Refused(format!(
                "transaction {tx_hash} is not mined (or this node does not know it yet)"
            )));
        };
        if !receipt.success {
            return Err(TopupError::Refused(format!(
                "transaction {tx_hash} reverted"
            )));
        }
        if receipt.block_number > pin.number {
            return Err(TopupError::Refused(format!(
                "transaction {tx_hash} is in block {}, not final yet (final: {}): try again later",
                receipt.block_number, pin.number
            )));
        }
        if rpc.block_hash(receipt.block_number).await? != Some(receipt.block_hash) {
            return Err(TopupError::Refused(format!(
                "the block of transaction {tx_hash} is not canonical on this node"
            )));
        }
        let hot = |a: &Address| chain.hot_wallets.contains(a);
        // (wallet, amount, log index)
        let transfers: Vec<(Address, U256, Option<u64>)> = match asset.kind() {
            AssetKind::Native => {
                let tx = rpc.transaction(tx_hash).await?.ok_or_else(|| {
                    TopupError::Refused(format!("transaction {tx_hash} unknown to this node"))
                })?;
                match tx.to {
                    Some(to) if hot(&to) && !tx.value.is_zero() && !hot(&tx.from) => {
                        vec![(to, tx.value, None)]
                    }
                    _ => Vec::new(),
                }
            }
            AssetKind::Erc20 { contract } => receipt
                .logs
                .iter()
                .enumerate()
                .filter(|(_, log)| {
                    log.address == contract
                        && log.topics.len() == 3
                        && log.topics[0] == TRANSFER_TOPIC
                        && hot(&Address::from_word(log.topics[2]))
                        && !hot(&Address::from_word(log.topics[1]))
                })
                .filter_map(|(i, log)| {
                    let amount = U256::try_from_be_slice(&log.data)?;
                    Some((Address::from_word(log.topics[2]), amount, Some(i as u64)))
                })
                .filter(|(_, amount, _)| !amount.is_zero())
                .collect(),
        };
        if transfers.is_empty() {
            return Err(TopupError::Refused(format!(
                "transaction {tx_hash} sends no {} to a hot wallet of {chain_name} from outside them",
                asset.id()
            )));
        }
        let mut recorded = Vec::new();
        for (wallet, amount, log_index) in transfers {
            let outcome: TopupOutcome = self
                .store
                .record_topup(&NewTopup {
                    chain: chain_name.to_owned(),
                    wallet,
                    asset: asset.id().clone(),
                    amount: Amount::from_base_units(amount),
                    block_number: receipt.block_number,
                    tx_hash,
                    log_index,
                })
                .await?;
            recorded.push(RecordedTopup {
                wallet,
                asset: asset.id().to_string(),
                amount: Amount::from_base_units(amount),
                block_number: receipt.block_number,
                log_index,
                ledger_transaction_id: outcome.ledger_transaction_id.to_string(),
                created: outcome.created,
                in_opening: outcome.in_opening,
            });
        }
        Ok(recorded)
    }
}
