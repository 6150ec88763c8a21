//! Request bodies and list filters, as the API reads them (`deny_unknown_fields` there: only
//! the fields it knows are sent).

use serde::Serialize;
use serde_json::{Map, Value};

/// `POST /quotes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateQuote {
    pub chain: String,
    pub asset: String,
    /// Decimal string in the asset's units ("25.00").
    pub amount: String,
    pub recipient: String,
}

impl CreateQuote {
    pub fn new(
        chain: impl Into<String>,
        asset: impl Into<String>,
        amount: impl Into<String>,
        recipient: impl Into<String>,
    ) -> Self {
        CreateQuote {
            chain: chain.into(),
            asset: asset.into(),
            amount: amount.into(),
            recipient: recipient.into(),
        }
    }
}

/// `POST /payments` (with an `Idempotency-Key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizePayment {
    pub quote_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl From<&str> for AuthorizePayment {
    /// Pays the quote with no reference or metadata.
    fn from(quote_id: &str) -> Self {
        AuthorizePayment {
            quote_id: quote_id.to_owned(),
            reference: None,
            metadata: None,
        }
    }
}

/// `GET /payments` filters; `None` leaves the API's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListPayments {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
