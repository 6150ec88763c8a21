//! `Authorization: Bearer <key>` → the calling merchant, with the scope the handler needs
//! checked by type: a handler taking `Auth<PaymentsWrite>` cannot run without that scope.
//! Key verification (hash lookup, constant-time compare, revocation) is the store's.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use meshpay_domain::{MerchantId, Scope};
use meshpay_store::Principal;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store_error::from_store;

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
            .store
            .authenticate(token)
            .await
            .map_err(|e| from_store(e, "api key", &state.chains))?
            .ok_or_else(ApiError::unauthorized)?;
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
    use super::*;

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
