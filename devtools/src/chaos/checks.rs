//! What must hold after the run, checked against the chain itself (anvil directly, never the
//! fault proxy) and the database:
//! - every payment is final (settled, failed, cancelled, expired) or parked with a reason;
//! - no payment has two mined transactions, and no recipient got more than asked (each payment
//!   pays a recipient of its own, so the recipient's balance is what the payment delivered);
//! - per hot wallet, what left it on chain equals what the books say left it: settled amounts
//!   plus the network fees posted, cancellations' included (plus mined work the books do not
//!   hold yet, listed);
//! - the ledger sums to zero; the nonces each wallet used are gap-free and each used once;
//! - every merchant webhook event arrived at least once, in per-payment order.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy::primitives::{Address, U256};
use futures::StreamExt as _;
use meshpay_store::Store;
use sqlx::PgPool;

use super::chain::{Chain, Receipt};
use super::webhook_sink::Delivery;

/// `Some(true)` when the payment is final or parked with a reason.
pub async fn resolved(db: &PgPool, payment: uuid::Uuid) -> Result<Option<bool>, sqlx::Error> {
    let row: Option<(bool,)> = sqlx::query_as(RESOLVED_SQL)
        .bind(payment)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|(done,)| done))
}

const RESOLVED_SQL: &str = "SELECT p.status IN ('settled', 'failed', 'cancelled', 'expired')
         OR (c.last_outcome IN ('needs_review', 'stalled') AND c.last_detail IS NOT NULL)
       FROM payments p LEFT JOIN payment_confirmations c ON c.payment_id = p.id
      WHERE p.id = $1";

/// What is still moving: the run drains until all of it is zero.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    pub unresolved_payments: i64,
    pub webhook_backlog: i64,
    pub nonce_gaps: i64,
}

impl Pending {
    pub fn is_idle(&self) -> bool {
        *self == Pending::default()
    }
}

pub async fn pending(db: &PgPool) -> Result<Pending, sqlx::Error> {
    let (unresolved_payments, webhook_backlog, nonce_gaps): (i64, i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT count(*) FROM payments p LEFT JOIN payment_confirmations c ON c.payment_id = p.id
             WHERE p.status NOT IN ('settled', 'failed', 'cancelled', 'expired')
               AND NOT (coalesce(c.last_outcome IN ('needs_review', 'stalled'), false)
                        AND c.last_detail IS NOT NULL)),
           (SELECT count(*) FROM outbox WHERE topic = 'webhook' AND dispatched_at IS NULL)
             + (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'),
           (SELECT count(*) FROM wallet_nonce_gaps)",
    )
    .fetch_one(db)
    .await?;
    Ok(Pending {
        unresolved_payments,
        webhook_backlog,
        nonce_gaps,
    })
}

/// One payment as the database holds it.
#[derive(Debug, Clone)]
struct PaymentRow {
    id: uuid::Uuid,
    status: String,
    asset: String,
    amount: u128,
    recipient: String,
    hot_wallet: Option<String>,
    network_fee_actual: Option<u128>,
    failure_reason: Option<String>,
    parked: Option<String>,
}

/// Wallet balances before the traffic.
#[derive(Debug, Clone, Default)]
pub struct WalletStart {
    pub eth: BTreeMap<Address, U256>,
    pub usdc: BTreeMap<Address, u128>,
}

/// The outcome of the checks.
#[derive(Debug, Default)]
pub struct Findings {
    /// Payment → what is wrong with it.
    pub per_payment: BTreeMap<uuid::Uuid, Vec<String>>,
    /// Run-wide violations (wallet sums, ledger, nonces, webhooks).
    pub global: Vec<String>,
    /// Facts worth printing that are not violations.
    pub notes: Vec<String>,
    pub statuses: BTreeMap<String, usize>,
    pub parked: usize,
    pub checked: usize,
}

impl Findings {
    fn payment(&mut self, id: uuid::Uuid, what: String) {
        self.per_payment.entry(id).or_default().push(what);
    }
}

pub struct Checks<'a> {
    pub db: &'a PgPool,
    pub store: &'a Store,
    pub chain: &'a Chain,
    pub merchant: uuid::Uuid,
    pub hot_wallets: &'a [Address],
    pub start: &'a WalletStart,
}

impl Checks<'_> {
    pub async fn run(&self, webhooks: &[Delivery]) -> anyhow::Result<Findings> {
        let mut findings = Findings::default();
        let payments = self.payments().await?;
        findings.checked = payments.len();
        let attempts: Vec<(uuid::Uuid, String, String, i64)> = sqlx::query_as(
            "SELECT payment_id, tx_hash, from_address, nonce FROM payment_transactions",
        )
        .fetch_all(self.db)
        .await?;
        let gap_fills: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT address, tx_hash, nonce FROM wallet_gap_fills")
                .fetch_all(self.db)
                .await?;
        let hashes: Vec<String> = attempts
            .iter()
            .map(|a| a.1.clone())
            .chain(gap_fills.iter().map(|g| g.1.clone()))
            .collect();
        let receipts = self.receipts(&hashes).await?;

        let mut mined_by_payment: HashMap<uuid::Uuid, Vec<(&str, &Receipt)>> = HashMap::new();
        for (payment, hash, _, _) in &attempts {
            if let Some(receipt) = receipts.get(hash) {
                mined_by_payment
                    .entry(*payment)
                    .or_default()
                    .push((hash.as_str(), receipt));
            }
        }
        let balances = self.recipient_balances(&payments).await?;

        // Per wallet: (ETH out per the books, USDC out per the books).
        let mut booked: BTreeMap<Address, (U256, u128)> = BTreeMap::new();
        for payment in &payments {
            *findings.statuses.entry(payment.status.clone()).or_default() += 1;
            let final_status = matches!(
                payment.status.as_str(),
                "settled" | "failed" | "cancelled" | "expired"
            );
            if !final_status {
                match &payment.parked {
                    Some(_) => findings.parked += 1,
                    None => findings.payment(
                        payment.id,
                        format!("{} and not parked with a reason", payment.status),
                    ),
                }
            }
            if payment.status == "failed" && payment.failure_reason.is_none() {
                findings.payment(payment.id, "failed without a reason".into());
            }
            let mined = mined_by_payment
                .get(&payment.id)
                .cloned()
                .unwrap_or_default();
            if mined.len() > 1 {
                let hashes: Vec<&str> = mined.iter().map(|(h, _)| *h).collect();
                findings.payment(
                    payment.id,
                    format!("{} mined transactions: {hashes:?}", mined.len()),
                );
            }
            let delivered = balances.get(&payment.id).copied().unwrap_or_default();
            if delivered > payment.amount {
                findings.payment(
                    payment.id,
                    format!(
                        "recipient {} got {delivered}, asked {}",
                        payment.recipient, payment.amount
                    ),
                );
            }
            match payment.status.as_str() {
                "settled" => {
                    if delivered != payment.amount {
                        findings.payment(
                            payment.id,
                            format!(
                                "settled but the recipient got {delivered} of {}",
                                payment.amount
                            ),
                        );
                    }
                    if !mined.iter().any(|(_, r)| r.success) {
                        findings.payment(
                            payment.id,
                            "settled without a successful mined transaction".into(),
                        );
                    }
                }
                "failed" | "cancelled" | "expired" if delivered > 0 => findings.payment(
                    payment.id,
                    format!("{} but the recipient got {delivered}", payment.status),
                ),
                _ => {}
            }
            // The fee posted must be what the chain charged for the mined transaction: the
            // payment's own, or the cancellation's (a 0-value self-transfer on its nonce).
            let charged: Option<U256> = mined.first().map(|(_, r)| r.fee);
            let posted = payment.network_fee_actual.map(U256::from);
            let booked_fee = match payment.status.as_str() {
                "settled" | "failed" | "cancelled" => {
                    if charged.is_some() && posted != charged {
                        findings.payment(
                            payment.id,
                            format!("network fee posted {posted:?}, charged {charged:?}"),
                        );
                    }
                    posted.unwrap_or_default()
                }
                _ => U256::ZERO,
            };
            let Some(wallet) = payment
                .hot_wallet
                .as_deref()
                .and_then(|w| w.parse::<Address>().ok())
            else {
                continue;
            };
            let entry = booked.entry(wallet).or_default();
            entry.0 += booked_fee;
            if payment.status == "settled" {
                match payment.asset.as_str() {
                    "anvil:ETH" => entry.0 += U256::from(payment.amount),
                    _ => entry.1 += payment.amount,
                }
            } else if !final_status && let Some((_, receipt)) = mined.first() {
                // Parked but mined: on chain, not yet in the books.
                findings.notes.push(format!(
                    "payment {} parked with its transaction mined (outflow not booked yet)",
                    payment.id
                ));
                entry.0 += receipt.fee;
                if receipt.success {
                    match payment.asset.as_str() {
                        "anvil:ETH" => entry.0 += U256::from(payment.amount),
                        _ => entry.1 += payment.amount,
                    }
                }
            }
        }

        // Gap fills: 0-value transfers to self; their fees are real outflow.
        let mut gap_fill_fees: BTreeMap<Address, U256> = BTreeMap::new();
        for (address, hash, _) in &gap_fills {
            if let (Ok(wallet), Some(receipt)) = (address.parse::<Address>(), receipts.get(hash)) {
                *gap_fill_fees.entry(wallet).or_default() += receipt.fee;
            }
        }
        for (wallet, fee) in &gap_fill_fees {
            booked.entry(*wallet).or_default().0 += *fee;
            findings.notes.push(format!(
                "wallet {wallet}: gap-fill fees {fee} wei (counted on the chain side)"
            ));
        }
        self.wallet_outflows(&booked, &mut findings).await?;
        self.nonces(&attempts, &gap_fills, &receipts, &mut findings)
            .await?;
        if let Err(error) = self.store.check_ledger_invariants().await {
            findings.global.push(format!("ledger: {error}"));
        }
        self.webhooks(webhooks, &mut findings).await?;
        Ok(findings)
    }

    async fn payments(&self) -> anyhow::Result<Vec<PaymentRow>> {
        type Row = (
            uuid::Uuid,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT p.id, p.status, p.asset, p.amount::text, p.recipient, p.hot_wallet,
                    p.network_fee_actual::text, p.failure_reason,
                    CASE WHEN c.last_outcome IN ('needs_review', 'stalled')
                         THEN c.last_outcome || ': ' || c.last_detail END
               FROM payments p LEFT JOIN payment_confirmations c ON c.payment_id = p.id
              WHERE p.merchant_id = $1",
        )
        .bind(self.merchant)
        .fetch_all(self.db)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PaymentRow {
                    id: r.0,
                    status: r.1,
                    asset: r.2,
                    amount: r.3.parse()?,
                    recipient: r.4,
                    hot_wallet: r.5,
                    network_fee_actual: r.6.map(|f| f.parse()).transpose()?,
                    failure_reason: r.7,
                    parked: r.8,
                })
            })
            .collect()
    }

    /// Receipts of the hashes anvil has mined on its canonical chain.
    async fn receipts(&self, hashes: &[String]) -> anyhow::Result<HashMap<String, Receipt>> {
        let results: Vec<anyhow::Result<Option<(String, Receipt)>>> =
            futures::stream::iter(hashes.iter().cloned())
                .map(|hash| async move { Ok(self.chain.receipt(&hash).await?.map(|r| (hash, r))) })
                .buffer_unordered(16)
                .collect()
                .await;
        let mut receipts = HashMap::new();
        for result in results {
            if let Some((hash, receipt)) = result? {
                receipts.insert(hash, receipt);
            }
        }
        Ok(receipts)
    }

    async fn recipient_balances(
        &self,
        payments: &[PaymentRow],
    ) -> anyhow::Result<HashMap<uuid::Uuid, u128>> {
        let results: Vec<anyhow::Result<(uuid::Uuid, u128)>> =
            futures::stream::iter(payments.iter())
                .map(|p| async move {
                    let recipient: Address = p.recipient.parse()?;
                    let balance = match p.asset.as_str() {
                        "anvil:ETH" => u128::try_from(self.chain.eth_balance(recipient).await?)?,
                        _ => self.chain.usdc_balance(recipient).await?,
                    };
                    Ok((p.id, balance))
                })
                .buffer_unordered(16)
                .collect()
                .await;
        results.into_iter().collect()
    }

    async fn wallet_outflows(
        &self,
        booked: &BTreeMap<Address, (U256, u128)>,
        findings: &mut Findings,
    ) -> anyhow::Result<()> {
        for wallet in self.hot_wallets {
            let (eth_booked, usdc_booked) = booked.get(wallet).copied().unwrap_or_default();
            let eth_now = self.chain.eth_balance(*wallet).await?;
            let usdc_now = self.chain.usdc_balance(*wallet).await?;
            let eth_start = self.start.eth.get(wallet).copied().unwrap_or_default();
            let usdc_start = self.start.usdc.get(wallet).copied().unwrap_or_default();
            let eth_out = eth_start.saturating_sub(eth_now);
            let usdc_out = usdc_start.saturating_sub(usdc_now);
            if eth_out != eth_booked {
                findings.global.push(format!(
                    "wallet {wallet}: {eth_out} wei left on chain, books say {eth_booked}"
                ));
            }
            if usdc_out != usdc_booked {
                findings.global.push(format!(
                    "wallet {wallet}: {usdc_out} USDC base units left on chain, books say {usdc_booked}"
                ));
            }
            findings.notes.push(format!(
                "wallet {wallet}: out {eth_out} wei (books {eth_booked}), {usdc_out} USDC units (books {usdc_booked})"
            ));
        }
        Ok(())
    }

    async fn nonces(
        &self,
        attempts: &[(uuid::Uuid, String, String, i64)],
        gap_fills: &[(String, String, i64)],
        receipts: &HashMap<String, Receipt>,
        findings: &mut Findings,
    ) -> anyhow::Result<()> {
        let counters: Vec<(String, i64)> =
            sqlx::query_as("SELECT address, next_nonce FROM wallet_nonces")
                .fetch_all(self.db)
                .await?;
        let gaps: Vec<(String, i64)> =
            sqlx::query_as("SELECT address, nonce FROM wallet_nonce_gaps ORDER BY 1, 2")
                .fetch_all(self.db)
                .await?;
        for (address, nonce) in &gaps {
            findings.global.push(format!(
                "wallet {address}: nonce {nonce} handed back and never filled"
            ));
        }
        for wallet in self.hot_wallets {
            let on_chain = self.chain.nonce(*wallet).await?;
            let mut used: BTreeMap<i64, usize> = BTreeMap::new();
            let ours = attempts
                .iter()
                .map(|(_, hash, from, nonce)| (hash, from, nonce))
                .chain(
                    gap_fills
                        .iter()
                        .map(|(from, hash, nonce)| (hash, from, nonce)),
                );
            for (hash, from, nonce) in ours {
                if from.parse::<Address>().ok() == Some(*wallet) && receipts.contains_key(hash) {
                    *used.entry(*nonce).or_default() += 1;
                }
            }
            let expected: HashSet<i64> = (0..on_chain as i64).collect();
            let seen: HashSet<i64> = used.keys().copied().collect();
            let missing: Vec<i64> = expected.difference(&seen).copied().collect();
            if !missing.is_empty() {
                findings.global.push(format!(
                    "wallet {wallet}: nonces {missing:?} used on chain by no meshpay transaction"
                ));
            }
            for (nonce, count) in used.iter().filter(|(_, c)| **c > 1) {
                findings.global.push(format!(
                    "wallet {wallet}: nonce {nonce} mined {count} times"
                ));
            }
            let counter = counters
                .iter()
                .find(|(a, _)| a.parse::<Address>().ok() == Some(*wallet))
                .map(|(_, n)| *n);
            if let Some(next) = counter
                && next != on_chain as i64
            {
                findings.global.push(format!(
                    "wallet {wallet}: counter at {next}, chain at {on_chain} (nonces allocated and not mined)"
                ));
            }
        }
        Ok(())
    }

    async fn webhooks(&self, received: &[Delivery], findings: &mut Findings) -> anyhow::Result<()> {
        let events: Vec<(uuid::Uuid, Option<uuid::Uuid>, i64)> = sqlx::query_as(
            "SELECT id, payment_id, outbox_id FROM webhook_events WHERE merchant_id = $1
              ORDER BY outbox_id",
        )
        .bind(self.merchant)
        .fetch_all(self.db)
        .await?;
        let (unsent,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM outbox WHERE topic = 'webhook' AND dispatched_at IS NULL",
        )
        .fetch_one(self.db)
        .await?;
        if unsent > 0 {
            findings.global.push(format!(
                "{unsent} webhook outbox rows never turned into events"
            ));
        }
        // First arrival of each event.
        let mut first: HashMap<uuid::Uuid, usize> = HashMap::new();
        for (position, delivery) in received.iter().enumerate() {
            if let Some(id) = event_uuid(&delivery.event_id) {
                first.entry(id).or_insert(position);
            }
        }
        let mut last_per_payment: HashMap<uuid::Uuid, (usize, uuid::Uuid)> = HashMap::new();
        let mut missing = 0;
        for (event, payment, _) in &events {
            let Some(&arrived) = first.get(event) else {
                missing += 1;
                if let Some(payment) = payment {
                    findings.payment(*payment, format!("webhook event {event} never delivered"));
                }
                continue;
            };
            let Some(payment) = payment else { continue };
            if let Some((previous, previous_event)) = last_per_payment.get(payment)
                && *previous > arrived
            {
                findings.payment(
                    *payment,
                    format!("webhook event {event} arrived before the earlier {previous_event}"),
                );
            }
            last_per_payment.insert(*payment, (arrived, *event));
        }
        findings.notes.push(format!(
            "webhooks: {} events, {} deliveries received, {missing} missing",
            events.len(),
            received.len()
        ));
        Ok(())
    }
}

/// `msg_<32 hex>` (or a bare UUID) → the event's UUID.
fn event_uuid(header: &str) -> Option<uuid::Uuid> {
    let hex = header.strip_prefix("msg_").unwrap_or(header);
    uuid::Uuid::parse_str(hex).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ids_map_back_to_event_uuids() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(event_uuid(&format!("msg_{}", id.simple())), Some(id));
        assert_eq!(event_uuid(&id.to_string()), Some(id));
        assert_eq!(event_uuid("msg_zz"), None);
    }
}
