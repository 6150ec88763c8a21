//! Calls into the handler: envelope invocations (`POST /<FunctionName>`) and forwarded HTTP
//! requests, with the host's headers and `functionTimeout`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde_json::Value;

use crate::outputs::InvocationResult;
use crate::worker::{RestartRequests, WorkerState, ready_port};

/// Sent as `X-Azure-Functions-HostVersion` and in `User-Agent`.
pub const HOST_VERSION: &str = "4.0.0.0-devhost";
/// Largest handler response devhost buffers.
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

/// Why an invocation failed (a failed queue message is retried, an HTTP caller gets 500).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The handler did not become ready in time.
    #[error("handler not ready")]
    NotReady,
    /// `functionTimeout` elapsed.
    #[error("timed out after {0:?} (functionTimeout)")]
    Timeout(Duration),
    /// Connection-level failure.
    #[error("calling the handler: {0}")]
    Transport(String),
    /// A non-2xx answer.
    #[error("handler answered {status}: {body}")]
    Status {
        /// Status code.
        status: StatusCode,
        /// Start of the body.
        body: String,
    },
    /// 2xx but not `application/json` (the host cannot read it).
    #[error("handler answered Content-Type `{0}`, expected application/json")]
    NotJson(String),
    /// 2xx JSON that is not an invocation result.
    #[error("malformed invocation result: {0}")]
    Malformed(String),
}

/// Talks to the handler process.
#[derive(Clone)]
pub struct Invoker {
    client: reqwest::Client,
    worker: WorkerState,
    restarts: RestartRequests,
    ready_timeout: Duration,
    function_timeout: Option<Duration>,
}

impl Invoker {
    /// An invoker waiting up to `ready_timeout` for the handler.
    pub fn new(
        worker: WorkerState,
        restarts: RestartRequests,
        ready_timeout: Duration,
        function_timeout: Option<Duration>,
    ) -> anyhow::Result<Self> {
        // Redirects go back to the caller untouched, as the host relays them.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            worker,
            restarts,
            ready_timeout,
            function_timeout,
        })
    }

    /// The handler's port if it is ready right now.
    pub fn port_now(&self) -> Option<u16> {
        *self.worker.borrow()
    }

    /// The handler's port once ready.
    pub async fn port(&self) -> Result<u16, InvokeError> {
        ready_port(&self.worker, self.ready_timeout)
            .await
            .ok_or(InvokeError::NotReady)
    }

    /// `POST /<function>` with `payload`; the parsed result of a 2xx JSON answer.
    pub async fn invoke(
        &self,
        function: &str,
        invocation_id: &str,
        payload: &Value,
    ) -> Result<InvocationResult, InvokeError> {
        let port = self.port().await?;
        let body =
            serde_json::to_vec(payload).map_err(|e| InvokeError::Malformed(e.to_string()))?;
        let request = self
            .client
            .post(format!("http://127.0.0.1:{port}/{function}"))
            .header("content-type", "application/json; charset=utf-8")
            .header("x-azure-functions-hostversion", HOST_VERSION)
            .header("x-azure-functions-invocationid", invocation_id)
            .header("user-agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .body(body);
        let response = self.send(port, request).await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = self.read_body(response).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
            return Err(InvokeError::Status {
                status: StatusCode::from_u16(status.as_u16())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body: text,
            });
        }
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media != "application/json" && !media.ends_with("+json") {
            return Err(InvokeError::NotJson(content_type));
        }
        InvocationResult::parse(&bytes).map_err(InvokeError::Malformed)
    }

    /// Forwards an HTTP request to the handler at its original path and query and relays the
    /// answer (any status).
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
        invocation_id: &str,
    ) -> Result<Response<Body>, InvokeError> {
        let port = self.port().await?;
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
            .map_err(|e| InvokeError::Transport(e.to_string()))?;
        let mut request = self
            .client
            .request(method, format!("http://127.0.0.1:{port}{path_and_query}"));
        for (name, value) in headers {
            if !is_hop_by_hop(name.as_str()) && name != "content-length" {
                request = request.header(name.as_str(), value.as_bytes());
            }
        }
        let agent = headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map_or_else(
                || format!("Azure-Functions-Host/{HOST_VERSION}"),
                |ua| format!("{ua} Azure-Functions-Host/{HOST_VERSION}"),
            );
        request = request
            .header("user-agent", agent)
            .header("x-azure-functions-hostversion", HOST_VERSION)
            .header("x-azure-functions-invocationid", invocation_id)
            .header("x-ms-invocation-id", invocation_id);
        if !body.is_empty() {
            request = request.body(body);
        }
        let response = self.send(port, request).await?;
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut relayed = Response::builder().status(status);
        for (name, value) in response.headers() {
            if !is_hop_by_hop(name.as_str())
                && name != "content-length"
                && let Ok(v) = HeaderValue::from_bytes(value.as_bytes())
            {
                relayed = relayed.header(name.as_str(), v);
            }
        }
        let bytes = self.read_body(response).await?;
        relayed
            .body(Body::from(bytes))
            .map_err(|e| InvokeError::Transport(e.to_string()))
    }

    /// Sends `request` to the handler on `port`. A `functionTimeout` restarts that handler,
    /// as the host's `RestartWorkerWithInvocationIdAsync` does: every other invocation in
    /// flight on it fails too (its connection drops) and is retried by its trigger's rules.
    async fn send(
        &self,
        port: u16,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, InvokeError> {
        let sent = request.send();
        let result = match self.function_timeout {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(result) => result,
                Err(_) => {
                    // The supervisor is gone only while devhost shuts down.
                    let _ = self.restarts.send(port);
                    return Err(InvokeError::Timeout(limit));
                }
            },
            None => sent.await,
        };
        result.map_err(|e| InvokeError::Transport(e.to_string()))
    }

    async fn read_body(&self, response: reqwest::Response) -> Result<Bytes, InvokeError> {
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(InvokeError::Malformed(
                "response larger than 100 MiB".into(),
            ));
        }
        response
            .bytes()
            .await
            .map_err(|e| InvokeError::Transport(e.to_string()))
    }
}

/// Connection-scoped headers a proxy must not copy.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}
