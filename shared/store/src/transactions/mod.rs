//! The broadcast step's state: per (chain, hot wallet) nonce counters and the signed
//! transactions of payments (one [`TxAttempt`] per signed transaction).
//!
//! # Nonce allocation (see `migrations/*_broadcast.sql` and `*_nonce_reservations.sql` for the
//! invariant)
//! The functions taking `&mut PgConnection` run inside the caller's transaction, so the broadcast
//! step composes short transactions around the signature (module `reservations`):
//! [`lock_payment`] (row lock, status check) → [`allocate_nonce`] (wallet row lock) →
//! [`insert_reservation`] → commit; sign with no lock held; [`lock_payment`] →
//! [`take_reservation`] → [`insert_attempt`] → `apply_transition` (authorized → broadcast) →
//! commit. So every allocated nonce has a reservation (the fields to sign), stored signed
//! bytes, or a gap. Lock order is always payment row, then wallet row, so concurrent
//! broadcasters, failures and cancellations cannot deadlock.
//!
//! # Reads for the API
//! [`Store::payment_transactions`] returns every attempt of a payment (hash, nonce, fees) for
//! `GET /api/payments/{id}`.
//!
//! [`Store::payment_transactions`]: crate::Store::payment_transactions

mod attempts;
mod fills;
mod gaps;
mod health;
mod holders;
mod nonces;
mod reservations;
mod send_log;
mod sends;

use meshpay_domain::{Address, PaymentId, PaymentStatus, U256};
use sqlx::PgConnection;

use crate::convert;
use crate::error::{Result, StoreError};

pub use attempts::{
    AttemptStatus, NewTxAttempt, TxAttempt, insert_attempt, live_attempt, payment_attempts,
    point_payment_at, set_attempt_status,
};
pub use fills::{GapFill, NewGapFill, StaleGap, claim_gap, insert_gap_fill};
pub use gaps::{NonceRelease, release_nonce};
pub use health::WalletHealth;
pub use holders::NonceHolder;
pub use nonces::{
    HaltedWallet, NonceAllocation, NonceSource, WalletNonce, allocate_nonce, halt_wallet,
    resync_nonce,
};
pub use reservations::{
    NewReservation, NonceReservation, TxTimeouts, insert_reservation, release_reservation,
    reservation_of, set_timeouts, take_reservation,
};
pub(crate) use send_log::SendLog;

fn i64_of(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} {value} too large")))
}

fn u64_of(value: i64, what: &str) -> Result<u64> {
    convert::u64_from_i64(value, what)
}

fn checksum(address: Address) -> String {
    address.to_checksum(None)
}

/// The columns of a wallet transaction's terms that reservations and attempts share, as read
/// (`numeric` as text); their rows embed it with `#[sqlx(flatten)]`.
#[derive(sqlx::FromRow)]
struct TxTermsRow {
    chain_id: i64,
    nonce: i64,
    to_address: String,
    value: String,
    gas_limit: i64,
    max_fee_per_gas: String,
    max_priority_fee_per_gas: String,
}

/// A [`TxTermsRow`], checked.
struct TxTerms {
    chain_id: u64,
    nonce: u64,
    to: Address,
    value_wei: U256,
    gas_limit: u64,
    max_fee_per_gas_wei: u128,
    max_priority_fee_per_gas_wei: u128,
}

impl TxTermsRow {
    fn decode(self) -> Result<TxTerms> {
        Ok(TxTerms {
            chain_id: u64_of(self.chain_id, "chain_id")?,
            nonce: u64_of(self.nonce, "nonce")?,
            to: convert::address(&self.to_address)?,
            value_wei: self
                .value
                .parse::<U256>()
                .map_err(|_| convert::corrupt("value", &self.value))?,
            gas_limit: u64_of(self.gas_limit, "gas_limit")?,
            max_fee_per_gas_wei: convert::u128_text(&self.max_fee_per_gas)?,
            max_priority_fee_per_gas_wei: convert::u128_text(&self.max_priority_fee_per_gas)?,
        })
    }
}

/// Locks the payment's row until the caller's transaction ends and returns its status and
/// version (`None`: no such payment). Take it before any wallet lock.
pub async fn lock_payment(
    conn: &mut PgConnection,
    payment: PaymentId,
) -> Result<Option<(PaymentStatus, i64)>> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT status, version FROM payments WHERE id = $1 FOR UPDATE")
            .bind(payment.as_uuid())
            .fetch_optional(conn)
            .await?;
    row.map(|(status, version)| Ok((convert::status(&status)?, version)))
        .transpose()
}
