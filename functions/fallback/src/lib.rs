//! `fallback`: route `{*path}` with no method list, so the host forwards every request that no
//! other HTTP function takes (the host prefers literal and parameter routes over a catch-all,
//! and skips a route whose method list lacks the request's method). It mounts nothing itself:
//! the handler's router answers what the host could not, with the API's problem shape:
//! - a known path with a method its function does not serve: 405 with `Allow` (the host alone
//!   can only say 404 there, since methods are filtered per function);
//! - an unknown path: 404 `not_found`.

use meshpay_shim::{Function, FunctionJson};
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("fallback");

pub fn function() -> Function {
    Function::http(FUNCTION, FallbackApi::openapi).into()
}

/// No operations of its own: the document describes the routes it backs up.
#[derive(OpenApi)]
pub struct FallbackApi;

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use http_body_util::BodyExt as _;
    use meshpay_shim::FunctionApp;
    use tower::ServiceExt as _;

    #[test]
    fn function_json_is_a_catch_all_for_every_method() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.trigger().route.as_deref(), Some("{*path}"));
        assert!(def.trigger().methods.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_path_forwarded_here_is_a_problem_json_404() {
        let app = FunctionApp::new().register(function()).build().unwrap();
        let request = Request::builder()
            .method(Method::GET)
            .uri("/api/no/such/thing")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "not_found");
    }
}
