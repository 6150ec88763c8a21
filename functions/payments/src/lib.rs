//! `payments`: `GET /api/payments/{id}` and `GET /api/payments?status=&limit=&cursor=` (newest
//! first, keyset pagination). Another merchant's payment is a 404, like an unknown one. A single
//! payment comes with its `attempts` (every signed transaction: hash, nonce, fees, status; never
//! the signed bytes); lists leave them out (one query per page, not per payment).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use meshpay_api::pagination::{PageRequest, encode_cursor, filter};
use meshpay_api::views::{PaymentList, PaymentStatusView, PaymentView, Renderer};
use meshpay_api::{ApiError, ApiQuery, AppState, Auth, PathId, PaymentsRead, Problem, from_store};
use meshpay_domain::PaymentId;
use meshpay_shim::{Function, FunctionJson};
use meshpay_store::ListPayments;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("payments");

/// `GET /api/payments`, `GET /api/payments/{id}` (route `payments/{id?}`).
pub fn function(state: AppState) -> Function {
    Function::http(FUNCTION, PaymentsApi::openapi)
        .on(Method::GET, list_payments)
        .on_with_optional(Method::GET, get_payment)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(get_payment, list_payments),
    components(schemas(PaymentView, PaymentList, Problem))
)]
pub struct PaymentsApi;

/// Listing filters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only payments in this status.
    #[param(inline, value_type = Option<PaymentStatusView>)]
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/payments/{id}",
    tag = "payments",
    params(("id" = String, Path, description = "Payment id (`pay_…`)", pattern = "^pay_[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "The payment, with `attempts`", body = PaymentView),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `payments:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment for this merchant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["payments:read"]))
)]
pub async fn get_payment(
    State(state): State<AppState>,
    auth: Auth<PaymentsRead>,
    PathId(id): PathId<PaymentId>,
) -> Result<Json<PaymentView>, ApiError> {
    let payment = state
        .store
        .get_payment(auth.merchant_id(), id)
        .await
        .map_err(|e| from_store(e, "payment", &state.chains))?
        .ok_or_else(|| ApiError::not_found("payment"))?;
    // Read after the payment (already scoped to the merchant), by its id.
    let attempts = state
        .store
        .payment_transactions(payment.id)
        .await
        .map_err(|e| from_store(e, "payment", &state.chains))?;
    Ok(Json(
        Renderer::new(&state.chains).payment_with_attempts(&payment, &attempts)?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/payments",
    tag = "payments",
    params(ListParams),
    responses(
        (status = 200, description = "A page of payments, newest first", body = PaymentList),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `payments:read`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown parameter, bad status, limit or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["payments:read"]))
)]
pub async fn list_payments(
    State(state): State<AppState>,
    auth: Auth<PaymentsRead>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<PaymentList>, ApiError> {
    let page = PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let query = ListPayments {
        status: filter("status", params.status.as_deref(), "a payment status")?,
        limit: page.limit,
        before: page.before,
    };
    let page = state
        .store
        .list_payments(auth.merchant_id(), &query)
        .await
        .map_err(|e| from_store(e, "payment", &state.chains))?;
    let renderer = Renderer::new(&state.chains);
    let data = page
        .items
        .iter()
        .map(|p| renderer.payment(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(PaymentList {
        data,
        next_cursor: page.next_cursor.as_ref().map(encode_cursor),
    }))
}
