//! `invoice-cancel`: `POST /api/invoices/{id}/cancel` cancels an open invoice nothing was paid
//! to (not even a transfer still waiting for finality). A retried cancel returns the cancelled
//! invoice again; once anything arrived it is too late: 409 `invalid_state`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use meshpay_api::{
    ApiError, AppState, Auth, ErrorCode, InvoicesWrite, PathId, Problem, from_store,
};
use meshpay_domain::{InvoiceId, InvoiceStatus};
use meshpay_payins::views::{InvoiceRenderer, InvoiceView};
use meshpay_shim::{Function, FunctionJson};
use meshpay_store::StoreError;
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("invoice-cancel");

/// `POST /api/invoices/{id}/cancel`.
pub fn function(state: AppState) -> Function {
    Function::http(FUNCTION, InvoiceCancelApi::openapi)
        .on(Method::POST, cancel_invoice)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(paths(cancel_invoice), components(schemas(InvoiceView, Problem)))]
pub struct InvoiceCancelApi;

#[utoipa::path(
    post,
    path = "/api/invoices/{id}/cancel",
    tag = "invoices",
    params(("id" = String, Path, description = "Invoice id (`inv_…`)", pattern = "^inv_[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "The cancelled invoice", body = InvoiceView),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `invoices:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invoice for this merchant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Something was paid to the invoice, or it is no longer open (`invalid_state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]))
)]
pub async fn cancel_invoice(
    State(state): State<AppState>,
    auth: Auth<InvoicesWrite>,
    headers: HeaderMap,
    PathId(id): PathId<InvoiceId>,
) -> Result<Json<InvoiceView>, ApiError> {
    let merchant = auth.merchant_id();
    let invoice = match state.store.cancel_invoice(merchant, id).await {
        Ok(invoice) => invoice,
        Err(StoreError::IllegalInvoiceTransition(transition)) => state
            .store
            .get_invoice(merchant, id)
            .await
            .map_err(|e| from_store(e, "invoice", &state.chains))?
            .filter(|invoice| invoice.status == InvoiceStatus::Cancelled)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidState, transition.to_string()))?,
        Err(error) => return Err(from_store(error, "invoice", &state.chains)),
    };
    let base = meshpay_payins::views::pay_base(&headers);
    Ok(Json(
        InvoiceRenderer::new(&state.chains, &base).invoice(&invoice, None)?,
    ))
}
