//! `openapi`: `GET /api/openapi.json`, the OpenAPI 3.1 document generated from the handlers'
//! `#[utoipa::path]` attributes and the view types, so the spec cannot drift from the code.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use meshpay_api::openapi::{BearerSecurity, DefaultProblemResponse, JsonValueSchema};
use meshpay_shim::FunctionJson;
use utoipa::Modify;
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
            ("/api/webhook-endpoints", "post"),
            ("/api/webhook-endpoints", "get"),
            ("/api/webhook-endpoints/{id}", "get"),
            ("/api/webhook-endpoints/{id}", "delete"),
            ("/api/webhook-deliveries", "get"),
            ("/api/webhook-deliveries/{id}", "get"),
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
    async fn every_operation_has_a_problem_json_default_listing_the_stable_codes() {
        let doc = served().await;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let schema = &op["responses"]["default"]["content"]["application/problem+json"]["schema"]
                    ["$ref"];
                assert_eq!(schema, "#/components/schemas/Problem", "{method} {path}");
            }
        }
        let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(codes, 21);
    }

    #[tokio::test]
    async fn parameters_state_the_bounds_the_handlers_enforce() {
        let doc = served().await;
        let param = |path: &str, method: &str, name: &str| -> Value {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{method} {path} lacks {name}"))["schema"]
                .clone()
        };
        let limit = param("/api/payments", "get", "limit");
        assert_eq!(
            (limit["minimum"].as_u64(), limit["maximum"].as_u64()),
            (Some(1), Some(100))
        );
        assert_eq!(
            param("/api/payments", "post", "Idempotency-Key")["pattern"],
            "^[!-~]{1,255}$"
        );
        assert_eq!(
            param("/api/payments/{id}/cancel", "post", "id")["pattern"],
            "^pay_[0-9a-fA-F]{32}$"
        );
        assert_eq!(
            param("/api/payments", "get", "status")["enum"][1],
            "authorized"
        );
        let quote = &doc["components"]["schemas"]["CreateQuoteRequest"]["properties"];
        assert_eq!(quote["recipient"]["pattern"], "^0x[0-9a-fA-F]{40}$");
        assert!(quote["amount"]["pattern"].is_string());
    }

    #[tokio::test]
    async fn created_resources_link_to_the_operations_on_their_id() {
        let doc = served().await;
        let links = |path: &str| doc["paths"][path]["post"]["responses"]["201"]["links"].clone();
        let payment = links("/api/payments");
        assert_eq!(payment["GetPayment"]["operationId"], "get_payment");
        assert_eq!(payment["CancelPayment"]["operationId"], "cancel_payment");
        assert_eq!(
            payment["CancelPayment"]["parameters"]["id"],
            "$response.body#/id"
        );
        let endpoint = links("/api/webhook-endpoints");
        assert_eq!(endpoint["GetEndpoint"]["operationId"], "get_endpoint");
        assert_eq!(endpoint["DeleteEndpoint"]["operationId"], "delete_endpoint");
        let quote = links("/api/quotes");
        assert_eq!(
            quote["AuthorizePayment"]["requestBody"]["quote_id"],
            "$response.body#/id"
        );
        // Every link names an operation of the document.
        let text = doc.to_string();
        for piece in text.split("\"operationId\":\"").skip(1) {
            let id = piece.split('"').next().unwrap();
            let declared = doc["paths"].as_object().unwrap().values().any(|item| {
                item.as_object()
                    .unwrap()
                    .values()
                    .any(|op| op["operationId"] == id)
            });
            assert!(declared, "link to unknown operation {id}");
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
