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
    /// The key's own request rate (requests per second); `None`: the process default.
    pub rate_limit_per_sec: Option<u32>,
}

/// Options of a new key beyond its scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyOptions {
    /// Requests per second for this key; `None`: the process default.
    pub rate_limit_per_sec: Option<u32>,
    /// The key stops working at this time; `None`: never.
    pub expires_at: Option<OffsetDateTime>,
}

/// What a presented key turned out to be. Callers answer 401 for all but `Valid` (and may say
/// `Expired` and `Suspended` apart: only the key's holder, who proved the secret, learns that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// Not of the issued shape: no query was made.
    Malformed,
    /// No key has this prefix (cacheable: prefixes are random and never reused).
    UnknownPrefix,
    /// Wrong secret, or revoked.
    Rejected,
    /// The right secret of a key past its `expires_at`.
    Expired,
    /// The right secret of a key whose merchant is suspended.
    Suspended,
    Valid(Principal),
}

/// A key's facts for `api-key list` (never the secret or its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyListing {
    pub id: ApiKeyId,
    pub merchant_id: MerchantId,
    pub prefix: String,
    pub scopes: Scopes,
    pub rate_limit_per_sec: Option<u32>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub replaced_by: Option<ApiKeyId>,
}

/// The outcome of [`Store::rotate_api_key`].
#[derive(Debug)]
pub struct RotatedApiKey {
    pub new_key: CreatedApiKey,
    pub old_key: ApiKeyId,
    /// When the old key stops working.
    pub old_revoked_at: OffsetDateTime,
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

/// The public prefix of a key of the issued shape (what [`Store::check_api_key`] looks up).
pub fn key_prefix(presented: &str) -> Option<&str> {
    parse_key(presented).map(|(prefix, _)| prefix)
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
/// (id, merchant_id, secret_sha256, scopes, revoked, expired, suspended, rate_limit_per_sec)
type KeyAuthRow = (
    uuid::Uuid,
    uuid::Uuid,
    Vec<u8>,
    Vec<String>,
    bool,
    bool,
    bool,
    Option<i32>,
);

/// (id, merchant_id, prefix, scopes, rate_limit_per_sec, created_at, last_used_at, expires_at,
/// revoked_at, replaced_by)
type KeyListRow = (
    uuid::Uuid,
    uuid::Uuid,
    String,
    Vec<String>,
    Option<i32>,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
    Option<uuid::Uuid>,
);

fn rate_from_db(rate: Option<i32>) -> Option<u32> {
    rate.and_then(|r| u32::try_from(r).ok())
}

fn rate_to_db(rate: Option<u32>) -> Result<Option<i32>> {
    rate.map(|r| {
        i32::try_from(r)
            .ok()
            .filter(|r| *r > 0)
            .ok_or_else(|| StoreError::Invalid(format!("rate limit {r}/s is out of range")))
    })
    .transpose()
}

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
        self.create_api_key_with(merchant_id, scopes, KeyOptions::default())
            .await
    }

    /// [`Store::create_api_key`] with a rate limit and an expiry.
    pub async fn create_api_key_with(
        &self,
        merchant_id: MerchantId,
        scopes: Scopes,
        options: KeyOptions,
    ) -> Result<CreatedApiKey> {
        let mut conn = self.pool.acquire().await?;
        create_key(&mut conn, merchant_id, scopes, options).await
    }

    /// Creates a key with the old key's merchant, scopes and rate limit (expiry from `options`)
    /// and revokes the old key `grace` from now (the database clock), in one transaction. A key
    /// already revoked cannot be rotated (`Invalid`); one in its grace can (its successor is
    /// replaced in turn).
    pub async fn rotate_api_key(
        &self,
        old: ApiKeyId,
        grace: std::time::Duration,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<RotatedApiKey> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(uuid::Uuid, Vec<String>, Option<i32>, bool)> = sqlx::query_as(
            "SELECT merchant_id, scopes, rate_limit_per_sec,
                    revoked_at IS NOT NULL AND revoked_at <= now()
             FROM api_keys WHERE id = $1 FOR UPDATE",
        )
        .bind(old.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let (merchant, scopes, rate, revoked) = row.ok_or(StoreError::NotFound)?;
        if revoked {
            return Err(StoreError::Invalid(format!(
                "API key {old} is revoked: create a new key instead"
            )));
        }
        let options = KeyOptions {
            rate_limit_per_sec: rate_from_db(rate),
            expires_at,
        };
        let merchant_id = MerchantId::from_uuid(merchant);
        let new_key = create_key(&mut tx, merchant_id, parse_scopes(&scopes)?, options).await?;
        let grace_ms = i64::try_from(grace.as_millis())
            .map_err(|_| StoreError::Invalid("grace period out of range".into()))?;
        // An earlier, shorter revocation (a grace already running) is kept.
        let (old_revoked_at,): (OffsetDateTime,) = sqlx::query_as(
            "UPDATE api_keys SET replaced_by = $2,
                 revoked_at = least(coalesce(revoked_at, 'infinity'),
                                    now() + make_interval(secs => $3::double precision / 1000))
             WHERE id = $1 RETURNING revoked_at",
        )
        .bind(old.as_uuid())
        .bind(new_key.id.as_uuid())
        .bind(grace_ms)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RotatedApiKey {
            new_key,
            old_key: old,
            old_revoked_at,
        })
    }

    /// Every key of `merchant` (all merchants' when `None`), newest first.
    pub async fn list_api_keys(&self, merchant: Option<MerchantId>) -> Result<Vec<ApiKeyListing>> {
        let rows: Vec<KeyListRow> = sqlx::query_as(
            "SELECT id, merchant_id, prefix, scopes, rate_limit_per_sec, created_at, last_used_at,
                    expires_at, revoked_at, replaced_by
             FROM api_keys WHERE $1::uuid IS NULL OR merchant_id = $1
             ORDER BY created_at DESC, id",
        )
        .bind(merchant.map(|m| m.as_uuid()))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(
                |(id, merchant, prefix, scopes, rate, created, used, expires, revoked, by)| {
                    Ok(ApiKeyListing {
                        id: ApiKeyId::from_uuid(id),
                        merchant_id: MerchantId::from_uuid(merchant),
                        prefix,
                        scopes: parse_scopes(&scopes)?,
                        rate_limit_per_sec: rate_from_db(rate),
                        created_at: created,
                        last_used_at: used,
                        expires_at: expires,
                        revoked_at: revoked,
                        replaced_by: by.map(ApiKeyId::from_uuid),
                    })
                },
            )
            .collect()
    }

    /// Records that the key was used now (callers throttle this: it is a write).
    pub async fn touch_api_key(&self, key_id: ApiKeyId) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
            .bind(key_id.as_uuid())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn create_key(
    conn: &mut sqlx::PgConnection,
    merchant_id: MerchantId,
    scopes: Scopes,
    options: KeyOptions,
) -> Result<CreatedApiKey> {
    let rate = rate_to_db(options.rate_limit_per_sec)?;
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
            "INSERT INTO api_keys (id, merchant_id, prefix, secret_sha256, scopes,
                     rate_limit_per_sec, expires_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7
                 WHERE EXISTS (SELECT 1 FROM merchants WHERE id = $2)
                 ON CONFLICT (prefix) DO NOTHING
                 RETURNING created_at",
        )
        .bind(id.as_uuid())
        .bind(merchant_id.as_uuid())
        .bind(prefix.as_str())
        .bind(&secret_hash(&secret)[..])
        .bind(scope_names(scopes))
        .bind(rate)
        .bind(options.expires_at)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((created_at,)) = row else {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM merchants WHERE id = $1)")
                    .bind(merchant_id.as_uuid())
                    .fetch_one(&mut *conn)
                    .await?;
            if !exists {
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

impl Store {
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

    /// The principal for a presented key, or `None` when the key is malformed, unknown, wrong,
    /// revoked, expired or its merchant suspended (callers answer 401 for all of them alike).
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Principal>> {
        Ok(match self.check_api_key(presented).await? {
            KeyCheck::Valid(principal) => Some(principal),
            _ => None,
        })
    }

    /// What `presented` is, in one query (none when it is malformed). Revocation and expiry
    /// are judged by the database clock: a rotated key's revocation lies in the future.
    pub async fn check_api_key(&self, presented: &str) -> Result<KeyCheck> {
        let Some((prefix, secret)) = parse_key(presented) else {
            return Ok(KeyCheck::Malformed);
        };
        let row: Option<KeyAuthRow> = sqlx::query_as(
            "SELECT k.id, k.merchant_id, k.secret_sha256, k.scopes,
                    coalesce(k.revoked_at <= now(), false), coalesce(k.expires_at <= now(), false),
                    m.suspended_at IS NOT NULL, k.rate_limit_per_sec
             FROM api_keys k JOIN merchants m ON m.id = k.merchant_id
             WHERE k.prefix = $1",
        )
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, merchant, stored_hash, scopes, revoked, expired, suspended, rate)) = row
        else {
            return Ok(KeyCheck::UnknownPrefix);
        };
        let presented_hash = secret_hash(secret);
        let matches: bool = presented_hash.ct_eq(stored_hash.as_slice()).into();
        Ok(match () {
            _ if !matches || revoked => KeyCheck::Rejected,
            _ if expired => KeyCheck::Expired,
            _ if suspended => KeyCheck::Suspended,
            _ => KeyCheck::Valid(Principal {
                merchant_id: MerchantId::from_uuid(merchant),
                key_id: ApiKeyId::from_uuid(id),
                scopes: parse_scopes(&scopes)?,
                rate_limit_per_sec: rate_from_db(rate),
            }),
        })
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
