//! `pay-status`: `GET /api/pay/{id}/status`, anonymous: what the pay page shows and polls, and
//! nothing else (no merchant, reference or metadata). The invoice id is the only key: it is
//! unguessable (122 random bits), and an unknown or malformed id is a 404.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use meshpay_api::{ApiError, AppState, PathId, Problem, from_store};
use meshpay_domain::InvoiceId;
use meshpay_payins::views::{InvoiceRenderer, PublicInvoiceView};
use meshpay_shim::{Function, FunctionJson};
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("pay-status");

/// `GET /api/pay/{id}/status`.
pub fn function(state: AppState) -> Function {
    Function::http(FUNCTION, PayStatusApi::openapi)
        .on(Method::GET, pay_status)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(paths(pay_status), components(schemas(PublicInvoiceView, Problem)))]
pub struct PayStatusApi;

#[utoipa::path(
    get,
    path = "/api/pay/{id}/status",
    tag = "pay",
    params(("id" = String, Path, description = "Invoice id (`inv_…`)", pattern = "^inv_[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "What the pay page shows", body = PublicInvoiceView),
        (status = 404, description = "No such invoice", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn pay_status(
    State(state): State<AppState>,
    PathId(id): PathId<InvoiceId>,
) -> Result<Json<PublicInvoiceView>, ApiError> {
    let invoice = state
        .store
        .get_invoice_public(id)
        .await
        .map_err(|e| from_store(e, "invoice", &state.chains))?
        .ok_or_else(|| ApiError::not_found("invoice"))?;
    Ok(Json(
        InvoiceRenderer::new(&state.chains, "").public(&invoice)?,
    ))
}
