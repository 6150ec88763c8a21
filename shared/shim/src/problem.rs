//! RFC 9457 problem responses: the one builder every problem+json response of meshpay goes
//! through ([`problem_response`]), and [`Problem`], the body of what the shim itself rejects
//! and of the binary's last-resort answers (a panicking handler). The host ignores these bodies
//! (any non-2xx fails the invocation) but people reading devhost output or curl do not.

use std::borrow::Cow;

use axum::Json;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `status` with `body` serialized as `application/problem+json`. `body` is an RFC 9457 object
/// (`type`, `title`, `status`, `detail`, and meshpay's stable `code`).
pub fn problem_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let mut response = (status, Json(body)).into_response();
    // Json answers 500 text/plain if the body does not serialize: keep that content type then.
    if response.status() == status {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    }
    response
}

/// A problem body with a string `code`.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: Cow<'static, str>,
    title: Cow<'static, str>,
    #[serde(serialize_with = "status_number")]
    status: StatusCode,
    detail: String,
    /// Stable machine-readable reason.
    code: Cow<'static, str>,
}

fn status_number<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl Problem {
    /// A problem of type `about:blank` (the title says it all).
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: Cow::Borrowed("about:blank"),
            title: Cow::Borrowed(title),
            status,
            detail: detail.into(),
            code: Cow::Borrowed(code),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub(crate) fn malformed_invocation(detail: impl Into<String>) -> Self {
        let title = "Malformed invocation";
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_invocation",
            title,
            detail,
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
        Self::new(status, "invalid_message", "Invalid trigger message", detail)
    }

    /// A known path asked with a method its function.json does not list; `allow` lists those.
    /// Shaped as the API's own problems (`urn:meshpay:problem:<code>`), since API clients get it.
    pub(crate) fn method_not_allowed(allow: &str) -> Response {
        let detail = "this path does not support the request's method; see the Allow header";
        let problem = Self {
            kind: Cow::Borrowed("urn:meshpay:problem:method_not_allowed"),
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

    /// A forwarded request for a path no HTTP function serves (the host sends those here through
    /// a catch-all function, so unknown paths get the API's problem shape, not an empty 404).
    pub(crate) fn route_not_found() -> Response {
        Self {
            kind: Cow::Borrowed("urn:meshpay:problem:not_found"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Resource not found",
                "no API route matches this path".to_owned(),
            )
        }
        .into_response()
    }

    /// Internal failures: the detail is fixed text, the cause goes to the log only.
    pub fn internal(code: &'static str, detail: impl Into<String>) -> Self {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        Self::new(status, code, "Invocation failed", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        problem_response(self.status, &self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn problem_renders_every_rfc_9457_member_as_problem_json() {
        let response =
            Problem::new(StatusCode::CONFLICT, "busy", "Busy", "try later").into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "about:blank",
                "title": "Busy",
                "status": 409,
                "detail": "try later",
                "code": "busy",
            })
        );
    }
}
