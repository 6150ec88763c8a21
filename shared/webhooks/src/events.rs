//! Event types and the JSON body merchants receive:
//! `{"type": "payment.settled", "timestamp": "<RFC 3339>", "data": {"object": "payment", ...}}`.
//!
//! Thin payloads (Standard Webhooks' advice, and well under its 20 kB): identifiers, status,
//! amount and chain facts; no merchant metadata (fetch `GET /api/payments/{id}` for the whole
//! object). `status` and `version` are the event's own, so a late or retried event never
//! claims a newer state than the change it announces; consumers order by `version`.
//! The body is rendered once, at fan-out, and every attempt sends the same bytes.

use meshpay_chain::ChainsConfig;
use meshpay_store::Payment;
use meshpay_store::webhooks::{PendingWebhookEvent, RenderedEvent};
use serde::Serialize;
use time::OffsetDateTime;

/// Every event type a merchant can subscribe to.
pub const EVENT_TYPES: [&str; 15] = [
    "payment.authorized",
    "payment.broadcast",
    "payment.stalled",
    "payment.cancelling",
    "payment.confirmed",
    "payment.settled",
    "payment.failed",
    "payment.cancelled",
    "invoice.pending",
    "invoice.paid",
    "invoice.underpaid",
    "invoice.overpaid",
    "invoice.expired",
    "invoice.paid_late",
    "invoice.cancelled",
];

/// Largest body we send (the spec recommends staying under 20 kB).
pub const MAX_BODY_BYTES: usize = 20 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    #[error("list at least one event type, or leave `events` out to receive every type")]
    Empty,
    #[error("unknown event type {0:?}; known: {known}", known = EVENT_TYPES.join(", "))]
    Unknown(String),
}

/// Validates a subscription list: known types, deduplicated, in [`EVENT_TYPES`] order.
pub fn validate_event_types(types: &[String]) -> Result<Vec<String>, EventTypeError> {
    if types.is_empty() {
        return Err(EventTypeError::Empty);
    }
    if let Some(unknown) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        return Err(EventTypeError::Unknown(unknown.clone()));
    }
    Ok(EVENT_TYPES
        .iter()
        .filter(|known| types.iter().any(|t| t == *known))
        .map(|t| (*t).to_owned())
        .collect())
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    data: PaymentData<'a>,
}

#[derive(Serialize)]
struct Money {
    /// In the asset's units; absent when the asset is no longer configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    base_units: String,
}

#[derive(Serialize)]
struct PaymentData<'a> {
    object: &'static str,
    id: String,
    status: &'a str,
    version: i64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    details: Option<PaymentDetails<'a>>,
}

#[derive(Serialize)]
struct PaymentDetails<'a> {
    chain: &'a str,
    asset: &'a str,
    amount: Money,
    recipient: String,
    reference: Option<&'a str>,
    tx_hash: Option<String>,
    block_number: Option<u64>,
    failure_reason: Option<&'a str>,
    /// Why the payment is stalled (a `payment.stalled` event only).
    #[serde(skip_serializing_if = "Option::is_none")]
    status_reason: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

fn details<'a>(payment: &'a Payment, status: &str, chains: &ChainsConfig) -> PaymentDetails<'a> {
    let asset = &payment.charges.asset;
    let amount = payment.charges.amount;
    let value = chains
        .chain(asset.chain())
        .and_then(|c| c.asset(asset.symbol()))
        .map(|a| a.format_amount(amount));
    PaymentDetails {
        chain: asset.chain(),
        asset: asset.symbol(),
        amount: Money {
            value,
            base_units: amount.to_string(),
        },
        recipient: payment.recipient.to_checksum(None),
        reference: payment.reference.as_deref(),
        tx_hash: payment.tx_hash.map(|h| h.to_string()),
        block_number: payment.block_number,
        // Only a failure event explains a failure; earlier events rendered late must not.
        failure_reason: (status == "failed")
            .then_some(payment.failure_reason.as_deref())
            .flatten(),
        status_reason: (status == "stalled")
            .then_some(payment.status_reason.as_deref())
            .flatten(),
        created_at: payment.created_at,
    }
}

/// Renders an outbox `webhook` row (`{type, payment_id, status, version}`) with its payment.
/// `None` for a row that is not a payment event we can describe.
pub fn render(
    event: &PendingWebhookEvent,
    payment: Option<&Payment>,
    chains: &ChainsConfig,
) -> Option<RenderedEvent> {
    let kind = event.payload.get("type")?.as_str()?;
    if kind.starts_with("invoice.") {
        return render_invoice(event, kind);
    }
    let status = event.payload.get("status")?.as_str()?;
    let version = event.payload.get("version")?.as_i64()?;
    if kind != format!("payment.{status}") {
        return None;
    }
    let payment = payment?;
    let data = |details| PaymentData {
        object: "payment",
        id: payment.id.to_string(),
        status,
        version,
        details,
    };
    let body = |data| {
        serde_json::to_string(&Body {
            kind,
            timestamp: event.created_at,
            data,
        })
        .ok()
    };
    let mut text = body(data(Some(details(payment, status, chains))))?;
    if text.len() > MAX_BODY_BYTES {
        // Cannot happen with today's fields (references are ≤ 255 bytes); stay within the
        // limit anyway rather than send a body consumers may refuse.
        text = body(data(None))?;
    }
    Some(RenderedEvent {
        event_type: kind.to_owned(),
        body: text,
    })
}

/// An invoice event: the outbox row carries its thin `data` already (written with the change
/// it announces, so it never claims a newer state).
fn render_invoice(event: &PendingWebhookEvent, kind: &str) -> Option<RenderedEvent> {
    let data = event.payload.get("data")?.as_object()?;
    if !EVENT_TYPES.contains(&kind) {
        return None;
    }
    let body = serde_json::json!({
        "type": kind,
        "timestamp": event.created_at.format(&time::format_description::well_known::Rfc3339).ok()?,
        "data": data,
    });
    let text = serde_json::to_string(&body).ok()?;
    (text.len() <= MAX_BODY_BYTES).then(|| RenderedEvent {
        event_type: kind.to_owned(),
        body: text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_event_is_sent_with_the_data_written_with_its_change() {
        let chains = ChainsConfig::from_toml_str(include_str!("../../../chains.dev.toml")).unwrap();
        let event = |kind: &str| PendingWebhookEvent {
            outbox_id: 1,
            merchant_id: None,
            payment_id: None,
            payload: serde_json::json!({
                "type": kind, "status": "paid", "version": 3,
                "data": {"object": "invoice", "id": "inv_1", "status": "paid"},
            }),
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let rendered = render(&event("invoice.paid"), None, &chains).unwrap();
        assert_eq!(rendered.event_type, "invoice.paid");
        let body: serde_json::Value = serde_json::from_str(&rendered.body).unwrap();
        assert_eq!(body["data"]["object"], "invoice");
        assert_eq!(body["timestamp"], "1970-01-01T00:00:00Z");
        assert!(render(&event("invoice.refunded"), None, &chains).is_none());
    }

    #[test]
    fn event_type_lists_are_validated_deduplicated_and_ordered() {
        let list = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            validate_event_types(&list(&[
                "payment.settled",
                "payment.authorized",
                "payment.settled"
            ]))
            .unwrap(),
            list(&["payment.authorized", "payment.settled"])
        );
        assert_eq!(validate_event_types(&[]), Err(EventTypeError::Empty));
        assert_eq!(
            validate_event_types(&list(&["payment.refunded"])),
            Err(EventTypeError::Unknown("payment.refunded".into()))
        );
    }
}
