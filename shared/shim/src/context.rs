//! Per-invocation facts handed to handlers: typed fields for queue/timer handlers, and
//! `http::Extensions` newtypes (lambda_http style) for axum handlers.

use std::collections::BTreeMap;

use http::HeaderMap;
use serde_json::{Map, Value};

use crate::wire::{INVOCATION_ID_HEADER, RetryContext, Sys, metadata_value};

/// Who is being invoked, and which invocation this is (for logs and idempotency keys).
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationContext {
    pub function_name: String,
    /// `X-Azure-Functions-InvocationId`; absent only when something other than the host calls.
    pub invocation_id: Option<String>,
    pub sys: Option<Sys>,
    pub retry: Option<RetryContext>,
}

impl InvocationContext {
    pub(crate) fn from_envelope(
        function_name: &str,
        headers: &HeaderMap,
        metadata: &Map<String, Value>,
    ) -> Self {
        Self {
            function_name: function_name.to_owned(),
            invocation_id: invocation_id(headers).map(str::to_owned),
            sys: metadata_value(metadata, "sys"),
            retry: metadata_value(metadata, "RetryContext"),
        }
    }

    /// For tests and local tools: a context with only a function name.
    pub fn for_function(function_name: impl Into<String>) -> Self {
        Self {
            function_name: function_name.into(),
            invocation_id: None,
            sys: None,
            retry: None,
        }
    }

    /// The invocation id, or `-` for logs when there is none.
    pub fn invocation_id_or_dash(&self) -> &str {
        self.invocation_id.as_deref().unwrap_or("-")
    }
}

pub(crate) fn invocation_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
}

/// How an HTTP request reached the app router.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpOrigin {
    /// The host forwarded or proxied the original request (no envelope).
    Forwarded,
    /// The shim rebuilt the request from an envelope's `Data.<httpTrigger>`.
    Envelope(Box<EnvelopeHttpContext>),
}

/// What only an envelope carries: route values, caller identities and the invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeHttpContext {
    pub invocation: InvocationContext,
    /// `Params`: route values the host matched (e.g. `{"id": "42"}`).
    pub params: BTreeMap<String, String>,
    /// `Identities`: serialized `ClaimsIdentity` objects, kept as JSON.
    pub identities: Vec<Value>,
}

/// Accessors for the shim's request extensions, like `lambda_http::RequestExt`.
pub trait RequestExt {
    /// How the request arrived; `Forwarded` when the shim added nothing.
    fn http_origin(&self) -> HttpOrigin;
    fn http_origin_ref(&self) -> Option<&HttpOrigin>;
    /// For tests: attach an origin as the shim would.
    fn with_http_origin(self, origin: HttpOrigin) -> Self;
    /// The host's invocation id header, in either form.
    fn invocation_id(&self) -> Option<&str>;
}

impl<B> RequestExt for http::Request<B> {
    fn http_origin(&self) -> HttpOrigin {
        self.http_origin_ref()
            .cloned()
            .unwrap_or(HttpOrigin::Forwarded)
    }

    fn http_origin_ref(&self) -> Option<&HttpOrigin> {
        self.extensions().get::<HttpOrigin>()
    }

    fn with_http_origin(mut self, origin: HttpOrigin) -> Self {
        self.extensions_mut().insert(origin);
        self
    }

    fn invocation_id(&self) -> Option<&str> {
        invocation_id(self.headers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ext_reads_origin_and_invocation_id() {
        let request = http::Request::builder()
            .header("X-Azure-Functions-InvocationId", "inv-1")
            .body(())
            .unwrap();
        assert_eq!(request.http_origin(), HttpOrigin::Forwarded);
        assert_eq!(request.invocation_id(), Some("inv-1"));
        let origin = HttpOrigin::Envelope(Box::new(EnvelopeHttpContext {
            invocation: InvocationContext::for_function("probe"),
            params: BTreeMap::from([("id".to_owned(), "7".to_owned())]),
            identities: Vec::new(),
        }));
        let request = request.with_http_origin(origin.clone());
        assert_eq!(request.http_origin_ref(), Some(&origin));
    }
}
