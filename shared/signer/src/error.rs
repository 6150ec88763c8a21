//! Errors of the Key Vault signer.

use alloy::primitives::Address;

/// Errors thrown by [`KeyVaultSigner`](crate::KeyVaultSigner).
///
/// When it travels through alloy's `Signer`/`TxSigner` it is boxed in
/// `alloy::signers::Error::Other`; [`KeyVaultSignerError::from_alloy`] gets it back so a caller
/// can ask [`is_transient`](KeyVaultSignerError::is_transient).
#[derive(Debug, thiserror::Error)]
pub enum KeyVaultSignerError {
    /// Key Vault or the credential answered with an error that retrying will not fix
    /// (403, 404 `KeyNotFound`, 400, a rejected token, ...).
    #[error("Key Vault {operation} failed")]
    Request {
        /// `get_key` or `sign`.
        operation: &'static str,
        /// The SDK error (status, service error code, message).
        #[source]
        source: azure_core::Error,
    },
    /// One attempt took longer than `attempt_timeout_ms`.
    #[error("Key Vault {operation} timed out after {timeout_ms} ms")]
    Timeout {
        /// `get_key` or `sign`.
        operation: &'static str,
        /// The per-attempt limit that was hit.
        timeout_ms: u64,
    },
    /// Throttling (429), 5xx, I/O errors or timeouts persisted through every allowed attempt.
    #[error("Key Vault {operation} still failing after {attempts} attempts")]
    RetriesExhausted {
        /// `get_key` or `sign`.
        operation: &'static str,
        /// Attempts made, the first included.
        attempts: u32,
        /// The error of the last attempt.
        #[source]
        last: Box<KeyVaultSignerError>,
    },
    /// The service asked (`Retry-After`) for a longer pause than the retry budget allows; the
    /// caller should retry later (for a queue message: let it be redelivered).
    #[error(
        "Key Vault {operation} asked to retry after {retry_after_ms} ms (budget {max_backoff_ms} ms)"
    )]
    RetryAfterTooLong {
        /// `get_key` or `sign`.
        operation: &'static str,
        /// What the service asked for.
        retry_after_ms: u64,
        /// `max_backoff_ms` of the retry configuration.
        max_backoff_ms: u64,
    },
    /// The credential could not be created.
    #[error("could not create the Azure credential")]
    Credential(#[source] azure_core::Error),
    /// The `KeyClient` could not be created (bad vault URL).
    #[error("could not create the Key Vault client")]
    Client(#[source] azure_core::Error),
    /// The get-key response carried no JWK.
    #[error("Key Vault returned no key material")]
    MissingKey,
    /// The key is not a secp256k1 EC key.
    #[error(
        "key {kty}/{crv} cannot sign Ethereum transactions: need kty EC or EC-HSM with crv P-256K"
    )]
    UnsupportedKey {
        /// The JWK `kty`.
        kty: String,
        /// The JWK `crv`.
        crv: String,
    },
    /// The key's `key_ops` do not include `sign`.
    #[error("key operations {key_ops:?} do not include sign")]
    SignNotPermitted {
        /// The JWK `key_ops`.
        key_ops: Vec<String>,
    },
    /// The key is disabled (`attributes.enabled == false`).
    #[error("the key is disabled")]
    KeyDisabled,
    /// The JWK lacks `x` or `y`.
    #[error("JWK has no {0} coordinate")]
    MissingCoordinate(&'static str),
    /// A JWK coordinate is longer than a secp256k1 field element.
    #[error("JWK {coordinate} coordinate is {len} bytes, expected 32")]
    CoordinateLength {
        /// `x` or `y`.
        coordinate: &'static str,
        /// Its decoded length.
        len: usize,
    },
    /// `x`/`y` do not name a point on secp256k1.
    #[error("JWK x/y is not a point on secp256k1")]
    InvalidPublicKey,
    /// The key id (`kid`) is missing or not a Key Vault key URL with a version.
    #[error("Key Vault returned an unusable key id {kid:?}")]
    InvalidKeyId {
        /// The `kid` as returned.
        kid: Option<String>,
    },
    /// The sign response carried no signature.
    #[error("Key Vault returned no signature")]
    MissingSignature,
    /// ES256K signatures are raw r‖s, 64 bytes (IEEE P1363), never DER.
    #[error("Key Vault signature is {len} bytes; ES256K gives 64 (raw r||s)")]
    SignatureLength {
        /// The decoded length received.
        len: usize,
    },
    /// r or s is zero or not below the curve order.
    #[error("Key Vault signature has r or s out of range")]
    InvalidSignature,
    /// Neither y-parity recovers the wallet's public key: the signature is not from this key
    /// (wrong key version, corrupted response). Never sent to a chain.
    #[error("signature does not recover to the wallet address {address}")]
    DoesNotRecover {
        /// The wallet address the signature had to recover to.
        address: Address,
    },
}

impl KeyVaultSignerError {
    /// Whether a later retry may succeed (throttling, 5xx, timeouts), as opposed to a
    /// configuration or key problem that needs a human.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::RetriesExhausted { .. } | Self::RetryAfterTooLong { .. }
        )
    }

    /// Finds this error inside an `alloy::signers::Error` returned by `sign_hash` or
    /// `sign_transaction`.
    pub fn from_alloy(error: &alloy::signers::Error) -> Option<&Self> {
        match error {
            alloy::signers::Error::Other(inner) => inner.downcast_ref::<Self>(),
            _ => None,
        }
    }
}
