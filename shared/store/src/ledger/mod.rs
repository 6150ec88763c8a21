//! The double-entry ledger: accounts, balanced postings, holds, funding, balances, invariants.
//!
//! Every posting is one `ledger_transactions` row plus entries that sum to zero per asset (checked
//! here before writing and again by a deferred trigger at commit). Merchant accounts come in
//! pairs per asset, `merchant_available` and `merchant_held`; a hold moves funds from the first to
//! the second, a release moves them back, a capture (settlement) moves them out to the outflow
//! and fee accounts. The network fee is held at its quoted maximum but only what the chain
//! charged is captured (settlement, or a mined transaction that reverted); the unused rest is
//! released in the same database transaction ([`resolve_holds`]). Funding moves money from the
//! asset's `funding` account (the outside world, which goes negative) to the merchant's
//! available balance.
//!
//! Concurrency (the Blnk #238/#239 lessons): a posting locks *every* merchant account it touches,
//! source and destination, with `SELECT … ORDER BY id FOR UPDATE` (one global order, so no
//! deadlocks), checks balances under the lock, and applies deltas with
//! `balance = balance + delta` (never a read-modify-write of a value computed in the app and
//! never a version number that can race). `CHECK (balance >= 0)` backs this up.

mod accounts;
mod balances;
mod holds;
mod invariants;
mod payins;
mod postings;
mod sweeps;
mod wallets;

pub(crate) use accounts::lock_merchant_accounts;
pub use balances::{Balance, FundOutcome};
pub(crate) use holds::{HoldOutcome, place_holds, resolve_holds};
pub(crate) use payins::{PayinPosting, post_invoice_credit, post_invoice_reversal};
pub(crate) use sweeps::post_sweep;
pub(crate) use wallets::{WalletPosting, post_wallet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountKind {
    MerchantAvailable,
    MerchantHeld,
    Funding,
    Outflow,
    ServiceFees,
    NetworkFees,
    /// What meshpay's hot wallets were funded with (openings, top-ups), less the gap fills'
    /// network fees.
    HotWallets,
    /// Money paid in to deposit addresses (the outside world: goes negative).
    Payins,
    /// Tokens the configuration does not know, swept to the treasury by an operator.
    Unrecognized,
}

impl AccountKind {
    const fn as_str(self) -> &'static str {
        match self {
            AccountKind::MerchantAvailable => "merchant_available",
            AccountKind::MerchantHeld => "merchant_held",
            AccountKind::Funding => "funding",
            AccountKind::Outflow => "outflow",
            AccountKind::ServiceFees => "service_fees",
            AccountKind::NetworkFees => "network_fees",
            AccountKind::HotWallets => "hot_wallets",
            AccountKind::Payins => "payins",
            AccountKind::Unrecognized => "unrecognized",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxKind {
    Fund,
    Hold,
    Release,
    Settle,
    /// A failed payment's mined transaction, paid from its hold.
    NetworkFee,
    /// A hot wallet's balance when the books started following it.
    WalletOpening,
    /// Money an operator sent to a hot wallet.
    WalletTopup,
    /// The network fee of a gap fill (a 0-value self-transfer), paid by the hot wallet.
    GapFillFee,
    /// A payment's or sweep's transaction re-included by a reorg at another fee: the
    /// difference.
    FeeAdjustment,
    /// A final invoice payment credited to the merchant, less the service fee.
    InvoiceCredit,
    /// The exact opposite of an [`TxKind::InvoiceCredit`] whose payment a reorg removed.
    InvoiceReversal,
    /// Deposit addresses flushed to the treasury: `payins` to `hot_wallets`, and the
    /// sweep's gas from `hot_wallets` to `network_fees`.
    Sweep,
}

impl TxKind {
    const fn as_str(self) -> &'static str {
        match self {
            TxKind::Fund => "fund",
            TxKind::Hold => "hold",
            TxKind::Release => "release",
            TxKind::Settle => "settle",
            TxKind::NetworkFee => "network_fee",
            TxKind::WalletOpening => "wallet_opening",
            TxKind::WalletTopup => "wallet_topup",
            TxKind::GapFillFee => "gap_fill_fee",
            TxKind::FeeAdjustment => "fee_adjustment",
            TxKind::InvoiceCredit => "invoice_credit",
            TxKind::InvoiceReversal => "invoice_reversal",
            TxKind::Sweep => "sweep",
        }
    }
}
