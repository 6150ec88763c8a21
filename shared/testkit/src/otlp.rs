//! A small OTLP/HTTP receiver for tests: `POST /v1/traces` and `POST /v1/metrics` in the JSON
//! encoding (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`), kept in memory. Protobuf bodies are
//! answered 415 so a misconfigured exporter shows up as missing data, not as a decoding guess.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use serde_json::Value;
use tokio::task::JoinHandle;

/// One span as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub service: Option<String>,
    /// Attribute values as text (`stringValue`, or the JSON of any other value).
    pub attributes: BTreeMap<String, String>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// What an in-test telemetry endpoint has received, in OpenTelemetry terms, whichever wire
/// format it speaks (OTLP here, Application Insights envelopes in [`crate::appinsights`]).
pub trait ReceivedTelemetry {
    fn spans(&self) -> Vec<ReceivedSpan>;
    fn metric_names(&self) -> BTreeSet<String>;
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    metric_names: BTreeSet<String>,
}

/// The receiver; stops when dropped.
pub struct OtlpReceiver {
    endpoint: String,
    received: Arc<Mutex<Received>>,
    task: JoinHandle<()>,
}

impl OtlpReceiver {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> OtlpReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(received.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        OtlpReceiver {
            endpoint,
            received,
            task,
        }
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/<signal>`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl ReceivedTelemetry for OtlpReceiver {
    fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().unwrap().spans.clone()
    }

    fn metric_names(&self) -> BTreeSet<String> {
        self.received.lock().unwrap().metric_names.clone()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, StatusCode> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    serde_json::from_slice(body).map_err(|_| StatusCode::BAD_REQUEST)
}

async fn traces(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<&'static str, StatusCode> {
    let request = json_body(&headers, &body)?;
    let mut spans = Vec::new();
    for resource in array(&request["resourceSpans"]) {
        let service = attributes(&resource["resource"]["attributes"]).remove("service.name");
        for scope in array(&resource["scopeSpans"]) {
            for span in array(&scope["spans"]) {
                spans.push(ReceivedSpan {
                    trace_id: text(&span["traceId"]),
                    span_id: text(&span["spanId"]),
                    parent_span_id: text(&span["parentSpanId"]),
                    name: text(&span["name"]),
                    service: service.clone(),
                    attributes: attributes(&span["attributes"]),
                });
            }
        }
    }
    received.lock().unwrap().spans.extend(spans);
    Ok("{}")
}

async fn metrics(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<&'static str, StatusCode> {
    let request = json_body(&headers, &body)?;
    let mut names = BTreeSet::new();
    for resource in array(&request["resourceMetrics"]) {
        for scope in array(&resource["scopeMetrics"]) {
            for metric in array(&scope["metrics"]) {
                names.insert(text(&metric["name"]));
            }
        }
    }
    received.lock().unwrap().metric_names.extend(names);
    Ok("{}")
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// OTLP `KeyValue`s: `{"key": k, "value": {"stringValue": v}}` (or another `*Value`).
fn attributes(list: &Value) -> BTreeMap<String, String> {
    array(list)
        .iter()
        .filter_map(|kv| {
            let key = kv["key"].as_str()?.to_owned();
            let value = kv["value"].as_object()?.values().next()?;
            let value = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            Some((key, value))
        })
        .collect()
}
