//! Queue and timer envelopes through the whole service.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use meshpay_shim::{BuildError, Function, FunctionApp};
use serde_json::{Value, json};

use crate::support::{
    describing, fixture, http_function, invoke, queue_function, send, test_app, timer_function,
};

fn assert_problem(content_type: Option<String>, body: &Value, code: &str) {
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["code"], code, "{body}");
}

#[tokio::test]
async fn readiness_probe_on_root_answers_ok_at_once() {
    let app = test_app();
    let request = Request::get("/").body(Body::empty()).unwrap();
    let (status, _, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn docs_queue_invocation_reaches_the_handler_and_replies_json_outputs() {
    let app = test_app();
    let (status, content_type, body) = send(&app, invoke("echo", fixture("queue-docs.json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let out = &body["Outputs"]["out"];
    assert!(out.is_array(), "queue outputs are an array: {body}");
    assert_eq!(out[0]["message"], "{ message: \"Message sent\" }");
    assert_eq!(out[0]["metadata"]["DequeueCount"], 1);
    assert_eq!(
        out[0]["metadata"]["Id"],
        "800ae4b3-bdd2-4c08-badd-f08e5a34b865"
    );
    assert_eq!(out[0]["invocation_id"], "inv-123");
    assert_eq!(body["Logs"], json!(["echoed"]));
    assert_eq!(body["ReturnValue"], Value::Null);
}

#[tokio::test]
async fn double_encoded_queue_invocation_decodes_like_the_documented_form() {
    let app = test_app();
    let fixture_text = fixture("queue-host-source-double-encoded.json");
    let (status, _, body) = send(&app, invoke("echo", fixture_text)).await;
    assert_eq!(status, StatusCode::OK);
    let out = &body["Outputs"]["out"][0];
    assert_eq!(out["message"], json!({"probe": "p-1", "n": 2}));
    assert_eq!(out["metadata"]["DequeueCount"], 3);
    assert_eq!(
        out["metadata"]["Id"],
        "5f0d1c2e-9a8b-4c7d-8e6f-0a1b2c3d4e5f"
    );

    let (status, _, body) = send(&app, invoke("typed", fixture_text)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Outputs"]["out"], json!(["p-1", "n=2"]));
}

#[tokio::test]
async fn trigger_binding_name_comes_from_function_json() {
    let app = test_app();
    let (status, _, body) = send(
        &app,
        invoke("azfunc", fixture("queue-third-party-azfunc.json")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["Outputs"]["out"][0]["message"],
        json!({"message": "hello", "number": 2})
    );
}

#[tokio::test]
async fn handler_error_fails_the_invocation_with_500_and_no_outputs() {
    let app = test_app();
    let envelope =
        json!({"Data": {"myQueueItem": "{\"fail\":true}"}, "Metadata": {"DequeueCount": "2"}});
    let (status, content_type, body) = send(&app, invoke("echo", envelope.to_string())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_problem(content_type, &body, "handler_failed");
    assert!(body.get("Outputs").is_none());
    assert!(
        !body.to_string().contains("secret-free reason"),
        "error text stays in the log"
    );
}

#[tokio::test]
async fn handler_panic_fails_the_invocation_with_500() {
    let app = test_app();
    let envelope = json!({"Data": {"myQueueItem": "{\"panic\":true}"}, "Metadata": {}});
    let (status, content_type, body) = send(&app, invoke("echo", envelope.to_string())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_problem(content_type, &body, "handler_panicked");
}

#[tokio::test]
async fn message_that_is_not_the_handler_type_is_rejected_for_retry_and_poison() {
    let app = test_app();
    let envelope = json!({"Data": {"myQueueItem": "{\"probe\":1}"}, "Metadata": {}});
    let (status, content_type, body) = send(&app, invoke("typed", envelope.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(content_type, &body, "invalid_message");
    assert!(body["detail"].as_str().unwrap().contains("Probe"), "{body}");
}

#[tokio::test]
async fn malformed_invocation_json_gets_400_with_a_clear_message() {
    let app = test_app();
    for bad in ["{\"Data\":", "not json", "[1,2]", "{\"Data\": 5}"] {
        let (status, content_type, body) = send(&app, invoke("echo", bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("not an invocation"), "{bad}: {detail}");
        assert_problem(content_type, &body, "malformed_invocation");
    }
}

#[tokio::test]
async fn envelope_without_the_trigger_binding_gets_400() {
    let app = test_app();
    let envelope = json!({"Data": {"other": "x"}, "Metadata": {}});
    let (status, content_type, body) = send(&app, invoke("echo", envelope.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem(content_type, &body, "malformed_invocation");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Data.myQueueItem")
    );

    let timer = json!({"Data": {"timer": 5}, "Metadata": {}});
    let (status, _, _) = send(&app, invoke("tick", timer.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_function_name_gets_404() {
    let app = test_app();
    let (status, content_type, body) = send(&app, invoke("nope", fixture("queue-docs.json"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(content_type, &body, "unknown_function");
}

#[tokio::test]
async fn envelope_over_the_body_limit_gets_413() {
    let app = test_app();
    let big = json!({"Data": {"myQueueItem": "x".repeat(70 * 1024)}, "Metadata": {}});
    let (status, content_type, body) = send(&app, invoke("echo", big.to_string())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem(content_type, &body, "payload_too_large");
}

#[tokio::test]
async fn body_arriving_in_many_chunks_is_read_whole() {
    let app = test_app();
    let text = fixture("queue-docs.json");
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = text
        .as_bytes()
        .chunks(7)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let body = Body::from_stream(futures::stream::iter(chunks));
    let (status, _, _) = send(&app, invoke("echo", body)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn undeclared_output_binding_fails_instead_of_dropping_messages() {
    let app = test_app();
    let envelope = json!({"Data": {"myQueueItem": "{\"undeclared\":true}"}, "Metadata": {}});
    let (status, content_type, body) = send(&app, invoke("echo", envelope.to_string())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_problem(content_type, &body, "undeclared_output_binding");
}

#[tokio::test]
async fn timer_invocations_carry_schedule_status_and_past_due_flag() {
    let app = test_app();
    let (status, _, body) = send(&app, invoke("tick", fixture("timer-captured.json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Outputs"]["out"][0]["ScheduleStatus"], Value::Null);
    assert_eq!(body["ReturnValue"], "ticked");

    let (status, _, body) = send(&app, invoke("tick", fixture("timer-monitored.json"))).await;
    assert_eq!(status, StatusCode::OK);
    let timer = &body["Outputs"]["out"][0];
    assert_eq!(timer["ScheduleStatus"]["Next"], "2016-10-04T10:20:00Z");
    assert_eq!(timer["IsPastDue"], false);
}

#[test]
fn registering_a_function_under_the_wrong_trigger_kind_fails_the_build() {
    let error = FunctionApp::new()
        .register(Function::timer(queue_function("q", "m"), |_| async {
            Ok::<_, String>(Default::default())
        }))
        .build()
        .unwrap_err();
    assert!(matches!(error, BuildError::WrongTrigger { .. }), "{error}");
}

#[test]
fn registering_a_name_twice_fails_the_build() {
    let error = FunctionApp::new()
        .register(describing(http_function("dup", "a", "res", &[])))
        .register(Function::timer(timer_function("dup"), |_| async {
            Ok::<_, String>(Default::default())
        }))
        .build()
        .unwrap_err();
    assert!(matches!(error, BuildError::Duplicate(_)), "{error}");
}

#[test]
fn function_named_like_the_route_prefix_fails_the_build() {
    let error = FunctionApp::new()
        .register(describing(http_function("api", "a", "res", &[])))
        .build()
        .unwrap_err();
    assert!(
        matches!(error, BuildError::ShadowsRoutePrefix(_)),
        "{error}"
    );
}
