//! `webhook-deliveries`: the delivery log of a merchant's webhooks.
//!
//! - `GET /api/webhook-deliveries?status=&endpoint_id=&limit=&cursor=`: deliveries newest
//!   first (keyset pagination), each with its latest attempt.
//! - `GET /api/webhook-deliveries/{id}`: one delivery with the body that is sent and every
//!   attempt (status code, error, duration, first bytes of the response).
//!
//! Needs the `webhooks:write` scope; another merchant's delivery is a 404.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use meshpay_api::pagination::{PageRequest, encode_cursor, filter};
use meshpay_api::{ApiError, ApiQuery, AppState, Auth, Problem, RequiredScope, from_store};
use meshpay_domain::Scope;
use meshpay_shim::{Function, FunctionJson};
use meshpay_store::webhooks::{
    DeliveryStatus, ListDeliveries, WebhookAttempt, WebhookDelivery, WebhookDeliveryId,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi, ToSchema};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("webhook-deliveries");

/// `webhooks:write`: manage webhook endpoints and read deliveries.
pub struct WebhooksWrite;

impl RequiredScope for WebhooksWrite {
    const SCOPE: Scope = Scope::WebhooksWrite;
}

/// `GET /api/webhook-deliveries`, `GET /api/webhook-deliveries/{id}` (route
/// `webhook-deliveries/{id?}`).
pub fn function(state: AppState) -> Function {
    Function::http(FUNCTION, WebhookDeliveriesApi::openapi)
        .on(Method::GET, list_deliveries)
        .on_with_optional(Method::GET, get_delivery)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(list_deliveries, get_delivery),
    components(schemas(
        DeliveryView,
        DeliveryStatusView,
        DeliveryList,
        DeliveryDetailView,
        AttemptView,
        Problem
    ))
)]
pub struct WebhookDeliveriesApi;

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only deliveries in this status.
    #[param(inline, value_type = Option<DeliveryStatusView>)]
    pub status: Option<String>,
    /// Only deliveries to this endpoint (`we_…`).
    #[param(pattern = "^we_[0-9a-fA-F]{32}$")]
    pub endpoint_id: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatusView {
    /// Will be attempted at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Retries exhausted (about 24 h), or the endpoint was disabled (410) or deleted.
    Failed,
}

impl From<DeliveryStatus> for DeliveryStatusView {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => Self::Pending,
            DeliveryStatus::Succeeded => Self::Succeeded,
            DeliveryStatus::Failed => Self::Failed,
        }
    }
}

/// One event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeliveryView {
    /// `wd_…`
    pub id: String,
    /// The event's `webhook-id` (`msg_…`): the same on every attempt and every endpoint.
    pub event_id: String,
    pub event_type: String,
    /// `we_…`
    pub endpoint_id: String,
    /// `pay_…`
    pub payment_id: Option<String>,
    pub status: DeliveryStatusView,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// HTTP status of the latest attempt, if it got a response.
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<OffsetDateTime>,
}

impl From<&WebhookDelivery> for DeliveryView {
    fn from(d: &WebhookDelivery) -> Self {
        DeliveryView {
            id: d.id.to_string(),
            event_id: d.event_id.to_string(),
            event_type: d.event_type.clone(),
            endpoint_id: d.endpoint_id.to_string(),
            payment_id: d.payment_id.map(|p| p.to_string()),
            status: d.status.into(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_attempt_at: d.last_attempt_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            completed_at: d.completed_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryList {
    pub data: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// The first bytes of the endpoint's response.
    pub response_excerpt: Option<String>,
}

impl From<&WebhookAttempt> for AttemptView {
    fn from(a: &WebhookAttempt) -> Self {
        AttemptView {
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error.clone(),
            response_excerpt: a.response_excerpt.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryDetailView {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// The JSON body sent (and signed) on every attempt.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Oldest first.
    pub attempt_log: Vec<AttemptView>,
}

#[utoipa::path(
    get,
    path = "/api/webhook-deliveries",
    tag = "webhooks",
    params(ListParams),
    responses(
        (status = 200, description = "A page of deliveries, newest first", body = DeliveryList),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `webhooks:write`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown parameter, bad status, endpoint id, limit or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    auth: Auth<WebhooksWrite>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    let page = PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let query = ListDeliveries {
        status: filter(
            "status",
            params.status.as_deref(),
            "one of pending, succeeded, failed",
        )?,
        endpoint_id: filter("endpoint_id", params.endpoint_id.as_deref(), "a we_… id")?,
        limit: page.limit,
        before: page.before,
    };
    let page = state
        .store
        .list_webhook_deliveries(auth.merchant_id(), &query)
        .await
        .map_err(|e| from_store(e, "webhook delivery", &state.chains))?;
    Ok(Json(DeliveryList {
        data: page.items.iter().map(DeliveryView::from).collect(),
        next_cursor: page.next_cursor.as_ref().map(encode_cursor),
    }))
}

#[utoipa::path(
    get,
    path = "/api/webhook-deliveries/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "Delivery id (`wd_…`)", pattern = "^wd_[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "The delivery, its payload and every attempt", body = DeliveryDetailView),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `webhooks:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery for this merchant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["webhooks:write"]))
)]
pub async fn get_delivery(
    State(state): State<AppState>,
    auth: Auth<WebhooksWrite>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetailView>, ApiError> {
    let not_found = || ApiError::not_found("webhook delivery");
    let id: WebhookDeliveryId = id.parse().map_err(|_| not_found())?;
    let detail = state
        .store
        .get_webhook_delivery(auth.merchant_id(), id)
        .await
        .map_err(|e| from_store(e, "webhook delivery", &state.chains))?
        .ok_or_else(not_found)?;
    let payload = serde_json::from_str(&detail.body)
        .unwrap_or(serde_json::Value::String(detail.body.clone()));
    Ok(Json(DeliveryDetailView {
        delivery: DeliveryView::from(&detail.delivery),
        payload,
        attempt_log: detail.attempts.iter().map(AttemptView::from).collect(),
    }))
}
