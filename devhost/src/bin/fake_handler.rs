//! A tiny custom handler for devhost's own tests (app in `devhost/tests/fixtures/app`).
//! It echoes what it receives so tests can check devhost's side of the protocol:
//! - `GET /api/hello/{name?}` (forwarded): JSON with method, path, query and host headers;
//! - `GET /api/crash` (forwarded): exits the process (restart test);
//! - `GET /api/wait/hang` (forwarded): never answers (function timeout test);
//! - `GET /api/wait/release` (forwarded): answers once the file named by `FAKE_RELEASE_FILE`
//!   exists;
//! - with `FAKE_CRASH_STARTS=N` and `FAKE_START_COUNT_FILE`, the first N starts exit before
//!   listening (recycling test);
//! - `POST /api/echo` (forwarded): the body it received and its framing headers;
//! - `POST /submit` (http envelope + queue output `out` to `work`; `?shout` names it `OUT`);
//! - `POST /worker` (queue `work`, output `seen`): fails on bodies containing `fail`, answers
//!   `text/plain` for `plain`, else writes `{"data": Data.msg, "metadata": Metadata}`;
//! - `POST /tick` (timer, output `out` to `ticks`): writes `{"timer": Data.timer}`;
//! - `POST /monitored` (monitored timer, output `out` to `monitored`): the same.
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
    crash_on_early_starts();
    let app = Router::new()
        .route("/", get(|| async { "fake handler" }))
        .route("/api/hello", get(hello))
        .route("/api/hello/{name}", get(hello))
        .route("/api/crash", get(crash))
        .route("/api/echo", post(echo))
        .route("/api/wait/{mode}", get(wait))
        .route("/submit", post(submit))
        .route("/worker", post(worker))
        .route("/tick", post(tick))
        .route("/monitored", post(tick));
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

/// Counts starts in `FAKE_START_COUNT_FILE` and exits while the count is within
/// `FAKE_CRASH_STARTS`.
fn crash_on_early_starts() {
    let (Ok(limit), Ok(file)) = (
        std::env::var("FAKE_CRASH_STARTS"),
        std::env::var("FAKE_START_COUNT_FILE"),
    ) else {
        return;
    };
    let limit: u32 = limit.parse().expect("FAKE_CRASH_STARTS");
    let starts = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    std::fs::write(&file, starts.to_string()).expect("start count file");
    if starts <= limit {
        eprintln!("fake handler: start {starts} of {limit} crashing on purpose");
        std::process::exit(4);
    }
}

async fn wait(Path(mode): Path<String>) -> Response {
    if mode == "hang" {
        return std::future::pending().await;
    }
    let file = std::env::var("FAKE_RELEASE_FILE").expect("FAKE_RELEASE_FILE");
    while !std::path::Path::new(&file).exists() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (StatusCode::OK, "released").into_response()
}

async fn echo(headers: HeaderMap, body: String) -> Json<Value> {
    Json(json!({
        "body": body,
        "content_length": header(&headers, "content-length"),
        "transfer_encoding": header(&headers, "transfer-encoding"),
    }))
}

async fn crash() -> &'static str {
    eprintln!("fake handler: crashing on purpose");
    std::process::exit(3);
}

async fn submit(Json(envelope): Json<Value>) -> Json<Value> {
    let req = &envelope["Data"]["req"];
    // `?shout` names the queue output `OUT` instead of the binding's `out`.
    let queue_output = if req["Query"].get("shout").is_some() {
        "OUT"
    } else {
        "out"
    };
    let mut answer = json!({
        "Outputs": {
            "res": {
                "statusCode": "201",
                "headers": {"Content-Type": "application/json"},
                "body": {"received": req, "metadata": envelope["Metadata"]},
            },
        },
        "Logs": ["submit ran"],
        "ReturnValue": null,
    });
    answer["Outputs"][queue_output] =
        json!({"from": "submit", "id": req["Params"]["id"], "body": req["Body"]});
    Json(answer)
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
