//! RFC 9457 problem responses for what the shim itself rejects. The host ignores these bodies
//! (any non-2xx fails the invocation) but people reading devhost output or curl do not.

use axum::Json;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    #[serde(serialize_with = "status_number")]
    status: StatusCode,
    detail: String,
    /// Stable machine-readable reason.
    code: &'static str,
}

fn status_number<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, title: &'static str, detail: String) -> Self {
        Self {
            kind: "about:blank",
            title,
            status,
            detail,
            code,
        }
    }

    pub(crate) fn malformed_invocation(detail: impl Into<String>) -> Self {
        let title = "Malformed invocation";
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_invocation",
            title,
            detail.into(),
        )
    }

    pub(crate) fn payload_too_large(limit_bytes: usize) -> Self {
        let detail = format!("invocation body exceeds {limit_bytes} bytes");
        let title = "Invocation too large";
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            title,
            detail,
        )
    }

    pub(crate) fn unknown_function(name: &str) -> Self {
        let detail = format!("no function named `{name}` is registered with this handler");
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_function",
            "Unknown function",
            detail,
        )
    }

    pub(crate) fn invalid_message(detail: impl Into<String>) -> Self {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        Self::new(
            status,
            "invalid_message",
            "Invalid trigger message",
            detail.into(),
        )
    }

    /// A known path asked with a method its function.json does not list; `allow` lists those.
    /// Shaped as the API's own problems (`urn:meshpay:problem:<code>`), since API clients get it.
    pub(crate) fn method_not_allowed(allow: &str) -> Response {
        let detail = "this path does not support the request's method; see the Allow header";
        let problem = Self {
            kind: "urn:meshpay:problem:method_not_allowed",
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                detail.to_owned(),
            )
        };
        let mut response = problem.into_response();
        if let Ok(value) = HeaderValue::from_str(allow) {
            response.headers_mut().insert(ALLOW, value);
        }
        response
    }

    /// Internal failures: the detail is fixed text, the cause goes to the log only.
    pub(crate) fn internal(code: &'static str, detail: impl Into<String>) -> Self {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        Self::new(status, code, "Invocation failed", detail.into())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}
