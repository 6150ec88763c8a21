//! `authorize`: `POST /api/payments` with `Idempotency-Key` turns a quote into an authorized
//! payment: one store transaction checks the quote, the limits and the balance, places the
//! hold and records the response for replays. The payment's message then goes out on the
//! `broadcast` queue output (`payments-broadcast`).
//!
//! Replays: the same key with the same body (compared as canonical JSON) gets the original
//! status and body, marked `Idempotent-Replayed: true`, and the broadcast message is emitted
//! again: the broadcast step is idempotent per payment, and this re-sends a message the first
//! invocation may have lost after the commit. Same key, different body: 422. A concurrent
//! duplicate waits for the first (bounded by the store's lock timeout, then 409).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use meshpay_api::views::{PaymentView, Renderer};
use meshpay_api::{
    ApiError, ApiJson, AppState, Auth, PaymentsWrite, Problem, from_store, merchant_data,
};
use meshpay_domain::{PaymentId, PaymentMessage, QuoteId};
use meshpay_shim::{Function, FunctionJson, QueueOutputs};
use meshpay_store::{
    AuthorizeOutcome, AuthorizeRequest, Payment, StoredResponse, request_fingerprint,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{OpenApi, ToSchema};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("authorize");

/// Output binding name in function.json (queue `payments-broadcast`).
pub const BROADCAST_OUTPUT: &str = "broadcast";
pub use meshpay_api::idempotency::IDEMPOTENCY_KEY;
use meshpay_api::idempotency::idempotency_key;
/// Response header set on replayed responses.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// `POST /api/payments`.
pub fn function(state: AppState) -> Function {
    Function::http(FUNCTION, AuthorizeApi::openapi)
        .on(Method::POST, authorize)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(authorize),
    components(schemas(AuthorizePaymentRequest, PaymentView, Problem))
)]
pub struct AuthorizeApi;

/// Authorize a quote.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizePaymentRequest {
    /// The quote to pay (`quo_…`), unexpired and unused.
    #[schema(pattern = "^quo_[0-9a-fA-F]{32}$")]
    pub quote_id: String,
    /// The merchant's own reference, 1 to 255 characters without control characters.
    #[schema(pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]{1,255}$")]
    pub reference: Option<String>,
    /// Any JSON object up to 4 KiB (serialized), returned as given.
    #[schema(schema_with = meshpay_api::openapi::metadata_schema, nullable = true)]
    pub metadata: Option<Map<String, Value>>,
}

#[utoipa::path(
    post,
    path = "/api/payments",
    tag = "payments",
    request_body = AuthorizePaymentRequest,
    params(
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters; retries with the same key and body replay the original response", pattern = "^[!-~]{1,255}$"),
    ),
    responses(
        (status = 201, description = "Payment authorized (or the replay of an earlier 201)", body = PaymentView, links(
            ("GetPayment" = (operation_id = "get_payment", parameters(("id" = "$response.body#/id")))),
            ("CancelPayment" = (operation_id = "cancel_payment", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 400, description = "Malformed JSON or missing Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Insufficient available balance (`insufficient_funds`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `payments:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such quote for this merchant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Quote expired or already used, or a request with this key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body (including a string holding U+0000 anywhere), limit exceeded, or key reused with another body", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["payments:write"]))
)]
pub async fn authorize(
    State(state): State<AppState>,
    auth: Auth<PaymentsWrite>,
    headers: HeaderMap,
    uri: Uri,
    body: ApiJson<AuthorizePaymentRequest>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let quote_id = validate(&body.value)?;
    // The body is valid JSON (ApiJson checked it): the fingerprint covers what the client sent,
    // independent of key order and whitespace.
    let raw: Value = meshpay_api::json::parse(&body.raw)?;
    let request = AuthorizeRequest {
        merchant_id: auth.merchant_id(),
        idempotency_key,
        request_hash: request_fingerprint(&raw),
        quote_id,
        reference: body.value.reference,
        metadata: body.value.metadata.map(Value::Object),
        hot_wallet: None,
    };
    let renderer = Renderer::new(&state.chains);
    let outcome = state
        .store
        .authorize_payment(&request, |payment| render(&renderer, payment))
        .await
        .map_err(|e| from_store(e, "quote", &state.chains))?;
    Ok(respond(&outcome, uri.path()))
}

fn validate(request: &AuthorizePaymentRequest) -> Result<QuoteId, ApiError> {
    let quote_id = request.quote_id.parse::<QuoteId>().map_err(|_| {
        ApiError::validation("quote_id must be a quote id like quo_<32 hex digits>")
    })?;
    merchant_data::validate(request.reference.as_deref(), request.metadata.as_ref())?;
    Ok(quote_id)
}

/// The 201 stored for replays. Rendering only fails if the payment's asset left the chains
/// configuration between quote and authorization; the payment *is* authorized then, so the
/// stored answer is still a 201, with the fields that need no configuration.
fn render(renderer: &Renderer<'_>, payment: &Payment) -> StoredResponse {
    let body = renderer
        .payment(payment)
        .ok()
        .and_then(|view| serde_json::to_value(view).ok())
        .unwrap_or_else(|| {
            serde_json::json!({
                "id": payment.id,
                "quote_id": payment.quote_id,
                "status": payment.status,
                "version": payment.version,
            })
        });
    StoredResponse {
        status: StatusCode::CREATED.as_u16(),
        body,
    }
}

/// `collection`: the path the payment was created at; the payment lives under it.
fn respond(outcome: &AuthorizeOutcome, collection: &str) -> Response {
    let stored = outcome.response();
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED);
    let mut response = (status, Json(canonical(stored.body.clone()))).into_response();
    if let Some(payment_id) = outcome.payment_id().filter(|_| status.is_success()) {
        add_location(&mut response, collection, payment_id);
        let message = PaymentMessage::new(payment_id);
        let mut queued = QueueOutputs::new();
        match queued.push(BROADCAST_OUTPUT, &message) {
            Ok(()) => {
                response.extensions_mut().insert(queued);
            }
            // The outbox row written in the same transaction still carries the message.
            Err(error) => tracing::error!(%error, %payment_id, "broadcast message not attached"),
        }
    }
    if matches!(outcome, AuthorizeOutcome::Replayed { .. }) {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

fn add_location(response: &mut Response, collection: &str, payment_id: PaymentId) {
    let collection = collection.trim_end_matches('/');
    if let Ok(location) = HeaderValue::from_str(&format!("{collection}/{payment_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
}

/// Object keys sorted at every level, so a replay (read back from the database, whose JSON type
/// does not keep key order) is byte-identical to the first response whatever serde_json's map
/// ordering feature is.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        scalar => scalar,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_api::ErrorCode;
    use meshpay_api::merchant_data::MAX_METADATA_BYTES;

    fn request(quote_id: &str) -> AuthorizePaymentRequest {
        AuthorizePaymentRequest {
            quote_id: quote_id.to_owned(),
            reference: None,
            metadata: None,
        }
    }

    #[test]
    fn malformed_quote_ids_are_validation_errors() {
        for id in [
            "",
            "quo_",
            "pay_0190f5a0c0d67c3a9b1e2f3a4b5c6d7e",
            "quo_xyz",
        ] {
            assert_eq!(
                validate(&request(id)).unwrap_err().code(),
                ErrorCode::ValidationFailed
            );
        }
        let ok = QuoteId::new().to_string();
        assert!(validate(&request(&ok)).is_ok());
    }

    #[test]
    fn reference_and_metadata_are_bounded() {
        let id = QuoteId::new().to_string();
        let mut r = request(&id);
        r.reference = Some("x".repeat(256));
        assert!(validate(&r).is_err());
        r.reference = Some("order\n42".into());
        assert!(validate(&r).is_err());
        r.reference = Some("order-42".into());
        assert!(validate(&r).is_ok());
        let mut big = Map::new();
        big.insert("k".into(), Value::String("v".repeat(MAX_METADATA_BYTES)));
        r.metadata = Some(big);
        assert!(validate(&r).is_err());
    }

    #[test]
    fn missing_and_malformed_idempotency_keys_are_rejected_differently() {
        let missing = idempotency_key(&HeaderMap::new()).unwrap_err();
        assert_eq!(missing.code(), ErrorCode::IdempotencyKeyRequired);
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("has space"));
        assert_eq!(
            idempotency_key(&headers).unwrap_err().code(),
            ErrorCode::ValidationFailed
        );
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("order-42"));
        assert_eq!(idempotency_key(&headers).unwrap().as_str(), "order-42");
    }

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let value = serde_json::json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": 3}});
        let text = serde_json::to_string(&canonical(value)).unwrap();
        assert_eq!(text, r#"{"a":{"c":3,"d":[{"y":2,"z":1}]},"b":1}"#);
    }
}
