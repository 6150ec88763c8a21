//! The `Idempotency-Key` request header of the operations that create money movements
//! (payments, invoices): required, and refused the same way everywhere.

use axum::http::{HeaderMap, HeaderName};
use meshpay_domain::IdempotencyKey;

use crate::error::{ApiError, ErrorCode};

/// Request header carrying the client's idempotency key.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The request's key: 400 `idempotency_key_required` without one, 422 when it is not 1 to 255
/// visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    let value = headers.get(&IDEMPOTENCY_KEY).ok_or_else(|| {
        ApiError::new(
            ErrorCode::IdempotencyKeyRequired,
            "send an Idempotency-Key header (e.g. a UUID) so the request can be retried safely",
        )
    })?;
    value
        .to_str()
        .ok()
        .and_then(|key| IdempotencyKey::new(key).ok())
        .ok_or_else(|| {
            ApiError::validation("Idempotency-Key must be 1 to 255 visible ASCII characters")
        })
}
