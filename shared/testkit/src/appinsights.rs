//! A double of the Application Insights ingestion endpoint: `POST /v2/track` and
//! `POST /v2.1/track` take a JSON array of envelopes (or one envelope per line), gzip or plain,
//! and keep them in memory. Its [`connection_string`](AppInsightsIngestion::connection_string)
//! points an exporter at it, as `APPLICATIONINSIGHTS_CONNECTION_STRING` does in Azure.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::otlp::{ReceivedSpan, ReceivedTelemetry};

/// The instrumentation key of the double's connection string.
pub const INSTRUMENTATION_KEY: &str = "00000000-0000-4000-8000-00000000c0de";

/// The double; stops when dropped.
pub struct AppInsightsIngestion {
    endpoint: String,
    envelopes: Arc<Mutex<Vec<Value>>>,
    task: JoinHandle<()>,
}

impl AppInsightsIngestion {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> AppInsightsIngestion {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/", listener.local_addr().unwrap());
        let envelopes = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v2/track", post(track))
            .route("/v2.1/track", post(track))
            .with_state(envelopes.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        AppInsightsIngestion {
            endpoint,
            envelopes,
            task,
        }
    }

    /// The value for `APPLICATIONINSIGHTS_CONNECTION_STRING`.
    pub fn connection_string(&self) -> String {
        format!(
            "InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={}",
            self.endpoint
        )
    }

    /// Every envelope received, as sent.
    pub fn envelopes(&self) -> Vec<Value> {
        self.envelopes.lock().unwrap().clone()
    }
}

impl Drop for AppInsightsIngestion {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Requests and dependencies as spans: `ai.operation.id` is the trace id, the telemetry's `id`
/// the span id, `ai.operation.parentId` the parent span id, `ai.cloud.role` the service and the
/// custom properties the attributes.
impl ReceivedTelemetry for AppInsightsIngestion {
    fn spans(&self) -> Vec<ReceivedSpan> {
        self.envelopes
            .lock()
            .unwrap()
            .iter()
            .filter(|e| base_type(e) == "RequestData" || base_type(e) == "RemoteDependencyData")
            .map(|envelope| {
                let tags = &envelope["tags"];
                let data = &envelope["data"]["baseData"];
                ReceivedSpan {
                    trace_id: text(&tags["ai.operation.id"]),
                    span_id: text(&data["id"]),
                    parent_span_id: text(&tags["ai.operation.parentId"]),
                    name: text(&data["name"]),
                    service: tags["ai.cloud.role"].as_str().map(str::to_owned),
                    attributes: properties(&data["properties"]),
                }
            })
            .collect()
    }

    fn metric_names(&self) -> BTreeSet<String> {
        self.envelopes
            .lock()
            .unwrap()
            .iter()
            .filter(|e| base_type(e) == "MetricData")
            .flat_map(|e| {
                e["data"]["baseData"]["metrics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|metric| text(&metric["name"]))
            .collect()
    }
}

fn base_type(envelope: &Value) -> &str {
    envelope["data"]["baseType"].as_str().unwrap_or_default()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn properties(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Answers as the service does: how many items arrived and were accepted.
async fn track(
    State(envelopes): State<Arc<Mutex<Vec<Value>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, StatusCode> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = if gzip {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        plain
    } else {
        body.to_vec()
    };
    let items: Vec<Value> = match serde_json::from_slice(&body) {
        Ok(Value::Array(items)) => items,
        Ok(item @ Value::Object(_)) => vec![item],
        _ => body
            .split(|b| *b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(serde_json::from_slice)
            .collect::<Result<_, _>>()
            .map_err(|_| StatusCode::BAD_REQUEST)?,
    };
    let count = items.len();
    envelopes.lock().unwrap().extend(items);
    Ok(axum::Json(json!({
        "itemsReceived": count,
        "itemsAccepted": count,
        "errors": [],
    })))
}
