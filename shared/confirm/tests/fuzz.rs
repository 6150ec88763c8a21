//! Property tests of the chain webhook's signature checks and payload parsers on hostile
//! input: never a panic, never more hashes than asked for, and a signature holds only for the
//! exact body, id and timestamp it was made over. Bodies over the function's 256 KiB limit never
//! reach these parsers (`confirm-webhook` answers 413 first; its own test holds that).
//! `PROPTEST_CASES` sets the number of cases (`make fuzz` runs many more than `make test`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use meshpay_confirm::webhook::{
    StandardHeaders, WebhookKey, alchemy_hint, sign_alchemy, sign_standard, standard_hint,
    verify_alchemy, verify_standard,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const TOLERANCE: Duration = Duration::from_secs(300);
const NOW: i64 = 1_800_000_000;
/// base64 of 32 bytes, as `MESHPAY_CHAIN_WEBHOOK_KEY` holds it.
const KEY: &str = "whsec_bWVzaHBheS10ZXN0LXNpZ25pbmcta2V5LTMyLWJ5dGVz";

/// `PROPTEST_CASES` cases (256 unless set); a failure prints its shrunk input instead of
/// writing a regressions file into the source tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bodies: mostly short, sometimes up to 64 KiB, bytes not necessarily UTF-8.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        16 => proptest::collection::vec(any::<u8>(), 0..512),
        1 => proptest::collection::vec(any::<u8>(), 0..=65_536),
    ]
}

/// Header values as a sender might forge them.
fn any_header() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(0x)?[0-9a-fA-F]{0,70}",
        "(v1,[A-Za-z0-9+/=]{0,50} ?){0,4}",
        "[0-9 +-]{0,24}",
    ]
}

/// JSON shaped like either payload, with hashes good and bad.
fn json_payload() -> impl Strategy<Value = Value> {
    let hash = prop_oneof![
        any::<[u8; 32]>().prop_map(|b| json!(format!("0x{}", hex(&b)))),
        any::<String>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
    ];
    let hashes = proptest::collection::vec(hash, 0..80);
    prop_oneof![
        (hashes.clone(), any::<String>(), any::<String>()).prop_map(|(hashes, id, created)| {
            let activity: Vec<Value> = hashes.into_iter().map(|h| json!({"hash": h})).collect();
            json!({"id": id, "createdAt": created, "type": "ADDRESS_ACTIVITY",
                   "event": {"network": "ETH_MAINNET", "activity": activity}})
        }),
        hashes.prop_map(
            |hashes| json!({"type": "chain.transactions", "data": {"tx_hashes": hashes}})
        ),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn signature_checks_never_panic_on_forged_headers(
        body in any_body(),
        key in any::<String>(),
        alchemy in proptest::option::of(any_header()),
        id in any_header(),
        timestamp in any_header(),
        signature in any_header(),
    ) {
        for key in [WebhookKey::new(key), WebhookKey::new(KEY.to_owned())] {
            prop_assert!(verify_alchemy(&key, &body, alchemy.as_deref()).is_err() || alchemy.is_some());
            let headers = StandardHeaders { id: &id, timestamp: &timestamp, signature: &signature };
            let _ = verify_standard(&key, &headers, &body, NOW, TOLERANCE);
        }
    }

    #[test]
    fn a_signature_holds_for_its_body_only(
        body in any_body(),
        flip in any::<(usize, u8)>(),
        id in "[!-~]{1,64}",
        skew in -299i64..=299,
    ) {
        let key = WebhookKey::new(KEY.to_owned());
        let timestamp = (NOW + skew).to_string();
        let signed = sign_standard(&key, &id, NOW + skew, &body).unwrap();
        let alchemy = sign_alchemy(&key, &body).unwrap();
        let headers = StandardHeaders { id: &id, timestamp: &timestamp, signature: &signed };
        prop_assert!(verify_standard(&key, &headers, &body, NOW, TOLERANCE).is_ok());
        prop_assert!(verify_alchemy(&key, &body, Some(&alchemy)).is_ok());

        let mut tampered = body.clone();
        match tampered.len() {
            0 => tampered.push(flip.1),
            n => tampered[flip.0 % n] ^= flip.1.max(1),
        }
        prop_assert!(verify_standard(&key, &headers, &tampered, NOW, TOLERANCE).is_err());
        prop_assert!(verify_alchemy(&key, &tampered, Some(&alchemy)).is_err());
        let other_id = format!("{id}x");
        let moved = StandardHeaders { id: &other_id, ..headers };
        prop_assert!(verify_standard(&key, &moved, &body, NOW, TOLERANCE).is_err());
    }

    #[test]
    fn payload_parsers_never_panic_on_any_bytes(body in any_body(), max in 0usize..64) {
        for hint in [alchemy_hint(&body, max), standard_hint(&body, max)].into_iter().flatten() {
            prop_assert!(hint.tx_hashes.len() <= max);
        }
    }

    #[test]
    fn payload_parsers_keep_at_most_max_distinct_hashes(payload in json_payload(), max in 0usize..64) {
        let body = serde_json::to_vec(&payload).unwrap();
        for hint in [alchemy_hint(&body, max), standard_hint(&body, max)].into_iter().flatten() {
            prop_assert!(hint.tx_hashes.len() <= max);
            let mut distinct = hint.tx_hashes.clone();
            distinct.sort();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), hint.tx_hashes.len());
            prop_assert!(hint.event_id.as_ref().is_none_or(|id| !id.is_empty() && id.len() <= 255));
        }
    }
}
