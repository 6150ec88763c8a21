//! The public HTTP side: HTTP triggers under the route prefix, plus the admin API
//! (`POST /admin/functions/{name}` to run a non-HTTP function once, `GET /admin/host/status`).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::config::functions::{FunctionDef, HttpTrigger, Trigger};
use crate::host::{Host, invocation_id};
use crate::invoke::HOST_VERSION;
use crate::outputs;
use crate::routes::split_path;
use crate::wire::{self, HttpRequestData, QueueMessageData};

/// Functions' request size limit (100 MB).
const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// State of the HTTP front end.
pub struct HttpApp {
    /// Shared host state.
    pub host: Host,
    /// `extensions.http.routePrefix` ("" = none).
    pub prefix: String,
    /// Every indexed function.
    pub functions: Vec<Arc<FunctionDef>>,
}

struct Route<'a> {
    function: &'a Arc<FunctionDef>,
    trigger: &'a HttpTrigger,
}

impl HttpApp {
    /// HTTP-triggered functions, most specific route first.
    fn routes(&self) -> Vec<Route<'_>> {
        let mut routes: Vec<Route<'_>> = self
            .functions
            .iter()
            .filter_map(|f| match &f.trigger {
                Trigger::Http(t) => Some(Route {
                    function: f,
                    trigger: t,
                }),
                _ => None,
            })
            .collect();
        routes.sort_by(|a, b| a.trigger.route.precedence(&b.trigger.route));
        routes
    }
}

/// The router: admin endpoints, everything else goes to HTTP triggers.
pub fn router(app: Arc<HttpApp>) -> Router {
    Router::new()
        .route("/admin/host/status", get(status))
        .route("/admin/functions/{name}", post(admin_invoke))
        .fallback(dispatch)
        .with_state(app)
}

async fn status(State(app): State<Arc<HttpApp>>) -> Response {
    let port = app.host.invoker.port_now();
    let state = if port.is_some() {
        "Running"
    } else {
        "Initialized"
    };
    let functions: Vec<&str> = app.functions.iter().map(|f| f.name.as_str()).collect();
    axum::Json(json!({"state": state, "version": HOST_VERSION, "workerPort": port, "functions": functions}))
        .into_response()
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.into(),
    )
        .into_response()
}

async fn dispatch(State(app): State<Arc<HttpApp>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let Some(rest) = strip_prefix(&path, &app.prefix) else {
        return plain(StatusCode::NOT_FOUND, "");
    };
    let segments = split_path(rest);
    let method = parts.method.as_str().to_ascii_uppercase();
    let routes = app.routes();
    let matched = routes.iter().find_map(|r| {
        let allowed = r
            .trigger
            .methods
            .as_ref()
            .is_none_or(|m| m.contains(&method));
        if !allowed {
            return None;
        }
        r.trigger.route.matches(&segments).map(|params| (r, params))
    });
    let Some((route, params)) = matched else {
        if !routes
            .iter()
            .any(|r| r.trigger.route.matches(&segments).is_some())
        {
            return plain(StatusCode::NOT_FOUND, "");
        }
        // A known path with a method no function declares: the handler's router knows which
        // methods each path serves and answers 405 with the exact `Allow`.
        let id = invocation_id();
        let target = forwarded_path_and_query(&path, parts.uri.query());
        return match app
            .host
            .invoker
            .forward(
                parts.method.clone(),
                &target,
                &parts.headers,
                Bytes::new(),
                &id,
            )
            .await
        {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(invocation_id = %id, %method, path = %path, "failed: {e}");
                plain(StatusCode::NOT_FOUND, "")
            }
        };
    };
    let body = match to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => host_visible_body(&parts.headers, b),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let id = invocation_id();
    let function = route.function;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let response = if route.trigger.forwarded {
        match app
            .host
            .invoker
            .forward(
                parts.method.clone(),
                &forwarded_path_and_query(&path, parts.uri.query()),
                &parts.headers,
                body,
                &id,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(function = %function.name, invocation_id = %id, "failed: {e}");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("function `{}` failed (invocation {id})", function.name),
                )
            }
        }
    } else {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        let data = HttpRequestData {
            url: format!("http://{host}{path_and_query}"),
            method: method.clone(),
            query: parts
                .uri
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            params,
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: body.to_vec(),
        };
        envelope(&app.host, function, route.trigger, &data, &id).await
    };
    tracing::info!(
        function = %function.name, invocation_id = %id, %method, path = %path,
        status = response.status().as_u16(), duration_ms = started.elapsed().as_millis() as u64, "http"
    );
    response
}

/// The host reads a request body only when `Content-Length` is above zero (reference §3.2,
/// §5): a chunked body never reaches the function. Dropping it here too means a client that
/// streams its body fails locally the way it would in Azure, instead of only in production.
fn host_visible_body(headers: &HeaderMap, body: Bytes) -> Bytes {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if declared == 0 && !body.is_empty() {
        tracing::warn!(
            bytes = body.len(),
            "request body without Content-Length dropped, as the Functions host drops it"
        );
        return Bytes::new();
    }
    body
}

/// The path and query a forwarded request arrives with: the host rebuilds the query from its
/// parsed dictionary (reference §5), so repeated keys arrive joined with commas (`a=1,2`).
fn forwarded_path_and_query(path: &str, query: Option<&str>) -> String {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return path.to_owned();
    };
    let mut joined: Vec<(String, String)> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match joined.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => joined.push((key.into_owned(), value.into_owned())),
        }
    }
    let rebuilt = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&joined)
        .finish();
    format!("{path}?{rebuilt}")
}

/// `/api/x` minus prefix `api` = `/x`; `None` when the path is outside the prefix.
fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix('/')?.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

async fn envelope(
    host: &Host,
    function: &FunctionDef,
    trigger: &HttpTrigger,
    data: &HttpRequestData,
    id: &str,
) -> Response {
    let payload = wire::http_payload(
        &function.name,
        &trigger.binding,
        data,
        OffsetDateTime::now_utc(),
    );
    let result = match host.invoke(function, id, &payload).await {
        Ok(r) => r,
        Err(_) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("function `{}` failed (invocation {id})", function.name),
            );
        }
    };
    let value = function
        .http_output
        .as_deref()
        .and_then(|name| result.output(name));
    outputs::http_response(value).unwrap_or_else(|e| {
        tracing::warn!(function = %function.name, invocation_id = %id, "bad http output: {e}");
        plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "function `{}` returned an invalid http output",
                function.name
            ),
        )
    })
}

/// The admin API's "run this function once" (202, runs in the background like the host).
async fn admin_invoke(
    State(app): State<Arc<HttpApp>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Some(function) = app
        .functions
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(&name))
        .cloned()
    else {
        return plain(StatusCode::NOT_FOUND, format!("no function named `{name}`"));
    };
    let input = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => match v.get("input") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        },
        Err(_) if body.is_empty() => String::new(),
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("body must be {{\"input\": \"...\"}}: {e}"),
            );
        }
    };
    let now = OffsetDateTime::now_utc();
    let payload = match &function.trigger {
        Trigger::Http(_) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "HTTP functions are called through their route",
            );
        }
        Trigger::Timer(t) => wire::timer_payload(&function.name, &t.binding, None, false, now),
        Trigger::Queue(q) => {
            let id = uuid::Uuid::new_v4().to_string();
            let message = QueueMessageData {
                id: &id,
                pop_receipt: "",
                dequeue_count: 1,
                insertion_time: now,
                expiration_time: now + time::Duration::days(7),
                next_visible_time: now,
            };
            wire::queue_payload(
                &function.name,
                &q.binding,
                &message,
                input.as_bytes(),
                q.binary,
                now,
            )
        }
    };
    let host = app.host.clone();
    tokio::spawn(async move {
        let _ = host.invoke(&function, &invocation_id(), &payload).await;
    });
    StatusCode::ACCEPTED.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_without_content_length_is_dropped_like_the_host_does() {
        let body = Bytes::from_static(b"{\"a\":1}");
        let mut headers = HeaderMap::new();
        assert!(
            host_visible_body(&headers, body.clone()).is_empty(),
            "chunked"
        );
        headers.insert(header::CONTENT_LENGTH, "0".parse().unwrap());
        assert!(host_visible_body(&headers, body.clone()).is_empty());
        headers.insert(header::CONTENT_LENGTH, "7".parse().unwrap());
        assert_eq!(host_visible_body(&headers, body.clone()), body);
    }

    #[test]
    fn forwarded_query_joins_repeated_keys_with_commas() {
        assert_eq!(forwarded_path_and_query("/api/q", None), "/api/q");
        assert_eq!(forwarded_path_and_query("/api/q", Some("")), "/api/q");
        assert_eq!(
            forwarded_path_and_query("/api/q", Some("a=1&b=x%20y&a=2")),
            "/api/q?a=1%2C2&b=x+y"
        );
    }

    #[test]
    fn prefix_is_stripped_on_segment_boundaries_only() {
        assert_eq!(strip_prefix("/api/health", "api"), Some("/health"));
        assert_eq!(strip_prefix("/api", "api"), Some(""));
        assert_eq!(strip_prefix("/apix/health", "api"), None);
        assert_eq!(strip_prefix("/health", ""), Some("/health"));
    }
}
