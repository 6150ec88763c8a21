//! Same-nonce replacements of a payment's transaction (a fee bump, or a cancellation): the
//! replaced attempt stays on record as `replaced` (its bytes may still be mined until the nonce
//! is used) and the new one becomes the payment's live attempt, in the caller's transaction.

use sqlx::PgConnection;

use crate::error::{Result, StoreError};
use crate::transactions::{self, NewTxAttempt, TxAttempt};

/// Marks `replaced` (the payment's live attempt) as replaced and stores `new` (same payment,
/// wallet and nonce) as the live attempt, pointing the payment at it. Call it under the
/// payment's row lock ([`transactions::lock_payment`]). `Conflict`-like `Invalid` when
/// `replaced` is no longer live or `new` is not on its nonce.
pub async fn store_replacement(
    conn: &mut PgConnection,
    replaced: &TxAttempt,
    new: &NewTxAttempt,
) -> Result<TxAttempt> {
    if new.payment_id != replaced.payment_id
        || new.from != replaced.from
        || new.nonce != replaced.nonce
        || new.chain != replaced.chain
    {
        return Err(StoreError::Invalid(format!(
            "a replacement of {} must be on the same payment, wallet and nonce",
            replaced.tx_hash
        )));
    }
    let updated = sqlx::query(
        "UPDATE payment_transactions SET status = 'replaced'
          WHERE id = $1 AND status IN ('signed', 'sent')",
    )
    .bind(replaced.id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::Invalid(format!(
            "transaction {} is no longer the payment's live one",
            replaced.tx_hash
        )));
    }
    let attempt = transactions::insert_attempt(conn, new).await?;
    transactions::point_payment_at(conn, &attempt).await?;
    Ok(attempt)
}

/// Whether an attempt is a cancellation: a 0-value transfer from the hot wallet to itself. A
/// payment's own transfer never is one (its amount is positive, and an ERC-20 transfer goes to
/// the token contract).
pub fn is_cancellation(attempt: &TxAttempt) -> bool {
    attempt.to == attempt.from && attempt.value_wei.is_zero()
}

impl crate::Store {
    /// The merchant's cancellation: an `authorized` payment is cancelled at once (hold
    /// released); a `broadcast` or `stalled` one becomes `cancelling` (hold kept) with a
    /// broadcast message in the outbox, whose step sends the cancelling self-transfer on the
    /// payment's nonce. NotFound for another merchant's payment; IllegalTransition in any other
    /// status; Conflict if it changed while we were cancelling.
    pub async fn request_cancel(
        &self,
        merchant_id: meshpay_domain::MerchantId,
        id: meshpay_domain::PaymentId,
    ) -> Result<crate::Payment> {
        use meshpay_domain::{PaymentEvent, PaymentMessage, PaymentStatus};
        let mut tx = self.pool.begin().await?;
        let current = crate::payments::select_payment(&mut tx, Some(merchant_id), id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let event = match current.status {
            PaymentStatus::Broadcast | PaymentStatus::Stalled => PaymentEvent::RequestCancel,
            _ => PaymentEvent::Cancel,
        };
        let mut t = crate::Transition::new(id, current.version, event);
        t.merchant_id = Some(merchant_id);
        if t.event == PaymentEvent::RequestCancel {
            let message = serde_json::to_value(PaymentMessage::new(id))
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            t.outbox.push(crate::NewOutboxMessage::new(
                crate::topics::PAYMENTS_BROADCAST,
                message,
            ));
            t.data = serde_json::json!({ "tx_hash": current.tx_hash, "nonce": current.nonce });
        }
        let payment = crate::apply_transition(&mut tx, &t).await?;
        tx.commit().await?;
        Ok(payment)
    }
}

/// A gap fill's current fees: `(max_fee_per_gas, max_priority_fee_per_gas)` in wei.
pub type FillFees = (u128, u128);

impl crate::Store {
    /// The fees of a stored gap fill (`None`: no such fill).
    pub async fn gap_fill_fees(&self, fill: uuid::Uuid) -> Result<Option<FillFees>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT max_fee_per_gas::text, max_priority_fee_per_gas::text
               FROM wallet_gap_fills WHERE id = $1",
        )
        .bind(fill)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(max_fee, tip)| {
            Ok((
                crate::convert::u128_text(&max_fee)?,
                crate::convert::u128_text(&tip)?,
            ))
        })
        .transpose()
    }

    /// Replaces a gap fill's bytes with a re-priced self-transfer on the same nonce, keeping
    /// the old hash in `replaced_hashes`; only if the fill still holds `fill.tx_hash` (`None`:
    /// another run replaced it first). The new bytes start unsent (`signed`).
    pub async fn replace_gap_fill(
        &self,
        fill: &crate::transactions::GapFill,
        signed: &crate::transactions::NewGapFill,
    ) -> Result<Option<crate::transactions::GapFill>> {
        if signed.nonce != fill.nonce || signed.wallet != fill.wallet || signed.chain != fill.chain
        {
            return Err(StoreError::Invalid(format!(
                "a replacement of gap fill {} must be on its wallet and nonce",
                fill.tx_hash
            )));
        }
        let updated = sqlx::query(
            "UPDATE wallet_gap_fills
                SET tx_hash = $3, raw_tx = $4, max_fee_per_gas = $5::numeric,
                    max_priority_fee_per_gas = $6::numeric, status = 'signed',
                    exposed_at = coalesce(exposed_at, send_started_at), send_started_at = NULL,
                    replaced_hashes = array_append(replaced_hashes, $2)
              WHERE id = $1 AND tx_hash = $2",
        )
        .bind(fill.id)
        .bind(fill.tx_hash.to_string())
        .bind(signed.tx_hash.to_string())
        .bind(&signed.raw)
        .bind(signed.max_fee_per_gas_wei.to_string())
        .bind(signed.max_priority_fee_per_gas_wei.to_string())
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(Some(crate::transactions::GapFill {
            id: fill.id,
            chain: fill.chain.clone(),
            wallet: fill.wallet,
            nonce: fill.nonce,
            tx_hash: signed.tx_hash,
            raw: signed.raw.clone(),
        }))
    }
}
