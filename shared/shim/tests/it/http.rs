//! HTTP functions: forwarded requests and the envelope form, served by the same router.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use meshpay_shim::InvocationResponse;
use serde_json::{Value, json};

use crate::support::{fixture, invoke, send, test_app};

/// Replaces the trigger's URL so one fixture can target any registered route.
fn with_url(name: &str, url: &str) -> String {
    let mut envelope: Value = serde_json::from_str(fixture(name)).unwrap();
    envelope["Data"]["req"]["Url"] = json!(url);
    envelope.to_string()
}

/// `Outputs.res.body` of an envelope reply, parsed as the router's description.
fn described(reply: &Value) -> Value {
    serde_json::from_str(reply["Outputs"]["res"]["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn forwarded_request_reaches_the_router_unchanged() {
    let app = test_app();
    let request = Request::post("/api/order?x=1")
        .header("content-type", "application/json")
        .header("x-azure-functions-invocationid", "fwd-1")
        .body(Body::from("{\"a\":1}"))
        .unwrap();
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["origin"], "forwarded");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["uri"], "/api/order?x=1");
    assert_eq!(body["body_base64"], "eyJhIjoxfQ==");
}

#[tokio::test]
async fn docs_http_envelope_is_served_by_the_router_and_answered_as_outputs_res() {
    let app = test_app();
    let (status, content_type, reply) =
        send(&app, invoke("order", fixture("http-docs.json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let res = &reply["Outputs"]["res"];
    assert_eq!(res["statusCode"], "200");
    assert_eq!(res["headers"]["content-type"], "application/json");
    let seen = described(&reply);
    assert_eq!(seen["origin"], "envelope");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/api/order");
    assert_eq!(seen["content_type"], "application/json");
    assert_eq!(seen["invocation_id"], "inv-123");
    let body = base64_decode(&seen["body_base64"]);
    assert_eq!(body, br#"{"id":1005,"quantity":2,"color":"black"}"#);
}

#[tokio::test]
async fn core_tools_envelope_carries_identities_to_the_handler() {
    let app = test_app();
    let (status, _, reply) = send(&app, invoke("order", fixture("http-core-tools.json"))).await;
    assert_eq!(status, StatusCode::OK);
    let seen = described(&reply);
    assert_eq!(seen["uri"], "/api/endpoint");
    assert_eq!(seen["identities"], 1);
}

#[tokio::test]
async fn binary_request_body_is_base64_decoded_with_a_matching_length() {
    let app = test_app();
    let (status, _, reply) = send(&app, invoke("order", fixture("http-binary-body.json"))).await;
    assert_eq!(status, StatusCode::OK);
    let seen = described(&reply);
    assert_eq!(
        base64_decode(&seen["body_base64"]),
        [0x00, 0x01, 0xff, 0x80, 0x7f, 0x0a]
    );
    assert_eq!(seen["content_length"], "6");
    assert_eq!(seen["content_type"], "application/octet-stream");
}

#[tokio::test]
async fn route_params_and_query_reach_the_handler() {
    let app = test_app();
    let text = fixture("http-host-source-route-params.json");
    let (status, _, reply) = send(&app, invoke("order", text)).await;
    assert_eq!(status, StatusCode::OK);
    let seen = described(&reply);
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["uri"], "/api/payments/pay_42?expand=events&tag=a,b");
    assert_eq!(seen["params"], json!({"id": "pay_42"}));
}

#[tokio::test]
async fn queue_outputs_of_an_http_handler_travel_beside_outputs_res() {
    let app = test_app();
    let mut envelope: Value =
        serde_json::from_str(&with_url("http-docs.json", "http://h/api/enqueue")).unwrap();
    envelope["Data"]["req"]["Body"] = json!("{\"n\":1}");
    let (status, _, reply) = send(&app, invoke("enqueue", envelope.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    let expected: InvocationResponse =
        serde_json::from_str(fixture("response-http-with-queue-output.json")).unwrap();
    let actual: InvocationResponse = serde_json::from_value(reply).unwrap();
    assert_eq!(actual, expected);
}

#[tokio::test]
async fn queue_outputs_on_a_forwarded_request_fail_loudly() {
    let app = test_app();
    let request = Request::post("/api/enqueue")
        .header("content-type", "application/json")
        .body(Body::from("{\"n\":1}"))
        .unwrap();
    let (status, content_type, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["code"], "queue_outputs_on_forwarded_request");
}

#[tokio::test]
async fn http_handler_output_to_an_undeclared_binding_fails() {
    let app = test_app();
    let text = with_url("http-docs.json", "http://h/api/undeclared");
    let (status, _, body) = send(&app, invoke("undeclared", text)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], "undeclared_output_binding");
}

#[tokio::test]
async fn binary_response_cannot_be_enveloped_and_fails_the_invocation() {
    let app = test_app();
    let text = with_url("http-docs.json", "http://h/api/binary");
    let (status, _, body) = send(&app, invoke("binary", text)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], "unrepresentable_response");
}

#[tokio::test]
async fn return_named_http_output_is_answered_as_return_value() {
    let app = test_app();
    let text = with_url("http-docs.json", "http://h/api/created");
    let (status, _, reply) = send(&app, invoke("created", text)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["Outputs"], json!({}));
    let res = &reply["ReturnValue"];
    assert_eq!(res["statusCode"], "201");
    assert_eq!(res["headers"]["x-a"], "1, 2");
    assert_eq!(res["body"], "made");
}

#[tokio::test]
async fn envelope_with_an_unusable_url_gets_400() {
    let app = test_app();
    let text = with_url("http-docs.json", "not a url");
    let (status, _, body) = send(&app, invoke("order", text)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "malformed_invocation");
}

fn base64_decode(value: &Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
}
