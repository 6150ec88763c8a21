//! Resource ids in the path (`/payments/{id}`). A malformed id names no resource, so it is a 404
//! like an unknown or foreign id: the client learns nothing about which ids exist.

use std::str::FromStr;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use meshpay_domain::{InvoiceId, PaymentId, QuoteId};

use crate::error::ApiError;

/// An id type and the resource name used in its 404 message.
pub trait Resource: FromStr + Send {
    const NAME: &'static str;
}

impl Resource for QuoteId {
    const NAME: &'static str = "quote";
}

impl Resource for PaymentId {
    const NAME: &'static str = "payment";
}

impl Resource for InvoiceId {
    const NAME: &'static str = "invoice";
}

/// The single `{id}` path parameter, parsed.
#[derive(Debug, Clone, Copy)]
pub struct PathId<T>(pub T);

impl<T, S> FromRequestParts<S> for PathId<T>
where
    T: Resource,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found(T::NAME))?;
        raw.parse::<T>()
            .map(Self)
            .map_err(|_| ApiError::not_found(T::NAME))
    }
}
