//! The transaction hashes a verified webhook body points at. Everything else in the payload
//! (values, assets, addresses) is deliberately ignored: the confirm step reads the chain.
//!
//! - Alchemy Address Activity: `{"id": "whevt_…", "createdAt": "…", "type": "ADDRESS_ACTIVITY",
//!   "event": {"network": "…", "activity": [{"hash": "0x…", …}, …]}}`.
//! - Ours (Standard Webhooks): `{"type": "chain.transactions", "timestamp": "…",
//!   "data": {"tx_hashes": ["0x…", …]}}`.

use std::str::FromStr;

use alloy::primitives::B256;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What a webhook hints at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The provider's event id (Alchemy `id`), if the body has one.
    pub event_id: Option<String>,
    /// When the provider created the event (Alchemy `createdAt`).
    pub created_at: Option<OffsetDateTime>,
    /// Distinct transaction hashes, in payload order, at most the caller's limit.
    pub tx_hashes: Vec<B256>,
    /// Entries beyond the limit or without a valid hash.
    pub skipped: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not JSON")]
    NotJson,
    #[error("body is not a {0} payload")]
    Shape(&'static str),
}

fn collect(
    entries: &[Value],
    hash_of: impl Fn(&Value) -> Option<&str>,
    max: usize,
) -> (Vec<B256>, usize) {
    let mut hashes: Vec<B256> = Vec::new();
    let mut skipped = 0;
    for entry in entries {
        match hash_of(entry).and_then(|text| B256::from_str(text).ok()) {
            Some(hash) if hashes.contains(&hash) => {}
            Some(hash) if hashes.len() < max => hashes.push(hash),
            _ => skipped += 1,
        }
    }
    (hashes, skipped)
}

/// An Alchemy Address Activity body.
pub fn alchemy_hint(body: &[u8], max_hashes: usize) -> Result<Hint, PayloadError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| PayloadError::NotJson)?;
    let activity = value
        .pointer("/event/activity")
        .and_then(Value::as_array)
        .ok_or(PayloadError::Shape("Alchemy Address Activity"))?;
    let (tx_hashes, skipped) = collect(activity, |a| a.get("hash")?.as_str(), max_hashes);
    Ok(Hint {
        event_id: value
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.len() <= 255)
            .map(str::to_owned),
        created_at: value
            .get("createdAt")
            .and_then(Value::as_str)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
        tx_hashes,
        skipped,
    })
}

/// A body of our own Standard Webhooks format.
pub fn standard_hint(body: &[u8], max_hashes: usize) -> Result<Hint, PayloadError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| PayloadError::NotJson)?;
    let list = value
        .pointer("/data/tx_hashes")
        .and_then(Value::as_array)
        .ok_or(PayloadError::Shape("chain.transactions"))?;
    let (tx_hashes, skipped) = collect(list, Value::as_str, max_hashes);
    Ok(Hint {
        event_id: None,
        created_at: None,
        tx_hashes,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../tests/data/alchemy_address_activity.json");

    #[test]
    fn alchemy_example_yields_its_hash_id_and_time() {
        let hint = alchemy_hint(EXAMPLE.as_bytes(), 100).unwrap();
        assert_eq!(hint.event_id.as_deref(), Some("whevt_vq499kv7elmlbp2v"));
        assert_eq!(hint.tx_hashes.len(), 1);
        assert_eq!(
            hint.tx_hashes[0].to_string(),
            "0x7a4a39da2a3fa1fc2ef88fd1eaea070286ed2aba21e0419dcfb6d5c5d9f02a72"
        );
        assert!(hint.created_at.is_some());
        assert_eq!(hint.skipped, 0);
    }

    #[test]
    fn duplicate_invalid_and_excess_hashes_are_dropped() {
        let h1 = format!("0x{}", "11".repeat(32));
        let h2 = format!("0x{}", "22".repeat(32));
        let h3 = format!("0x{}", "33".repeat(32));
        let body = serde_json::json!({"event": {"activity": [
            {"hash": h1}, {"hash": h1}, {"hash": "0x12"}, {"value": 5}, {"hash": h2}, {"hash": h3}
        ]}});
        let hint = alchemy_hint(body.to_string().as_bytes(), 2).unwrap();
        assert_eq!(hint.tx_hashes.len(), 2);
        assert_eq!(hint.skipped, 3);
    }

    #[test]
    fn standard_body_lists_hashes_and_other_shapes_are_refused() {
        let h = format!("0x{}", "ab".repeat(32));
        let body = serde_json::json!({"type": "chain.transactions", "data": {"tx_hashes": [h]}});
        let hint = standard_hint(body.to_string().as_bytes(), 10).unwrap();
        assert_eq!(hint.tx_hashes.len(), 1);
        assert_eq!(
            standard_hint(b"[]", 10),
            Err(PayloadError::Shape("chain.transactions"))
        );
        assert_eq!(alchemy_hint(b"{", 10), Err(PayloadError::NotJson));
        assert_eq!(
            alchemy_hint(b"{\"event\":{}}", 10),
            Err(PayloadError::Shape("Alchemy Address Activity"))
        );
    }
}
