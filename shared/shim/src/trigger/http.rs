//! HTTP trigger in envelope form: `Data.<httpTrigger>` → `http::Request`, and the app's
//! `http::Response` → `Outputs.<http output>` (reference §3.2 and §4).

use std::collections::BTreeMap;

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::context::HttpOrigin;
use crate::outputs::QueueOutputs;
use crate::wire::unwrap_double_encoded;

/// The host's serialized `HttpRequest` (`HttpRequestExtensions.GetRequestAsJObject`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct HttpTriggerRequest {
    /// `scheme://host/path?query` as the host saw it, route prefix included.
    #[serde(rename = "Url")]
    pub url: String,
    #[serde(rename = "Method")]
    pub method: String,
    /// Repeated keys arrive joined with commas. The docs show this as the text `"{}"`.
    #[serde(rename = "Query", default, deserialize_with = "string_map")]
    pub query: BTreeMap<String, String>,
    #[serde(rename = "Headers", default, deserialize_with = "header_map")]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(rename = "Params", default, deserialize_with = "string_map")]
    pub params: BTreeMap<String, String>,
    #[serde(rename = "Identities", default, deserialize_with = "identities")]
    pub identities: Vec<Value>,
    /// Text, or base64 for `application/octet-stream` and `multipart/*`. Absent when empty.
    #[serde(
        rename = "Body",
        default,
        deserialize_with = "body_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub body: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpEnvelopeError {
    #[error("`Method` {0:?} is not an HTTP method")]
    Method(String),
    #[error("`Url` {0:?} is not a URL with a path")]
    Url(String),
    #[error("`Body` of a {content_type} request is not base64: {source}")]
    Base64 {
        content_type: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("response body could not be read: {0}")]
    ResponseBody(#[source] axum::Error),
    #[error(
        "response body is not UTF-8 text; the host cannot relay binary bodies without forwarding"
    )]
    BinaryResponse,
}

impl HttpTriggerRequest {
    /// The `Content-Type` the caller sent, compared case-insensitively (the front end keeps
    /// whatever casing it received).
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }

    /// Rebuilds the original request: origin-form URI with the `/api/...` path, headers, and
    /// the decoded body. `origin` goes into the request extensions.
    pub fn into_request(self, origin: HttpOrigin) -> Result<Request<Body>, HttpEnvelopeError> {
        let method = Method::from_bytes(self.method.trim().as_bytes())
            .map_err(|_| HttpEnvelopeError::Method(self.method.clone()))?;
        let uri = self.origin_form_uri()?;
        let body = self.decoded_body()?;
        let mut request = Request::new(Body::from(body.clone()));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        for (name, values) in &self.headers {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                tracing::warn!(header = %name, "envelope header with an invalid name dropped");
                continue;
            };
            // Framing headers describe the host's connection, not this rebuilt body.
            if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
                continue;
            }
            for value in values {
                match HeaderValue::from_str(value) {
                    Ok(value) => {
                        headers.append(name.clone(), value);
                    }
                    Err(_) => tracing::warn!(header = %name, "envelope header value dropped"),
                }
            }
        }
        if !body.is_empty() {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        request.extensions_mut().insert(origin);
        Ok(request)
    }

    fn origin_form_uri(&self) -> Result<Uri, HttpEnvelopeError> {
        let bad_url = || HttpEnvelopeError::Url(self.url.clone());
        let parsed: Uri = self.url.parse().map_err(|_| bad_url())?;
        let path = parsed.path();
        if !path.starts_with('/') {
            return Err(bad_url());
        }
        let query = match parsed.query() {
            Some(query) => Some(query.to_owned()),
            // Some callers put the query only in `Query`; rebuild it so axum's `Query` works.
            None if !self.query.is_empty() => Some(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&self.query)
                    .finish(),
            ),
            None => None,
        };
        let path_and_query = match query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        path_and_query.parse().map_err(|_| bad_url())
    }

    fn decoded_body(&self) -> Result<Bytes, HttpEnvelopeError> {
        let Some(text) = &self.body else {
            return Ok(Bytes::new());
        };
        let content_type = self.content_type().unwrap_or_default();
        if is_base64_media_type(content_type) {
            return BASE64
                .decode(text.trim())
                .map(Bytes::from)
                .map_err(|source| HttpEnvelopeError::Base64 {
                    content_type: content_type.to_owned(),
                    source,
                });
        }
        Ok(Bytes::from(text.clone()))
    }
}

/// The host serializes these bodies as bytes, i.e. base64 (`azure-functions-host#5016`).
fn is_base64_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/octet-stream" || essence.starts_with("multipart/")
}

/// `Outputs.<http output>`: what the host turns into the client's response.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct HttpResponseOutput {
    /// Written as a string, as in the host's own tests (`"201"`); read as string or number,
    /// and as 200 when absent (the documented examples omit it; the host answers 200).
    #[serde(
        rename = "statusCode",
        alias = "status",
        alias = "StatusCode",
        default = "default_status",
        serialize_with = "status_as_string",
        deserialize_with = "lenient_status"
    )]
    pub status_code: u16,
    #[serde(default, deserialize_with = "flat_header_map")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "body_text")]
    pub body: Option<String>,
}

impl HttpResponseOutput {
    /// Buffers the app's response (at most `limit_bytes`) and splits off any queue outputs
    /// an axum handler attached.
    pub async fn from_response(
        response: Response<Body>,
        limit_bytes: usize,
    ) -> Result<(Self, QueueOutputs), HttpEnvelopeError> {
        let (mut parts, body) = response.into_parts();
        let queues = parts
            .extensions
            .remove::<QueueOutputs>()
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(body, limit_bytes)
            .await
            .map_err(HttpEnvelopeError::ResponseBody)?;
        let body =
            String::from_utf8(bytes.to_vec()).map_err(|_| HttpEnvelopeError::BinaryResponse)?;
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in &parts.headers {
            if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
                continue;
            }
            let Ok(value) = value.to_str() else {
                tracing::warn!(header = %name, "non-ASCII response header dropped");
                continue;
            };
            // The host takes one string per header name.
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(value);
                })
                .or_insert_with(|| value.to_owned());
        }
        if !body.is_empty() && !headers.contains_key(CONTENT_TYPE.as_str()) {
            // Without it the host falls back to text/plain anyway; be explicit.
            headers.insert(
                CONTENT_TYPE.as_str().to_owned(),
                "text/plain; charset=utf-8".into(),
            );
        }
        let output = Self {
            status_code: parts.status.as_u16(),
            headers,
            body: Some(body),
        };
        Ok((output, queues))
    }
}

fn default_status() -> u16 {
    200
}

fn status_as_string<S: Serializer>(status: &u16, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&status.to_string())
}

fn lenient_status<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let value = unwrap_double_encoded(Value::deserialize(d)?);
    let status = match &value {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    status
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| serde::de::Error::custom(format!("invalid status code {value}")))
}

fn scalar_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        Value::Null => String::new(),
        Value::Array(items) => items
            .into_iter()
            .map(scalar_text)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// An object, `null`, or the object as JSON text (the docs' `"Query": "{}"`).
fn object_or_text<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<serde_json::Map<String, Value>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Default::default()),
        Value::Object(map) => Ok(map),
        Value::String(text) if text.trim().is_empty() => Ok(Default::default()),
        Value::String(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(serde::de::Error::custom(
                "expected an object or its JSON text",
            )),
        },
        other => Err(serde::de::Error::custom(format!(
            "expected an object, got {other}"
        ))),
    }
}

fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(object_or_text(d)?
        .into_iter()
        .map(|(k, v)| (k, scalar_text(v)))
        .collect())
}

fn header_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    Ok(object_or_text(d)?
        .into_iter()
        .map(|(name, value)| {
            let values = match value {
                Value::Array(items) => items.into_iter().map(scalar_text).collect(),
                other => vec![scalar_text(other)],
            };
            (name, values)
        })
        .collect())
}

fn flat_header_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(object_or_text(d)?
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Value::Array(items) => items
                    .into_iter()
                    .map(scalar_text)
                    .collect::<Vec<_>>()
                    .join(", "),
                other => scalar_text(other),
            };
            (name, text)
        })
        .collect())
}

fn identities<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default())
}

/// A body is text; an object or array (as a host writes a JSON body) becomes its JSON text.
fn body_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(text) => Some(text),
        other => Some(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(json: Value) -> HttpTriggerRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn query_from_map_is_rebuilt_when_url_has_none() {
        let req = request(json!({"Url": "http://h/api/quotes", "Method": "GET",
            "Query": {"asset": "usdc", "limit": "5"}}));
        let http = req.into_request(HttpOrigin::Forwarded).unwrap();
        assert_eq!(http.uri(), "/api/quotes?asset=usdc&limit=5");
    }

    #[test]
    fn url_query_wins_over_query_map() {
        let req = request(json!({"Url": "http://h/api/q?a=1&a=2", "Method": "GET",
            "Query": {"a": "1,2"}}));
        let http = req.into_request(HttpOrigin::Forwarded).unwrap();
        assert_eq!(http.uri(), "/api/q?a=1&a=2");
    }

    #[test]
    fn invalid_method_is_an_error_not_a_panic() {
        let req = request(json!({"Url": "http://h/api/q", "Method": "GE T"}));
        assert!(matches!(
            req.into_request(HttpOrigin::Forwarded),
            Err(HttpEnvelopeError::Method(_))
        ));
    }

    #[test]
    fn multipart_body_is_base64_decoded_and_bad_base64_rejected() {
        let ok = request(json!({"Url": "http://h/api/u", "Method": "POST",
            "Headers": {"content-type": ["multipart/form-data; boundary=x"]}, "Body": "AAEC"}));
        assert_eq!(ok.decoded_body().unwrap().as_ref(), &[0u8, 1, 2]);
        let bad = request(json!({"Url": "http://h/api/u", "Method": "POST",
            "Headers": {"Content-Type": "application/octet-stream"}, "Body": "not base64!"}));
        assert!(matches!(
            bad.decoded_body(),
            Err(HttpEnvelopeError::Base64 { .. })
        ));
    }

    #[test]
    fn response_status_reads_as_string_or_number_and_writes_as_string() {
        for status in [json!("201"), json!(201)] {
            let out: HttpResponseOutput =
                serde_json::from_value(json!({"statusCode": status, "body": {"a": 1}})).unwrap();
            assert_eq!(out.status_code, 201);
            assert_eq!(out.body.as_deref(), Some(r#"{"a":1}"#));
            assert_eq!(serde_json::to_value(&out).unwrap()["statusCode"], "201");
        }
    }

    #[tokio::test]
    async fn repeated_response_headers_are_joined_and_framing_headers_dropped() {
        let response = Response::builder()
            .status(418)
            .header("x-a", "1")
            .header("x-a", "2")
            .header("content-length", "2")
            .body(Body::from("hi"))
            .unwrap();
        let (out, queues) = HttpResponseOutput::from_response(response, 1024)
            .await
            .unwrap();
        assert_eq!(out.status_code, 418);
        assert_eq!(out.headers["x-a"], "1, 2");
        assert!(!out.headers.contains_key("content-length"));
        assert!(queues.is_empty());
    }

    #[tokio::test]
    async fn binary_response_cannot_be_enveloped() {
        let response = Response::new(Body::from(vec![0xff, 0xfe]));
        assert!(matches!(
            HttpResponseOutput::from_response(response, 1024).await,
            Err(HttpEnvelopeError::BinaryResponse)
        ));
    }
}
