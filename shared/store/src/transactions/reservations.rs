//! Nonce reservations: a nonce allocated to a payment whose transaction is not signed yet
//! (`wallet_nonce_reservations`), so signing runs with no row lock held.
//!
//! The broadcast step runs three short transactions around the signature:
//! 1. [`lock_payment`](super::lock_payment) → [`allocate_nonce`](super::allocate_nonce) (the
//!    wallet row lock, held only for the counter bump) → [`insert_reservation`] → commit;
//! 2. sign the reservation's fields, no transaction open;
//! 3. [`lock_payment`](super::lock_payment) → [`take_reservation`] →
//!    [`insert_attempt`](super::insert_attempt) → `apply_transition` → commit.
//!
//! A reservation is signed again, field for field, by the payment's next delivery (a crash or
//! an error between 1 and 3), and handed back through the gap mechanism
//! ([`release_reservation`]) when signing fails or its payment left `authorized` without a
//! stored transaction.

use std::time::Duration;

use meshpay_domain::{Address, PaymentId, U256};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::gaps::{NonceRelease, release_nonce};
use super::nonces::NonceSource;
use super::{TxTermsRow, checksum, i64_of};
use crate::error::Result;
use crate::{Store, convert};

/// Bounds on the broadcast step's transactions: no lock is waited for longer than `lock`, no
/// statement runs longer than `statement`. A bound hit is a retryable error
/// ([`StoreError::is_retryable`]): the message is delivered again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxTimeouts {
    pub lock: Duration,
    pub statement: Duration,
}

/// `SET LOCAL lock_timeout` and `statement_timeout` for the rest of the caller's transaction.
pub async fn set_timeouts(conn: &mut PgConnection, timeouts: TxTimeouts) -> Result<()> {
    let ms = |d: Duration| format!("{}ms", d.as_millis().max(1));
    sqlx::query(
        "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
    )
    .bind(ms(timeouts.lock))
    .bind(ms(timeouts.statement))
    .execute(conn)
    .await?;
    Ok(())
}

/// The transaction to sign on a reserved nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    pub payment_id: PaymentId,
    pub chain: String,
    pub chain_id: u64,
    pub from: Address,
    pub nonce: u64,
    pub to: Address,
    pub value_wei: U256,
    pub input: Vec<u8>,
    pub gas_limit: u64,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    pub fee_capped: bool,
    pub source: NonceSource,
}

/// A stored reservation: every field of the transaction to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceReservation {
    pub id: Uuid,
    pub payment_id: PaymentId,
    pub chain: String,
    pub chain_id: u64,
    pub from: Address,
    pub nonce: u64,
    pub to: Address,
    pub value_wei: U256,
    pub input: Vec<u8>,
    pub gas_limit: u64,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    pub fee_capped: bool,
    pub source: NonceSource,
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, payment_id, chain, chain_id, address, nonce, to_address, \
     value::text AS value, input, gas_limit, max_fee_per_gas::text AS max_fee_per_gas, \
     max_priority_fee_per_gas::text AS max_priority_fee_per_gas, fee_capped, nonce_source, \
     created_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    payment_id: Uuid,
    chain: String,
    address: String,
    #[sqlx(flatten)]
    terms: TxTermsRow,
    input: Vec<u8>,
    fee_capped: bool,
    nonce_source: String,
    created_at: OffsetDateTime,
}

impl Row {
    fn into_reservation(self) -> Result<NonceReservation> {
        let terms = self.terms.decode()?;
        Ok(NonceReservation {
            id: self.id,
            payment_id: PaymentId::from_uuid(self.payment_id),
            chain: self.chain,
            chain_id: terms.chain_id,
            from: convert::address(&self.address)?,
            nonce: terms.nonce,
            to: terms.to,
            value_wei: terms.value_wei,
            input: self.input,
            gas_limit: terms.gas_limit,
            max_fee_per_gas_wei: terms.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: terms.max_priority_fee_per_gas_wei,
            fee_capped: self.fee_capped,
            source: source_parse(&self.nonce_source)?,
            created_at: self.created_at,
        })
    }
}

fn source_text(source: NonceSource) -> &'static str {
    match source {
        NonceSource::Counter => "counter",
        NonceSource::ChainFloor => "chain_floor",
        NonceSource::Gap => "gap",
    }
}

fn source_parse(text: &str) -> Result<NonceSource> {
    match text {
        "counter" => Ok(NonceSource::Counter),
        "chain_floor" => Ok(NonceSource::ChainFloor),
        "gap" => Ok(NonceSource::Gap),
        other => Err(convert::corrupt("nonce source", other)),
    }
}

/// Stores the reservation of a nonce [`allocate_nonce`](super::allocate_nonce) just handed
/// out, in the same transaction (the caller holds the payment's row lock). A payment has at
/// most one reservation, and a nonce of a wallet at most one.
pub async fn insert_reservation(
    conn: &mut PgConnection,
    new: &NewReservation,
) -> Result<NonceReservation> {
    let sql = format!(
        "INSERT INTO wallet_nonce_reservations (id, payment_id, chain, chain_id, address, nonce,
             to_address, value, input, gas_limit, max_fee_per_gas, max_priority_fee_per_gas,
             fee_capped, nonce_source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric, $9, $10, $11::numeric, $12::numeric,
                 $13, $14)
         RETURNING {COLUMNS}"
    );
    let row: Row = sqlx::query_as(&sql)
        .bind(Uuid::now_v7())
        .bind(new.payment_id.as_uuid())
        .bind(&new.chain)
        .bind(i64_of(new.chain_id, "chain_id")?)
        .bind(checksum(new.from))
        .bind(i64_of(new.nonce, "nonce")?)
        .bind(checksum(new.to))
        .bind(new.value_wei.to_string())
        .bind(&new.input)
        .bind(i64_of(new.gas_limit, "gas_limit")?)
        .bind(new.max_fee_per_gas_wei.to_string())
        .bind(new.max_priority_fee_per_gas_wei.to_string())
        .bind(new.fee_capped)
        .bind(source_text(new.source))
        .fetch_one(conn)
        .await?;
    row.into_reservation()
}

/// The payment's reservation, if it has one.
pub async fn reservation_of(
    conn: &mut PgConnection,
    payment: PaymentId,
) -> Result<Option<NonceReservation>> {
    let sql = format!("SELECT {COLUMNS} FROM wallet_nonce_reservations WHERE payment_id = $1");
    let row: Option<Row> = sqlx::query_as(&sql)
        .bind(payment.as_uuid())
        .fetch_optional(conn)
        .await?;
    row.map(Row::into_reservation).transpose()
}

/// Removes the reservation `id` because its signed transaction is being stored in the caller's
/// transaction. `false`: it is gone (another delivery stored its transaction, or it was handed
/// back): the signature made for it must be dropped, never stored or sent.
pub async fn take_reservation(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    let taken = sqlx::query("DELETE FROM wallet_nonce_reservations WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(taken.rows_affected() == 1)
}

/// Hands the reservation's nonce back (the counter rewound, or a gap the next allocation or
/// reconcile's gap fill takes), if the reservation is still there (`None`: it is not). Nothing
/// was signed for it that anyone holds, so the nonce is free. Take the payment's row lock
/// first; the wallet's row is locked here.
pub async fn release_reservation(
    conn: &mut PgConnection,
    reservation: &NonceReservation,
) -> Result<Option<NonceRelease>> {
    if !take_reservation(&mut *conn, reservation.id).await? {
        return Ok(None);
    }
    // No chain floor: the nonce was never signed, so nothing of ours can have used it; a
    // counter rewound below the chain is caught as an incident by the next allocation.
    let release = release_nonce(
        conn,
        &reservation.chain,
        reservation.from,
        reservation.nonce,
        0,
        reservation.payment_id,
    )
    .await?;
    Ok(Some(release))
}

impl Store {
    /// The payment's reservation, see [`reservation_of`].
    pub async fn nonce_reservation(&self, payment: PaymentId) -> Result<Option<NonceReservation>> {
        let mut conn = self.pool.acquire().await?;
        reservation_of(&mut conn, payment).await
    }

    /// Every reservation of the chain's wallets, lowest nonce first (tests, operators).
    pub async fn nonce_reservations(&self, chain: &str) -> Result<Vec<NonceReservation>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM wallet_nonce_reservations WHERE chain = $1
              ORDER BY address, nonce"
        );
        let rows: Vec<Row> = sqlx::query_as(&sql)
            .bind(chain)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Row::into_reservation).collect()
    }

    /// Hands back the nonces of reservations whose payment is no longer `authorized` (cancelled
    /// or expired after a crash between reserving and storing: no delivery will come back for
    /// them), each in a transaction of its own. Reservations another transaction holds are
    /// skipped (it is handling them). Returns the (wallet, nonce) pairs handed back.
    pub async fn release_orphan_reservations(
        &self,
        chain: &str,
        timeouts: TxTimeouts,
    ) -> Result<Vec<(Address, u64)>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT r.id FROM wallet_nonce_reservations r JOIN payments p ON p.id = r.payment_id
              WHERE r.chain = $1 AND p.status <> 'authorized' ORDER BY r.nonce",
        )
        .bind(chain)
        .fetch_all(&self.pool)
        .await?;
        let mut released = Vec::new();
        for id in ids {
            let mut db = self.pool.begin().await?;
            set_timeouts(&mut db, timeouts).await?;
            let sql = format!(
                "SELECT {COLUMNS} FROM wallet_nonce_reservations WHERE id = $1
                  FOR UPDATE SKIP LOCKED"
            );
            let row: Option<Row> = sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(&mut *db)
                .await?;
            let Some(reservation) = row.map(Row::into_reservation).transpose()? else {
                continue;
            };
            if release_reservation(&mut db, &reservation).await?.is_some() {
                db.commit().await?;
                released.push((reservation.from, reservation.nonce));
            }
        }
        Ok(released)
    }
}

impl NonceReservation {
    /// How long ago the nonce was reserved (for logs).
    pub fn age(&self) -> Duration {
        let age = OffsetDateTime::now_utc() - self.created_at;
        Duration::try_from(age).unwrap_or_default()
    }
}
