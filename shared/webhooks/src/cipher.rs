//! Endpoint secrets at rest: AES-256-GCM (AWS-LC, the library rustls already uses) with one
//! service key (`MESHPAY_WEBHOOK_SECRET_KEY`, 32 bytes, base64) and the endpoint id as
//! associated data, so a sealed secret only opens for the row it was made for.
//!
//! Stored form: `0x01 ‖ nonce (12) ‖ ciphertext ‖ tag (16)`. The leading version byte leaves
//! room for key rotation (a key id) without guessing formats later. Nonces are random (96
//! bits): safe far beyond the number of endpoints this service will ever create per key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::signing::WebhookSecret;

const FORMAT_V1: u8 = 1;
pub const KEY_LEN_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("the webhook secret key must be {KEY_LEN_BYTES} bytes of standard base64")]
    InvalidKey,
    #[error("the endpoint secret could not be sealed")]
    Seal,
    /// Wrong key, another row's ciphertext, or tampering (deliberately not distinguished).
    #[error("the endpoint secret could not be opened (wrong key or corrupted)")]
    Open,
}

/// Seals and opens endpoint secrets. `Debug` prints nothing of the key.
pub struct SecretCipher {
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCipher(<key redacted>)")
    }
}

impl SecretCipher {
    pub fn new(key: &[u8]) -> Result<Self, CipherError> {
        if key.len() != KEY_LEN_BYTES {
            return Err(CipherError::InvalidKey);
        }
        let key =
            RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| CipherError::InvalidKey)?;
        Ok(SecretCipher { key })
    }

    /// From the base64 text of the configuration setting.
    pub fn from_base64(text: &str) -> Result<Self, CipherError> {
        let key = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| CipherError::InvalidKey)?,
        );
        Self::new(&key)
    }

    /// Seals `secret` for the row identified by `associated` (the endpoint id's bytes).
    pub fn seal(&self, secret: &WebhookSecret, associated: &[u8]) -> Result<Vec<u8>, CipherError> {
        let mut in_out = secret.as_bytes().to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(associated), &mut in_out)
            .map_err(|_| CipherError::Seal)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    pub fn open(&self, sealed: &[u8], associated: &[u8]) -> Result<WebhookSecret, CipherError> {
        let Some((&FORMAT_V1, rest)) = sealed.split_first() else {
            return Err(CipherError::Open);
        };
        if rest.len() < NONCE_LEN {
            return Err(CipherError::Open);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::Open)?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(associated), &mut in_out)
            .map_err(|_| CipherError::Open)?;
        WebhookSecret::from_bytes(plain).map_err(|_| CipherError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(byte: u8) -> SecretCipher {
        SecretCipher::new(&[byte; KEY_LEN_BYTES]).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_its_row() {
        let secret = WebhookSecret::generate();
        let sealed = cipher(1).seal(&secret, b"row-1").unwrap();
        assert_eq!(sealed[0], FORMAT_V1);
        assert!(!sealed.windows(8).any(|w| secret.as_bytes().starts_with(w)));
        let opened = cipher(1).open(&sealed, b"row-1").unwrap();
        assert_eq!(opened.as_bytes(), secret.as_bytes());
        assert_eq!(
            cipher(2).open(&sealed, b"row-1").unwrap_err(),
            CipherError::Open
        );
        assert_eq!(
            cipher(1).open(&sealed, b"row-2").unwrap_err(),
            CipherError::Open
        );
    }

    #[test]
    fn tampered_truncated_or_unknown_format_ciphertexts_do_not_open() {
        let c = cipher(7);
        let sealed = c.seal(&WebhookSecret::generate(), b"id").unwrap();
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let mut version = sealed.clone();
        version[0] = 2;
        for bad in [&flipped[..], &sealed[..10], &version[..], &[][..]] {
            assert_eq!(c.open(bad, b"id").unwrap_err(), CipherError::Open);
        }
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let c = cipher(3);
        let secret = WebhookSecret::generate();
        assert_ne!(
            c.seal(&secret, b"id").unwrap(),
            c.seal(&secret, b"id").unwrap()
        );
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SecretCipher::from_base64(&STANDARD.encode([9u8; 32])).is_ok());
        for bad in ["", "not base64!", &STANDARD.encode([9u8; 16])] {
            assert_eq!(
                SecretCipher::from_base64(bad).unwrap_err(),
                CipherError::InvalidKey,
                "{bad}"
            );
        }
    }
}
