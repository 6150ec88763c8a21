//! The JSON of invoices: the merchant's view (`/api/invoices`) and the pay page's public
//! status (only what the page shows), plus the EIP-681 payment URI.

use meshpay_api::ApiError;
use meshpay_api::views::{Money, Renderer};
use meshpay_chain::Chain;
use meshpay_domain::{Address, Amount, AssetKind, InvoiceStatus};
use meshpay_store::{Invoice, InvoicePayment, PaymentSeen};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Where an invoice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatusView {
    Open,
    Pending,
    Paid,
    Underpaid,
    Overpaid,
    Expired,
    PaidLate,
    Cancelled,
}

impl From<InvoiceStatus> for InvoiceStatusView {
    fn from(status: InvoiceStatus) -> Self {
        match status {
            InvoiceStatus::Open => InvoiceStatusView::Open,
            InvoiceStatus::Pending => InvoiceStatusView::Pending,
            InvoiceStatus::Paid => InvoiceStatusView::Paid,
            InvoiceStatus::Underpaid => InvoiceStatusView::Underpaid,
            InvoiceStatus::Overpaid => InvoiceStatusView::Overpaid,
            InvoiceStatus::Expired => InvoiceStatusView::Expired,
            InvoiceStatus::PaidLate => InvoiceStatusView::PaidLate,
            InvoiceStatus::Cancelled => InvoiceStatusView::Cancelled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvoiceView {
    /// `inv_…`: unguessable (122 random bits); also the key of the public pay page.
    pub id: String,
    pub status: InvoiceStatusView,
    /// Increases by one with every change.
    pub version: i64,
    pub chain: String,
    pub asset: String,
    pub amount: Money,
    /// Recognized payments on the canonical chain, final or not.
    pub amount_received: Money,
    /// The final part of `amount_received`: what is credited.
    pub amount_final: Money,
    /// The address the payer sends to (a CREATE2 forwarder; no contract until the first sweep).
    pub deposit_address: String,
    /// EIP-681 URI of the payment (what the pay page's QR code holds).
    pub payment_uri: String,
    /// The hosted pay page.
    pub pay_url: String,
    /// A payment arrived after `expires_at` (credited all the same).
    pub late: bool,
    pub reference: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Every transfer seen to the deposit address, oldest first. `GET /api/invoices/{id}` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments: Option<Vec<InvoicePaymentView>>,
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatusView {
    /// Mined, not yet final.
    Seen,
    /// Past the chain's finality (credited when recognized and not dust).
    Final,
    /// Its block left the canonical chain (any credit reversed).
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvoicePaymentView {
    pub tx_hash: String,
    pub log_index: u64,
    /// The token contract; the zero address for the native coin.
    pub token: String,
    /// The asset symbol; `null` for an unrecognized token (never credited: swept by an operator).
    pub asset: Option<String>,
    /// Base units of the token.
    pub amount_base_units: String,
    pub block_number: u64,
    pub status: TransferStatusView,
    /// Below the configured minimum: not credited.
    pub dust: bool,
    /// Arrived after the invoice's expiry.
    pub late: bool,
}

/// What the public pay page shows and polls: nothing the payer did not already see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublicInvoiceView {
    pub id: String,
    pub status: InvoiceStatusView,
    pub chain: String,
    pub asset: String,
    pub amount: String,
    pub amount_received: String,
    pub deposit_address: String,
    pub payment_uri: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// Renders invoices for one deployment (`pay_base`: the origin the pay page is served from).
pub struct InvoiceRenderer<'a> {
    renderer: Renderer<'a>,
    chains: &'a meshpay_chain::ChainsConfig,
    pay_base: &'a str,
}

impl<'a> InvoiceRenderer<'a> {
    pub fn new(chains: &'a meshpay_chain::ChainsConfig, pay_base: &'a str) -> Self {
        Self {
            renderer: Renderer::new(chains),
            chains,
            pay_base,
        }
    }

    pub fn invoice(
        &self,
        invoice: &Invoice,
        payments: Option<&[InvoicePayment]>,
    ) -> Result<InvoiceView, ApiError> {
        let money = |amount| self.renderer.money(&invoice.asset, amount);
        Ok(InvoiceView {
            id: invoice.id.to_string(),
            status: invoice.status.into(),
            version: invoice.version,
            chain: invoice.chain().to_owned(),
            asset: invoice.asset.symbol().to_owned(),
            amount: money(invoice.amount)?,
            amount_received: money(invoice.amount_received)?,
            amount_final: money(invoice.amount_final)?,
            deposit_address: invoice.deposit_address.to_checksum(None),
            payment_uri: self.payment_uri(invoice).unwrap_or_default(),
            pay_url: format!(
                "{}/api/pay/{}",
                self.pay_base.trim_end_matches('/'),
                invoice.id
            ),
            late: invoice.late,
            reference: invoice.reference.clone(),
            metadata: invoice.metadata.clone(),
            expires_at: invoice.expires_at,
            created_at: invoice.created_at,
            updated_at: invoice.updated_at,
            payments: payments.map(|list| list.iter().map(payment_view).collect()),
        })
    }

    pub fn public(&self, invoice: &Invoice) -> Result<PublicInvoiceView, ApiError> {
        let money = |amount| self.renderer.money(&invoice.asset, amount);
        Ok(PublicInvoiceView {
            id: invoice.id.to_string(),
            status: invoice.status.into(),
            chain: invoice.chain().to_owned(),
            asset: invoice.asset.symbol().to_owned(),
            amount: money(invoice.amount)?.value,
            amount_received: money(invoice.amount_received)?.value,
            deposit_address: invoice.deposit_address.to_checksum(None),
            payment_uri: self.payment_uri(invoice).unwrap_or_default(),
            expires_at: invoice.expires_at,
        })
    }

    fn payment_uri(&self, invoice: &Invoice) -> Option<String> {
        let chain = self.chains.chain(invoice.chain())?;
        let asset = chain.asset(invoice.asset.symbol())?;
        Some(payment_uri(
            chain,
            &asset.kind(),
            invoice.deposit_address,
            invoice.amount,
        ))
    }
}

/// The EIP-681 URI paying `amount` base units to `to`: `ethereum:<to>@<chain id>?value=<wei>`
/// for the native coin, `ethereum:<token>@<chain id>/transfer?address=<to>&uint256=<units>`
/// for an ERC-20.
pub fn payment_uri(chain: &Chain, kind: &AssetKind, to: Address, amount: Amount) -> String {
    let to = to.to_checksum(None);
    match kind {
        AssetKind::Native => format!("ethereum:{to}@{}?value={amount}", chain.chain_id),
        AssetKind::Erc20 { contract } => format!(
            "ethereum:{}@{}/transfer?address={to}&uint256={amount}",
            contract.to_checksum(None),
            chain.chain_id
        ),
    }
}

fn payment_view(payment: &InvoicePayment) -> InvoicePaymentView {
    InvoicePaymentView {
        tx_hash: payment.tx_hash.to_string(),
        log_index: payment.log_index,
        token: payment.token.to_checksum(None),
        asset: payment.asset.as_ref().map(|a| a.symbol().to_owned()),
        amount_base_units: payment.amount.to_string(),
        block_number: payment.block_number,
        status: match payment.status {
            PaymentSeen::Seen => TransferStatusView::Seen,
            PaymentSeen::Final => TransferStatusView::Final,
            PaymentSeen::Removed => TransferStatusView::Removed,
        },
        dust: payment.dust,
        late: payment.late,
    }
}

/// The origin the pay page is reached at: the request's own (`Host`, and `X-Forwarded-Proto`
/// when a front end terminated TLS); plain http only for loopback hosts.
pub fn pay_base(headers: &http::HeaderMap) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| matches!(*p, "http" | "https"));
    let loopback = host.starts_with("127.0.0.1") || host.starts_with("localhost");
    let scheme = forwarded.unwrap_or(if loopback { "http" } else { "https" });
    format!("{scheme}://{host}")
}
