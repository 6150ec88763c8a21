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
