//! The signed transactions of payments ([`TxAttempt`]): stored, pointed at, read.

use meshpay_domain::{Address, B256, PaymentId, U256};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{TxTermsRow, checksum, i64_of};
use crate::Store;
use crate::convert;
use crate::error::{Result, StoreError};

/// Where an attempt stands (see the migration for the meaning of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptStatus {
    Signed,
    Sent,
    Rejected,
    Superseded,
    /// A later attempt on the same nonce replaced it (higher fees, or a cancellation); its
    /// bytes may still be mined until the nonce is used, so it is watched with the live one.
    Replaced,
}

impl AttemptStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Signed => "signed",
            AttemptStatus::Sent => "sent",
            AttemptStatus::Rejected => "rejected",
            AttemptStatus::Superseded => "superseded",
            AttemptStatus::Replaced => "replaced",
        }
    }

    /// Signed or sent: the attempt may still be mined, so its nonce is taken.
    pub const fn is_live(self) -> bool {
        matches!(self, AttemptStatus::Signed | AttemptStatus::Sent)
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "signed" => Ok(AttemptStatus::Signed),
            "sent" => Ok(AttemptStatus::Sent),
            "rejected" => Ok(AttemptStatus::Rejected),
            "superseded" => Ok(AttemptStatus::Superseded),
            "replaced" => Ok(AttemptStatus::Replaced),
            other => Err(convert::corrupt("attempt status", other)),
        }
    }
}

impl std::fmt::Display for AttemptStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signed transaction to store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewTxAttempt {
    pub payment_id: PaymentId,
    pub chain: String,
    pub chain_id: u64,
    pub from: Address,
    pub nonce: u64,
    pub to: Address,
    pub value_wei: U256,
    pub gas_limit: u64,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    pub tx_hash: B256,
    /// EIP-2718 encoding, exactly what `eth_sendRawTransaction` gets.
    pub raw: Vec<u8>,
}

// The raw bytes are a signed transaction, not a secret, but they are long: print their size.
impl std::fmt::Debug for NewTxAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTxAttempt")
            .field("payment_id", &self.payment_id)
            .field("chain", &self.chain)
            .field("from", &self.from)
            .field("nonce", &self.nonce)
            .field("tx_hash", &self.tx_hash)
            .field("raw_len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// A stored signed transaction of a payment.
#[derive(Clone, PartialEq, Eq)]
pub struct TxAttempt {
    pub id: Uuid,
    pub payment_id: PaymentId,
    /// 1 for the first transaction of the payment, +1 per later one.
    pub attempt: i32,
    pub chain: String,
    pub chain_id: u64,
    pub from: Address,
    pub nonce: u64,
    pub to: Address,
    pub value_wei: U256,
    pub gas_limit: u64,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    pub tx_hash: B256,
    pub raw: Vec<u8>,
    pub status: AttemptStatus,
    /// `eth_sendRawTransaction` calls made with these bytes (any outcome).
    pub send_count: i32,
    /// The last send error, if the last send failed.
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub first_sent_at: Option<OffsetDateTime>,
    pub last_sent_at: Option<OffsetDateTime>,
    /// When these bytes may first have reached a node (accepted, or a send with an unknown
    /// outcome); `None`: every send was refused outright, so no pool can hold them. See
    /// [`TxAttempt::may_be_public`].
    pub exposed_at: Option<OffsetDateTime>,
    /// A send began (and was recorded before it went out) whose answer is not recorded yet:
    /// the bytes may be in a pool. See [`crate::Store::begin_send`].
    pub send_started_at: Option<OffsetDateTime>,
}

impl TxAttempt {
    /// Whether these bytes may be in some node's pool, or in anyone's hands to submit again:
    /// then they can still be mined until their nonce is used on chain by another transaction,
    /// and the payment must not be failed on a refusal.
    pub fn may_be_public(&self) -> bool {
        self.exposed_at.is_some()
            || self.send_started_at.is_some()
            || self.status == AttemptStatus::Sent
    }
}

impl std::fmt::Debug for TxAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxAttempt")
            .field("payment_id", &self.payment_id)
            .field("attempt", &self.attempt)
            .field("from", &self.from)
            .field("nonce", &self.nonce)
            .field("tx_hash", &self.tx_hash)
            .field("status", &self.status)
            .field("send_count", &self.send_count)
            .field("exposed", &self.exposed_at.is_some())
            .field("sending", &self.send_started_at.is_some())
            .field("raw_len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

pub(super) const ATTEMPT_COLUMNS: &str = "id, payment_id, attempt, chain, chain_id, from_address, nonce, \
     to_address, value::text AS value, gas_limit, max_fee_per_gas::text AS max_fee_per_gas, \
     max_priority_fee_per_gas::text AS max_priority_fee_per_gas, tx_hash, raw_tx, status, \
     send_count, last_error, created_at, first_sent_at, last_sent_at, exposed_at, send_started_at";

#[derive(sqlx::FromRow)]
pub(super) struct AttemptRow {
    id: Uuid,
    payment_id: Uuid,
    attempt: i32,
    chain: String,
    from_address: String,
    #[sqlx(flatten)]
    terms: TxTermsRow,
    tx_hash: String,
    raw_tx: Vec<u8>,
    status: String,
    send_count: i32,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    first_sent_at: Option<OffsetDateTime>,
    last_sent_at: Option<OffsetDateTime>,
    exposed_at: Option<OffsetDateTime>,
    send_started_at: Option<OffsetDateTime>,
}

impl AttemptRow {
    pub(super) fn into_attempt(self) -> Result<TxAttempt> {
        let terms = self.terms.decode()?;
        Ok(TxAttempt {
            id: self.id,
            payment_id: PaymentId::from_uuid(self.payment_id),
            attempt: self.attempt,
            chain: self.chain,
            chain_id: terms.chain_id,
            from: convert::address(&self.from_address)?,
            nonce: terms.nonce,
            to: terms.to,
            value_wei: terms.value_wei,
            gas_limit: terms.gas_limit,
            max_fee_per_gas_wei: terms.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: terms.max_priority_fee_per_gas_wei,
            tx_hash: convert::b256(&self.tx_hash)?,
            raw: self.raw_tx,
            status: AttemptStatus::parse(&self.status)?,
            send_count: self.send_count,
            last_error: self.last_error,
            created_at: self.created_at,
            first_sent_at: self.first_sent_at,
            last_sent_at: self.last_sent_at,
            exposed_at: self.exposed_at,
            send_started_at: self.send_started_at,
        })
    }
}

/// Stores a signed transaction as the payment's next attempt (status `signed`). A second live
/// attempt on the same wallet nonce for another payment violates a unique index: the database
/// refuses to let two payments share a nonce.
pub async fn insert_attempt(conn: &mut PgConnection, new: &NewTxAttempt) -> Result<TxAttempt> {
    let sql = format!(
        "INSERT INTO payment_transactions (id, payment_id, attempt, chain, chain_id, from_address,
             nonce, to_address, value, gas_limit, max_fee_per_gas, max_priority_fee_per_gas,
             tx_hash, raw_tx, status)
         SELECT $1, $2, coalesce(max(attempt), 0) + 1, $3, $4, $5, $6, $7, $8::numeric, $9,
                $10::numeric, $11::numeric, $12, $13, 'signed'
           FROM payment_transactions WHERE payment_id = $2
         RETURNING {ATTEMPT_COLUMNS}"
    );
    let row: AttemptRow = sqlx::query_as(&sql)
        .bind(Uuid::now_v7())
        .bind(new.payment_id.as_uuid())
        .bind(&new.chain)
        .bind(i64_of(new.chain_id, "chain_id")?)
        .bind(checksum(new.from))
        .bind(i64_of(new.nonce, "nonce")?)
        .bind(checksum(new.to))
        .bind(new.value_wei.to_string())
        .bind(i64_of(new.gas_limit, "gas_limit")?)
        .bind(new.max_fee_per_gas_wei.to_string())
        .bind(new.max_priority_fee_per_gas_wei.to_string())
        .bind(new.tx_hash.to_string())
        .bind(&new.raw)
        .fetch_one(conn)
        .await?;
    row.into_attempt()
}

/// Sets an attempt's status (and the error that caused it, if any).
pub async fn set_attempt_status(
    conn: &mut PgConnection,
    attempt: Uuid,
    status: AttemptStatus,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE payment_transactions SET status = $2, last_error = coalesce($3, last_error)
          WHERE id = $1",
    )
    .bind(attempt)
    .bind(status.as_str())
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Points an in-flight payment's `hot_wallet`/`tx_hash`/`nonce` at a new attempt that replaced
/// a superseded one. Not a status change, so no version bump or event: the attempts table is
/// the history of a payment's transactions.
pub async fn point_payment_at(conn: &mut PgConnection, attempt: &TxAttempt) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE payments SET hot_wallet = $2, tx_hash = $3, nonce = $4, updated_at = now()
          WHERE id = $1 AND status IN ('broadcast', 'stalled', 'cancelling')",
    )
    .bind(attempt.payment_id.as_uuid())
    .bind(checksum(attempt.from))
    .bind(attempt.tx_hash.to_string())
    .bind(i64_of(attempt.nonce, "nonce")?)
    .execute(conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::Invalid(format!(
            "payment {} is not in broadcast",
            attempt.payment_id
        )));
    }
    Ok(())
}

/// The payment's live attempt (signed or sent), if any: the one to (re-)send.
pub async fn live_attempt(
    conn: &mut PgConnection,
    payment: PaymentId,
) -> Result<Option<TxAttempt>> {
    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_transactions
          WHERE payment_id = $1 AND status IN ('signed', 'sent')
          ORDER BY attempt DESC LIMIT 1"
    );
    let row: Option<AttemptRow> = sqlx::query_as(&sql)
        .bind(payment.as_uuid())
        .fetch_optional(conn)
        .await?;
    row.map(AttemptRow::into_attempt).transpose()
}

/// Every transaction of the payment, first attempt first (empty before broadcast).
pub async fn payment_attempts(
    conn: &mut PgConnection,
    payment: PaymentId,
) -> Result<Vec<TxAttempt>> {
    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS} FROM payment_transactions WHERE payment_id = $1
          ORDER BY attempt"
    );
    let rows: Vec<AttemptRow> = sqlx::query_as(&sql)
        .bind(payment.as_uuid())
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(AttemptRow::into_attempt).collect()
}

impl Store {
    /// Every transaction of the payment, first attempt first (empty before broadcast): for
    /// `GET /api/payments/{id}` (`attempts`: hash, nonce, fees, status).
    pub async fn payment_transactions(&self, payment: PaymentId) -> Result<Vec<TxAttempt>> {
        let mut conn = self.pool.acquire().await?;
        payment_attempts(&mut conn, payment).await
    }

    /// The payment's live attempt, see [`live_attempt`].
    pub async fn live_attempt(&self, payment: PaymentId) -> Result<Option<TxAttempt>> {
        let mut conn = self.pool.acquire().await?;
        live_attempt(&mut conn, payment).await
    }
}
