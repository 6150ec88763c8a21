//! Webhook signatures: HMAC-SHA256, compared in constant time.
//!
//! - Alchemy: `X-Alchemy-Signature` = hex HMAC-SHA256 of the raw body under the signing key.
//!   No timestamp is signed in a header (the body's `createdAt` is, see the handler).
//! - Standard Webhooks v1: `webhook-signature` = space-separated `v1,<base64 HMAC-SHA256 of
//!   "{webhook-id}.{webhook-timestamp}.{body}">` (several for key rotation); the timestamp must
//!   be within the tolerance either way; `webhook-id` is the replay-dedupe key.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::WebhookKey;

type HmacSha256 = Hmac<Sha256>;

pub const ALCHEMY_SIGNATURE_HEADER: &str = "x-alchemy-signature";
pub const STANDARD_ID_HEADER: &str = "webhook-id";
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";

/// Why a webhook is not accepted as ours (every variant is a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signing key is configured")]
    NotConfigured,
    #[error("signature header missing")]
    Missing,
    #[error("signature headers malformed: {0}")]
    Malformed(&'static str),
    #[error("signature does not match")]
    Mismatch,
    #[error("timestamp is {age_secs} s away from now (tolerance {tolerance_secs} s)")]
    Stale { age_secs: i64, tolerance_secs: u64 },
}

/// HMAC-SHA256 under `key`. HMAC takes keys of any length, so this only fails for an empty key
/// configuration, reported as "not configured".
fn mac(key: &[u8]) -> Result<HmacSha256, SignatureError> {
    if key.is_empty() {
        return Err(SignatureError::NotConfigured);
    }
    HmacSha256::new_from_slice(key).map_err(|_| SignatureError::NotConfigured)
}

/// Verifies an Alchemy signature header over the raw body.
pub fn verify_alchemy(
    key: &WebhookKey,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let header = header.strip_prefix("0x").unwrap_or(header);
    let given = hex::decode(header).map_err(|_| SignatureError::Malformed("not hex"))?;
    let mut mac = mac(key.alchemy_bytes())?;
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The three Standard Webhooks headers, as received.
#[derive(Debug, Clone, Copy)]
pub struct StandardHeaders<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

/// Verifies a Standard Webhooks v1 signature at `now_unix` (seconds).
pub fn verify_standard(
    key: &WebhookKey,
    headers: &StandardHeaders<'_>,
    body: &[u8],
    now_unix: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let secret = key.standard_bytes().ok_or(SignatureError::NotConfigured)?;
    let id = headers.id;
    if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SignatureError::Malformed("webhook-id"));
    }
    let timestamp: i64 = headers
        .timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed("webhook-timestamp"))?;
    let age_secs = now_unix.saturating_sub(timestamp);
    let tolerance_secs = tolerance.as_secs();
    if age_secs.unsigned_abs() > tolerance_secs {
        return Err(SignatureError::Stale {
            age_secs,
            tolerance_secs,
        });
    }
    let mut mac = mac(&secret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let mut candidates = 0;
    for part in headers.signature.split_whitespace() {
        let Some(encoded) = part.strip_prefix("v1,") else {
            continue; // other schemes (v1a) are not ours
        };
        candidates += 1;
        let Ok(given) = BASE64.decode(encoded) else {
            continue;
        };
        if bool::from(given.as_slice().ct_eq(&expected[..])) {
            return Ok(());
        }
    }
    if candidates == 0 {
        return Err(SignatureError::Malformed("no v1 signature"));
    }
    Err(SignatureError::Mismatch)
}

/// `X-Alchemy-Signature` for `body` (tests and local tools); `None` for an empty key.
pub fn sign_alchemy(key: &WebhookKey, body: &[u8]) -> Option<String> {
    let mut mac = mac(key.alchemy_bytes()).ok()?;
    mac.update(body);
    Some(hex::encode(mac.finalize().into_bytes()))
}

/// A `webhook-signature` value (`v1,<base64>`) (tests and local tools); `None` when the key is
/// not a Standard Webhooks secret.
pub fn sign_standard(key: &WebhookKey, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let secret = key.standard_bytes()?;
    let mut mac = mac(&secret).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANCE: Duration = Duration::from_secs(300);

    fn key() -> WebhookKey {
        // base64("meshpay-test-signing-key-32-bytes")
        WebhookKey::new("whsec_bWVzaHBheS10ZXN0LXNpZ25pbmcta2V5LTMyLWJ5dGVz".into())
    }

    #[test]
    fn alchemy_signature_matches_a_known_vector() {
        // HMAC-SHA256(key = "key", "The quick brown fox jumps over the lazy dog") (RFC 4231-style
        // well-known vector).
        let key = WebhookKey::new("key".into());
        let body = b"The quick brown fox jumps over the lazy dog";
        let sig = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
        assert_eq!(sign_alchemy(&key, body).unwrap(), sig);
        assert_eq!(verify_alchemy(&key, body, Some(sig)), Ok(()));
        assert_eq!(
            verify_alchemy(&key, body, Some(&sig.to_uppercase())),
            Ok(())
        );
    }

    #[test]
    fn alchemy_signature_over_another_body_or_key_is_refused() {
        let body = br#"{"id":"whevt_1"}"#;
        let sig = sign_alchemy(&key(), body).unwrap();
        assert_eq!(
            verify_alchemy(&key(), br#"{"id":"whevt_2"}"#, Some(&sig)),
            Err(SignatureError::Mismatch)
        );
        let other = WebhookKey::new("whsec_other".into());
        assert_eq!(
            verify_alchemy(&other, body, Some(&sig)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_alchemy(&key(), body, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_alchemy(&key(), body, Some("zz")),
            Err(SignatureError::Malformed("not hex"))
        );
        assert_eq!(
            verify_alchemy(&key(), body, Some(&sig[..10])),
            Err(SignatureError::Mismatch)
        );
    }

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> StandardHeaders<'a> {
        StandardHeaders {
            id,
            timestamp: ts,
            signature: sig,
        }
    }

    #[test]
    fn standard_signature_verifies_within_tolerance_among_rotated_keys() {
        let body = br#"{"type":"chain.transactions","data":{"tx_hashes":[]}}"#;
        let now = 1_767_225_600;
        let sig = sign_standard(&key(), "msg_1", now - 10, body).unwrap();
        let ts = (now - 10).to_string();
        assert_eq!(
            verify_standard(&key(), &headers("msg_1", &ts, &sig), body, now, TOLERANCE),
            Ok(())
        );
        // Several signatures (key rotation): any v1 match is enough.
        let rotated = format!("v1a,ZZZ v1,AAAA {sig}");
        assert_eq!(
            verify_standard(
                &key(),
                &headers("msg_1", &ts, &rotated),
                body,
                now,
                TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn standard_signature_matches_the_specs_published_example() {
        // The Standard Webhooks / Svix documentation example.
        let key = WebhookKey::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let body = br#"{"test": 2432232314}"#;
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(
            sign_standard(&key, id, 1_614_265_330, body).unwrap(),
            expected
        );
        let h = headers(id, "1614265330", expected);
        assert_eq!(
            verify_standard(&key, &h, body, 1_614_265_330 + 60, TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn standard_signature_binds_id_timestamp_and_body() {
        let body = b"{}";
        let now = 1_767_225_600;
        let sig = sign_standard(&key(), "msg_1", now, body).unwrap();
        let ts = now.to_string();
        for (id, ts, body) in [
            ("msg_2", ts.clone(), &body[..]),
            ("msg_1", (now - 1).to_string(), &body[..]),
            ("msg_1", ts.clone(), &b"{ }"[..]),
        ] {
            assert_eq!(
                verify_standard(&key(), &headers(id, &ts, &sig), body, now, TOLERANCE),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn stale_or_future_timestamps_are_refused_before_the_signature() {
        let body = b"{}";
        let now = 1_767_225_600;
        for ts in [now - 301, now + 301] {
            let sig = sign_standard(&key(), "msg_1", ts, body).unwrap();
            let text = ts.to_string();
            assert!(matches!(
                verify_standard(&key(), &headers("msg_1", &text, &sig), body, now, TOLERANCE),
                Err(SignatureError::Stale { .. })
            ));
        }
    }

    #[test]
    fn malformed_standard_headers_are_refused() {
        let now = 1_767_225_600;
        let ts = now.to_string();
        assert_eq!(
            verify_standard(&key(), &headers("", &ts, "v1,AAAA"), b"", now, TOLERANCE),
            Err(SignatureError::Malformed("webhook-id"))
        );
        assert_eq!(
            verify_standard(
                &key(),
                &headers("m", "yesterday", "v1,AAAA"),
                b"",
                now,
                TOLERANCE
            ),
            Err(SignatureError::Malformed("webhook-timestamp"))
        );
        assert_eq!(
            verify_standard(&key(), &headers("m", &ts, "v2,AAAA"), b"", now, TOLERANCE),
            Err(SignatureError::Malformed("no v1 signature"))
        );
        let alchemy_style = WebhookKey::new("not base64!".into());
        assert_eq!(
            verify_standard(
                &alchemy_style,
                &headers("m", &ts, "v1,AAAA"),
                b"",
                now,
                TOLERANCE
            ),
            Err(SignatureError::NotConfigured)
        );
    }
}
