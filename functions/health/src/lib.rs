//! `health`: `GET /api/health`, anonymous. Liveness of the handler process only; it touches no
//! dependency, so a slow database never makes the host think the handler is down.

use axum::Json;
use axum::http::Method;
use meshpay_shim::{Function, FunctionJson};
use serde_json::{Value, json};
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("health");

pub fn function() -> Function {
    Function::http(FUNCTION, HealthApi::openapi)
        .on(Method::GET, health)
        .into()
}

/// This function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(health))]
pub struct HealthApi;

#[utoipa::path(
    get,
    path = "/api/health",
    tag = "health",
    responses(
        (status = 200, description = "The handler process is up: `{\"status\":\"ok\",\"version\":…}`", content_type = "application/json"),
    )
)]
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use meshpay_shim::{BindingType, FunctionApp, TriggerKind};
    use tower::ServiceExt as _;

    const PATH: &str = "/api/health";

    #[test]
    fn function_json_is_an_anonymous_forwardable_get_on_the_served_path() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.trigger_kind(), TriggerKind::Http);
        let trigger = def.trigger();
        assert_eq!(trigger.auth_level.as_deref(), Some("anonymous"));
        assert_eq!(trigger.methods, ["get"]);
        assert_eq!(trigger.route.as_deref(), Some("health"));
        assert_eq!(def.http_output().unwrap().kind, BindingType::Http);
        assert!(def.is_http_forwardable());
    }

    #[tokio::test]
    async fn health_reports_ok_and_version() {
        let request = Request::get(PATH).body(Body::empty()).unwrap();
        let app = FunctionApp::new().register(function()).build().unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    }
}
