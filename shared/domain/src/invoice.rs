//! Invoices (pay-ins): [`InvoiceId`], [`InvoiceStatus`] and the one [`invoice_transition`]
//! function that decides, from the amounts seen on chain, where an invoice goes next.
//!
//! ```text
//!   open ──seen──▶ pending ──final──▶ paid | underpaid | overpaid | paid_late
//!    │  ╲                ▲                       │ (more seen, or a reorg removes one)
//!    │   ╲expiry         └───────────────────────┘
//!    ▼    ▼
//! cancelled  expired ──seen──▶ pending (then paid_late when final)
//! ```
//!
//! The status is a function of the amounts: `received` (every recognized payment on the
//! canonical chain) and `final` (those past the chain's finality). A reorg that removes a
//! payment lowers both, so the same function moves the invoice back (to `open`, `pending` or
//! `underpaid`); the store reverses any credit of the removed payment.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::money::Amount;

crate::prefixed_id!(
    /// An invoice: `inv_…`. Made by [`InvoiceId::unguessable`]: the id is the only key of the
    /// public pay page, so it is a v4 UUID (122 random bits), not a time-ordered one.
    InvoiceId,
    "inv"
);

impl InvoiceId {
    /// A fresh id with 122 random bits.
    pub fn unguessable() -> Self {
        Self::from_uuid(uuid::Uuid::new_v4())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatus {
    /// Waiting for a payment.
    Open,
    /// A payment is on chain but not final.
    Pending,
    /// Final payments sum to the amount.
    Paid,
    /// Final payments sum to less than the amount (more may come).
    Underpaid,
    /// Final payments sum to more than the amount.
    Overpaid,
    /// Nothing arrived before the expiry.
    Expired,
    /// Paid in full, but the first payment arrived after the expiry: credited and flagged.
    PaidLate,
    /// Cancelled by the merchant before anything arrived.
    Cancelled,
}

impl InvoiceStatus {
    pub const ALL: [InvoiceStatus; 8] = [
        InvoiceStatus::Open,
        InvoiceStatus::Pending,
        InvoiceStatus::Paid,
        InvoiceStatus::Underpaid,
        InvoiceStatus::Overpaid,
        InvoiceStatus::Expired,
        InvoiceStatus::PaidLate,
        InvoiceStatus::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Open => "open",
            InvoiceStatus::Pending => "pending",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Underpaid => "underpaid",
            InvoiceStatus::Overpaid => "overpaid",
            InvoiceStatus::Expired => "expired",
            InvoiceStatus::PaidLate => "paid_late",
            InvoiceStatus::Cancelled => "cancelled",
        }
    }

    /// The merchant webhook event announcing this status, if it has one.
    pub const fn webhook_event(self) -> Option<&'static str> {
        match self {
            InvoiceStatus::Pending => Some("invoice.pending"),
            InvoiceStatus::Paid => Some("invoice.paid"),
            InvoiceStatus::Underpaid => Some("invoice.underpaid"),
            InvoiceStatus::Overpaid => Some("invoice.overpaid"),
            InvoiceStatus::Expired => Some("invoice.expired"),
            InvoiceStatus::PaidLate => Some("invoice.paid_late"),
            InvoiceStatus::Cancelled => Some("invoice.cancelled"),
            InvoiceStatus::Open => None,
        }
    }

    /// Whether the deposit address is still watched for payments. A paid invoice is too: a
    /// second payment makes it overpaid, and every payment must be seen to be swept.
    pub const fn is_watched(self) -> bool {
        !matches!(self, InvoiceStatus::Cancelled)
    }
}

/// A move the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invoice cannot go from {from} to {to}")]
pub struct IllegalInvoiceTransition {
    pub from: InvoiceStatus,
    pub to: InvoiceStatus,
}

/// What detection knows about an invoice's payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Recognized, non-dust payments on the canonical chain, final or not.
    pub seen: Amount,
    /// The final part of `seen`.
    pub final_: Amount,
    /// The first payment arrived after the invoice's expiry.
    pub late: bool,
}

/// What happens to the invoice: the status the amounts call for, from `from`.
///
/// - nothing received: `open` (or `expired` once `expired` is true; a reorg can take a paid
///   invoice back here);
/// - something not yet final: `pending`;
/// - all final: `paid`, `underpaid` or `overpaid` by comparison with `amount`, and `paid_late`
///   instead of `paid`/`overpaid` when the first payment came after the expiry.
///
/// `cancelled` is left only by nothing; nothing but [`cancel`] enters it.
pub fn invoice_transition(
    from: InvoiceStatus,
    amount: Amount,
    received: Received,
    expired: bool,
) -> Result<InvoiceStatus, IllegalInvoiceTransition> {
    let to = if received.seen.is_zero() {
        if expired {
            InvoiceStatus::Expired
        } else {
            InvoiceStatus::Open
        }
    } else if received.final_ != received.seen {
        InvoiceStatus::Pending
    } else if received.final_ < amount {
        InvoiceStatus::Underpaid
    } else if received.late {
        InvoiceStatus::PaidLate
    } else if received.final_ == amount {
        InvoiceStatus::Paid
    } else {
        InvoiceStatus::Overpaid
    };
    check(from, to)
}

/// The merchant cancels: only while nothing was received.
pub fn cancel(
    from: InvoiceStatus,
    received: Received,
) -> Result<InvoiceStatus, IllegalInvoiceTransition> {
    let to = InvoiceStatus::Cancelled;
    match from {
        InvoiceStatus::Open if received.seen.is_zero() => Ok(to),
        _ => Err(IllegalInvoiceTransition { from, to }),
    }
}

fn check(
    from: InvoiceStatus,
    to: InvoiceStatus,
) -> Result<InvoiceStatus, IllegalInvoiceTransition> {
    use InvoiceStatus::*;
    let legal = from == to
        || match from {
            Cancelled => false,
            // An expired invoice never reopens: a payment (then its reorg) can only take it
            // to pending and back to expired.
            Expired => matches!(to, Pending | Underpaid | PaidLate),
            Open => matches!(
                to,
                Pending | Expired | Underpaid | Paid | Overpaid | PaidLate
            ),
            Pending | Underpaid | Paid | Overpaid | PaidLate => !matches!(to, Cancelled),
        };
    if legal {
        Ok(to)
    } else {
        Err(IllegalInvoiceTransition { from, to })
    }
}

/// An unknown status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown invoice status {0:?}")]
pub struct UnknownInvoiceStatus(pub String);

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InvoiceStatus {
    type Err = UnknownInvoiceStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InvoiceStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownInvoiceStatus(s.to_owned()))
    }
}

impl Serialize for InvoiceStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for InvoiceStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InvoiceStatus::*;

    fn received(seen: u64, final_: u64, late: bool) -> Received {
        Received {
            seen: Amount::from(seen),
            final_: Amount::from(final_),
            late,
        }
    }

    #[test]
    fn amounts_decide_the_status() {
        let amount = Amount::from(100u64);
        let cases = [
            (received(0, 0, false), false, Open),
            (received(0, 0, false), true, Expired),
            (received(100, 0, false), false, Pending),
            (received(100, 60, false), false, Pending),
            (received(60, 60, false), false, Underpaid),
            (received(100, 100, false), false, Paid),
            (received(150, 150, false), false, Overpaid),
            (received(100, 100, true), true, PaidLate),
            (received(150, 150, true), true, PaidLate),
            (received(60, 60, true), true, Underpaid),
        ];
        for (received, expired, want) in cases {
            assert_eq!(
                invoice_transition(Pending, amount, received, expired),
                Ok(want),
                "{received:?} expired={expired}"
            );
        }
    }

    #[test]
    fn a_reorg_moves_a_paid_invoice_back_and_an_expired_one_never_reopens() {
        let amount = Amount::from(100u64);
        let nothing = received(0, 0, false);
        assert_eq!(invoice_transition(Paid, amount, nothing, false), Ok(Open));
        assert_eq!(
            invoice_transition(PaidLate, amount, nothing, true),
            Ok(Expired)
        );
        assert_eq!(
            invoice_transition(Paid, amount, received(100, 0, false), false),
            Ok(Pending)
        );
        assert_eq!(
            invoice_transition(Expired, amount, nothing, false),
            Err(IllegalInvoiceTransition {
                from: Expired,
                to: Open
            })
        );
    }

    #[test]
    fn a_cancelled_invoice_goes_nowhere_and_only_an_untouched_open_one_cancels() {
        let amount = Amount::from(100u64);
        for status in [Pending, Paid, Expired] {
            assert!(
                invoice_transition(Cancelled, amount, received(100, 100, false), false).is_err()
            );
            assert!(cancel(status, received(0, 0, false)).is_err(), "{status}");
        }
        assert_eq!(cancel(Open, received(0, 0, false)), Ok(Cancelled));
        assert!(cancel(Open, received(5, 0, false)).is_err());
    }

    #[test]
    fn ids_are_random_v4_and_parse_back() {
        let a = InvoiceId::unguessable();
        let b = InvoiceId::unguessable();
        assert_ne!(a, b);
        assert_eq!(a.as_uuid().get_version_num(), 4);
        assert_eq!(a.to_string().parse::<InvoiceId>(), Ok(a));
        for status in InvoiceStatus::ALL {
            assert_eq!(status.as_str().parse::<InvoiceStatus>(), Ok(status));
        }
    }
}
