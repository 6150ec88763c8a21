//! `openapi`: `GET /api/openapi.json`, the OpenAPI 3.1 document. Its paths are the fragments
//! every registered HTTP function carries (the shim merges them and checks each against the
//! routes the function serves), so the document lists exactly what is registered.

use axum::Extension;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meshpay_api::openapi::{BearerSecurity, DefaultProblemResponse, JsonValueSchema};
use meshpay_shim::{ApiDocument, Function, FunctionJson};
use utoipa::Modify;
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("openapi");

/// `GET /api/openapi.json`. Stateless.
pub fn function() -> Function {
    Function::http(FUNCTION, DocumentApi::openapi)
        .on(Method::GET, openapi_json)
        .into()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "meshpay",
        license(name = "Proprietary"),
        description = "Crypto payments API. Amounts are decimal strings (`value` in the asset's \
            units, `base_units` as an integer). Errors are RFC 9457 `application/problem+json` \
            with a stable `code`. Network fees are in the chain's native asset; a token payment \
            debits the token and the native asset (see `total_debit`).",
    ),
    modifiers(&BearerSecurity, &JsonValueSchema),
    tags(
        (name = "quotes", description = "Price a payment"),
        (name = "payments", description = "Authorize, read and cancel payments"),
        (name = "balances", description = "Merchant balances"),
        (name = "webhooks", description = "Merchant webhook endpoints and their deliveries"),
        (name = "chain webhooks", description = "Transaction notifications from chain data providers"),
        (name = "health", description = "Liveness of the handler"),
        (name = "diagnostics", description = "Development probes (not in the production package)"),
        (name = "document", description = "This document"),
    )
)]
struct BaseApi;

/// This function's part of the document.
#[derive(OpenApi)]
#[openapi(paths(openapi_json))]
pub struct DocumentApi;

/// The whole document: the base (info, tags, security scheme) and every registered HTTP
/// function's paths and schemas.
pub fn document(registered: &ApiDocument) -> utoipa::openapi::OpenApi {
    let mut document = BaseApi::openapi();
    document.merge(registered.paths().clone());
    DefaultProblemResponse.modify(&mut document);
    document
}

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "document",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json"),
    )
)]
async fn openapi_json(Extension(registered): Extension<ApiDocument>) -> Response {
    match meshpay_api::openapi::to_json(&document(&registered)) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => {
            tracing::error!(%error, "OpenAPI document does not serialize");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use meshpay_shim::FunctionApp;
    use serde_json::Value;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn document_is_openapi_3_1_with_the_base_and_the_registered_paths() {
        let app = FunctionApp::new().register(function()).build().unwrap();
        let request = Request::get("/api/openapi.json")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(doc["info"]["title"], "meshpay");
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        assert!(doc["paths"]["/api/openapi.json"]["get"].is_object());
    }
}
