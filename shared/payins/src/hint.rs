//! Address-activity hints: a chain webhook (Alchemy `ADDRESS_ACTIVITY`) naming a watched deposit
//! address asks for a detection run of that chain soon, through the `payins-detect` queue. The
//! payload is never trusted: it only picks the chain, and the run re-reads the chain as the
//! timer's does. Requests are coalesced per chain in the store (a flood of hints is one run, plus
//! one more for hints that arrive while it goes), and a message a completed run already covers
//! is acknowledged without a run: redeliveries and duplicates cost one database read.

use std::str::FromStr as _;

use meshpay_domain::{Address, Version};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// The queue of detection requests (function `invoices-hint`).
pub const DETECT_QUEUE: &str = "payins-detect";

/// `{"v":1,"chain":"anvil","requested_at":"…"}`: run detection on `chain` unless a run that
/// started at or after `requested_at` (the database's clock) has completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectMessage {
    pub v: Version<1>,
    pub chain: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

impl DetectMessage {
    pub fn new(chain: impl Into<String>, requested_at: OffsetDateTime) -> Self {
        DetectMessage {
            v: Version,
            chain: chain.into(),
            requested_at,
        }
    }
}

/// The distinct addresses an Alchemy Address Activity body names as senders or receivers
/// (`event.activity[].toAddress` / `fromAddress`), at most `max` of them; anything else in
/// the body is ignored. Only the shape is read here: the signature was checked by the caller.
pub fn alchemy_addresses(body: &[u8], max: usize) -> Vec<Address> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    if value.get("type").and_then(Value::as_str) != Some("ADDRESS_ACTIVITY") {
        return Vec::new();
    }
    let Some(activity) = value.pointer("/event/activity").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut addresses = Vec::new();
    for entry in activity {
        for field in ["toAddress", "fromAddress"] {
            let parsed = entry
                .get(field)
                .and_then(Value::as_str)
                .and_then(|a| Address::from_str(a).ok());
            if let Some(address) = parsed.filter(|a| !addresses.contains(a)) {
                if addresses.len() == max {
                    return addresses;
                }
                addresses.push(address);
            }
        }
    }
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_activity_names_its_distinct_addresses_up_to_the_limit() {
        let body = br#"{"id":"whevt_1","type":"ADDRESS_ACTIVITY","event":{"network":"ETH_MAINNET","activity":[
            {"fromAddress":"0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc","toAddress":"0x1111111111111111111111111111111111111111","hash":"0x01"},
            {"fromAddress":"0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc","toAddress":"not an address"},
            {"toAddress":"0x2222222222222222222222222222222222222222"}]}}"#;
        let all = alchemy_addresses(body, 10);
        assert_eq!(all.len(), 3);
        assert_eq!(
            all[0],
            Address::from_str("0x1111111111111111111111111111111111111111").unwrap()
        );
        assert_eq!(alchemy_addresses(body, 2).len(), 2);
    }

    #[test]
    fn other_event_types_and_shapes_name_no_address() {
        let mined = br#"{"type":"MINED_TRANSACTION","event":{"activity":[{"toAddress":"0x1111111111111111111111111111111111111111"}]}}"#;
        assert!(alchemy_addresses(mined, 10).is_empty());
        assert!(alchemy_addresses(b"not json", 10).is_empty());
        assert!(alchemy_addresses(br#"{"type":"ADDRESS_ACTIVITY"}"#, 10).is_empty());
    }

    #[test]
    fn detect_message_round_trips_and_refuses_unknown_fields() {
        let message = DetectMessage::new("anvil", OffsetDateTime::UNIX_EPOCH);
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(
            serde_json::from_value::<DetectMessage>(json.clone()).unwrap(),
            message
        );
        let mut extra = json;
        extra["x"] = 1.into();
        assert!(serde_json::from_value::<DetectMessage>(extra).is_err());
    }
}
