//! `cancel`: `POST /api/payments/{id}/cancel`.
//!
//! - `authorized`: cancelled at once, hold released (200, `cancelled`).
//! - `broadcast` or `stalled` (signed, not final): the payment's nonce is taken, so the
//!   cancellation is itself a transaction: the payment becomes `cancelling` (202) and the
//!   broadcast step (queue output `broadcast`) sends a 0-value transfer from the hot wallet to
//!   itself on that nonce, priced to replace the pending transfer within the hold. It ends
//!   `cancelled` when that is mined (its network fee charged, the rest of the hold released),
//!   or `confirmed` and then `settled` if the original transfer is mined first.
//! - A retried cancel answers the same (`cancelling` 202, `cancelled` 200); once a transaction
//!   is final (`confirmed`, `settled`, `failed`) or the quote expired it is too late: 409
//!   `invalid_state`.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use meshpay_api::views::{PaymentView, Renderer};
use meshpay_api::{ApiError, AppState, Auth, PathId, PaymentsWrite, Problem, from_store};
use meshpay_domain::{PaymentId, PaymentMessage, PaymentStatus};
use meshpay_shim::{Function, FunctionJson, QueueOutputs};
use meshpay_store::StoreError;
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("cancel");

/// Output binding name in function.json (queue `payments-broadcast`).
pub const BROADCAST_OUTPUT: &str = "broadcast";

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
        (status = 200, description = "The cancelled payment (it was `authorized`); its hold is released", body = PaymentView),
        (status = 202, description = "The payment is `cancelling`: a cancellation is sent on its nonce; it ends `cancelled` when that is mined (the cancellation's network fee is charged, the rest of the hold released) or `confirmed` if the original transfer is mined first", body = PaymentView),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `payments:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment for this merchant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The payment's transaction is final, or it is settled, failed or expired (`invalid_state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["payments:write"]))
)]
pub async fn cancel_payment(
    State(state): State<AppState>,
    auth: Auth<PaymentsWrite>,
    PathId(id): PathId<PaymentId>,
) -> Result<Response, ApiError> {
    let merchant = auth.merchant_id();
    let payment = match state.store.request_cancel(merchant, id).await {
        Ok(payment) => payment,
        // A retried cancel: the first one already did it (or is doing it).
        Err(StoreError::IllegalTransition(_)) => state
            .store
            .get_payment(merchant, id)
            .await
            .map_err(|e| from_store(e, "payment", &state.chains))?
            .filter(|p| {
                matches!(
                    p.status,
                    PaymentStatus::Cancelled | PaymentStatus::Cancelling
                )
            })
            .ok_or_else(too_late)?,
        Err(error) => return Err(from_store(error, "payment", &state.chains)),
    };
    let view = Renderer::new(&state.chains).payment(&payment)?;
    if payment.status != PaymentStatus::Cancelling {
        return Ok(Json(view).into_response());
    }
    let mut queued = QueueOutputs::new();
    if let Err(error) = queued.push(BROADCAST_OUTPUT, &PaymentMessage::new(payment.id)) {
        // The outbox row written with the status change, and the confirm step's next check,
        // still hand the payment to the broadcast step.
        tracing::error!(%error, payment = %payment.id, "cancellation message not attached");
    }
    Ok((StatusCode::ACCEPTED, queued, Json(view)).into_response())
}

fn too_late() -> ApiError {
    ApiError::new(
        meshpay_api::ErrorCode::InvalidState,
        "the payment can no longer be cancelled: its transaction is final, or it is settled, \
         failed or expired",
    )
}
