//! `webhook-endpoints`: a merchant's webhook endpoints.
//!
//! - `POST /api/webhook-endpoints` `{url, events?}` registers one and returns its signing
//!   secret (`whsec_…`) **once**; it is stored sealed and never shown again.
//! - `GET /api/webhook-endpoints` lists them (without secrets), newest first;
//!   `GET /api/webhook-endpoints/{id}` reads one.
//! - `DELETE /api/webhook-endpoints/{id}` removes one; its pending deliveries fail.
//!
//! URLs pass the SSRF policy before anything is written: https and public addresses only in
//! production (`MESHPAY_WEBHOOK_URL_POLICY`), checked again at every delivery. Every route
//! needs the `webhooks:write` scope.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meshpay_api::{
    ApiError, ApiJson, AppState, Auth, ErrorCode, Problem, RequiredScope, from_store,
};
use meshpay_domain::Scope;
use meshpay_shim::{Function, FunctionJson};
use meshpay_store::webhooks::{
    CreateEndpointOutcome, MAX_ENDPOINTS_PER_MERCHANT, NewWebhookEndpoint, WebhookEndpoint,
    WebhookEndpointId,
};
use meshpay_webhooks::{
    SecretCipher, UrlPolicy, WebhookSecret, WebhookServices, validate_event_types,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{OpenApi, ToSchema};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("webhook-endpoints");

/// `webhooks:write`: manage webhook endpoints and read deliveries.
pub struct WebhooksWrite;

impl RequiredScope for WebhooksWrite {
    const SCOPE: Scope = Scope::WebhooksWrite;
}

/// The API state plus what registering an endpoint needs.
#[derive(Clone)]
pub struct EndpointsState {
    pub app: AppState,
    pub url_policy: UrlPolicy,
    pub cipher: Arc<SecretCipher>,
}

impl EndpointsState {
    pub fn new(app: AppState, services: &WebhookServices) -> Self {
        EndpointsState {
            app,
            url_policy: services.url_policy,
            cipher: services.cipher.clone(),
        }
    }
}

impl FromRef<EndpointsState> for AppState {
    fn from_ref(state: &EndpointsState) -> AppState {
        state.app.clone()
    }
}

/// `GET`/`POST /api/webhook-endpoints`, `DELETE /api/webhook-endpoints/{id}` (route
/// `webhook-endpoints/{id?}`).
pub fn function(state: EndpointsState) -> Function {
    Function::http(FUNCTION, WebhookEndpointsApi::openapi)
        .on(Method::GET, list_endpoints)
        .on(Method::POST, create_endpoint)
        .on_with_optional(Method::GET, get_endpoint)
        .on_with_optional(Method::DELETE, delete_endpoint)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(create_endpoint, list_endpoints, get_endpoint, delete_endpoint),
    components(schemas(
        CreateEndpointRequest,
        EventType,
        WebhookEndpointView,
        CreatedWebhookEndpoint,
        WebhookEndpointList,
        Problem
    ))
)]
pub struct WebhookEndpointsApi;

/// Register a webhook endpoint.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// Where events are POSTed: an https URL (internationalized host names allowed) to a public
    /// address, at most 2048 bytes.
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub url: String,
    /// Event types to receive (at least one); leave out for every type (including types added
    /// later).
    #[schema(value_type = Option<Vec<EventType>>, min_items = 1)]
    pub events: Option<Vec<String>>,
}

/// An event type a merchant can subscribe to (`meshpay_webhooks::EVENT_TYPES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "payment.authorized")]
    PaymentAuthorized,
    #[serde(rename = "payment.broadcast")]
    PaymentBroadcast,
    #[serde(rename = "payment.stalled")]
    PaymentStalled,
    #[serde(rename = "payment.cancelling")]
    PaymentCancelling,
    #[serde(rename = "payment.confirmed")]
    PaymentConfirmed,
    #[serde(rename = "payment.settled")]
    PaymentSettled,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "payment.cancelled")]
    PaymentCancelled,
    #[serde(rename = "invoice.pending")]
    InvoicePending,
    #[serde(rename = "invoice.paid")]
    InvoicePaid,
    #[serde(rename = "invoice.underpaid")]
    InvoiceUnderpaid,
    #[serde(rename = "invoice.overpaid")]
    InvoiceOverpaid,
    #[serde(rename = "invoice.expired")]
    InvoiceExpired,
    #[serde(rename = "invoice.paid_late")]
    InvoicePaidLate,
    #[serde(rename = "invoice.cancelled")]
    InvoiceCancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    Enabled,
    /// The endpoint answered 410 Gone; nothing is sent to it any more.
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookEndpointView {
    /// `we_…`
    pub id: String,
    pub url: String,
    /// `null`: every event type.
    pub events: Option<Vec<String>>,
    pub status: EndpointStatus,
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<&WebhookEndpoint> for WebhookEndpointView {
    fn from(e: &WebhookEndpoint) -> Self {
        WebhookEndpointView {
            id: e.id.to_string(),
            url: e.url.clone(),
            events: e.event_types.clone(),
            status: if e.disabled_at.is_some() {
                EndpointStatus::Disabled
            } else {
                EndpointStatus::Enabled
            },
            disabled_reason: e.disabled_reason.clone(),
            disabled_at: e.disabled_at,
            created_at: e.created_at,
        }
    }
}

/// A new endpoint with its signing secret: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedWebhookEndpoint {
    #[serde(flatten)]
    pub endpoint: WebhookEndpointView,
    /// `whsec_<base64>`: verify `webhook-signature` with it (Standard Webhooks). Store it now;
    /// it cannot be read again.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEndpointList {
    pub data: Vec<WebhookEndpointView>,
}

#[utoipa::path(
    post,
    path = "/api/webhook-endpoints",
    tag = "webhooks",
    request_body = CreateEndpointRequest,
    responses(
        (status = 201, description = "Registered; the secret is shown only here", body = CreatedWebhookEndpoint, links(
            ("GetEndpoint" = (operation_id = "get_endpoint", parameters(("id" = "$response.body#/id")))),
            ("DeleteEndpoint" = (operation_id = "delete_endpoint", parameters(("id" = "$response.body#/id")))),
            ("ListDeliveries" = (operation_id = "list_deliveries", parameters(("endpoint_id" = "$response.body#/id")))),
        )),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `webhooks:write`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown field, wrong type, a string holding U+0000, URL not allowed (scheme, private address, unresolvable), unknown event type, or too many endpoints", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn create_endpoint(
    State(state): State<EndpointsState>,
    auth: Auth<WebhooksWrite>,
    body: ApiJson<CreateEndpointRequest>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let events = request
        .events
        .as_deref()
        .map(validate_event_types)
        .transpose()
        .map_err(|e| ApiError::validation(format!("events: {e}")))?;
    let url = state
        .url_policy
        .check(&request.url)
        .await
        .map_err(|e| ApiError::validation(format!("url: {e}")))?;
    let id = WebhookEndpointId::new();
    let secret = WebhookSecret::generate();
    let sealed = state
        .cipher
        .seal(&secret, id.as_uuid().as_bytes())
        .map_err(|e| ApiError::internal("seal webhook secret", &e))?;
    let new = NewWebhookEndpoint {
        id,
        merchant_id: auth.merchant_id(),
        url: url.as_str(),
        event_types: events.as_deref(),
        secret_ciphertext: &sealed,
    };
    let created = state
        .app
        .store
        .create_webhook_endpoint(&new)
        .await
        .map_err(|e| from_store(e, "merchant", &state.app.chains))?;
    let endpoint = match created {
        CreateEndpointOutcome::Created(endpoint) => endpoint,
        CreateEndpointOutcome::LimitReached => {
            return Err(ApiError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "a merchant can have at most {MAX_ENDPOINTS_PER_MERCHANT} webhook endpoints; delete one first"
                ),
            ));
        }
    };
    let body = CreatedWebhookEndpoint {
        endpoint: WebhookEndpointView::from(&endpoint),
        secret: secret.expose().to_string(),
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    // The body carries a secret: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/webhook-endpoints",
    tag = "webhooks",
    responses(
        (status = 200, description = "The merchant's endpoints, newest first (no secrets)", body = WebhookEndpointList),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `webhooks:write`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn list_endpoints(
    State(state): State<EndpointsState>,
    auth: Auth<WebhooksWrite>,
) -> Result<Json<WebhookEndpointList>, ApiError> {
    let endpoints = state
        .app
        .store
        .list_webhook_endpoints(auth.merchant_id())
        .await
        .map_err(|e| from_store(e, "webhook endpoint", &state.app.chains))?;
    Ok(Json(WebhookEndpointList {
        data: endpoints.iter().map(WebhookEndpointView::from).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/webhook-endpoints/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id (`we_…`)", pattern = "^we_[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "The endpoint (no secret)", body = WebhookEndpointView),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `webhooks:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint for this merchant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn get_endpoint(
    State(state): State<EndpointsState>,
    auth: Auth<WebhooksWrite>,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpointView>, ApiError> {
    // A malformed id names no endpoint: 404, like another merchant's.
    let not_found = || ApiError::not_found("webhook endpoint");
    let id: WebhookEndpointId = id.parse().map_err(|_| not_found())?;
    let endpoint = state
        .app
        .store
        .get_webhook_endpoint(auth.merchant_id(), id)
        .await
        .map_err(|e| from_store(e, "webhook endpoint", &state.app.chains))?
        .ok_or_else(not_found)?;
    Ok(Json(WebhookEndpointView::from(&endpoint)))
}

#[utoipa::path(
    delete,
    path = "/api/webhook-endpoints/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id (`we_…`)", pattern = "^we_[0-9a-fA-F]{32}$")),
    responses(
        (status = 204, description = "Deleted; its pending deliveries are marked failed"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `webhooks:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint for this merchant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn delete_endpoint(
    State(state): State<EndpointsState>,
    auth: Auth<WebhooksWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // A malformed id names no endpoint: 404, like another merchant's.
    let not_found = || ApiError::not_found("webhook endpoint");
    let id: WebhookEndpointId = id.parse().map_err(|_| not_found())?;
    let deleted = state
        .app
        .store
        .delete_webhook_endpoint(auth.merchant_id(), id)
        .await
        .map_err(|e| from_store(e, "webhook endpoint", &state.app.chains))?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_event_types_are_exactly_the_subscribable_ones() {
        use EventType::*;
        let documented: Vec<String> = [
            PaymentAuthorized,
            PaymentBroadcast,
            PaymentStalled,
            PaymentCancelling,
            PaymentConfirmed,
            PaymentSettled,
            PaymentFailed,
            PaymentCancelled,
            InvoicePending,
            InvoicePaid,
            InvoiceUnderpaid,
            InvoiceOverpaid,
            InvoiceExpired,
            InvoicePaidLate,
            InvoiceCancelled,
        ]
        .iter()
        .map(|t| {
            serde_json::to_value(t)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
        assert_eq!(documented, meshpay_webhooks::EVENT_TYPES);
    }
}
