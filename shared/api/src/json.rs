//! Strict JSON request bodies: at most [`BODY_LIMIT_BYTES`], `Content-Type: application/json`,
//! unknown fields and wrong types rejected (request types use `deny_unknown_fields`) with the
//! parser's message, which names the field and position. Strings PostgreSQL cannot store
//! (`text` and `jsonb` refuse U+0000) are refused here, for every function, before anything is
//! written; lone surrogate escapes are malformed JSON to the parser already. The raw bytes are
//! kept so the idempotency layer can fingerprint exactly what the client sent.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

/// Largest accepted request body (64 KiB): every request of this API fits in far less.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// A JSON body parsed into `T`, with the bytes it was parsed from.
#[derive(Debug, Clone)]
pub struct ApiJson<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&request) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as `Content-Type: application/json`",
            ));
        }
        let raw = read_limited(request).await?;
        let value = parse(&raw)?;
        Ok(Self { value, raw })
    }
}

fn is_json(request: &Request) -> bool {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .get(essence.len().saturating_sub(5)..)
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body exceeds {BODY_LIMIT_BYTES} bytes"),
    )
}

/// Reads the body, refusing early on a declared `Content-Length` over the limit and stopping at
/// the limit for streamed bodies.
pub async fn read_limited(request: Request) -> Result<Bytes, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > BODY_LIMIT_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), BODY_LIMIT_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the request body could not be read completely",
        )),
    }
}

/// Syntax errors are 400 `invalid_json`; well-formed JSON of the wrong shape (unknown field,
/// wrong type, missing field) or holding a string PostgreSQL refuses is 422
/// `validation_failed`. Syntax is checked over the whole body first, because a typed parse
/// stops at the first type error and would report `[1,2` as a type problem.
pub fn parse<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice::<Value>(raw).map_err(|error| {
        ApiError::new(ErrorCode::InvalidJson, format!("malformed JSON: {error}"))
    })?;
    if let Some(at) = nul_position(&value, "") {
        return Err(ApiError::validation(format!(
            "invalid request body: strings must not contain U+0000 (at {at})"
        )));
    }
    serde_json::from_slice(raw)
        .map_err(|error| ApiError::validation(format!("invalid request body: {error}")))
}

/// Where the first U+0000 is, in keys or string values at any depth: `$.metadata.a[2]`.
fn nul_position(value: &Value, at: &str) -> Option<String> {
    let here = || {
        if at.is_empty() {
            "$".to_owned()
        } else {
            format!("${at}")
        }
    };
    match value {
        Value::String(s) => s.contains('\0').then(here),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_position(item, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let path = format!("{at}.{key}");
            if key.contains('\0') {
                Some(format!("${}", path.replace('\0', "\\u0000")))
            } else {
                nul_position(item, &path)
            }
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body1 {
        name: String,
        count: u32,
    }

    fn request(content_type: Option<&str>, body: impl Into<Body>) -> Request {
        let mut builder = Request::builder().method("POST").uri("/x");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(body.into()).unwrap()
    }

    async fn extract(request: Request) -> Result<ApiJson<Body1>, ApiError> {
        ApiJson::<Body1>::from_request(request, &()).await
    }

    #[tokio::test]
    async fn well_formed_body_is_parsed_and_raw_bytes_kept() {
        let raw = r#"{"name":"a","count":2}"#;
        let parsed = extract(request(Some("application/json; charset=utf-8"), raw))
            .await
            .unwrap();
        assert_eq!(
            parsed.value,
            Body1 {
                name: "a".into(),
                count: 2
            }
        );
        assert_eq!(parsed.raw, raw.as_bytes());
    }

    #[tokio::test]
    async fn each_bad_body_gets_its_own_code() {
        let cases = [
            (
                Some("application/json"),
                "{\"name\":",
                ErrorCode::InvalidJson,
            ),
            (Some("application/json"), "", ErrorCode::InvalidJson),
            (Some("application/json"), "[1,2", ErrorCode::InvalidJson),
            (
                Some("application/json"),
                r#"{"name":"a","count":-1}"#,
                ErrorCode::ValidationFailed,
            ),
            (
                Some("application/json"),
                r#"{"name":"a","count":"2"}"#,
                ErrorCode::ValidationFailed,
            ),
            (
                Some("application/json"),
                r#"{"name":"a"}"#,
                ErrorCode::ValidationFailed,
            ),
            (
                Some("application/json"),
                r#"{"name":"a","count":1,"x":1}"#,
                ErrorCode::ValidationFailed,
            ),
            (
                Some("text/plain"),
                r#"{"name":"a","count":1}"#,
                ErrorCode::UnsupportedMediaType,
            ),
            (
                None,
                r#"{"name":"a","count":1}"#,
                ErrorCode::UnsupportedMediaType,
            ),
        ];
        for (content_type, body, code) in cases {
            let error = extract(request(content_type, body)).await.unwrap_err();
            assert_eq!(error.code(), code, "{content_type:?} {body:?}: {error}");
        }
    }

    #[tokio::test]
    async fn nul_in_a_string_field_is_a_validation_error() {
        let error = extract(request(
            Some("application/json"),
            r#"{"name":"a\u0000b","count":1}"#,
        ))
        .await
        .unwrap_err();
        assert_eq!(error.code(), ErrorCode::ValidationFailed, "{error}");
        assert!(error.detail().contains("U+0000 (at $.name)"), "{error}");
    }

    #[test]
    fn nul_anywhere_in_free_form_json_is_refused_with_its_position() {
        let cases = [
            (
                r#"{"metadata":{"a":[1,{"b":"\u0000"}]}}"#,
                "$.metadata.a[1].b",
            ),
            (r#"{"metadata":{"k\u0000":1}}"#, "$.metadata.k\\u0000"),
            (r#"["x","\u0000"]"#, "$[1]"),
            (r#""\u0000""#, "$"),
        ];
        for (body, at) in cases {
            let error = parse::<Value>(body.as_bytes()).unwrap_err();
            assert_eq!(error.code(), ErrorCode::ValidationFailed, "{body}");
            assert!(
                error.detail().ends_with(&format!("(at {at})")),
                "{body}: {error}"
            );
        }
        // An escaped backslash followed by "u0000" is six ordinary characters.
        assert!(parse::<Value>(br#"{"a":"\\u0000"}"#).is_ok());
    }

    #[test]
    fn lone_surrogate_escapes_are_malformed_json() {
        for body in [
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00x"}"#,
            r#"{"a\ud83d":1}"#,
        ] {
            let error = parse::<Value>(body.as_bytes()).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidJson, "{body}: {error}");
        }
        assert!(parse::<Value>(br#"{"a":"\ud83d\ude00"}"#).is_ok());
    }

    #[tokio::test]
    async fn unknown_field_message_names_the_field() {
        let error = extract(request(
            Some("application/json"),
            r#"{"name":"a","count":1,"colour":"red"}"#,
        ))
        .await
        .unwrap_err();
        assert!(error.detail().contains("unknown field `colour`"), "{error}");
    }

    #[tokio::test]
    async fn body_over_the_limit_is_payload_too_large_with_or_without_length() {
        let big = vec![b' '; BODY_LIMIT_BYTES + 1];
        let declared = request(Some("application/json"), big.clone());
        let declared = {
            let (mut parts, body) = declared.into_parts();
            parts
                .headers
                .insert(header::CONTENT_LENGTH, big.len().into());
            Request::from_parts(parts, body)
        };
        assert_eq!(
            extract(declared).await.unwrap_err().code(),
            ErrorCode::PayloadTooLarge
        );
        let stream = futures_util_stream(big);
        let streamed = request(Some("application/json"), stream);
        assert_eq!(
            extract(streamed).await.unwrap_err().code(),
            ErrorCode::PayloadTooLarge
        );
    }

    /// A body without a known length (as a chunked upload arrives).
    fn futures_util_stream(bytes: Vec<u8>) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
            .chunks(1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures::stream::iter(chunks))
    }
}
