//! Shim overhead: the same axum route called bare, forwarded through the shim, and as an
//! envelope invocation (HTTP and queue), over loopback with one keep-alive client.
//! Prints median and p99 per path; asserts nothing. Run: `cargo bench -p meshpay-shim`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshpay_shim::{Function, FunctionApp, FunctionJson, Outputs, QueueInvocation};
use serde_json::{Value, json};

const WARMUP: usize = 1_000;
const REQUESTS: usize = 20_000;

const ECHO_FUNCTION: &str = r#"{"bindings":[
  {"type":"httpTrigger","direction":"in","name":"req","methods":["post"],"route":"echo"},
  {"type":"http","direction":"out","name":"res"}]}"#;
const QUEUE_FUNCTION: &str = r#"{"bindings":[
  {"type":"queueTrigger","direction":"in","name":"message","queueName":"q"},
  {"type":"queue","direction":"out","name":"out","queueName":"r"}]}"#;
const BODY: &str = r#"{"payment":"pay_01J0000000000000000000000","amount":"1000000"}"#;

async fn echo(Json(body): Json<Value>) -> Json<Value> {
    Json(body)
}

async fn queue_echo(invocation: QueueInvocation<Value>) -> Result<Outputs, String> {
    Ok(Outputs::new().message_json("out", invocation.message))
}

fn router() -> Router {
    Router::new().route("/api/echo", post(echo))
}

async fn start(app: Router) -> SocketAddr {
    let listener = meshpay_shim::bind_loopback(0).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(meshpay_shim::serve(listener, app, std::future::pending()));
    addr
}

/// An HTTP envelope shaped like the host's (headers included), for `/api/echo`.
fn http_envelope() -> String {
    json!({"Data": {"req": {
        "Url": "http://localhost:7071/api/echo", "Method": "POST", "Query": {},
        "Headers": {"Content-Type": ["application/json"], "Host": ["localhost:7071"],
                    "User-Agent": ["curl/8.5.0"], "Accept": ["*/*"]},
        "Params": {}, "Identities": [], "Body": BODY}},
      "Metadata": {"Query": {}, "Headers": {"Content-Type": "application/json"},
        "sys": {"MethodName": "echo", "UtcNow": "2024-05-01T10:00:00.1234567Z",
                "RandGuid": "0d3c6a4e-56f1-4c6c-9d55-2f0a8c3b9e10"}}})
    .to_string()
}

/// A queue envelope in the host-source encoding.
fn queue_envelope() -> String {
    json!({"Data": {"message": serde_json::to_string(BODY).unwrap()},
      "Metadata": {"DequeueCount": "1", "Id": "\"5f0d1c2e-9a8b-4c7d-8e6f-0a1b2c3d4e5f\"",
        "InsertionTime": "2024-05-01T10:00:00+00:00", "ExpirationTime": "2024-05-08T10:00:00+00:00",
        "NextVisibleTime": "2024-05-01T10:10:30+00:00", "PopReceipt": "\"AgAAAAMAAAAAAAAA2bRk1gmc2gE=\"",
        "sys": {"MethodName": "probe-worker", "UtcNow": "2024-05-01T10:00:30.5Z",
                "RandGuid": "c2a3b4d5-e6f7-4a8b-9c0d-1e2f3a4b5c6d"}}})
    .to_string()
}

struct Stats {
    median: Duration,
    p99: Duration,
}

async fn measure(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: &'static str,
) -> Stats {
    let mut samples = Vec::with_capacity(REQUESTS);
    for i in 0..WARMUP + REQUESTS {
        let request = http::Request::post(url)
            .header("content-type", "application/json")
            .header("x-azure-functions-invocationid", "bench")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let started = Instant::now();
        let response = client.request(request).await.unwrap();
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.into_body().collect().await.unwrap();
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    samples.sort_unstable();
    Stats {
        median: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let echo_function = Function::http(
        FunctionJson::new("echo", ECHO_FUNCTION),
        utoipa::openapi::OpenApi::default,
    )
    .on(axum::http::Method::POST, echo);
    let shim = FunctionApp::new()
        .register(echo_function)
        .register(Function::queue(
            FunctionJson::new("worker", QUEUE_FUNCTION),
            queue_echo,
        ))
        .build()
        .unwrap();
    let bare_addr = start(router()).await;
    let shim_addr = start(shim).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let http_envelope: &'static str = Box::leak(http_envelope().into_boxed_str());
    let queue_envelope: &'static str = Box::leak(queue_envelope().into_boxed_str());

    let cases = [
        (
            "bare axum route      POST /api/echo",
            format!("http://{bare_addr}/api/echo"),
            BODY,
        ),
        (
            "shim, forwarded      POST /api/echo",
            format!("http://{shim_addr}/api/echo"),
            BODY,
        ),
        (
            "shim, HTTP envelope  POST /echo",
            format!("http://{shim_addr}/echo"),
            http_envelope,
        ),
        (
            "shim, queue envelope POST /worker",
            format!("http://{shim_addr}/worker"),
            queue_envelope,
        ),
    ];
    println!(
        "{REQUESTS} sequential requests per path after {WARMUP} warm-up, one keep-alive connection"
    );
    println!(
        "{:<38} {:>12} {:>12} {:>16}",
        "path", "median µs", "p99 µs", "median − bare µs"
    );
    let mut bare_median = None;
    for (label, url, body) in cases {
        let stats = measure(&client, &url, body).await;
        let base = *bare_median.get_or_insert(stats.median);
        println!(
            "{label:<38} {:>12.1} {:>12.1} {:>16.1}",
            micros(stats.median),
            micros(stats.p99),
            micros(stats.median) - micros(base)
        );
    }
}
