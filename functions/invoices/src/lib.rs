//! `invoices`: `POST /api/invoices` (with an Idempotency-Key) creates an invoice whose deposit
//! address is the CREATE2 address of a forwarder of the chain's `DepositFactory`, computed here
//! from the invoice's id (nothing is deployed until there is something to sweep);
//! `GET /api/invoices/{id}` reads it with every transfer seen; `GET /api/invoices` lists the
//! merchant's invoices, newest first. Another merchant's invoice is a 404, like an unknown one.
//!
//! Replays: the same key with the same body (canonical JSON) returns the invoice it created,
//! as it is now, with `Idempotent-Replayed: true`; another body is a 422.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use meshpay_api::pagination::{PageRequest, TimeKey, encode_cursor, filter};
use meshpay_api::{
    ApiError, ApiJson, ApiQuery, AppState, Auth, ErrorCode, InvoicesRead, InvoicesWrite, PathId,
    Problem, from_store, merchant_data,
};
use meshpay_domain::InvoiceId;
use meshpay_payins::deposit::{DepositFactory, invoice_salt};
use meshpay_payins::views::{InvoiceRenderer, InvoiceStatusView, InvoiceView, pay_base};
use meshpay_shim::{Function, FunctionJson};
use meshpay_store::{CreateInvoiceOutcome, ListInvoices, NewInvoice, request_fingerprint};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, OpenApi, ToSchema};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("invoices");

pub use meshpay_api::idempotency::IDEMPOTENCY_KEY;
use meshpay_api::idempotency::idempotency_key;
/// Response header set on replayed responses.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// `expires_in` when none is given: one hour.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(3600);
/// Shortest and longest `expires_in`, seconds.
pub const EXPIRES_IN_RANGE: std::ops::RangeInclusive<u64> = 60..=7 * 24 * 3600;

/// `POST /api/invoices`, `GET /api/invoices`, `GET /api/invoices/{id}` (route `invoices/{id?}`).
pub fn function(state: AppState) -> Function {
    Function::http(FUNCTION, InvoicesApi::openapi)
        .on(Method::POST, create_invoice)
        .on(Method::GET, list_invoices)
        .on_with_optional(Method::GET, get_invoice)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(create_invoice, get_invoice, list_invoices),
    components(schemas(CreateInvoiceRequest, InvoiceView, InvoiceList, Problem))
)]
pub struct InvoicesApi;

/// What the payer is asked to pay.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoiceRequest {
    /// A configured chain with pay-ins ("anvil"): 1 to 32 of `a-z`, `0-9`, `-`.
    #[schema(example = "anvil", pattern = "^[a-z0-9-]{1,32}$")]
    pub chain: String,
    /// Asset symbol on that chain, exact case ("USDC", "ETH").
    #[schema(example = "USDC", pattern = "^[A-Z0-9]{1,16}$")]
    pub asset: String,
    /// Positive decimal string in the asset's units, at most the asset's decimals.
    #[schema(
        example = "25.00",
        max_length = 100,
        pattern = "^([0-9]*[1-9][0-9]*(\\.[0-9]+)?|[0-9]+\\.[0-9]*[1-9][0-9]*)$"
    )]
    pub amount: String,
    /// The merchant's own reference, 1 to 255 characters without control characters.
    #[schema(pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]{1,255}$")]
    pub reference: Option<String>,
    /// Any JSON object up to 4 KiB (serialized), returned as given.
    #[schema(schema_with = meshpay_api::openapi::metadata_schema, nullable = true)]
    pub metadata: Option<Map<String, Value>>,
    /// Seconds until the invoice expires, 60 to 604800 (default 3600). A payment after the
    /// expiry is still credited, and flagged (`paid_late`).
    #[schema(minimum = 60, maximum = 604800)]
    pub expires_in: Option<u64>,
}

/// A page of invoices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvoiceList {
    pub data: Vec<InvoiceView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Listing filters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only invoices in this status.
    #[param(inline, value_type = Option<InvoiceStatusView>)]
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/invoices",
    tag = "invoices",
    request_body = CreateInvoiceRequest,
    params(
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters; retries with the same key and body return the same invoice", pattern = "^[!-~]{1,255}$"),
    ),
    responses(
        (status = 201, description = "Invoice created (or the replay of an earlier creation)", body = InvoiceView, links(
            ("GetInvoice" = (operation_id = "get_invoice", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 400, description = "Malformed JSON or missing Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `invoices:write`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body, unsupported chain or asset, chain without pay-ins, or key reused with another body", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:write"]))
)]
pub async fn create_invoice(
    State(state): State<AppState>,
    auth: Auth<InvoicesWrite>,
    headers: HeaderMap,
    uri: Uri,
    body: ApiJson<CreateInvoiceRequest>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let request = &body.value;
    let chain = meshpay_api::money::chain(&state.chains, &request.chain)?;
    let factory = chain.deposit_factory.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedChain,
            format!("chain `{}` does not take pay-ins", chain.name),
        )
    })?;
    let (asset, amount) = meshpay_api::money::asset_amount(chain, &request.asset, &request.amount)?;
    merchant_data::validate(request.reference.as_deref(), request.metadata.as_ref())?;
    let expires_in = match request.expires_in {
        None => DEFAULT_EXPIRES_IN,
        Some(secs) if EXPIRES_IN_RANGE.contains(&secs) => Duration::from_secs(secs),
        Some(_) => {
            return Err(ApiError::validation(
                "expires_in must be between 60 and 604800 seconds",
            ));
        }
    };
    let raw: Value = meshpay_api::json::parse(&body.raw)?;
    let id = InvoiceId::unguessable();
    let salt = invoice_salt(id);
    let new = NewInvoice {
        merchant_id: auth.merchant_id(),
        idempotency_key,
        request_hash: request_fingerprint(&raw),
        asset: asset.id().clone(),
        amount,
        factory,
        id,
        salt,
        deposit_address: DepositFactory::at(factory).deposit_address(salt),
        reference: request.reference.clone(),
        metadata: request.metadata.clone().map(Value::Object),
        expires_at: state.clock.now() + expires_in,
    };
    let outcome = state
        .store
        .create_invoice(&new)
        .await
        .map_err(|e| from_store(e, "merchant", &state.chains))?;
    let base = pay_base(&headers);
    let renderer = InvoiceRenderer::new(&state.chains, &base);
    let (invoice, replayed) = match &outcome {
        CreateInvoiceOutcome::Created(invoice) => (invoice, false),
        CreateInvoiceOutcome::Replayed(invoice) => (invoice, true),
    };
    let view = renderer.invoice(invoice, None)?;
    let location = format!("{}/{}", uri.path().trim_end_matches('/'), invoice.id);
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/invoices/{id}",
    tag = "invoices",
    params(("id" = String, Path, description = "Invoice id (`inv_…`)", pattern = "^inv_[0-9a-fA-F]{32}$")),
    responses(
        (status = 200, description = "The invoice, with `payments`", body = InvoiceView),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `invoices:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invoice for this merchant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:read"]))
)]
pub async fn get_invoice(
    State(state): State<AppState>,
    auth: Auth<InvoicesRead>,
    headers: HeaderMap,
    PathId(id): PathId<InvoiceId>,
) -> Result<Json<InvoiceView>, ApiError> {
    let invoice = state
        .store
        .get_invoice(auth.merchant_id(), id)
        .await
        .map_err(|e| from_store(e, "invoice", &state.chains))?
        .ok_or_else(|| ApiError::not_found("invoice"))?;
    let payments = state
        .store
        .invoice_payments(invoice.id)
        .await
        .map_err(|e| from_store(e, "invoice", &state.chains))?;
    let base = pay_base(&headers);
    Ok(Json(
        InvoiceRenderer::new(&state.chains, &base).invoice(&invoice, Some(&payments))?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/invoices",
    tag = "invoices",
    params(ListParams),
    responses(
        (status = 200, description = "A page of invoices, newest first", body = InvoiceList),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Key lacks `invoices:read`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown parameter, bad status, limit or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["invoices:read"]))
)]
pub async fn list_invoices(
    State(state): State<AppState>,
    auth: Auth<InvoicesRead>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<InvoiceList>, ApiError> {
    let page = PageRequest::<TimeKey<InvoiceId>>::parse(params.limit, params.cursor.as_deref())?;
    let query = ListInvoices {
        status: filter("status", params.status.as_deref(), "an invoice status")?,
        limit: page.limit,
        before: page.before.map(Into::into),
    };
    let page = state
        .store
        .list_invoices(auth.merchant_id(), &query)
        .await
        .map_err(|e| from_store(e, "invoice", &state.chains))?;
    let base = pay_base(&headers);
    let renderer = InvoiceRenderer::new(&state.chains, &base);
    let data = page
        .items
        .iter()
        .map(|invoice| renderer.invoice(invoice, None))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(InvoiceList {
        data,
        next_cursor: page
            .next_cursor
            .map(|at_id| encode_cursor(&TimeKey::from(at_id))),
    }))
}
