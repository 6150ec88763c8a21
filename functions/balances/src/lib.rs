//! `balances`: `GET /api/balances`, the merchant's available and held amount per asset.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use meshpay_api::views::{BalanceList, BalanceView, Renderer};
use meshpay_api::{ApiError, AppState, Auth, PaymentsRead, Problem, from_store};
use meshpay_shim::{Function, FunctionJson};
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("balances");

/// `GET /api/balances`.
pub fn function(state: AppState) -> Function {
    Function::http(FUNCTION, BalancesApi::openapi)
        .on(Method::GET, get_balances)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(get_balances),
    components(schemas(BalanceList, BalanceView, Problem))
)]
pub struct BalancesApi;

#[utoipa::path(
    get,
    path = "/api/balances",
    tag = "balances",
    responses(
        (status = 200, description = "Balances per asset the merchant was ever funded in", body = BalanceList),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `payments:read`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["payments:read"]))
)]
pub async fn get_balances(
    State(state): State<AppState>,
    auth: Auth<PaymentsRead>,
) -> Result<Json<BalanceList>, ApiError> {
    let balances = state
        .store
        .balances(auth.merchant_id())
        .await
        .map_err(|e| from_store(e, "merchant", &state.chains))?;
    let renderer = Renderer::new(&state.chains);
    let data = balances
        .iter()
        .map(|b| renderer.balance(b))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(BalanceList { data }))
}
