//! API keys: `mp_live_<prefix>_<secret>`, where `prefix` is 8 random bytes (16 hex) stored in
//! clear for lookup and `secret` is 32 random bytes (64 hex) from the OS CSPRNG of which only the
//! SHA-256 is stored. A high-entropy secret needs no slow password hash; the comparison is
//! constant-time so response timing reveals nothing about the stored hash.

use std::fmt;

use meshpay_domain::{ApiKeyId, MerchantId, Scope, Scopes};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::Store;
use crate::error::{Result, StoreError};

/// Every key starts with this; secret scanners can match it.
pub const KEY_PREFIX: &str = "mp_live_";
const PREFIX_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A full API key, shown once at creation. Its `Debug` and `Display` print only the public part.
pub struct ApiKeySecret(Zeroizing<String>);

impl ApiKeySecret {
    /// The whole key, to hand to the merchant once. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let public = self.0.rsplit_once('_').map_or("", |(public, _)| public);
        write!(f, "ApiKeySecret({public}_<redacted>)")
    }
}

/// A key just created: the only time the secret exists outside the merchant's hands.
#[derive(Debug)]
pub struct CreatedApiKey {
    pub id: ApiKeyId,
    pub merchant_id: MerchantId,
    pub prefix: String,
    pub scopes: Scopes,
    pub key: ApiKeySecret,
    pub created_at: OffsetDateTime,
}

/// A key's public facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: ApiKeyId,
    pub merchant_id: MerchantId,
    pub prefix: String,
    pub scopes: Scopes,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Who is calling: the result of a successful [`Store::authenticate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub merchant_id: MerchantId,
    pub key_id: ApiKeyId,
    pub scopes: Scopes,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }
}

/// Splits a presented key into (prefix, secret) if it has the exact shape we issue.
fn parse_key(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    let hex_of =
        |s: &str, bytes: usize| s.len() == bytes * 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_of(prefix, PREFIX_BYTES) && hex_of(secret, SECRET_BYTES)).then_some((prefix, secret))
}

fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_hex(bytes: usize) -> Zeroizing<String> {
    let mut buf = Zeroizing::new(vec![0u8; bytes]);
    rand::rngs::OsRng.fill_bytes(&mut buf);
    Zeroizing::new(hex::encode(&*buf))
}

/// (merchant_id, prefix, scopes, created_at, revoked_at)
type KeyInfoRow = (
    uuid::Uuid,
    String,
    Vec<String>,
    OffsetDateTime,
    Option<OffsetDateTime>,
);
/// (id, merchant_id, secret_sha256, scopes, revoked_at)
type KeyAuthRow = (
    uuid::Uuid,
    uuid::Uuid,
    Vec<u8>,
    Vec<String>,
    Option<OffsetDateTime>,
);

fn scope_names(scopes: Scopes) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_owned()).collect()
}

fn parse_scopes(names: &[String]) -> Result<Scopes> {
    names
        .iter()
        .map(|n| {
            n.parse::<Scope>()
                .map_err(|_| crate::convert::corrupt("scope", n))
        })
        .collect()
}

impl Store {
    /// Creates a key for `merchant_id` (NotFound if no such merchant). The returned secret is
    /// not recoverable later.
    pub async fn create_api_key(
        &self,
        merchant_id: MerchantId,
        scopes: Scopes,
    ) -> Result<CreatedApiKey> {
        if scopes.is_empty() {
            return Err(StoreError::Invalid(
                "an API key needs at least one scope".into(),
            ));
        }
        // A 64-bit prefix collision is astronomically unlikely; retry a couple of times anyway
        // rather than surface a unique violation.
        for _ in 0..3 {
            let id = ApiKeyId::new();
            let prefix = random_hex(PREFIX_BYTES);
            let secret = random_hex(SECRET_BYTES);
            let row: Option<(OffsetDateTime,)> = sqlx::query_as(
                "INSERT INTO api_keys (id, merchant_id, prefix, secret_sha256, scopes)
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM merchants WHERE id = $2)
                 ON CONFLICT (prefix) DO NOTHING
                 RETURNING created_at",
            )
            .bind(id.as_uuid())
            .bind(merchant_id.as_uuid())
            .bind(prefix.as_str())
            .bind(&secret_hash(&secret)[..])
            .bind(scope_names(scopes))
            .fetch_optional(&self.pool)
            .await?;
            let Some((created_at,)) = row else {
                if self.get_merchant(merchant_id).await?.is_none() {
                    return Err(StoreError::NotFound);
                }
                continue;
            };
            let key = Zeroizing::new(format!("{KEY_PREFIX}{}_{}", *prefix, *secret));
            return Ok(CreatedApiKey {
                id,
                merchant_id,
                prefix: prefix.to_string(),
                scopes,
                key: ApiKeySecret(key),
                created_at,
            });
        }
        Err(StoreError::Corrupt(
            "could not allocate a unique API key prefix".into(),
        ))
    }

    /// Revokes a key (idempotent: revoking twice keeps the first time). NotFound if unknown.
    pub async fn revoke_api_key(&self, key_id: ApiKeyId) -> Result<ApiKeyInfo> {
        let row: Option<KeyInfoRow> = sqlx::query_as(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
                 RETURNING merchant_id, prefix, scopes, created_at, revoked_at",
        )
        .bind(key_id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        let (merchant, prefix, scopes, created_at, revoked_at) = row.ok_or(StoreError::NotFound)?;
        Ok(ApiKeyInfo {
            id: key_id,
            merchant_id: MerchantId::from_uuid(merchant),
            prefix,
            scopes: parse_scopes(&scopes)?,
            created_at,
            revoked_at,
        })
    }

    /// The principal for a presented key, or `None` when the key is malformed, unknown, wrong or
    /// revoked (callers answer 401 for all of them alike).
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Principal>> {
        let Some((prefix, secret)) = parse_key(presented) else {
            return Ok(None);
        };
        let row: Option<KeyAuthRow> = sqlx::query_as(
            "SELECT id, merchant_id, secret_sha256, scopes, revoked_at FROM api_keys
                 WHERE prefix = $1",
        )
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, merchant, stored_hash, scopes, revoked_at)) = row else {
            return Ok(None);
        };
        let presented_hash = secret_hash(secret);
        let matches: bool = presented_hash.ct_eq(stored_hash.as_slice()).into();
        if !matches || revoked_at.is_some() {
            return Ok(None);
        }
        Ok(Some(Principal {
            merchant_id: MerchantId::from_uuid(merchant),
            key_id: ApiKeyId::from_uuid(id),
            scopes: parse_scopes(&scopes)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_key_accepts_only_the_issued_shape() {
        let prefix = "0123456789abcdef";
        let secret = "ab".repeat(32);
        let key = format!("{KEY_PREFIX}{prefix}_{secret}");
        assert_eq!(parse_key(&key), Some((prefix, secret.as_str())));
        assert_eq!(parse_key(&format!("mp_test_{prefix}_{secret}")), None);
        assert_eq!(parse_key(&format!("{KEY_PREFIX}{prefix}_{secret}0")), None);
        assert_eq!(parse_key(&format!("{KEY_PREFIX}{prefix}{secret}")), None);
        assert_eq!(
            parse_key(&format!("{KEY_PREFIX}{prefix}_{}", "zz".repeat(32))),
            None
        );
        assert_eq!(parse_key(""), None);
    }

    #[test]
    fn secret_debug_output_is_redacted() {
        let key = ApiKeySecret(Zeroizing::new(format!(
            "{KEY_PREFIX}0123456789abcdef_{}",
            "ab".repeat(32)
        )));
        let debug = format!("{key:?}");
        assert!(!debug.contains("abab"), "{debug}");
        assert!(debug.contains("0123456789abcdef"), "{debug}");
    }

    #[test]
    fn random_hex_has_the_requested_entropy_and_differs_each_time() {
        let a = random_hex(SECRET_BYTES);
        let b = random_hex(SECRET_BYTES);
        assert_eq!(a.len(), 64);
        assert_ne!(*a, *b);
    }
}
