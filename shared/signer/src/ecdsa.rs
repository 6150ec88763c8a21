//! From Key Vault's ES256K key and signature formats to Ethereum's.
//!
//! Key Vault hands out the public key as a JWK (`x`, `y`: 32-byte base64url coordinates) and
//! signs a 32-byte digest into raw r‖s (IEEE P1363, 64 bytes, not DER). It does not normalize
//! s and returns no recovery id, so both are derived here.

use crate::KeyVaultSignerError;
use alloy::primitives::{Address, B256, Signature};
use alloy::signers::k256::{
    EncodedPoint, FieldBytes,
    ecdsa::{self, RecoveryId, VerifyingKey},
};
use azure_security_keyvault_keys::models::{CurveName, JsonWebKey, KeyType};

/// Length of an ES256K signature from Key Vault: r‖s, 32 bytes each.
pub const P1363_SIGNATURE_LEN: usize = 64;
const COORDINATE_LEN: usize = 32;

/// The secp256k1 public key of a Key Vault JWK, checked to be an EC / EC-HSM key on P-256K
/// that may sign.
pub fn public_key_from_jwk(jwk: &JsonWebKey) -> Result<VerifyingKey, KeyVaultSignerError> {
    let kty_ok = matches!(jwk.kty, Some(KeyType::Ec | KeyType::EcHsm));
    let crv_ok = matches!(jwk.crv, Some(CurveName::P256K));
    if !(kty_ok && crv_ok) {
        return Err(KeyVaultSignerError::UnsupportedKey {
            kty: jwk
                .kty
                .as_ref()
                .map_or_else(|| "none".into(), ToString::to_string),
            crv: jwk
                .crv
                .as_ref()
                .map_or_else(|| "none".into(), ToString::to_string),
        });
    }
    if let Some(key_ops) = &jwk.key_ops
        && !key_ops.iter().any(|op| op == "sign")
    {
        return Err(KeyVaultSignerError::SignNotPermitted {
            key_ops: key_ops.clone(),
        });
    }
    let x = jwk
        .x
        .as_deref()
        .ok_or(KeyVaultSignerError::MissingCoordinate("x"))?;
    let y = jwk
        .y
        .as_deref()
        .ok_or(KeyVaultSignerError::MissingCoordinate("y"))?;
    public_key_from_coordinates(x, y)
}

/// A secp256k1 public key from affine coordinates; rejects points not on the curve.
pub fn public_key_from_coordinates(
    x: &[u8],
    y: &[u8],
) -> Result<VerifyingKey, KeyVaultSignerError> {
    let x = field_bytes(x, "x")?;
    let y = field_bytes(y, "y")?;
    let point = EncodedPoint::from_affine_coordinates(&x, &y, false);
    VerifyingKey::from_encoded_point(&point).map_err(|_| KeyVaultSignerError::InvalidPublicKey)
}

/// The Ethereum address of a public key: the last 20 bytes of keccak256(x‖y).
pub fn address_of(public_key: &VerifyingKey) -> Address {
    alloy::signers::utils::public_key_to_address(public_key)
}

/// Turns Key Vault's raw r‖s over `digest` into an Ethereum signature: s moved to the low half
/// (EIP-2; flipping s flips the y-parity, so parity is found afterwards) and the y-parity found
/// by recovering against `public_key`. Errors instead of returning a signature that does not
/// recover to `public_key`.
pub fn ethereum_signature(
    raw: &[u8],
    digest: &B256,
    public_key: &VerifyingKey,
) -> Result<Signature, KeyVaultSignerError> {
    if raw.len() != P1363_SIGNATURE_LEN {
        return Err(KeyVaultSignerError::SignatureLength { len: raw.len() });
    }
    // from_slice rejects r or s equal to zero or not below the curve order.
    let signature =
        ecdsa::Signature::from_slice(raw).map_err(|_| KeyVaultSignerError::InvalidSignature)?;
    let low_s = signature.normalize_s().unwrap_or(signature);
    for y_parity in [false, true] {
        if recovers_to(&low_s, y_parity, digest, public_key) {
            return Ok(Signature::from_signature_and_parity(low_s, y_parity));
        }
    }
    Err(KeyVaultSignerError::DoesNotRecover {
        address: address_of(public_key),
    })
}

/// Trial recovery: does (`signature`, `y_parity`) over `digest` recover `public_key`?
fn recovers_to(
    signature: &ecdsa::Signature,
    y_parity: bool,
    digest: &B256,
    public_key: &VerifyingKey,
) -> bool {
    // Only the y-parity bit is tried: an x-reduced recovery id (r ≥ n - p) has probability
    // ~2^-128 and cannot be expressed in an Ethereum transaction anyway.
    let recovery_id = RecoveryId::new(y_parity, false);
    VerifyingKey::recover_from_prehash(digest.as_slice(), signature, recovery_id)
        .is_ok_and(|recovered| recovered == *public_key)
}

/// A JWK coordinate as a 32-byte field element. Shorter input is left-padded (some encoders
/// strip leading zero bytes although RFC 7518 asks for the full length).
fn field_bytes(bytes: &[u8], coordinate: &'static str) -> Result<FieldBytes, KeyVaultSignerError> {
    if bytes.len() > COORDINATE_LEN {
        return Err(KeyVaultSignerError::CoordinateLength {
            coordinate,
            len: bytes.len(),
        });
    }
    let mut padded = [0u8; COORDINATE_LEN];
    padded[COORDINATE_LEN - bytes.len()..].copy_from_slice(bytes);
    Ok(FieldBytes::from(padded))
}

#[cfg(test)]
mod tests;
