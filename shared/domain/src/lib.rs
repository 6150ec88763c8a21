//! meshpay-domain: money, assets, identifiers, scopes and the payment state machine.
//!
//! No I/O lives here: everything is a pure function of its inputs, so every rule can be unit
//! tested exhaustively. The store (`meshpay-store`) and the HTTP functions build on these types.
//!
//! - [`money`]: [`Amount`] (U256 base units), decimal parsing/formatting, fee math in basis points.
//! - [`asset`]: [`AssetId`] (`chain:SYMBOL`), [`Asset`] (decimals, native or ERC-20).
//! - [`charges`]: what a quote debits from a merchant ([`Charges`]).
//! - [`ids`]: prefixed UUIDv7 identifiers (`pay_…`, `quo_…`, `mer_…`, `key_…`), [`IdempotencyKey`].
//! - [`scope`]: API key scopes.
//! - [`messages`]: the queue message envelope between pipeline steps.
//! - [`invoice`]: [`InvoiceId`], [`InvoiceStatus`] and [`invoice_transition`] (pay-ins).
//! - [`payment`]: [`PaymentStatus`], [`PaymentEvent`] and the one [`transition`] function.
//! - [`error_chain`]: [`ErrorChain`], an error with its sources on one line (for logs).

pub mod asset;
pub mod charges;
pub mod error_chain;
pub mod ids;
pub mod invoice;
pub mod messages;
pub mod money;
pub mod payment;
pub mod scope;

pub use alloy::primitives::{Address, B256, U256};
pub use asset::{Asset, AssetId, AssetIdError, AssetKind, DecimalsError};
pub use charges::{Capture, CaptureTo, Charges, HoldResolution, ResolveError};
pub use error_chain::ErrorChain;
pub use ids::{
    ApiKeyId, IdError, IdempotencyKey, IdempotencyKeyError, MerchantId, PaymentId, QuoteId,
};
pub use invoice::{
    IllegalInvoiceTransition, InvoiceId, InvoiceStatus, Received, UnknownInvoiceStatus,
    invoice_transition,
};
pub use messages::{PaymentMessage, Version};
pub use money::{Amount, AmountError, FeeBps, FeeBpsError, MAX_DECIMALS};
pub use payment::{
    EventKind, FailureReason, HoldEffect, IllegalTransition, PaymentEvent, PaymentStatus,
    UnknownStatus, transition,
};
pub use scope::{Scope, ScopeError, Scopes};

/// Paths used by [`prefixed_id!`] expansions in other crates; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use uuid::Uuid;
}
