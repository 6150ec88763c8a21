//! `health`: `GET /api/health`, anonymous. Liveness of the handler process only; it touches no
//! dependency, so a slow database never makes the host think the handler is down.

use axum::routing::get;
use axum::{Json, Router};
use meshpay_shim::FunctionJson;
use serde_json::{Value, json};

pub const FUNCTION: FunctionJson = meshpay_shim::function_json!("health");

/// Path served, from function.json's `route` under the `api` route prefix.
pub const PATH: &str = "/api/health";

pub fn router() -> Router {
    Router::new().route(PATH, get(health))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use meshpay_shim::{BindingType, TriggerKind};
    use tower::ServiceExt as _;

    #[test]
    fn function_json_is_an_anonymous_forwardable_get_on_the_served_path() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.trigger_kind(), TriggerKind::Http);
        let trigger = def.trigger();
        assert_eq!(trigger.auth_level.as_deref(), Some("anonymous"));
        assert_eq!(trigger.methods, ["get"]);
        assert_eq!(format!("/api/{}", trigger.route.as_deref().unwrap()), PATH);
        assert_eq!(def.http_output().unwrap().kind, BindingType::Http);
        assert!(def.is_http_forwardable());
    }

    #[tokio::test]
    async fn health_reports_ok_and_version() {
        let request = Request::get(PATH).body(Body::empty()).unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    }
}
