//! The ledger's invariants, checked over the whole database.

use crate::Store;
use crate::error::{Result, StoreError};

impl Store {
    /// Checks the ledger's invariants over the whole database (tests, reconciliation):
    /// entries sum to zero per asset and per ledger transaction and asset; cached balances equal
    /// their entries; no merchant balance is negative; held balances equal open holds; a payment
    /// has open holds exactly while its status holds funds; every settled payment is captured;
    /// no payment paid more network fee than was held for it, and a recorded actual network fee
    /// is exactly what was posted to the network-fee account.
    pub async fn check_ledger_invariants(&self) -> Result<()> {
        let checks: [(&str, &str); 9] = [
            (
                "entries do not sum to zero for asset",
                "SELECT asset FROM ledger_entries GROUP BY asset HAVING sum(amount) <> 0",
            ),
            (
                "ledger transaction does not balance",
                "SELECT transaction_id::text || ' ' || asset FROM ledger_entries
                 GROUP BY transaction_id, asset HAVING sum(amount) <> 0",
            ),
            (
                "cached balance differs from entries for account",
                "SELECT a.id::text FROM ledger_accounts a
                 LEFT JOIN (SELECT account_id, sum(amount) AS s FROM ledger_entries GROUP BY account_id) e
                   ON e.account_id = a.id
                 WHERE a.balance IS NOT NULL AND a.balance <> coalesce(e.s, 0)",
            ),
            (
                "negative merchant balance in account",
                "SELECT a.id::text FROM ledger_accounts a
                 LEFT JOIN (SELECT account_id, sum(amount) AS s FROM ledger_entries GROUP BY account_id) e
                   ON e.account_id = a.id
                 WHERE a.merchant_id IS NOT NULL AND (a.balance < 0 OR coalesce(e.s, 0) < 0)",
            ),
            (
                "held balance differs from open holds for account",
                "SELECT a.id::text FROM ledger_accounts a
                 LEFT JOIN (SELECT merchant_id, asset, sum(amount) AS s FROM holds WHERE status = 'held'
                            GROUP BY merchant_id, asset) h
                   ON h.merchant_id = a.merchant_id AND h.asset = a.asset
                 WHERE a.kind = 'merchant_held' AND a.balance <> coalesce(h.s, 0)",
            ),
            (
                "open holds disagree with status for payment",
                "SELECT p.id::text FROM payments p
                 WHERE (p.status IN ('authorized', 'broadcast', 'stalled', 'cancelling', 'confirmed'))
                    <> EXISTS (SELECT 1 FROM holds h WHERE h.payment_id = p.id AND h.status = 'held')",
            ),
            (
                "settled payment without a settlement posting",
                "SELECT p.id::text FROM payments p WHERE p.status = 'settled' AND NOT EXISTS
                   (SELECT 1 FROM ledger_transactions t WHERE t.kind = 'settle' AND t.payment_id = p.id)",
            ),
            (
                "network fee captured above its hold for payment",
                "WITH f AS (SELECT t.payment_id, sum(e.amount) AS s FROM ledger_transactions t
                              JOIN ledger_entries e ON e.transaction_id = t.id
                              JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'network_fees'
                             WHERE t.payment_id IS NOT NULL GROUP BY t.payment_id)
                 SELECT p.id::text FROM payments p JOIN f ON f.payment_id = p.id
                  WHERE f.s > p.network_fee",
            ),
            (
                "recorded network fee differs from its postings for payment",
                "WITH f AS (SELECT t.payment_id, sum(e.amount) AS s FROM ledger_transactions t
                              JOIN ledger_entries e ON e.transaction_id = t.id
                              JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'network_fees'
                             WHERE t.payment_id IS NOT NULL GROUP BY t.payment_id)
                 SELECT p.id::text FROM payments p LEFT JOIN f ON f.payment_id = p.id
                  WHERE p.network_fee_actual IS NOT NULL AND coalesce(f.s, 0) <> p.network_fee_actual",
            ),
        ];
        let mut violations = Vec::new();
        for (what, sql) in checks {
            let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&self.pool).await?;
            violations.extend(rows.into_iter().map(|(item,)| format!("{what} {item}")));
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(StoreError::InvariantViolated(violations))
        }
    }
}
