//! `probe`: `POST /api/probe` takes any JSON body and enqueues it on `probes` (binding `out`).
//! Because it has a queue output, the host never forwards it: it always arrives as an
//! envelope, and the shim carries the [`QueueOutputs`] back as `Outputs.out`.

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::JsonRejection;
use axum::handler::Handler as _;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use meshpay_shim::{Function, FunctionJson, Problem, QueueOutputs};
use serde_json::Value;
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("probe");
/// Output binding name in function.json.
pub const OUTPUT: &str = "out";
/// Queue messages are at most 64 KB, about 48 KB of it usable after base64.
pub const MAX_BODY_BYTES: usize = 32 * 1024;

pub fn function() -> Function {
    let handler = probe.layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Function::http(FUNCTION, ProbeApi::openapi)
        .on(Method::POST, handler)
        .into()
}

/// This function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(probe))]
pub struct ProbeApi;

#[utoipa::path(
    post,
    path = "/api/probe",
    tag = "diagnostics",
    request_body(content = serde_json::Value, description = "Any JSON value, at most 32 KiB", content_type = "application/json"),
    responses(
        (status = 202, description = "Enqueued on `probes`; the body is echoed", content_type = "application/json"),
        (status = 400, description = "Malformed JSON", content_type = "application/problem+json"),
        (status = 413, description = "Body over 32 KiB", content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", content_type = "application/problem+json"),
    )
)]
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

    const PATH: &str = "/api/probe";

    fn router() -> axum::Router {
        meshpay_shim::FunctionApp::new()
            .register(function())
            .http_router()
            .unwrap()
    }

    #[test]
    fn function_json_declares_http_and_probes_queue_output() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.trigger().methods, ["post"]);
        assert_eq!(def.trigger().route.as_deref(), Some("probe"));
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
