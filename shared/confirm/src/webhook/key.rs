//! The chain webhook signing key: zeroized on drop, never printed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

/// `MESHPAY_CHAIN_WEBHOOK_KEY`. Alchemy signs with the key *text* (its keys look like
/// `whsec_…`); Standard Webhooks signs with the bytes base64-encoded after `whsec_`.
#[derive(Clone)]
pub struct WebhookKey(Zeroizing<String>);

impl WebhookKey {
    pub fn new(text: String) -> Self {
        WebhookKey(Zeroizing::new(text.trim().to_owned()))
    }

    /// The HMAC key of Alchemy's signature: the key text as given.
    pub fn alchemy_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The HMAC key of a Standard Webhooks signature: base64 after the optional `whsec_`
    /// prefix. `None` when the key is not of that form (Standard signatures are then refused).
    pub fn standard_bytes(&self) -> Option<Zeroizing<Vec<u8>>> {
        let encoded = self.0.strip_prefix("whsec_").unwrap_or(&self.0);
        BASE64
            .decode(encoded)
            .ok()
            .filter(|bytes| !bytes.is_empty())
            .map(Zeroizing::new)
    }
}

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_key_is_the_base64_after_the_prefix() {
        let key = WebhookKey::new("whsec_c2VjcmV0".into());
        assert_eq!(key.standard_bytes().unwrap().as_slice(), b"secret");
        assert_eq!(key.alchemy_bytes(), b"whsec_c2VjcmV0");
        assert!(
            WebhookKey::new("not base64!".into())
                .standard_bytes()
                .is_none()
        );
        assert_eq!(format!("{key:?}"), "WebhookKey(<redacted>)");
    }
}
