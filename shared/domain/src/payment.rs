//! The payment state machine. Every status change of a payment anywhere in meshpay goes through
//! [`transition`]; the store persists its result with an optimistic version check and an
//! appended event in one database transaction.
//!
//! ```text
//!  quoted ──Authorize──▶ authorized ──Broadcast──▶ broadcast ──Confirm──▶ confirmed ──Settle──▶ settled
//!    │                      │   │                  │ │ ▲  ▲                 ▲ │
//!  Expire                Cancel Fail        Stall  │ │ │  └──────Reorg──────┼─┘
//!    ▼                      ▼   ▼             ▼    │ │ │Resume              │
//!  expired             cancelled failed ◀─ stalled ─┼─┼─┘     Confirm ──────┤
//!                           ▲      ▲          │ RequestCancel                │
//!                           │      │          ▼    ▼ ▼                       │
//!                           └CancelMined─ cancelling ─────── Confirm ────────┘
//! ```
//!
//! After broadcast the payment's nonce is taken, so a cancellation is itself a transaction: a
//! 0-value self-transfer on the same nonce (`RequestCancel`: `broadcast`/`stalled` →
//! `cancelling`, hold kept). Whichever transaction of the nonce is mined decides: the
//! cancellation (`CancelMined`: → `cancelled`, its network fee charged, the rest released) or
//! the original (`Confirm`: → `confirmed`, then settled as usual). `stalled`: the fee market is
//! above the quoted maximum, so the transaction cannot be re-priced within the hold; the payment
//! keeps its nonce and hold, returns to `broadcast` (`Resume`) when fees allow, and its original
//! can still be mined (`Confirm`) or it can be cancelled.
//!
//! Decision on `quoted`: a quote is a payment that has not been authorized yet, so `quoted` is
//! the machine's start state, but it is *represented by the quote row* (whose `expires_at` is
//! the quote's own property). A payment row is created by applying `Authorize` to `quoted`, so
//! every stored payment starts in `authorized` with the event `quoted → authorized` first in its
//! history. `Expire` applies only to `quoted`: a lapsed quote can no longer be authorized; an
//! authorized payment never expires (it is cancelled or fails, releasing its hold).
//!
//! A `Reorg` moves a confirmed payment back to `broadcast` (its block left the canonical chain);
//! it is then confirmed again, or fails. Settled, failed, expired and cancelled are terminal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::money::Amount;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    Quoted,
    Authorized,
    Broadcast,
    Stalled,
    Cancelling,
    Confirmed,
    Settled,
    Failed,
    Expired,
    Cancelled,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 10] = [
        PaymentStatus::Quoted,
        PaymentStatus::Authorized,
        PaymentStatus::Broadcast,
        PaymentStatus::Stalled,
        PaymentStatus::Cancelling,
        PaymentStatus::Confirmed,
        PaymentStatus::Settled,
        PaymentStatus::Failed,
        PaymentStatus::Expired,
        PaymentStatus::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Quoted => "quoted",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Broadcast => "broadcast",
            PaymentStatus::Stalled => "stalled",
            PaymentStatus::Cancelling => "cancelling",
            PaymentStatus::Confirmed => "confirmed",
            PaymentStatus::Settled => "settled",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Cancelled => "cancelled",
        }
    }

    /// No event leaves a terminal status.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            PaymentStatus::Settled
                | PaymentStatus::Failed
                | PaymentStatus::Expired
                | PaymentStatus::Cancelled
        )
    }

    /// Whether a payment in this status has an open hold on the merchant's balance.
    pub const fn holds_funds(self) -> bool {
        matches!(
            self,
            PaymentStatus::Authorized
                | PaymentStatus::Broadcast
                | PaymentStatus::Stalled
                | PaymentStatus::Cancelling
                | PaymentStatus::Confirmed
        )
    }

    /// Signed and not yet final on chain: a transaction of the payment holds its nonce and may
    /// be mined (the confirm step watches it; a fee replacement may re-price it).
    pub const fn is_in_flight(self) -> bool {
        matches!(
            self,
            PaymentStatus::Broadcast | PaymentStatus::Stalled | PaymentStatus::Cancelling
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown payment status {0:?}")]
pub struct UnknownStatus(pub String);

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl Serialize for PaymentStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PaymentStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a payment failed, recorded with it (never "failed" without a reason). At most 1000
/// characters are kept; longer reasons (e.g. raw RPC errors) are truncated on a char boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FailureReason(String);

impl FailureReason {
    pub const MAX_CHARS: usize = 1000;

    pub fn new(reason: impl Into<String>) -> Self {
        let reason: String = reason.into();
        match reason.char_indices().nth(Self::MAX_CHARS) {
            Some((cut, _)) => FailureReason(reason[..cut].to_owned()),
            None => FailureReason(reason),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something that happens to a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    /// The merchant authorized the quote; funds are held.
    Authorize,
    /// A signed transaction was sent.
    Broadcast,
    /// The transaction is deep enough (or finalized).
    Confirm,
    /// The confirming block left the canonical chain.
    Reorg,
    /// Ledger settlement posted; the hold was captured. `network_fee`: what the chain charged
    /// (receipt `gasUsed × effectiveGasPrice`); the unused rest of the held fee is released.
    Settle { network_fee: Amount },
    /// Terminal failure, with the reason. `network_fee`: `Some` when the transaction was mined
    /// but did not transfer (reverted): the gas was spent, so that fee is charged and the rest
    /// released; `None` when nothing was mined (never sent, refused by the node): everything is
    /// released.
    Fail {
        reason: FailureReason,
        network_fee: Option<Amount>,
    },
    /// The merchant cancelled before broadcast.
    Cancel,
    /// The quote lapsed before authorization.
    Expire,
    /// The transaction cannot be re-priced within the hold (the fee market is above the quoted
    /// maximum); `reason` is shown with the payment.
    Stall { reason: FailureReason },
    /// Fees allow the transaction again (re-priced within the hold, or the market came back).
    Resume,
    /// The merchant cancelled after broadcast: a 0-value self-transfer on the payment's nonce
    /// is sent; the hold stays until one transaction of the nonce is mined.
    RequestCancel,
    /// The cancelling self-transfer was mined: its `network_fee` (receipt `gasUsed ×
    /// effectiveGasPrice`) is charged, the rest of the hold released; the recipient got nothing.
    CancelMined { network_fee: Amount },
}

/// An event without its payload: what is stored in `payment_events.event` and reported in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Authorize,
    Broadcast,
    Confirm,
    Reorg,
    Settle,
    Fail,
    Cancel,
    Expire,
    Stall,
    Resume,
    RequestCancel,
    CancelMined,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::Authorize,
        EventKind::Broadcast,
        EventKind::Confirm,
        EventKind::Reorg,
        EventKind::Settle,
        EventKind::Fail,
        EventKind::Cancel,
        EventKind::Expire,
        EventKind::Stall,
        EventKind::Resume,
        EventKind::RequestCancel,
        EventKind::CancelMined,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Authorize => "authorize",
            EventKind::Broadcast => "broadcast",
            EventKind::Confirm => "confirm",
            EventKind::Reorg => "reorg",
            EventKind::Settle => "settle",
            EventKind::Fail => "fail",
            EventKind::Cancel => "cancel",
            EventKind::Expire => "expire",
            EventKind::Stall => "stall",
            EventKind::Resume => "resume",
            EventKind::RequestCancel => "request_cancel",
            EventKind::CancelMined => "cancel_mined",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an accepted event does to the payment's hold on the merchant's balance. The store applies
/// it in the same transaction as the status change, so status and ledger cannot disagree. The
/// amounts each resolving effect moves are [`crate::Charges`]' `release_all`,
/// `charge_network_fee` and `settle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEffect {
    /// Move the total debit from available to held.
    Place,
    /// Leave the hold as it is.
    Keep,
    /// Move the held funds back to available: nothing was spent on chain.
    Release,
    /// A mined transaction failed: pay the `network_fee` the chain charged from the hold and
    /// move the rest back to available.
    ChargeNetworkFee { network_fee: Amount },
    /// Consume the hold: post the settlement (recipient outflow, service fee, the `network_fee`
    /// the chain charged) and move the unused rest of the held network fee back to available.
    Capture { network_fee: Amount },
}

impl HoldEffect {
    /// Whether the payment still has a hold after this effect (`held_before`: it had one).
    pub const fn holds_after(self, held_before: bool) -> bool {
        match self {
            HoldEffect::Place => true,
            HoldEffect::Keep => held_before,
            HoldEffect::Release
            | HoldEffect::ChargeNetworkFee { .. }
            | HoldEffect::Capture { .. } => false,
        }
    }
}

impl PaymentEvent {
    /// A failure before anything was mined: the whole hold is released.
    pub fn fail(reason: impl Into<String>) -> Self {
        PaymentEvent::Fail {
            reason: FailureReason::new(reason),
            network_fee: None,
        }
    }

    /// A mined transaction that did not transfer: `network_fee` (receipt `gasUsed ×
    /// effectiveGasPrice`) is charged, the rest of the hold released.
    pub fn fail_mined(reason: impl Into<String>, network_fee: Amount) -> Self {
        PaymentEvent::Fail {
            reason: FailureReason::new(reason),
            network_fee: Some(network_fee),
        }
    }

    pub const fn kind(&self) -> EventKind {
        match self {
            PaymentEvent::Authorize => EventKind::Authorize,
            PaymentEvent::Broadcast => EventKind::Broadcast,
            PaymentEvent::Confirm => EventKind::Confirm,
            PaymentEvent::Reorg => EventKind::Reorg,
            PaymentEvent::Settle { .. } => EventKind::Settle,
            PaymentEvent::Fail { .. } => EventKind::Fail,
            PaymentEvent::Cancel => EventKind::Cancel,
            PaymentEvent::Expire => EventKind::Expire,
            PaymentEvent::Stall { .. } => EventKind::Stall,
            PaymentEvent::Resume => EventKind::Resume,
            PaymentEvent::RequestCancel => EventKind::RequestCancel,
            PaymentEvent::CancelMined { .. } => EventKind::CancelMined,
        }
    }

    /// A stall for `reason`.
    pub fn stall(reason: impl Into<String>) -> Self {
        PaymentEvent::Stall {
            reason: FailureReason::new(reason),
        }
    }

    /// Why the payment is in the status this event leads to, while it is not terminal (shown
    /// with the payment; `None` clears it).
    pub fn status_reason(&self) -> Option<&FailureReason> {
        match self {
            PaymentEvent::Stall { reason } => Some(reason),
            _ => None,
        }
    }

    pub fn failure_reason(&self) -> Option<&FailureReason> {
        match self {
            PaymentEvent::Fail { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The network fee the chain charged, for the events that know it (recorded on the payment).
    pub const fn network_fee_charged(&self) -> Option<Amount> {
        match self {
            PaymentEvent::Settle { network_fee } => Some(*network_fee),
            PaymentEvent::Fail { network_fee, .. } => *network_fee,
            PaymentEvent::CancelMined { network_fee } => Some(*network_fee),
            _ => None,
        }
    }

    pub const fn hold_effect(&self) -> HoldEffect {
        match self {
            PaymentEvent::Authorize => HoldEffect::Place,
            PaymentEvent::Fail {
                network_fee: Some(network_fee),
                ..
            }
            | PaymentEvent::CancelMined { network_fee } => HoldEffect::ChargeNetworkFee {
                network_fee: *network_fee,
            },
            PaymentEvent::Fail {
                network_fee: None, ..
            }
            | PaymentEvent::Cancel => HoldEffect::Release,
            PaymentEvent::Settle { network_fee } => HoldEffect::Capture {
                network_fee: *network_fee,
            },
            PaymentEvent::Broadcast
            | PaymentEvent::Confirm
            | PaymentEvent::Reorg
            | PaymentEvent::Expire
            | PaymentEvent::Stall { .. }
            | PaymentEvent::Resume
            | PaymentEvent::RequestCancel => HoldEffect::Keep,
        }
    }
}

/// The event is not allowed in the payment's current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} a payment that is {from}")]
pub struct IllegalTransition {
    pub from: PaymentStatus,
    pub event: EventKind,
}

/// The payment state machine: the status after `event` in status `from`, or why not.
pub fn transition(
    from: PaymentStatus,
    event: &PaymentEvent,
) -> Result<PaymentStatus, IllegalTransition> {
    use EventKind as E;
    use PaymentStatus as S;
    let kind = event.kind();
    let to = match (from, kind) {
        (S::Quoted, E::Authorize) => S::Authorized,
        (S::Quoted, E::Expire) => S::Expired,
        (S::Authorized, E::Broadcast) => S::Broadcast,
        (S::Authorized, E::Cancel) => S::Cancelled,
        (S::Authorized | S::Broadcast | S::Stalled | S::Cancelling, E::Fail) => S::Failed,
        (S::Broadcast | S::Stalled | S::Cancelling, E::Confirm) => S::Confirmed,
        (S::Broadcast, E::Stall) => S::Stalled,
        (S::Stalled, E::Resume) => S::Broadcast,
        (S::Broadcast | S::Stalled, E::RequestCancel) => S::Cancelling,
        (S::Cancelling, E::CancelMined) => S::Cancelled,
        (S::Confirmed, E::Reorg) => S::Broadcast,
        (S::Confirmed, E::Settle) => S::Settled,
        (
            S::Quoted
            | S::Authorized
            | S::Broadcast
            | S::Stalled
            | S::Cancelling
            | S::Confirmed
            | S::Settled
            | S::Failed
            | S::Expired
            | S::Cancelled,
            _,
        ) => return Err(IllegalTransition { from, event: kind }),
    };
    // Invariant: a hold exists exactly while the status says funds are held.
    debug_assert_eq!(
        to.holds_funds(),
        event.hold_effect().holds_after(from.holds_funds())
    );
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind as E;
    use PaymentStatus as S;

    fn event_of(kind: EventKind) -> PaymentEvent {
        match kind {
            E::Authorize => PaymentEvent::Authorize,
            E::Broadcast => PaymentEvent::Broadcast,
            E::Confirm => PaymentEvent::Confirm,
            E::Reorg => PaymentEvent::Reorg,
            E::Settle => PaymentEvent::Settle {
                network_fee: Amount::from(86_207_104_363_380u64),
            },
            E::Fail => PaymentEvent::fail("reverted"),
            E::Cancel => PaymentEvent::Cancel,
            E::Expire => PaymentEvent::Expire,
            E::Stall => PaymentEvent::stall("fee market above the quoted maximum"),
            E::Resume => PaymentEvent::Resume,
            E::RequestCancel => PaymentEvent::RequestCancel,
            E::CancelMined => PaymentEvent::CancelMined {
                network_fee: Amount::from(21_000u64 * 7),
            },
        }
    }

    /// The specification, written independently of `transition`: every legal move.
    const LEGAL: [(PaymentStatus, EventKind, PaymentStatus); 18] = [
        (S::Quoted, E::Authorize, S::Authorized),
        (S::Quoted, E::Expire, S::Expired),
        (S::Authorized, E::Broadcast, S::Broadcast),
        (S::Authorized, E::Cancel, S::Cancelled),
        (S::Authorized, E::Fail, S::Failed),
        (S::Broadcast, E::Confirm, S::Confirmed),
        (S::Broadcast, E::Fail, S::Failed),
        (S::Broadcast, E::Stall, S::Stalled),
        (S::Broadcast, E::RequestCancel, S::Cancelling),
        (S::Stalled, E::Resume, S::Broadcast),
        (S::Stalled, E::Confirm, S::Confirmed),
        (S::Stalled, E::RequestCancel, S::Cancelling),
        (S::Stalled, E::Fail, S::Failed),
        (S::Cancelling, E::CancelMined, S::Cancelled),
        (S::Cancelling, E::Confirm, S::Confirmed),
        (S::Cancelling, E::Fail, S::Failed),
        (S::Confirmed, E::Reorg, S::Broadcast),
        (S::Confirmed, E::Settle, S::Settled),
    ];

    #[test]
    fn every_status_event_pair_matches_the_specification() {
        let mut checked = 0;
        for from in PaymentStatus::ALL {
            for kind in EventKind::ALL {
                let expected = LEGAL
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == kind)
                    .map(|(_, _, to)| *to)
                    .ok_or(IllegalTransition { from, event: kind });
                assert_eq!(
                    transition(from, &event_of(kind)),
                    expected,
                    "{from} + {kind}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 120);
    }

    #[test]
    fn terminal_statuses_accept_no_event() {
        for from in PaymentStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for kind in EventKind::ALL {
                assert!(
                    transition(from, &event_of(kind)).is_err(),
                    "{from} + {kind}"
                );
            }
        }
    }

    #[test]
    fn cancel_is_only_possible_before_broadcast() {
        let allowed: Vec<_> = PaymentStatus::ALL
            .into_iter()
            .filter(|s| transition(*s, &PaymentEvent::Cancel).is_ok())
            .collect();
        assert_eq!(allowed, vec![S::Authorized]);
    }

    #[test]
    fn reorg_returns_a_confirmed_payment_to_broadcast_and_it_can_confirm_again() {
        let s = transition(S::Confirmed, &PaymentEvent::Reorg).unwrap();
        assert_eq!(s, S::Broadcast);
        assert_eq!(transition(s, &PaymentEvent::Confirm), Ok(S::Confirmed));
        assert!(transition(S::Settled, &PaymentEvent::Reorg).is_err());
    }

    #[test]
    fn the_happy_path_walks_from_quoted_to_settled() {
        let path = [E::Authorize, E::Broadcast, E::Confirm, E::Settle];
        let end = path
            .into_iter()
            .try_fold(S::Quoted, |s, kind| transition(s, &event_of(kind)))
            .unwrap();
        assert_eq!(end, S::Settled);
    }

    #[test]
    fn hold_effects_keep_funds_held_exactly_while_the_status_holds_funds() {
        let mined_failure = PaymentEvent::fail_mined("reverted", Amount::from(21_000u64));
        for (from, kind, to) in LEGAL {
            let mut events = vec![event_of(kind)];
            if kind == E::Fail {
                events.push(mined_failure.clone());
            }
            for event in events {
                let held_after = event.hold_effect().holds_after(from.holds_funds());
                assert_eq!(held_after, to.holds_funds(), "{from} + {event:?}");
                assert_eq!(transition(from, &event), Ok(to), "{from} + {event:?}");
            }
        }
    }

    #[test]
    fn a_mined_failure_charges_its_network_fee_and_an_unmined_one_releases_everything() {
        let fee = Amount::from(86_207_104_363_380u64);
        let mined = PaymentEvent::fail_mined("transaction reverted", fee);
        assert_eq!(
            mined.hold_effect(),
            HoldEffect::ChargeNetworkFee { network_fee: fee }
        );
        assert_eq!(mined.network_fee_charged(), Some(fee));
        assert_eq!(mined.kind(), E::Fail);
        assert_eq!(
            mined.failure_reason().map(FailureReason::as_str),
            Some("transaction reverted")
        );
        let unmined = PaymentEvent::fail("nonce too low");
        assert_eq!(unmined.hold_effect(), HoldEffect::Release);
        assert_eq!(unmined.network_fee_charged(), None);
        assert_eq!(PaymentEvent::Cancel.hold_effect(), HoldEffect::Release);
    }

    #[test]
    fn settling_captures_with_the_charged_network_fee() {
        let settle = event_of(E::Settle);
        let fee = Amount::from(86_207_104_363_380u64);
        assert_eq!(
            settle.hold_effect(),
            HoldEffect::Capture { network_fee: fee }
        );
        assert_eq!(settle.network_fee_charged(), Some(fee));
        for kind in [
            E::Authorize,
            E::Broadcast,
            E::Confirm,
            E::Reorg,
            E::Cancel,
            E::Expire,
            E::Stall,
            E::Resume,
            E::RequestCancel,
        ] {
            assert_eq!(event_of(kind).network_fee_charged(), None, "{kind}");
        }
    }

    #[test]
    fn a_broadcast_payment_is_cancelled_only_when_its_cancellation_is_mined() {
        let cancelling = transition(S::Broadcast, &PaymentEvent::RequestCancel).unwrap();
        assert_eq!(cancelling, S::Cancelling);
        assert!(cancelling.holds_funds());
        assert_eq!(PaymentEvent::RequestCancel.hold_effect(), HoldEffect::Keep);
        let fee = Amount::from(21_000u64 * 3);
        let mined = PaymentEvent::CancelMined { network_fee: fee };
        assert_eq!(transition(cancelling, &mined), Ok(S::Cancelled));
        assert_eq!(
            mined.hold_effect(),
            HoldEffect::ChargeNetworkFee { network_fee: fee }
        );
        assert_eq!(mined.network_fee_charged(), Some(fee));
        // The original transfer won the race: it is confirmed and settled as usual.
        assert_eq!(
            transition(cancelling, &PaymentEvent::Confirm),
            Ok(S::Confirmed)
        );
        assert!(transition(S::Confirmed, &PaymentEvent::RequestCancel).is_err());
        assert!(transition(S::Settled, &PaymentEvent::RequestCancel).is_err());
        assert!(transition(S::Cancelling, &PaymentEvent::Cancel).is_err());
    }

    #[test]
    fn a_stalled_payment_keeps_its_hold_and_its_reason_and_resumes_or_confirms() {
        let stall = PaymentEvent::stall("fee market above the quoted maximum");
        let stalled = transition(S::Broadcast, &stall).unwrap();
        assert_eq!(stalled, S::Stalled);
        assert!(stalled.holds_funds() && stalled.is_in_flight() && !stalled.is_terminal());
        assert_eq!(
            stall.status_reason().map(FailureReason::as_str),
            Some("fee market above the quoted maximum")
        );
        assert_eq!(stall.hold_effect(), HoldEffect::Keep);
        assert_eq!(PaymentEvent::Resume.status_reason(), None);
        assert_eq!(transition(stalled, &PaymentEvent::Resume), Ok(S::Broadcast));
        assert_eq!(
            transition(stalled, &PaymentEvent::Confirm),
            Ok(S::Confirmed)
        );
        assert!(transition(stalled, &stall).is_err());
        assert!(transition(S::Cancelling, &stall).is_err());
    }

    #[test]
    fn illegal_transition_names_status_and_event() {
        let err = transition(S::Settled, &PaymentEvent::Cancel).unwrap_err();
        assert_eq!(err.to_string(), "cannot cancel a payment that is settled");
    }

    #[test]
    fn status_strings_round_trip() {
        for s in PaymentStatus::ALL {
            assert_eq!(s.as_str().parse::<PaymentStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("Settled".parse::<PaymentStatus>().is_err());
    }

    #[test]
    fn failure_reasons_are_bounded_on_a_char_boundary() {
        let long = "é".repeat(FailureReason::MAX_CHARS + 5);
        let reason = FailureReason::new(long);
        assert_eq!(reason.as_str().chars().count(), FailureReason::MAX_CHARS);
        assert_eq!(FailureReason::new("reverted").as_str(), "reverted");
    }
}
