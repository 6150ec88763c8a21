//! Standard Webhooks v1 symmetric signatures (spec v1.0.0):
//! `webhook-signature: v1,<base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))>` with the
//! secret shown to merchants as `whsec_<base64>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Prefix of the merchant-facing form of a secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Length of generated secrets (the spec allows 24 to 64 bytes).
pub const SECRET_LEN_BYTES: usize = 32;
const MIN_SECRET_LEN_BYTES: usize = 24;
const MAX_SECRET_LEN_BYTES: usize = 64;

/// Header names (lower case, as the spec writes them).
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret is `whsec_` followed by base64")]
    Encoding,
    #[error("a webhook secret must be 24 to 64 bytes, got {0}")]
    Length(usize),
}

/// An endpoint's signing secret. Zeroed on drop; `Debug` prints no byte of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// A fresh random secret ([`SECRET_LEN_BYTES`] from the OS generator).
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_LEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        WebhookSecret(bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if !(MIN_SECRET_LEN_BYTES..=MAX_SECRET_LEN_BYTES).contains(&bytes.len()) {
            return Err(SecretError::Length(bytes.len()));
        }
        Ok(WebhookSecret(bytes.to_vec()))
    }

    /// Parses `whsec_<base64>` (the prefix is optional, as the reference libraries accept).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let b64 = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let bytes = Zeroizing::new(STANDARD.decode(b64).map_err(|_| SecretError::Encoding)?);
        Self::from_bytes(&bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The merchant-facing form, `whsec_<base64>`: show it once, never log it.
    pub fn expose(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0)))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// `v1,<base64 signature>` of `{msg_id}.{timestamp}.{body}`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Whether a `webhook-signature` header value (space-separated `version,signature` list)
    /// holds a valid `v1` signature; constant-time per candidate. Timestamp tolerance is the
    /// caller's check.
    pub fn verify(&self, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let expected: [u8; 32] = self
            .mac(msg_id, timestamp, body)
            .finalize()
            .into_bytes()
            .into();
        header.split(' ').any(|candidate| {
            let Some(("v1", b64)) = candidate.split_once(',') else {
                return false;
            };
            STANDARD
                .decode(b64)
                .is_ok_and(|sig| bool::from(sig.as_slice().ct_eq(&expected[..])))
        })
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference test vector (libraries/python/tests/test_webhooks.py,
    // `test_sign_function`; the same values in the JavaScript and Go suites).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signature_matches_the_standard_webhooks_test_vector() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(
            secret.sign(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes()),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn secret_parses_with_or_without_the_whsec_prefix_and_prints_it_back() {
        let with = WebhookSecret::parse(SPEC_SECRET).unwrap();
        let without = WebhookSecret::parse(&SPEC_SECRET[6..]).unwrap();
        assert_eq!(with.as_bytes(), without.as_bytes());
        assert_eq!(with.as_bytes().len(), 24);
        assert_eq!(with.expose().as_str(), SPEC_SECRET);
    }

    #[test]
    fn verification_accepts_the_valid_signature_among_several_and_nothing_else() {
        let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
        let body = SPEC_BODY.as_bytes();
        let list =
            format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,abc {SPEC_SIGNATURE}");
        assert!(secret.verify(SPEC_MSG_ID, SPEC_TIMESTAMP, body, &list));
        // The vector's own "invalid signature" case: last character changed.
        let wrong = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert!(!secret.verify(SPEC_MSG_ID, SPEC_TIMESTAMP, body, wrong));
        assert!(!secret.verify(SPEC_MSG_ID, SPEC_TIMESTAMP + 1, body, SPEC_SIGNATURE));
        assert!(!secret.verify("msg_other", SPEC_TIMESTAMP, body, SPEC_SIGNATURE));
        assert!(!secret.verify(SPEC_MSG_ID, SPEC_TIMESTAMP, b"{}", SPEC_SIGNATURE));
        let v2 = SPEC_SIGNATURE.replacen("v1,", "v2,", 1);
        assert!(!secret.verify(SPEC_MSG_ID, SPEC_TIMESTAMP, body, &v2));
    }

    #[test]
    fn generated_secrets_are_32_random_bytes_and_never_printed_by_debug() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_eq!(a.as_bytes().len(), SECRET_LEN_BYTES);
        assert_ne!(a.as_bytes(), b.as_bytes());
        let exposed = a.expose();
        assert!(exposed.starts_with("whsec_"));
        let debug = format!("{a:?}");
        assert!(!debug.contains(&exposed[6..]), "{debug}");
    }

    #[test]
    fn secrets_outside_24_to_64_bytes_or_not_base64_are_refused() {
        assert_eq!(
            WebhookSecret::from_bytes(&[0; 23]).unwrap_err(),
            SecretError::Length(23)
        );
        assert_eq!(
            WebhookSecret::from_bytes(&[0; 65]).unwrap_err(),
            SecretError::Length(65)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_***").unwrap_err(),
            SecretError::Encoding
        );
    }
}
