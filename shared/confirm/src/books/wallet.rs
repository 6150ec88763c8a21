//! One hot wallet's books check: opening, nonce walk, comparisons (see the module above).

use std::time::Instant;

use alloy::primitives::b256;
use meshpay_chain::Chain;
use meshpay_chain::rpc::{BooksRpc, PinnedBlock, ReceiptFacts};
use meshpay_domain::{Address, Amount, AssetKind, B256, U256};
use meshpay_store::books::{
    ConsumedNonce, FoundDiscrepancy, NewOpening, NonceSource, TokenTransfer, UnknownTx, WalletBooks,
};
use serde::Serialize;
use serde_json::json;

use super::{BooksReport, agrees, difference};
use crate::{ConfirmError, Pipeline};

/// `Transfer(address,address,uint256)`.
const TRANSFER_TOPIC: B256 =
    b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

/// One wallet's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalletReport {
    pub chain: String,
    pub wallet: Address,
    /// `opened` (first run: opening recorded), `checked` (compared), `catching_up` (the walk
    /// has not reached the chain's nonce yet: nothing compared), `stopped` (a read was missing:
    /// the next run carries on).
    pub status: &'static str,
    pub block: u64,
    pub chain_nonce: u64,
    /// The opening nonce plus meshpay's mined transactions (when compared).
    pub books_nonce: Option<u64>,
    /// Nonces matched with their transaction in this run.
    pub walked: u64,
    /// Recorded nonces forgotten because the chain's nonce at the pinned block is below them.
    pub rewound: u64,
    pub balances: Vec<BalanceCheck>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalanceCheck {
    pub asset: String,
    pub actual: String,
    #[serde(flatten)]
    pub books: meshpay_store::books::ExpectedBalance,
}

/// Why the walk stopped at a nonce.
enum Walk {
    Found(ConsumedNonce),
    /// No positive evidence either way (a receipt or block missing on this node).
    Stop(String),
}

fn fee_of(receipt: &ReceiptFacts) -> U256 {
    U256::from(receipt.gas_used).saturating_mul(U256::from(receipt.effective_gas_price_wei))
}

/// ERC-20 Transfer logs out of `wallet`, with the configured asset of each contract.
fn transfers_out(chain: &Chain, wallet: Address, receipt: &ReceiptFacts) -> Vec<TokenTransfer> {
    receipt
        .logs
        .iter()
        .filter(|log| log.topics.len() == 3 && log.topics[0] == TRANSFER_TOPIC)
        .filter(|log| Address::from_word(log.topics[1]) == wallet)
        .filter_map(|log| {
            let amount = U256::try_from_be_slice(&log.data)?;
            let asset = chain
                .tokens
                .iter()
                .find(|t| matches!(t.kind(), AssetKind::Erc20 { contract } if contract == log.address))
                .map(|t| t.id().clone());
            Some(TokenTransfer {
                contract: log.address,
                asset,
                to: Address::from_word(log.topics[2]),
                amount: Amount::from_base_units(amount),
            })
        })
        .collect()
}

fn unknown_json(u: &UnknownTx) -> serde_json::Value {
    json!({
        "tx_hash": u.tx_hash, "nonce": u.nonce, "block_number": u.block_number, "to": u.to,
        "success": u.success, "value": u.value.to_string(), "fee": u.fee.to_string(),
        "token_transfers": u.token_transfers.iter().map(|t| json!({
            "asset": t.asset, "contract": t.contract, "to": t.to, "amount": t.amount.to_string(),
        })).collect::<Vec<_>>(),
    })
}

impl Pipeline {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn check_wallet(
        &self,
        chain: &Chain,
        rpc: &dyn BooksRpc,
        wallet: Address,
        pin: PinnedBlock,
        run_id: i64,
        deadline: Instant,
        report: &mut BooksReport,
    ) -> Result<WalletReport, ConfirmError> {
        let lock = self.store.lock_wallet_books(&chain.name, wallet).await?;
        let result = self
            .check_wallet_locked(chain, rpc, wallet, pin, run_id, deadline, report)
            .await;
        lock.release().await?;
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn check_wallet_locked(
        &self,
        chain: &Chain,
        rpc: &dyn BooksRpc,
        wallet: Address,
        pin: PinnedBlock,
        run_id: i64,
        deadline: Instant,
        report: &mut BooksReport,
    ) -> Result<WalletReport, ConfirmError> {
        let chain_nonce = rpc.nonce_at(wallet, pin).await?;
        let mut out = WalletReport {
            chain: chain.name.clone(),
            wallet,
            status: "checked",
            block: pin.number,
            chain_nonce,
            books_nonce: None,
            walked: 0,
            rewound: 0,
            balances: Vec::new(),
            detail: None,
        };
        let Some(mut books) = self.store.wallet_books(&chain.name, wallet).await? else {
            let mut balances = Vec::new();
            for asset in chain.assets() {
                let actual = self.balance(rpc, asset.kind(), wallet, pin).await?;
                balances.push((asset.id().clone(), Amount::from_base_units(actual)));
            }
            self.store
                .open_wallet_books(&NewOpening {
                    chain: chain.name.clone(),
                    wallet,
                    block: pin.number,
                    block_hash: pin.hash,
                    nonce: chain_nonce,
                    balances,
                })
                .await?;
            out.status = "opened";
            out.books_nonce = Some(chain_nonce);
            return Ok(out);
        };
        if chain_nonce < books.next_nonce {
            // A positive read at a final block: the nonces above it are not used (a reorg
            // deeper than the finality rule). Their records go; the walk finds them again.
            out.rewound = self
                .store
                .rewind_wallet_nonces(&chain.name, wallet, chain_nonce)
                .await?;
            books.next_nonce = chain_nonce.max(books.opening_nonce);
            out.detail = Some(format!(
                "the chain's nonce {chain_nonce} at block {} is below the {} recorded: {} records forgotten",
                pin.number, books.next_nonce, out.rewound
            ));
        }
        let mut found = Vec::new();
        let mut cleared = Vec::new();
        let nonce_key = format!("nonce:{}:{wallet}", chain.name);
        if chain_nonce < books.opening_nonce {
            found.push(FoundDiscrepancy {
                dedupe_key: nonce_key,
                kind: "nonce",
                chain: chain.name.clone(),
                wallet: Some(wallet.to_string()),
                asset: None,
                payment_id: None,
                expected: Some(books.opening_nonce.to_string()),
                actual: Some(chain_nonce.to_string()),
                difference: Some(format!("-{}", books.opening_nonce - chain_nonce)),
                transactions: json!([]),
                detail: format!(
                    "the chain's nonce at block {} is below the opening nonce recorded at block {}",
                    pin.number, books.opening_block
                ),
            });
            self.settle_findings(run_id, found, cleared, report).await?;
            out.status = "stopped";
            return Ok(out);
        }
        let limit = u64::from(self.config.reconcile.nonces_per_wallet);
        let mut prev_block = match books.next_nonce.checked_sub(1) {
            Some(n) if n >= books.opening_nonce => self
                .store
                .consumed_nonce_block(&chain.name, wallet, n)
                .await?
                .unwrap_or(books.opening_block),
            _ => books.opening_block,
        };
        while books.next_nonce < chain_nonce {
            if out.walked >= limit || Instant::now() > deadline {
                out.status = "catching_up";
                break;
            }
            match self
                .locate(chain, rpc, &books, books.next_nonce, prev_block, pin)
                .await?
            {
                Walk::Found(consumed) => {
                    let native = chain.native.id();
                    self.store
                        .record_consumed_nonce(&chain.name, wallet, native, &consumed)
                        .await?;
                    prev_block = consumed.block_number;
                    books.next_nonce += 1;
                    out.walked += 1;
                }
                Walk::Stop(detail) => {
                    out.status = "stopped";
                    out.detail = Some(detail);
                    break;
                }
            }
        }
        if out.status != "checked" {
            return Ok(out);
        }

        let wallet_text = wallet.to_string();
        let unknown = self
            .store
            .unknown_transactions(&chain.name, wallet, chain_nonce)
            .await?;
        let ours = self
            .store
            .meshpay_nonces(&chain.name, wallet, chain_nonce)
            .await?;
        let books_nonce = books.opening_nonce + ours;
        out.books_nonce = Some(books_nonce);
        if books_nonce == chain_nonce {
            cleared.push(nonce_key);
        } else {
            found.push(FoundDiscrepancy {
                dedupe_key: nonce_key,
                kind: "nonce",
                chain: chain.name.clone(),
                wallet: Some(wallet_text.clone()),
                asset: None,
                payment_id: None,
                expected: Some(books_nonce.to_string()),
                actual: Some(chain_nonce.to_string()),
                difference: Some(difference(
                    U256::from(chain_nonce),
                    &books_nonce.to_string(),
                )),
                transactions: json!(unknown.iter().map(unknown_json).collect::<Vec<_>>()),
                detail: format!(
                    "{} transactions were mined from the wallet since block {} but meshpay sent {}",
                    chain_nonce - books.opening_nonce,
                    books.opening_block,
                    ours
                ),
            });
        }
        for u in &unknown {
            let spent = u.value.base_units().saturating_add(u.fee.base_units());
            found.push(FoundDiscrepancy {
                dedupe_key: format!("unknown_transaction:{}:{}", chain.name, u.tx_hash),
                kind: "unknown_transaction",
                chain: chain.name.clone(),
                wallet: Some(wallet_text.clone()),
                asset: Some(chain.native.id().to_string()),
                payment_id: None,
                expected: Some("0".into()),
                actual: Some(spent.to_string()),
                difference: Some(format!("-{spent}")),
                transactions: json!([unknown_json(u)]),
                detail: format!(
                    "transaction {} (nonce {}, block {}) was sent from the hot wallet by someone \
                     other than meshpay: value {} + fee {} wei",
                    u.tx_hash, u.nonce, u.block_number, u.value, u.fee
                ),
            });
        }
        for asset in chain.assets() {
            let actual = self.balance(rpc, asset.kind(), wallet, pin).await?;
            let expected = self
                .store
                .expected_balance(
                    &chain.name,
                    wallet,
                    asset.id(),
                    asset.is_native(),
                    pin.number,
                    chain_nonce,
                )
                .await?;
            let key = format!("balance:{}:{wallet}:{}", chain.name, asset.id());
            if agrees(actual, &expected) {
                cleared.push(key);
            } else {
                let involved: Vec<serde_json::Value> = unknown
                    .iter()
                    .filter(|u| {
                        asset.is_native()
                            || u.token_transfers
                                .iter()
                                .any(|t| t.asset.as_ref() == Some(asset.id()))
                    })
                    .map(unknown_json)
                    .collect();
                found.push(FoundDiscrepancy {
                    dedupe_key: key,
                    kind: "balance",
                    chain: chain.name.clone(),
                    wallet: Some(wallet_text.clone()),
                    asset: Some(asset.id().to_string()),
                    payment_id: None,
                    expected: Some(expected.expected.clone()),
                    actual: Some(actual.to_string()),
                    difference: Some(difference(actual, &expected.expected)),
                    transactions: json!({
                        "unknown": involved,
                        "in_flight_payments": expected.in_flight_payments,
                    }),
                    detail: format!(
                        "{} holds {actual} of {} at block {}; the books say {} (opening {} + \
                         top-ups {} - outflows {} - network fees {} - in flight {})",
                        wallet,
                        asset.id(),
                        pin.number,
                        expected.expected,
                        expected.opening,
                        expected.topups,
                        expected.outflows,
                        expected.network_fees,
                        expected.in_flight
                    ),
                });
            }
            out.balances.push(BalanceCheck {
                asset: asset.id().to_string(),
                actual: actual.to_string(),
                books: expected,
            });
        }
        for (payment, ours, theirs) in self
            .store
            .settled_not_on_chain(&chain.name, wallet, chain_nonce)
            .await?
        {
            found.push(FoundDiscrepancy {
                dedupe_key: format!("settled_not_on_chain:{payment}"),
                kind: "settled_not_on_chain",
                chain: chain.name.clone(),
                wallet: Some(wallet_text.clone()),
                asset: None,
                payment_id: Some(payment),
                expected: None,
                actual: None,
                difference: None,
                transactions: json!([{ "tx_hash": ours }, { "tx_hash": theirs }]),
                detail: format!(
                    "payment {payment} is settled with {ours}, but its nonce was used by {theirs}"
                ),
            });
        }
        self.settle_findings(run_id, found, cleared, report).await?;
        self.store
            .record_books_checked(&chain.name, wallet, pin.number)
            .await?;
        Ok(out)
    }

    async fn balance(
        &self,
        rpc: &dyn BooksRpc,
        kind: AssetKind,
        wallet: Address,
        pin: PinnedBlock,
    ) -> Result<U256, ConfirmError> {
        Ok(match kind {
            AssetKind::Native => rpc.balance_at(wallet, pin).await?,
            AssetKind::Erc20 { contract } => rpc.token_balance_at(contract, wallet, pin).await?,
        })
    }

    /// The transaction that consumed `nonce` (below the chain's nonce at `pin`). `prev_block`:
    /// a block at or before the one that consumed `nonce - 1`.
    async fn locate(
        &self,
        chain: &Chain,
        rpc: &dyn BooksRpc,
        books: &WalletBooks,
        nonce: u64,
        prev_block: u64,
        pin: PinnedBlock,
    ) -> Result<Walk, ConfirmError> {
        let wallet = books.address;
        let candidates = self
            .store
            .nonce_candidates(&chain.name, wallet, nonce)
            .await?;
        for candidate in &candidates {
            let Some(receipt) = rpc.receipt(candidate.tx_hash).await? else {
                continue;
            };
            if receipt.from != wallet || receipt.block_number > pin.number {
                continue;
            }
            if rpc.block_hash(receipt.block_number).await? != Some(receipt.block_hash) {
                continue;
            }
            return Ok(Walk::Found(consumed(
                chain,
                wallet,
                nonce,
                &receipt,
                candidate.source,
                candidate.value,
            )));
        }
        // No receipt of ours proves it: find the block that used the nonce. nonce_at(lo) <=
        // nonce < nonce_at(hi) throughout.
        let mut lo = prev_block.saturating_sub(1).max(books.opening_block);
        let mut hi = pin.number;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if rpc.nonce_at_number(wallet, mid).await? > nonce {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let Some(txs) = rpc.block_transactions(hi).await? else {
            return Ok(Walk::Stop(format!(
                "nonce {nonce}: the node does not have block {hi}"
            )));
        };
        let Some(tx) = txs
            .into_iter()
            .find(|tx| tx.from == wallet && tx.nonce == nonce)
        else {
            return Ok(Walk::Stop(format!(
                "nonce {nonce}: block {hi} holds no transaction of the wallet on it (node inconsistent)"
            )));
        };
        let Some(receipt) = rpc.receipt(tx.hash).await? else {
            return Ok(Walk::Stop(format!(
                "nonce {nonce}: no receipt yet for {} of block {hi}",
                tx.hash
            )));
        };
        if receipt.block_number != hi {
            return Ok(Walk::Stop(format!(
                "nonce {nonce}: the receipt of {} names block {}, not {hi}",
                tx.hash, receipt.block_number
            )));
        }
        let source = candidates
            .iter()
            .find(|c| c.tx_hash == tx.hash)
            .map_or(NonceSource::Unknown, |c| c.source);
        Ok(Walk::Found(consumed(
            chain, wallet, nonce, &receipt, source, tx.value,
        )))
    }
}

fn consumed(
    chain: &Chain,
    wallet: Address,
    nonce: u64,
    receipt: &ReceiptFacts,
    source: NonceSource,
    value: U256,
) -> ConsumedNonce {
    ConsumedNonce {
        nonce,
        tx_hash: receipt.tx_hash,
        block_number: receipt.block_number,
        block_hash: receipt.block_hash,
        source,
        success: receipt.success,
        value: if receipt.success { value } else { U256::ZERO },
        fee: fee_of(receipt),
        to: receipt.to,
        token_transfers: if receipt.success {
            transfers_out(chain, wallet, receipt)
        } else {
            Vec::new()
        },
    }
}
