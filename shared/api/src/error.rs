//! The one error type of the HTTP API, rendered as RFC 9457 `application/problem+json` with a
//! stable machine-readable `code`. Internal causes are logged here, once, and never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meshpay_domain::{ErrorChain, Scope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use meshpay_shim::PROBLEM_JSON;

/// Stable error codes: clients branch on these, so a code is never renamed or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    InvalidJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    ValidationFailed,
    UnsupportedChain,
    UnsupportedAsset,
    InvalidRecipient,
    QuoteExpired,
    QuoteAlreadyUsed,
    InsufficientFunds,
    LimitExceeded,
    RateLimited,
    ApiKeyExpired,
    MerchantSuspended,
    TooManyOpenPayments,
    InvalidState,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    IdempotencyKeyInFlight,
    UpstreamUnavailable,
    Internal,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::UnsupportedChain => "unsupported_chain",
            ErrorCode::UnsupportedAsset => "unsupported_asset",
            ErrorCode::InvalidRecipient => "invalid_recipient",
            ErrorCode::QuoteExpired => "quote_expired",
            ErrorCode::QuoteAlreadyUsed => "quote_already_used",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ApiKeyExpired => "api_key_expired",
            ErrorCode::MerchantSuspended => "merchant_suspended",
            ErrorCode::TooManyOpenPayments => "too_many_open_payments",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::IdempotencyKeyRequired => "idempotency_key_required",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The status every error of this code is sent with.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::Unauthorized | ErrorCode::ApiKeyExpired => StatusCode::UNAUTHORIZED,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::MerchantSuspended => StatusCode::FORBIDDEN,
            ErrorCode::TooManyOpenPayments => StatusCode::CONFLICT,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::InvalidJson | ErrorCode::IdempotencyKeyRequired => StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ValidationFailed
            | ErrorCode::UnsupportedChain
            | ErrorCode::UnsupportedAsset
            | ErrorCode::InvalidRecipient
            | ErrorCode::LimitExceeded
            | ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::QuoteExpired
            | ErrorCode::QuoteAlreadyUsed
            | ErrorCode::InvalidState
            | ErrorCode::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            ErrorCode::InsufficientFunds => StatusCode::PAYMENT_REQUIRED,
            ErrorCode::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Short human summary; the same for every occurrence of the code (RFC 9457 `title`).
    pub const fn title(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "Missing or invalid API key",
            ErrorCode::Forbidden => "API key lacks the required scope",
            ErrorCode::NotFound => "Resource not found",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::InvalidJson => "Malformed JSON body",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::PayloadTooLarge => "Request body too large",
            ErrorCode::ValidationFailed => "Request is not valid",
            ErrorCode::UnsupportedChain => "Unsupported chain",
            ErrorCode::UnsupportedAsset => "Unsupported asset",
            ErrorCode::InvalidRecipient => "Recipient not accepted",
            ErrorCode::QuoteExpired => "Quote expired",
            ErrorCode::QuoteAlreadyUsed => "Quote already used",
            ErrorCode::InsufficientFunds => "Insufficient funds",
            ErrorCode::LimitExceeded => "Limit exceeded",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::ApiKeyExpired => "API key expired",
            ErrorCode::MerchantSuspended => "Merchant suspended",
            ErrorCode::TooManyOpenPayments => "Too many open payments",
            ErrorCode::InvalidState => "Payment is not in a state that allows this",
            ErrorCode::IdempotencyKeyRequired => "Idempotency-Key header required",
            ErrorCode::IdempotencyKeyReused => "Idempotency-Key reused with a different request",
            ErrorCode::IdempotencyKeyInFlight => "Request with this Idempotency-Key in progress",
            ErrorCode::UpstreamUnavailable => "Upstream service unavailable",
            ErrorCode::Internal => "Internal error",
        }
    }
}

/// RFC 9457 problem details, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:meshpay:problem:insufficient_funds",
    "title": "Insufficient funds",
    "status": 402,
    "detail": "available anvil:USDC balance 10.00 is less than the total debit 250.63",
    "code": "insufficient_funds"
}))]
pub struct Problem {
    /// `urn:meshpay:problem:<code>`: stable, one per code.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// The HTTP status, repeated for clients that lose it.
    pub status: u16,
    /// What went wrong with this request, for a human.
    pub detail: String,
    pub code: ErrorCode,
}

/// An API error. Build with the constructors; `detail` must never contain secrets or internal
/// error text (that goes to [`ApiError::internal`], which logs it and sends a fixed message).
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    /// Sent as `Retry-After` (seconds) with in-flight and unavailable errors.
    retry_after_secs: Option<u32>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            retry_after_secs: None,
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "send a valid API key as `Authorization: Bearer <key>`",
        )
    }

    pub fn forbidden(missing: Scope) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!("this API key does not have the `{missing}` scope"),
        )
    }

    pub fn api_key_expired() -> Self {
        Self::new(
            ErrorCode::ApiKeyExpired,
            "this API key has expired; use its replacement or ask for a new key",
        )
    }

    pub fn merchant_suspended() -> Self {
        Self::new(
            ErrorCode::MerchantSuspended,
            "this merchant is suspended; contact the operator",
        )
    }

    /// `retry_after_secs`: when the caller's budget has a token again (at least 1).
    pub fn rate_limited(retry_after_secs: u32) -> Self {
        Self::new(
            ErrorCode::RateLimited,
            "too many requests for this API key or merchant; retry after the Retry-After delay",
        )
        .with_retry_after(retry_after_secs.max(1))
    }

    /// Unknown ids and other merchants' ids look the same (tenant isolation).
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, detail)
    }

    /// Logs `error` (with its source chain) once and returns a 500 that reveals nothing.
    pub fn internal(context: &'static str, error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(context, error = %ErrorChain(error), "internal error");
        Self::new(
            ErrorCode::Internal,
            "an internal error occurred; it has been logged",
        )
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:meshpay:problem:{}", self.code.as_str()),
            title: self.code.title().to_owned(),
            status: self.code.status().as_u16(),
            detail: self.detail.clone(),
            code: self.code,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = meshpay_shim::problem_response(self.code.status(), &self.problem());
        let headers = response.headers_mut();
        if matches!(
            self.code,
            ErrorCode::Unauthorized | ErrorCode::ApiKeyExpired
        ) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Handler for a known path called with a method it does not serve (use with
/// `Router::method_not_allowed_fallback`; axum still sets the `Allow` header).
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this path does not support the request's method; see the Allow header",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(error: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn errors_render_as_problem_json_with_stable_code() {
        let (status, content_type, body) =
            render(ApiError::new(ErrorCode::InsufficientFunds, "not enough")).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(content_type.as_deref(), Some(PROBLEM_JSON));
        assert_eq!(body["type"], "urn:meshpay:problem:insufficient_funds");
        assert_eq!(body["title"], "Insufficient funds");
        assert_eq!(body["status"], 402);
        assert_eq!(body["detail"], "not enough");
        assert_eq!(body["code"], "insufficient_funds");
    }

    #[tokio::test]
    async fn internal_errors_never_leak_their_cause() {
        let cause = std::io::Error::other("password=hunter2 at db.internal:5432");
        let (status, _, body) = render(ApiError::internal("test", &cause)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal");
        assert!(!body.to_string().contains("hunter2"));
        assert!(!body.to_string().contains("db.internal"));
    }

    #[tokio::test]
    async fn unauthorized_carries_a_bearer_challenge() {
        let response = ApiError::unauthorized().into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn code_serde_name_matches_as_str_for_every_code() {
        use ErrorCode::*;
        for code in [
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            InvalidJson,
            UnsupportedMediaType,
            PayloadTooLarge,
            ValidationFailed,
            UnsupportedChain,
            UnsupportedAsset,
            InvalidRecipient,
            QuoteExpired,
            QuoteAlreadyUsed,
            InsufficientFunds,
            LimitExceeded,
            RateLimited,
            ApiKeyExpired,
            MerchantSuspended,
            TooManyOpenPayments,
            InvalidState,
            IdempotencyKeyRequired,
            IdempotencyKeyReused,
            IdempotencyKeyInFlight,
            UpstreamUnavailable,
            Internal,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }
}
