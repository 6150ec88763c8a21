//! Who used a nonce, read at a final block: the proof a re-sign on a new nonce needs once the
//! old bytes may be public.
//!
//! One "unknown hash" or "no receipt" is not evidence: a load-balanced RPC can route the read
//! to a backend that lags behind the one that mined the transaction. So every read here is
//! pinned to a block number at or below the chain's final block (`finalized`, or
//! `confirmations` below the head, per chains.toml), which a lagging backend either answers
//! like every other node or refuses: the wallet's nonce in the state after each block locates
//! the block that used the nonce, and that block's body names the transaction.

use alloy::primitives::{Address, B256};
use meshpay_store::transactions::TxAttempt;

use crate::{ChainContext, Relay, RelayError};

/// Who used a wallet's nonce, as far as final blocks show.
pub(super) enum Consumer {
    /// No final block shows it used (yet), or the node could not say: no proof either way.
    Unproven(String),
    /// One of the payment's own transactions.
    Ours(Box<TxAttempt>),
    /// A transaction that is none of the payment's.
    Foreign { hash: B256, block: u64 },
}

impl Relay {
    /// Who used `nonce` of `wallet`, checked against every one of the payment's `attempts`.
    pub(super) async fn nonce_consumer(
        &self,
        ctx: &ChainContext,
        wallet: Address,
        nonce: u64,
        attempts: &[TxAttempt],
    ) -> Result<Consumer, RelayError> {
        let head = ctx.rpc.head(ctx.chain.use_finalized).await?;
        let final_block = if ctx.chain.use_finalized {
            head.finalized
        } else {
            head.latest.checked_sub(ctx.chain.confirmations)
        };
        let Some(final_block) = final_block else {
            return Ok(Consumer::Unproven(
                "the chain has no final block yet".into(),
            ));
        };
        let used_at = |block: u64| async move {
            Ok::<bool, RelayError>(ctx.rpc.nonce_at(wallet, block).await? > nonce)
        };
        if !used_at(final_block).await? {
            return Ok(Consumer::Unproven(format!(
                "nonce {nonce} is not used as of final block {final_block}"
            )));
        }
        // `hi`: a block after which the nonce is used; `lo`: one after which it is not. Walk
        // back in growing steps, then halve: about 2·log2(distance) pinned reads.
        let mut hi = final_block;
        let mut step = 1u64;
        let mut lo = loop {
            let probe = hi.saturating_sub(step);
            if probe == hi {
                return Ok(Consumer::Unproven(format!(
                    "nonce {nonce} reads as used in the genesis state"
                )));
            }
            if !used_at(probe).await? {
                break probe;
            }
            hi = probe;
            step = step.saturating_mul(2);
        };
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if used_at(mid).await? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let Some(transactions) = ctx.rpc.block_transactions(hi).await? else {
            return Ok(Consumer::Unproven(format!(
                "the node does not have block {hi}"
            )));
        };
        let Some(used) = transactions
            .iter()
            .find(|tx| tx.from == wallet && tx.nonce == nonce)
        else {
            return Ok(Consumer::Unproven(format!(
                "block {hi} moved the nonce past {nonce} but has no transaction of the wallet \
                 with it"
            )));
        };
        Ok(
            match attempts.iter().find(|attempt| attempt.tx_hash == used.hash) {
                Some(ours) => Consumer::Ours(Box::new(ours.clone())),
                None => Consumer::Foreign {
                    hash: used.hash,
                    block: hi,
                },
            },
        )
    }
}
