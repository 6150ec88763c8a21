//! `quotes`: `POST /api/quotes` prices a payment (network fee from the chain, service fee from
//! the merchant's rate) and stores the offer for `quote_ttl` (60 s); `GET /api/quotes/{id}`
//! reads it back. Nothing is written unless every input is valid.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use meshpay_api::views::{QuoteView, Renderer};
use meshpay_api::{
    ApiError, ApiJson, AppState, Auth, ErrorCode, PathId, Problem, QuotesWrite, from_store,
};
use meshpay_chain::{Chain, FeeError, FeeEstimate, TransferSpec};
use meshpay_domain::{Asset, Charges, QuoteId};
use meshpay_shim::{Function, FunctionJson};
use meshpay_store::NewQuote;
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("quotes");

/// `POST /api/quotes`, `GET /api/quotes/{id}` (route `quotes/{id?}`).
pub fn function(state: AppState) -> Function {
    Function::http(FUNCTION, QuotesApi::openapi)
        .on(Method::POST, create_quote)
        .on_with_optional(Method::GET, get_quote)
        .with_state(state)
}

/// This function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(create_quote, get_quote),
    components(schemas(CreateQuoteRequest, QuoteView, Problem))
)]
pub struct QuotesApi;

/// What to pay, to whom.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateQuoteRequest {
    /// A configured chain ("anvil"): 1 to 32 of `a-z`, `0-9`, `-`.
    #[schema(example = "anvil", pattern = "^[a-z0-9-]{1,32}$")]
    pub chain: String,
    /// Asset symbol on that chain, exact case ("USDC", "ETH"): 1 to 16 of `A-Z`, `0-9`.
    #[schema(example = "USDC", pattern = "^[A-Z0-9]{1,16}$")]
    pub asset: String,
    /// Positive decimal string in the asset's units (digits, optionally `.` and at least one
    /// digit), at most the asset's decimals (USDC 6, ETH 18) and 100 characters. A string, so
    /// no precision is lost in transit.
    #[schema(
        example = "250.00",
        max_length = 100,
        pattern = "^([0-9]*[1-9][0-9]*(\\.[0-9]+)?|[0-9]+\\.[0-9]*[1-9][0-9]*)$"
    )]
    pub amount: String,
    /// `0x` + 40 hex digits; mixed case must be the EIP-55 checksum. The zero address and the
    /// chain's deny list are refused (`invalid_recipient`).
    #[schema(
        example = "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
        pattern = "^0x[0-9a-fA-F]{40}$"
    )]
    pub recipient: String,
}

/// The validated request.
struct QuoteInput<'a> {
    chain: &'a Chain,
    asset: &'a Asset,
    transfer: TransferSpec,
}

#[utoipa::path(
    post,
    path = "/api/quotes",
    tag = "quotes",
    request_body = CreateQuoteRequest,
    responses(
        (status = 201, description = "Quote created", body = QuoteView, links(
            ("GetQuote" = (operation_id = "get_quote", parameters(("id" = "$response.body#/id")))),
            ("AuthorizePayment" = (operation_id = "authorize", request_body = json!({"quote_id": "$response.body#/id"}))),
        )),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `quotes:write`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown field, wrong type, bad amount (zero, negative, too precise), unsupported chain or asset, recipient refused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Chain RPC or database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["quotes:write"]))
)]
pub async fn create_quote(
    State(state): State<AppState>,
    auth: Auth<QuotesWrite>,
    uri: Uri,
    ApiJson { value: request, .. }: ApiJson<CreateQuoteRequest>,
) -> Result<Response, ApiError> {
    let input = validate(&state, &request)?;
    let merchant = state
        .store
        .get_merchant(auth.merchant_id())
        .await
        .map_err(|e| from_store(e, "merchant", &state.chains))?
        .ok_or_else(|| ApiError::not_found("merchant"))?;
    let fee = state
        .fees
        .estimate(input.chain, &input.transfer)
        .await
        .map_err(fee_error)?;
    let charges = charges(&input, merchant.service_fee_bps, &fee)?;
    let new = NewQuote {
        merchant_id: auth.merchant_id(),
        charges,
        recipient: input.transfer.recipient,
        gas_limit: fee.gas_limit,
        max_fee_per_gas: fee.max_fee_per_gas_wei,
        max_priority_fee_per_gas: fee.max_priority_fee_per_gas_wei,
        expires_at: state.clock.now() + state.config.quote_ttl,
    };
    let quote = state
        .store
        .insert_quote(&new)
        .await
        .map_err(|e| from_store(e, "merchant", &state.chains))?;
    let view = Renderer::new(&state.chains).quote(&quote)?;
    // The new quote lives under the path this request was sent to.
    let location = format!("{}/{}", uri.path().trim_end_matches('/'), quote.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

fn validate<'a>(
    state: &'a AppState,
    request: &CreateQuoteRequest,
) -> Result<QuoteInput<'a>, ApiError> {
    let chain = meshpay_api::money::chain(&state.chains, &request.chain)?;
    let (asset, amount) = meshpay_api::money::asset_amount(chain, &request.asset, &request.amount)?;
    let recipient = chain
        .validate_recipient(&request.recipient)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRecipient, format!("recipient: {e}")))?;
    Ok(QuoteInput {
        chain,
        asset,
        transfer: TransferSpec {
            asset: asset.clone(),
            recipient,
            amount_base_units: amount.base_units(),
        },
    })
}

fn charges(
    input: &QuoteInput<'_>,
    service_fee_bps: meshpay_domain::FeeBps,
    fee: &FeeEstimate,
) -> Result<Charges, ApiError> {
    // On OP-stack chains the L1 data fee is held too (0 elsewhere).
    let network_fee = Charges::network_fee_for(fee.gas_limit, fee.max_fee_per_gas_wei)
        .checked_add(meshpay_domain::Amount::from_base_units(
            meshpay_chain::U256::from(fee.l1_fee_wei),
        ))
        .ok_or_else(|| ApiError::validation("network fee out of range"))?;
    Charges::compute(
        input.asset.id().clone(),
        meshpay_domain::Amount::from_base_units(input.transfer.amount_base_units),
        service_fee_bps,
        input.chain.native.id().clone(),
        network_fee,
    )
    .map_err(|e| ApiError::validation(format!("amount: {e}")))
}

fn fee_error(error: FeeError) -> ApiError {
    match error {
        FeeError::GasTooHigh { .. } => ApiError::new(
            ErrorCode::UnsupportedAsset,
            "this token's transfer costs more gas than meshpay accepts",
        ),
        other => {
            tracing::warn!(error = %other, "fee estimation failed");
            ApiError::new(
                ErrorCode::UpstreamUnavailable,
                "the chain's RPC endpoint is unavailable; retry shortly",
            )
            .with_retry_after(2)
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/quotes/{id}",
    tag = "quotes",
    params(("id" = String, Path, description = "Quote id (`quo_…`)", pattern = "^quo_[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "The quote", body = QuoteView),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `quotes:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such quote for this merchant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["quotes:write"]))
)]
pub async fn get_quote(
    State(state): State<AppState>,
    auth: Auth<QuotesWrite>,
    PathId(id): PathId<QuoteId>,
) -> Result<Json<QuoteView>, ApiError> {
    let quote = state
        .store
        .get_quote(auth.merchant_id(), id)
        .await
        .map_err(|e| from_store(e, "quote", &state.chains))?
        .ok_or_else(|| ApiError::not_found("quote"))?;
    Ok(Json(Renderer::new(&state.chains).quote(&quote)?))
}
