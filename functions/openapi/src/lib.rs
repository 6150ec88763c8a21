//! `openapi`: `GET /api/openapi.json`, the OpenAPI 3.1 document generated from the handlers'
//! `#[utoipa::path]` attributes and the view types, so the spec cannot drift from the code.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use meshpay_api::openapi::{BearerSecurity, DefaultProblemResponse, JsonValueSchema};
use utoipa::Modify;
use meshpay_shim::FunctionJson;
use utoipa::OpenApi;

pub const FUNCTION: FunctionJson = meshpay_shim::function_json!("openapi");

pub const PATH: &str = "/api/openapi.json";

/// Stateless: mounts on any router state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route(PATH, get(openapi_json))
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
        (name = "webhooks", description = "Webhook endpoints and their delivery log"),
    )
)]
struct BaseApi;

/// The whole document: every HTTP function's paths and schemas.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = BaseApi::openapi();
    doc.merge(meshpay_fn_quotes::QuotesApi::openapi());
    doc.merge(meshpay_fn_authorize::AuthorizeApi::openapi());
    doc.merge(meshpay_fn_payments::PaymentsApi::openapi());
    doc.merge(meshpay_fn_cancel::CancelApi::openapi());
    doc.merge(meshpay_fn_balances::BalancesApi::openapi());
    doc.merge(meshpay_fn_webhook_endpoints::WebhookEndpointsApi::openapi());
    doc.merge(meshpay_fn_webhook_deliveries::WebhookDeliveriesApi::openapi());
    DefaultProblemResponse.modify(&mut doc);
    doc
}

/// Rendered once: the document is a constant of the build.
static DOCUMENT_JSON: LazyLock<Result<String, String>> =
    LazyLock::new(|| meshpay_api::openapi::to_json(&document()).map_err(|e| e.to_string()));

async fn openapi_json() -> Response {
    match &*DOCUMENT_JSON {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response(),
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
    use serde_json::Value;
    use tower::ServiceExt as _;

    async fn served() -> Value {
        let response = router::<()>()
            .oneshot(Request::get(PATH).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn document_is_openapi_3_1_with_every_route() {
        let doc = served().await;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = &doc["paths"];
        for (path, method) in [
            ("/api/quotes", "post"),
            ("/api/quotes/{id}", "get"),
            ("/api/payments", "post"),
            ("/api/payments", "get"),
            ("/api/payments/{id}", "get"),
            ("/api/payments/{id}/cancel", "post"),
            ("/api/balances", "get"),
        ] {
            assert!(paths[path][method].is_object(), "{method} {path} missing");
        }
    }

    #[tokio::test]
    async fn every_operation_requires_the_bearer_scheme_and_documents_401() {
        let doc = served().await;
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert_eq!(
                    op["security"][0]["api_key"],
                    serde_json::json!([]),
                    "{method} {path}"
                );
                let unauthorized = &op["responses"]["401"]["content"]["application/problem+json"];
                assert!(
                    unauthorized.is_object(),
                    "{method} {path} lacks a problem+json 401"
                );
            }
        }
    }

    #[tokio::test]
    async fn schemas_referenced_by_operations_exist() {
        let doc = served().await;
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "Problem",
            "ErrorCode",
            "QuoteView",
            "PaymentView",
            "PaymentList",
            "BalanceList",
            "Money",
        ] {
            assert!(schemas.contains_key(name), "schema {name} missing");
        }
        // every $ref points into components/schemas and resolves
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}
