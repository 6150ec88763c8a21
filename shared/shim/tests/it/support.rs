//! Shared test app: HTTP functions whose handler describes each request it receives (one of
//! them on a catch-all route), and functions of every kind.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use meshpay_shim::{
    Function, FunctionApp, FunctionJson, HttpOrigin, Outputs, QueueInvocation, QueueOutputs,
    TimerInvocation, with_queue_output,
};
use serde::Deserialize;
use serde_json::{Value, json};

macro_rules! fixture_table {
    ($($name:literal),* $(,)?) => {
        pub const FIXTURES: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../fixtures/", $name)))),*
        ];
    };
}

fixture_table!(
    "http-binary-body.json",
    "http-core-tools.json",
    "http-docs.json",
    "http-host-source-route-params.json",
    "queue-docs.json",
    "queue-host-source-double-encoded.json",
    "queue-third-party-azfunc.json",
    "response-docs-order.json",
    "response-docs.json",
    "response-http-with-queue-output.json",
    "timer-captured.json",
    "timer-monitored.json",
);

pub fn fixture(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// An HTTP function on `route`, with extra output bindings (JSON objects) after `res`.
pub fn http_function(
    name: &'static str,
    route: &str,
    out_name: &str,
    extra: &[Value],
) -> FunctionJson {
    let mut bindings = vec![
        json!({"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous",
               "methods": ["get", "post"], "route": route}),
        json!({"type": "http", "direction": "out", "name": out_name}),
    ];
    bindings.extend(extra.iter().cloned());
    FunctionJson::new(name, leak(json!({ "bindings": bindings }).to_string()))
}

pub fn queue_output(name: &str) -> Value {
    json!({"type": "queue", "direction": "out", "name": name, "queueName": "results",
           "connection": "AzureWebJobsStorage"})
}

pub fn queue_function(name: &'static str, binding: &str) -> FunctionJson {
    let bindings = json!([
        {"type": "queueTrigger", "direction": "in", "name": binding, "queueName": "work",
         "connection": "AzureWebJobsStorage"},
        queue_output("out"),
    ]);
    FunctionJson::new(name, leak(json!({ "bindings": bindings }).to_string()))
}

pub fn timer_function(name: &'static str) -> FunctionJson {
    let bindings = json!([
        {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "*/5 * * * * *"},
        queue_output("out"),
    ]);
    FunctionJson::new(name, leak(json!({ "bindings": bindings }).to_string()))
}

/// Describes the request as JSON, so tests can assert what the app router received.
async fn describe(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let origin = parts
        .extensions
        .get::<HttpOrigin>()
        .cloned()
        .unwrap_or(HttpOrigin::Forwarded);
    let (origin, params, identities, invocation_id) = match origin {
        HttpOrigin::Forwarded => ("forwarded", json!({}), 0, Value::Null),
        HttpOrigin::Envelope(ctx) => (
            "envelope",
            json!(ctx.params),
            ctx.identities.len(),
            json!(ctx.invocation.invocation_id),
        ),
    };
    let header = |name: &str| -> Option<String> {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, content_length) = (header("content-type"), header("content-length"));
    let (method, uri, path) = (
        parts.method.to_string(),
        parts.uri.to_string(),
        parts.uri.path().to_owned(),
    );
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let description = json!({
        "origin": origin, "method": method, "uri": uri, "params": params,
        "identities": identities, "invocation_id": invocation_id,
        "content_type": content_type, "content_length": content_length,
        "body_base64": base64::engine::general_purpose::STANDARD.encode(&body),
    });
    match path.as_str() {
        "/api/enqueue" => {
            let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let parts = QueueOutputs::new().with_json("out", message.clone());
            (StatusCode::ACCEPTED, parts, Json(message)).into_response()
        }
        "/api/undeclared" => with_queue_output(Json(description), "nope", json!(1)),
        "/api/binary" => (StatusCode::OK, vec![0xffu8, 0xfe]).into_response(),
        "/api/created" => {
            let mut response = (StatusCode::CREATED, "made").into_response();
            response.headers_mut().append("x-a", "1".parse().unwrap());
            response.headers_mut().append("x-a", "2".parse().unwrap());
            response
        }
        _ => Json(description).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct Probe {
    pub probe: String,
    pub n: u32,
}

async fn echo(invocation: QueueInvocation<Value>) -> Result<Outputs, String> {
    if invocation.message.get("fail") == Some(&json!(true)) {
        return Err(format!(
            "asked to fail: secret-free reason {}",
            invocation.metadata.dequeue_count.unwrap_or(0)
        ));
    }
    if invocation.message.get("panic") == Some(&json!(true)) {
        panic!("handler panic on purpose");
    }
    if invocation.message.get("undeclared") == Some(&json!(true)) {
        return Ok(Outputs::new().message_json("nope", json!(1)));
    }
    let metadata = serde_json::to_value(&invocation.metadata).unwrap();
    Ok(Outputs::new()
        .message_json(
            "out",
            json!({"message": invocation.message, "metadata": metadata,
            "invocation_id": invocation.context.invocation_id}),
        )
        .log("echoed"))
}

async fn typed(invocation: QueueInvocation<Probe>) -> Result<Outputs, std::io::Error> {
    let sent = [
        invocation.message.probe.clone(),
        format!("n={}", invocation.message.n),
    ];
    Outputs::new()
        .messages("out", &sent)
        .map_err(std::io::Error::other)
}

async fn tick(invocation: TimerInvocation) -> Result<Outputs, std::convert::Infallible> {
    let timer = serde_json::to_value(&invocation.timer).unwrap();
    Ok(Outputs::new()
        .message_json("out", timer)
        .return_value(json!("ticked")))
}

/// No paths documented: the shim only refuses fragments that document what is not served.
pub fn no_paths() -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApi::default()
}

/// An HTTP function on `function`'s route answering GET and POST with [`describe`].
pub fn describing(function: FunctionJson) -> Function {
    Function::http(function, no_paths)
        .on(Method::GET, describe)
        .on(Method::POST, describe)
        .into()
}

pub fn test_app() -> Router {
    FunctionApp::new()
        .register(describing(http_function("order", "{*rest}", "res", &[])))
        .register(describing(http_function(
            "enqueue",
            "enqueue",
            "res",
            &[queue_output("out")],
        )))
        .register(describing(http_function(
            "undeclared",
            "undeclared",
            "res",
            &[queue_output("out")],
        )))
        .register(describing(http_function("binary", "binary", "res", &[])))
        .register(describing(http_function(
            "created",
            "created",
            "$return",
            &[],
        )))
        .register(Function::queue(queue_function("echo", "myQueueItem"), echo))
        .register(Function::queue(queue_function("azfunc", "queue"), echo))
        .register(Function::queue(
            queue_function("typed", "myQueueItem"),
            typed,
        ))
        .register(Function::timer(timer_function("tick"), tick))
        .envelope_limit_bytes(64 * 1024)
        .build()
        .unwrap()
}

pub async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    use tower::ServiceExt as _;
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
    };
    (status, content_type, body)
}

pub fn invoke(function: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(format!("/{function}"))
        .header("content-type", "application/json; charset=utf-8")
        .header("x-azure-functions-invocationid", "inv-123")
        .body(body.into())
        .unwrap()
}
