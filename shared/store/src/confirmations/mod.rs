//! The confirm, settle and reconcile steps' own state (see `migrations/*_confirm.sql`):
//!
//! - the per-payment confirm polling lease ([`Store::claim_confirm_poller`]) and what the chain
//!   was last seen to say ([`Store::record_confirm_check`], [`finish_confirm_chain`]);
//! - chain webhook replay dedupe ([`Store::record_chain_webhook`]) and the tx-hash → payment
//!   lookup a webhook hint needs ([`Store::payments_by_tx_hashes`]);
//! - confirm hints to every instance (`NOTIFY`/`LISTEN`: [`Store::hint_confirmations`]), which
//!   wake a running polling chain of the hinted payment;
//! - reconcile scans that claim a "nudge" atomically ([`Store::nudge_stale`]) and the run log.
//!
//! # The polling lease
//! A confirm message that finds its transaction not yet deep enough writes a fresh message for
//! itself. Only the holder of the payment's lease may do so: a message carries `(poller, seq)`;
//! a claim succeeds when it continues the current chain (`poller` matches and `seq` is the one
//! expected, which each claim advances, so a duplicate delivery is refused), or when no chain is
//! active (none yet, ended, or its lease expired: its process died). Everything else (webhook
//! hints, reconcile nudges, duplicates) completes without starting a second chain.
//!
//! A claim advances `seq` before the check runs, so the host's redelivery of a message whose
//! invocation died (the handler was killed) would be refused as a duplicate and the payment
//! would wait for the lease to lapse. The claim therefore remembers the queue message's id and
//! dequeue count: a delivery of that same message id with a higher dequeue count resumes the
//! chain (same token, same `seq`). A copy sent as a separate message has another id and is
//! still refused; if the dead invocation was in fact still running, both write the same next
//! message and the first claim of it refuses the second.
//!
//! [`Store::claim_confirm_poller`]: crate::Store::claim_confirm_poller
//! [`Store::record_confirm_check`]: crate::Store::record_confirm_check
//! [`Store::record_chain_webhook`]: crate::Store::record_chain_webhook
//! [`Store::payments_by_tx_hashes`]: crate::Store::payments_by_tx_hashes
//! [`Store::hint_confirmations`]: crate::Store::hint_confirmations
//! [`Store::nudge_stale`]: crate::Store::nudge_stale

mod chain_webhooks;
mod hints;
mod lease;
mod reconcile;

use std::time::Duration;

use meshpay_domain::{B256, PaymentId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::convert;
use crate::error::{Result, StoreError};

pub use hints::{CONFIRM_HINT_CHANNEL, ConfirmHints};
pub use lease::{finish_confirm_chain, lock_confirm_chain};
pub use reconcile::NudgeStep;

/// What a confirm check concluded (`payment_confirmations.last_outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckOutcome {
    /// No receipt; the node still has the transaction (pending).
    NotMined,
    /// No receipt and the node did not know the transaction: the stored bytes were re-sent.
    Resent,
    /// Mined, not yet deep enough (or not yet finalized).
    NotFinal,
    Confirmed,
    Reverted,
    /// Mined with status 1 but the receipt does not prove the transfer: an operator decides.
    NeedsReview,
    /// The chain of messages gave up after its bounded total wait (reconcile starts another).
    Stalled,
    RpcError,
    /// A confirmed payment's block left the canonical chain (settle noticed).
    Reorged,
    /// The payment's cancellation (a 0-value self-transfer on its nonce) is mined and final.
    Cancelled,
}

impl CheckOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::NotMined => "not_mined",
            CheckOutcome::Resent => "resent",
            CheckOutcome::NotFinal => "not_final",
            CheckOutcome::Confirmed => "confirmed",
            CheckOutcome::Reverted => "reverted",
            CheckOutcome::NeedsReview => "needs_review",
            CheckOutcome::Stalled => "stalled",
            CheckOutcome::RpcError => "rpc_error",
            CheckOutcome::Reorged => "reorged",
            CheckOutcome::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        const ALL: [CheckOutcome; 10] = [
            CheckOutcome::NotMined,
            CheckOutcome::Resent,
            CheckOutcome::NotFinal,
            CheckOutcome::Confirmed,
            CheckOutcome::Reverted,
            CheckOutcome::NeedsReview,
            CheckOutcome::Stalled,
            CheckOutcome::RpcError,
            CheckOutcome::Reorged,
            CheckOutcome::Cancelled,
        ];
        ALL.into_iter()
            .find(|o| o.as_str() == text)
            .ok_or_else(|| convert::corrupt("confirm outcome", text))
    }
}

/// Where a transaction was seen mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inclusion {
    pub tx_hash: B256,
    pub block_number: u64,
    pub block_hash: B256,
}

/// The queue message a confirm claim comes from: the trigger's `Id` and `DequeueCount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDelivery {
    pub message_id: String,
    /// 1 on the first delivery; the host's retry of a failed or lost invocation is higher.
    pub dequeue_count: u64,
}

/// A successful lease claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmClaim {
    pub poller: Uuid,
    /// The `seq` the chain's next message must carry.
    pub next_seq: i32,
    /// When this chain started (for its bounded total wait).
    pub chain_started_at: OffsetDateTime,
    /// True when this claim started a new chain (no token, or took over an expired lease).
    pub new_chain: bool,
    /// True when this claim is a redelivery of the queue message that made the chain's last
    /// claim (that invocation died): the chain goes on with the same token and sequence.
    pub resumed: bool,
    /// The inclusion recorded by the previous check, if it saw one.
    pub last_seen: Option<Inclusion>,
}

/// One check's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    pub outcome: CheckOutcome,
    /// Why (kept as the payment's reason when the chain ends); at most 1000 chars are stored.
    pub detail: Option<String>,
    /// What the check saw (`None`: not mined), replacing the previous observation.
    pub seen: Option<Inclusion>,
    pub reorg_seen: bool,
    pub resent: bool,
}

impl CheckRecord {
    pub fn new(outcome: CheckOutcome) -> Self {
        CheckRecord {
            outcome,
            detail: None,
            seen: None,
            reorg_seen: false,
            resent: false,
        }
    }
}

/// A payment's confirm state (`payment_confirmations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationState {
    pub payment_id: PaymentId,
    /// The active chain, if any, and until when its lease runs.
    pub poller: Option<Uuid>,
    pub lease_until: Option<OffsetDateTime>,
    pub total_checks: i64,
    pub last_checked_at: Option<OffsetDateTime>,
    pub last_outcome: Option<CheckOutcome>,
    pub last_detail: Option<String>,
    pub last_seen: Option<Inclusion>,
    pub reorgs_seen: i32,
    pub resends: i32,
}

fn ms(d: Duration) -> Result<i64> {
    i64::try_from(d.as_millis()).map_err(|_| StoreError::Invalid("duration too large".into()))
}

fn truncated(detail: Option<&str>) -> Option<String> {
    detail.map(|d| d.chars().take(1000).collect())
}

fn inclusion_of(
    tx_hash: Option<String>,
    number: Option<i64>,
    hash: Option<String>,
) -> Result<Option<Inclusion>> {
    match (tx_hash, number, hash) {
        (Some(tx), Some(number), Some(hash)) => Ok(Some(Inclusion {
            tx_hash: convert::b256(&tx)?,
            block_number: convert::u64_from_i64(number, "block_number")?,
            block_hash: convert::b256(&hash)?,
        })),
        _ => Ok(None),
    }
}

fn seen_columns(seen: Option<&Inclusion>) -> Result<(Option<String>, Option<i64>, Option<String>)> {
    let Some(s) = seen else {
        return Ok((None, None, None));
    };
    let number = i64::try_from(s.block_number)
        .map_err(|_| StoreError::Invalid("block number too large".into()))?;
    Ok((
        Some(s.tx_hash.to_string()),
        Some(number),
        Some(s.block_hash.to_string()),
    ))
}
