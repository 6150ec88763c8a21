//! `Authorization: Bearer <key>` → the calling merchant, with the scope the handler needs
//! checked by type: a handler taking `Auth<PaymentsWrite>` cannot run without that scope.
//! Key verification (hash lookup, constant-time compare, revocation, expiry) is the store's;
//! [`AuthGuard`] sits in front of it: a negative cache of unknown key prefixes (a flood of
//! made-up keys costs no query after the first of each), the per-key and per-merchant rate
//! limits, and the throttled `last_used_at` write.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use meshpay_domain::{ApiKeyId, MerchantId, Scope};
use meshpay_store::{KeyCheck, Principal, Store, StoreError};

use crate::error::ApiError;
use crate::rate_limit::{RateLimitConfig, RateLimiter, retry_after_secs};
use crate::state::AppState;
use crate::store_error::from_store;

/// How long an unknown prefix is answered from memory. Prefixes are random and never reused,
/// so the only cost of a long time is memory; bounded by [`UNKNOWN_PREFIXES_MAX`].
const UNKNOWN_PREFIX_TTL: Duration = Duration::from_secs(600);
const UNKNOWN_PREFIXES_MAX: usize = 100_000;
/// `last_used_at` is written at most this often per key and instance.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A scope a handler requires, as a type.
pub trait RequiredScope: Send + Sync + 'static {
    const SCOPE: Scope;
}

/// `quotes:write`: create and read quotes.
pub struct QuotesWrite;
/// `payments:write`: authorize and cancel payments.
pub struct PaymentsWrite;
/// `payments:read`: read payments and balances.
pub struct PaymentsRead;

/// `invoices:write`: create and cancel invoices.
pub struct InvoicesWrite;
/// `invoices:read`: read invoices.
pub struct InvoicesRead;

impl RequiredScope for InvoicesWrite {
    const SCOPE: Scope = Scope::InvoicesWrite;
}
impl RequiredScope for InvoicesRead {
    const SCOPE: Scope = Scope::InvoicesRead;
}
impl RequiredScope for QuotesWrite {
    const SCOPE: Scope = Scope::QuotesWrite;
}
impl RequiredScope for PaymentsWrite {
    const SCOPE: Scope = Scope::PaymentsWrite;
}
impl RequiredScope for PaymentsRead {
    const SCOPE: Scope = Scope::PaymentsRead;
}

/// An authenticated caller holding scope `S`.
pub struct Auth<S> {
    pub principal: Principal,
    _scope: PhantomData<S>,
}

impl<S> Auth<S> {
    pub fn merchant_id(&self) -> MerchantId {
        self.principal.merchant_id
    }
}

/// The key from an `Authorization` header value: scheme `Bearer` (any case), one space-separated
/// token. Anything else is treated as no key.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// Where keys are checked: the store, or a double in tests.
pub trait KeyDirectory: Send + Sync {
    fn check_api_key(
        &self,
        presented: &str,
    ) -> impl std::future::Future<Output = Result<KeyCheck, StoreError>> + Send;
    fn touch_api_key(
        &self,
        key: ApiKeyId,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

impl KeyDirectory for Store {
    async fn check_api_key(&self, presented: &str) -> Result<KeyCheck, StoreError> {
        Store::check_api_key(self, presented).await
    }
    async fn touch_api_key(&self, key: ApiKeyId) -> Result<(), StoreError> {
        Store::touch_api_key(self, key).await
    }
}

/// Why a request was not let through.
#[derive(Debug)]
pub enum Refusal {
    /// No key, a wrong one, or a revoked one (401 `unauthorized`).
    Unauthorized,
    Expired,
    Suspended,
    /// Over a rate limit: retry after this long.
    RateLimited(Duration),
    Store(StoreError),
}

/// Per-process state in front of key checks (see the module docs).
#[derive(Debug)]
pub struct AuthGuard {
    limiter: RateLimiter,
    unknown_prefixes: Mutex<HashMap<String, Instant>>,
    touched: Mutex<HashMap<ApiKeyId, Instant>>,
}

impl AuthGuard {
    pub fn new(limits: RateLimitConfig) -> Self {
        Self {
            limiter: RateLimiter::new(limits),
            unknown_prefixes: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of `token`, within its rate limits.
    pub async fn admit(
        &self,
        directory: &impl KeyDirectory,
        token: &str,
    ) -> Result<Principal, Refusal> {
        let principal = self.authenticate(directory, token).await?;
        self.limiter
            .acquire(
                principal.key_id,
                principal.rate_limit_per_sec,
                principal.merchant_id,
                Instant::now(),
            )
            .map_err(Refusal::RateLimited)?;
        Ok(principal)
    }

    async fn authenticate(
        &self,
        directory: &impl KeyDirectory,
        token: &str,
    ) -> Result<Principal, Refusal> {
        let Some(prefix) = meshpay_store::api_keys::key_prefix(token) else {
            return Err(Refusal::Unauthorized);
        };
        let now = Instant::now();
        if self.known_unknown(prefix, now) {
            return Err(Refusal::Unauthorized);
        }
        match directory
            .check_api_key(token)
            .await
            .map_err(Refusal::Store)?
        {
            KeyCheck::Valid(principal) => {
                if self.due_for_touch(principal.key_id, now) {
                    // Bookkeeping only: a failed write must not fail the request.
                    if let Err(error) = directory.touch_api_key(principal.key_id).await {
                        tracing::warn!(%error, "could not record the API key's last use");
                    }
                }
                Ok(principal)
            }
            KeyCheck::UnknownPrefix => {
                self.remember_unknown(prefix, now);
                Err(Refusal::Unauthorized)
            }
            KeyCheck::Malformed | KeyCheck::Rejected => Err(Refusal::Unauthorized),
            KeyCheck::Expired => Err(Refusal::Expired),
            KeyCheck::Suspended => Err(Refusal::Suspended),
        }
    }

    fn known_unknown(&self, prefix: &str, now: Instant) -> bool {
        let cache = self
            .unknown_prefixes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(prefix)
            .is_some_and(|at| now.saturating_duration_since(*at) < UNKNOWN_PREFIX_TTL)
    }

    fn remember_unknown(&self, prefix: &str, now: Instant) {
        let mut cache = self
            .unknown_prefixes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= UNKNOWN_PREFIXES_MAX {
            cache.retain(|_, at| now.saturating_duration_since(*at) < UNKNOWN_PREFIX_TTL);
            if cache.len() >= UNKNOWN_PREFIXES_MAX {
                cache.clear();
            }
        }
        cache.insert(prefix.to_owned(), now);
    }

    fn due_for_touch(&self, key: ApiKeyId, now: Instant) -> bool {
        let mut touched = self
            .touched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if touched.len() >= UNKNOWN_PREFIXES_MAX {
            touched.clear();
        }
        match touched.get(&key) {
            Some(at) if now.saturating_duration_since(*at) < TOUCH_EVERY => false,
            _ => {
                touched.insert(key, now);
                true
            }
        }
    }
}

impl<St, S> FromRequestParts<St> for Auth<S>
where
    St: Send + Sync,
    AppState: FromRef<St>,
    S: RequiredScope,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or_else(ApiError::unauthorized)?;
        let state = AppState::from_ref(state);
        let principal = state
            .guard
            .admit(&state.store, token)
            .await
            .map_err(|refusal| match refusal {
                Refusal::Unauthorized => ApiError::unauthorized(),
                Refusal::Expired => ApiError::api_key_expired(),
                Refusal::Suspended => ApiError::merchant_suspended(),
                Refusal::RateLimited(wait) => ApiError::rate_limited(retry_after_secs(wait)),
                Refusal::Store(e) => from_store(e, "api key", &state.chains),
            })?;
        if !principal.has(S::SCOPE) {
            return Err(ApiError::forbidden(S::SCOPE));
        }
        Ok(Self {
            principal,
            _scope: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use meshpay_domain::Scopes;

    use super::*;

    /// Knows one key; counts the lookups that reach it (each would be a database query).
    struct CountingDirectory {
        known: String,
        principal: Principal,
        lookups: AtomicUsize,
        touches: AtomicUsize,
    }

    impl CountingDirectory {
        fn new(rate: Option<u32>) -> Self {
            Self {
                known: key("00000000000000aa"),
                principal: Principal {
                    merchant_id: MerchantId::new(),
                    key_id: ApiKeyId::new(),
                    scopes: Scopes::all(),
                    rate_limit_per_sec: rate,
                },
                lookups: AtomicUsize::new(0),
                touches: AtomicUsize::new(0),
            }
        }
    }

    impl KeyDirectory for CountingDirectory {
        async fn check_api_key(&self, presented: &str) -> Result<KeyCheck, StoreError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            Ok(if presented == self.known {
                KeyCheck::Valid(self.principal)
            } else {
                KeyCheck::UnknownPrefix
            })
        }
        async fn touch_api_key(&self, _key: ApiKeyId) -> Result<(), StoreError> {
            self.touches.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn key(prefix: &str) -> String {
        format!("mp_live_{prefix}_{}", "ab".repeat(32))
    }

    fn guard() -> AuthGuard {
        AuthGuard::new(RateLimitConfig {
            per_key_per_sec: 1000,
            per_merchant_per_sec: 1000,
        })
    }

    #[tokio::test]
    async fn an_unknown_prefix_is_looked_up_once_then_answered_from_memory() {
        let directory = CountingDirectory::new(None);
        let guard = guard();
        let unknown = key("0123456789abcdef");
        for _ in 0..50 {
            assert!(matches!(
                guard.admit(&directory, &unknown).await,
                Err(Refusal::Unauthorized)
            ));
        }
        assert_eq!(directory.lookups.load(Ordering::SeqCst), 1);
        // A malformed key never reaches the directory.
        assert!(guard.admit(&directory, "mp_live_nope").await.is_err());
        assert_eq!(directory.lookups.load(Ordering::SeqCst), 1);
        // Known keys are still checked every time.
        guard.admit(&directory, &directory.known).await.unwrap();
        guard.admit(&directory, &directory.known).await.unwrap();
        assert_eq!(directory.lookups.load(Ordering::SeqCst), 3);
        assert_eq!(
            directory.touches.load(Ordering::SeqCst),
            1,
            "touch throttled"
        );
    }

    #[tokio::test]
    async fn a_key_over_its_rate_is_refused_with_a_wait() {
        let directory = CountingDirectory::new(Some(2));
        let guard = guard();
        guard.admit(&directory, &directory.known).await.unwrap();
        guard.admit(&directory, &directory.known).await.unwrap();
        let Err(Refusal::RateLimited(wait)) = guard.admit(&directory, &directory.known).await
        else {
            panic!("expected a rate-limit refusal")
        };
        assert_eq!(retry_after_secs(wait), 1);
    }

    #[test]
    fn bearer_token_accepts_only_the_bearer_scheme_with_one_token() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
