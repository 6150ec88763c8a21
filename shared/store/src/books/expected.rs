//! What the books say a hot wallet holds after a block, per asset:
//!
//! ```text
//! expected = opening + top-ups (after the opening block, up to the block)
//!          + what confirmed sweeps mined after the opening block, up to the block, brought to
//!            this wallet as the factory's treasury (their `sweep` postings to `hot_wallets`)
//!          - for each nonce consumed by meshpay since the opening (below the chain's nonce at
//!            the block):
//!              a payment that ended (settled, failed, cancelled): its ledger postings to the
//!                outflow and network-fee accounts in that asset (fee adjustments after a
//!                reorg included)
//!              a payment still in flight: the chain's figures of its mined transaction (native:
//!                value + fee; a token: its Transfer logs out of the wallet), listed apart
//!              a gap fill: its `gap_fill_fee` posting
//!              a sweep it sent: its `sweep` posting's gas once finished, else the chain's fee
//!              a transaction meshpay did not send that an operator explained: the chain's
//!                figures (counted with the in-flight ones)
//! ```
//!
//! A transaction meshpay did not send counts nothing: it shows as the difference.

use meshpay_domain::{Address, AssetId, PaymentId};

use super::i64_of;
use crate::Store;
use crate::error::Result;

/// The books' balance of one asset of a wallet, with its parts (base units; `expected` is
/// signed text: books that spent more than they hold go below zero).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedBalance {
    pub asset: AssetId,
    pub opening: String,
    pub topups: String,
    /// Brought by confirmed sweeps of deposit addresses (this wallet is the treasury).
    pub swept_in: String,
    /// Posted to the outflow account by payments that ended.
    pub outflows: String,
    /// Posted to the network-fee account (payments that ended, gap fills).
    pub network_fees: String,
    /// Spent by mined transactions of payments still in flight and by explained unknown
    /// transactions (chain figures).
    pub in_flight: String,
    pub in_flight_payments: Vec<PaymentId>,
    pub expected: String,
}

type ExpectedRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Vec<uuid::Uuid>,
);

impl Store {
    /// The books' balance of `asset` (native when `native`) after `block`, counting the nonces
    /// below `nonce`.
    pub async fn expected_balance(
        &self,
        chain: &str,
        wallet: Address,
        asset: &AssetId,
        native: bool,
        block: u64,
        nonce: u64,
    ) -> Result<ExpectedBalance> {
        let row: ExpectedRow = sqlx::query_as(
            "WITH b AS (SELECT * FROM hot_wallet_books WHERE chain = $1 AND address = $2),
             funding AS (
               SELECT coalesce(sum(f.amount) FILTER (WHERE f.kind = 'opening'), 0) AS opening,
                      coalesce(sum(f.amount) FILTER (WHERE f.kind = 'topup'), 0) AS topups
               FROM hot_wallet_funding f JOIN b ON f.chain = b.chain AND f.address = b.address
               WHERE f.asset = $3
                 AND (f.kind = 'opening' OR (f.block_number > b.opening_block AND f.block_number <= $5))),
             n AS (SELECT n.* FROM hot_wallet_nonces n
                   WHERE n.chain = $1 AND n.address = $2 AND n.nonce < $6 AND n.source <> 'unknown'),
             explained AS (SELECT n.* FROM hot_wallet_nonces n
                   WHERE n.chain = $1 AND n.address = $2 AND n.nonce < $6 AND n.source = 'unknown'
                     AND n.acknowledged_at IS NOT NULL),
             ended AS (
               SELECT DISTINCT n.payment_id FROM n JOIN payments p ON p.id = n.payment_id
               WHERE p.status IN ('settled', 'failed', 'cancelled')),
             posted AS (
               SELECT coalesce(sum(e.amount) FILTER (WHERE a.kind = 'outflow'), 0) AS outflows,
                      coalesce(sum(e.amount) FILTER (WHERE a.kind = 'network_fees'), 0) AS fees
               FROM ledger_transactions t
               JOIN ledger_entries e ON e.transaction_id = t.id
               JOIN ledger_accounts a ON a.id = e.account_id AND a.kind IN ('outflow', 'network_fees')
               WHERE e.asset = $3
                 AND (t.payment_id IN (SELECT payment_id FROM ended)
                      OR (t.kind = 'fee_adjustment'
                          AND split_part(t.reference, ':', 2) IN (SELECT payment_id::text FROM ended
                                                                  UNION ALL
                                                                  SELECT sweep_id::text FROM n
                                                                  WHERE sweep_id IS NOT NULL))
                      OR (t.kind = 'gap_fill_fee'
                          AND t.reference IN (SELECT 'gap_fill:' || gap_fill_id FROM n
                                              WHERE gap_fill_id IS NOT NULL))
                      OR (t.kind = 'sweep'
                          AND t.reference IN (SELECT 'sweep:' || sweep_id FROM n
                                              WHERE sweep_id IS NOT NULL)))),
             swept AS (
               SELECT coalesce(sum(e.amount), 0) AS amount FROM sweeps s
               JOIN b ON true
               JOIN ledger_transactions t ON t.kind = 'sweep' AND t.reference = 'sweep:' || s.id
               JOIN ledger_entries e ON e.transaction_id = t.id AND e.amount > 0 AND e.asset = $3
               JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'hot_wallets'
               WHERE s.chain = $1 AND s.treasury = $2 AND s.status = 'confirmed'
                 AND s.block_number > b.opening_block AND s.block_number <= $5),
             chain_side AS (
               SELECT n.payment_id, n.value, n.fee, n.token_transfers FROM n
               JOIN payments p ON p.id = n.payment_id
               WHERE p.status NOT IN ('settled', 'failed', 'cancelled')
               UNION ALL
               SELECT NULL, n.value, n.fee, '[]'::jsonb FROM n
               JOIN sweeps s ON s.id = n.sweep_id
               WHERE s.status NOT IN ('confirmed', 'failed')
               UNION ALL
               SELECT NULL, value, fee, token_transfers FROM explained),
             flight AS (
               SELECT c.payment_id,
                      CASE WHEN $4 THEN c.value + c.fee
                           ELSE (SELECT coalesce(sum((x->>'amount')::numeric), 0)
                                 FROM jsonb_array_elements(c.token_transfers) x
                                 WHERE x->>'asset' = $3) END AS spent
               FROM chain_side c)
             SELECT funding.opening::text, funding.topups::text, swept.amount::text,
                    posted.outflows::text, posted.fees::text,
                    (SELECT coalesce(sum(spent), 0) FROM flight)::text,
                    (funding.opening + funding.topups + swept.amount - posted.outflows - posted.fees
                       - (SELECT coalesce(sum(spent), 0) FROM flight))::text,
                    coalesce((SELECT array_agg(payment_id) FROM flight
                              WHERE spent > 0 AND payment_id IS NOT NULL), '{}')
             FROM funding, posted, swept",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(asset.to_string())
        .bind(native)
        .bind(i64_of(block, "block")?)
        .bind(i64_of(nonce, "nonce")?)
        .fetch_one(&self.pool)
        .await?;
        let (opening, topups, swept_in, outflows, fees, in_flight, expected, flight) = row;
        Ok(ExpectedBalance {
            asset: asset.clone(),
            opening,
            topups,
            swept_in,
            outflows,
            network_fees: fees,
            in_flight,
            in_flight_payments: flight.into_iter().map(PaymentId::from_uuid).collect(),
            expected,
        })
    }

    /// Settled payments of the wallet whose nonce (below `below`, since the opening) was
    /// consumed by another transaction than theirs: (payment, its tx hash, the one on chain).
    pub async fn settled_not_on_chain(
        &self,
        chain: &str,
        wallet: Address,
        below: u64,
    ) -> Result<Vec<(PaymentId, String, String)>> {
        let rows: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
            "SELECT p.id, p.tx_hash, n.tx_hash FROM payments p
             JOIN hot_wallet_nonces n ON n.chain = p.chain AND n.address = p.hot_wallet AND n.nonce = p.nonce
             WHERE p.chain = $1 AND p.hot_wallet = $2 AND p.status = 'settled' AND p.nonce < $3
               AND n.payment_id IS DISTINCT FROM p.id",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(i64_of(below, "nonce")?)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, ours, theirs)| (PaymentId::from_uuid(id), ours, theirs))
            .collect())
    }
}
