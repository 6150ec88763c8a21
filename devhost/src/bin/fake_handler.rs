//! A tiny custom handler for devhost's own tests (app in `devhost/tests/fixtures/app`).
//! It echoes what it receives so tests can check devhost's side of the protocol:
//! - `GET /api/hello/{name?}` (forwarded): JSON with method, path, query and host headers;
//! - `GET /api/crash` (forwarded): exits the process (restart test);
//! - `POST /submit` (http envelope + queue output `out` to `work`);
//! - `POST /worker` (queue `work`, output `seen`): fails on bodies containing `fail`, answers
//!   `text/plain` for `plain`, else writes `{"data": Data.msg, "metadata": Metadata}`;
//! - `POST /tick` (timer, output `out` to `ticks`): writes `{"timer": Data.timer}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
        .expect("FUNCTIONS_CUSTOMHANDLER_PORT")
        .parse()
        .expect("port number");
    let app = Router::new()
        .route("/", get(|| async { "fake handler" }))
        .route("/api/hello", get(hello))
        .route("/api/hello/{name}", get(hello))
        .route("/api/crash", get(crash))
        .route("/submit", post(submit))
        .route("/worker", post(worker))
        .route("/tick", post(tick));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("fake handler listening on {port}");
    axum::serve(listener, app).await.expect("serve");
}

fn header(headers: &HeaderMap, name: &str) -> Value {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, |v| json!(v))
}

async fn hello(uri: Uri, headers: HeaderMap, name: Option<Path<String>>) -> Json<Value> {
    Json(json!({
        "name": name.map(|Path(n)| n),
        "path": uri.path(),
        "query": uri.query(),
        "invocation_id": header(&headers, "x-azure-functions-invocationid"),
        "host_version": header(&headers, "x-azure-functions-hostversion"),
        "custom": header(&headers, "x-custom"),
        "env_setting": std::env::var("FAKE_FROM_LOCAL_SETTINGS").ok(),
        "app_root": std::env::var("FUNCTIONS_APP_ROOT_PATH").ok(),
    }))
}

async fn crash() -> &'static str {
    eprintln!("fake handler: crashing on purpose");
    std::process::exit(3);
}

async fn submit(Json(envelope): Json<Value>) -> Json<Value> {
    let req = &envelope["Data"]["req"];
    Json(json!({
        "Outputs": {
            "res": {
                "statusCode": "201",
                "headers": {"Content-Type": "application/json"},
                "body": {"received": req, "metadata": envelope["Metadata"]},
            },
            "out": {"from": "submit", "id": req["Params"]["id"], "body": req["Body"]},
        },
        "Logs": ["submit ran"],
        "ReturnValue": null,
    }))
}

/// `Data.msg` arrives double-encoded (`"\"text\""`) from devhost, as from the real host.
fn unwrap_host_string(value: &Value) -> String {
    let outer = value.as_str().unwrap_or_default();
    serde_json::from_str::<String>(outer).unwrap_or_else(|_| outer.to_owned())
}

async fn worker(Json(envelope): Json<Value>) -> Response {
    let text = unwrap_host_string(&envelope["Data"]["msg"]);
    if text.contains("fail") {
        return (StatusCode::INTERNAL_SERVER_ERROR, "failing on purpose").into_response();
    }
    if text.contains("plain") {
        return (StatusCode::OK, "2xx but not JSON").into_response();
    }
    Json(json!({
        "Outputs": {"seen": {"data": envelope["Data"]["msg"], "metadata": envelope["Metadata"]}},
        "Logs": [format!("worker saw {text}")],
    }))
    .into_response()
}

async fn tick(Json(envelope): Json<Value>) -> Json<Value> {
    Json(
        json!({"Outputs": {"out": {"timer": envelope["Data"]["timer"], "metadata": envelope["Metadata"]}}}),
    )
}
