//! `cancel`: `POST /api/payments/{id}/cancel` cancels an authorized payment and releases its
//! hold, in one store transaction. Cancelling an already cancelled payment returns it again
//! (a retried cancel succeeds); past `authorized` it is too late: 409 `invalid_state`.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use meshpay_api::views::{PaymentView, Renderer};
use meshpay_api::{ApiError, AppState, Auth, PathId, PaymentsWrite, Problem, from_store};
use meshpay_domain::{PaymentId, PaymentStatus};
use meshpay_shim::{Function, FunctionJson};
use meshpay_store::StoreError;
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("cancel");

/// `POST /api/payments/{id}/cancel`.
pub fn function(state: AppState) -> Function {
    Function::http(FUNCTION, CancelApi::openapi)
        .on(Method::POST, cancel_payment)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(paths(cancel_payment), components(schemas(PaymentView, Problem)))]
pub struct CancelApi;

#[utoipa::path(
    post,
    path = "/api/payments/{id}/cancel",
    tag = "payments",
    params(("id" = String, Path, description = "Payment id (`pay_…`)", pattern = "^pay_[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "The cancelled payment; its hold is released", body = PaymentView),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `payments:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment for this merchant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The payment is past `authorized` (`invalid_state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["payments:write"]))
)]
pub async fn cancel_payment(
    State(state): State<AppState>,
    auth: Auth<PaymentsWrite>,
    PathId(id): PathId<PaymentId>,
) -> Result<Json<PaymentView>, ApiError> {
    let merchant = auth.merchant_id();
    let payment = match state.store.cancel_payment(merchant, id).await {
        Ok(payment) => payment,
        // A retried cancel: the first one already did it.
        Err(StoreError::IllegalTransition(_)) => state
            .store
            .get_payment(merchant, id)
            .await
            .map_err(|e| from_store(e, "payment", &state.chains))?
            .filter(|p| p.status == PaymentStatus::Cancelled)
            .ok_or_else(too_late)?,
        Err(error) => return Err(from_store(error, "payment", &state.chains)),
    };
    Ok(Json(Renderer::new(&state.chains).payment(&payment)?))
}

fn too_late() -> ApiError {
    ApiError::new(
        meshpay_api::ErrorCode::InvalidState,
        "only an authorized payment can be cancelled; this one has moved on",
    )
}
