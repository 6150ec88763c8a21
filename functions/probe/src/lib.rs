//! `probe`: `POST /api/probe` takes any JSON body and enqueues it on `probes` (binding `out`).
//! Because it has a queue output, the host never forwards it: it always arrives as an
//! envelope, and the shim carries the [`QueueOutputs`] back as `Outputs.out`.

use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use meshpay_shim::{FunctionJson, Problem, QueueOutputs};
use serde_json::Value;

pub const FUNCTION: FunctionJson = meshpay_shim::function_json!("probe");

pub const PATH: &str = "/api/probe";
/// Output binding name in function.json.
pub const OUTPUT: &str = "out";
/// Queue messages are at most 64 KB, about 48 KB of it usable after base64.
pub const MAX_BODY_BYTES: usize = 32 * 1024;

pub fn router() -> Router {
    Router::new()
        .route(PATH, post(probe))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn probe(body: Result<Json<Value>, JsonRejection>) -> Response {
    match body {
        Ok(Json(message)) => {
            let queued = QueueOutputs::new().with_json(OUTPUT, message.clone());
            (StatusCode::ACCEPTED, queued, Json(message)).into_response()
        }
        Err(rejection) => bad_body(&rejection),
    }
}

fn bad_body(rejection: &JsonRejection) -> Response {
    Problem::new(
        rejection.status(),
        "invalid_body",
        "Invalid probe body",
        rejection.body_text(),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::http::header::CONTENT_TYPE;
    use http_body_util::BodyExt as _;
    use serde_json::json;
    use tower::ServiceExt as _;

    #[test]
    fn function_json_declares_http_and_probes_queue_output() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.trigger().methods, ["post"]);
        assert_eq!(
            format!("/api/{}", def.trigger().route.as_deref().unwrap()),
            PATH
        );
        let out = def.output(OUTPUT).unwrap();
        assert_eq!(out.queue_name.as_deref(), Some("probes"));
        assert_eq!(out.connection.as_deref(), Some("AzureWebJobsStorage"));
        assert!(!def.is_http_forwardable());
    }

    #[tokio::test]
    async fn json_body_is_enqueued_and_echoed_with_202() {
        let request = Request::post(PATH)
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"n":1}"#))
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let queued = response.extensions().get::<QueueOutputs>().unwrap();
        assert_eq!(queued.get(OUTPUT).unwrap(), &[json!({"n": 1})]);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"n": 1})
        );
    }

    #[tokio::test]
    async fn invalid_json_gets_problem_and_enqueues_nothing() {
        let request = Request::post(PATH)
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from("{"))
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        assert!(response.extensions().get::<QueueOutputs>().is_none());
    }

    #[tokio::test]
    async fn oversized_body_is_refused() {
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let request = Request::post(PATH)
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(big))
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
