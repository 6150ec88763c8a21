//! The handler's answer (`{"Outputs":…,"Logs":[…],"ReturnValue":…}`) and what the host makes
//! of it: queue messages (`ReadAsEnumerable` fan-out) and HTTP responses.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use serde_json::{Map, Value};

/// A parsed invocation result. Property names match case-insensitively (Newtonsoft).
#[derive(Clone, Debug, Default)]
pub struct InvocationResult {
    /// `Outputs`.
    pub outputs: Map<String, Value>,
    /// `Logs` (non-strings are logged as their JSON text).
    pub logs: Vec<String>,
    /// `ReturnValue`.
    pub return_value: Value,
}

impl InvocationResult {
    /// Parses the response body; an error text says what is wrong.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let json: Value =
            serde_json::from_slice(body).map_err(|e| format!("response is not JSON: {e}"))?;
        let Value::Object(top) = json else {
            return Err("response is not a JSON object".into());
        };
        let field = |name: &str| {
            top.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let outputs = match field("Outputs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(_) => return Err("`Outputs` is not an object".into()),
        };
        let logs = match field("Logs") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let return_value = field("ReturnValue").cloned().unwrap_or(Value::Null);
        Ok(Self {
            outputs,
            logs,
            return_value,
        })
    }

    /// The value for output binding `name` (`$return` reads `ReturnValue`). Binding names
    /// match exactly: the host looks them up in the `Outputs` dictionary Newtonsoft built,
    /// whose keys compare ordinally (`HttpScriptInvocationResultExtensions.GetOutputValue`),
    /// while the result's own fields (`Outputs`, `Logs`, ...) are read case-insensitively.
    pub fn output(&self, name: &str) -> Option<&Value> {
        if name == "$return" {
            return Some(&self.return_value).filter(|v| !v.is_null());
        }
        self.outputs.get(name)
    }

    /// An output key that names binding `name` in another case: the host ignores it.
    pub fn output_in_other_case(&self, name: &str) -> Option<&str> {
        self.outputs
            .keys()
            .find(|k| k.as_str() != name && k.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }
}

/// One message the host would write for a queue output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutMessage {
    /// Message text before the queue's messageEncoding.
    pub text: String,
    /// The value was a plain string that is valid base64: the real host would replace it by
    /// the decoded bytes (see the protocol notes' "base64 pitfall").
    pub base64_pitfall: bool,
}

/// The host's `ReadAsEnumerable`: an array is one message per element; a string holding a
/// JSON array or object is parsed first; objects are written as (indented) JSON text.
pub fn queue_messages(value: &Value) -> Vec<OutMessage> {
    match value {
        Value::Array(items) => items.iter().filter_map(single).collect(),
        Value::String(s) => {
            let t = s.trim();
            let looks_json = (t.starts_with('[') && t.ends_with(']'))
                || (t.starts_with('{') && t.ends_with('}'));
            match serde_json::from_str::<Value>(t) {
                Ok(parsed @ (Value::Array(_) | Value::Object(_))) if looks_json => {
                    queue_messages(&parsed)
                }
                _ => single(value).into_iter().collect(),
            }
        }
        other => single(other).into_iter().collect(),
    }
}

fn single(value: &Value) -> Option<OutMessage> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => {
            return Some(OutMessage {
                text: s.clone(),
                base64_pitfall: looks_like_base64(s),
            });
        }
        Value::Object(_) | Value::Array(_) => {
            serde_json::to_string_pretty(value).unwrap_or_default()
        }
        Value::Bool(_) | Value::Number(_) => value.to_string(),
    };
    Some(OutMessage {
        text,
        base64_pitfall: false,
    })
}

/// What `Convert.FromBase64String` would accept (non-empty, length multiple of 4).
fn looks_like_base64(s: &str) -> bool {
    use base64::Engine as _;
    !s.is_empty()
        && s.len().is_multiple_of(4)
        && base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

/// Turns `Outputs.<http binding>` into the HTTP response: `{statusCode|status, headers, body}`,
/// status as number or string, body text as is and JSON values as indented JSON text,
/// Content-Type `text/plain` unless a header sets it. No value means 200 `{}`.
pub fn http_response(value: Option<&Value>) -> Result<Response<Body>, String> {
    let parsed;
    let value = match value {
        None | Some(Value::Null) => {
            return build(
                StatusCode::OK,
                &[("content-type".into(), "application/json".into())],
                b"{}".to_vec(),
            );
        }
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => {
                parsed = v;
                &parsed
            }
            _ => return build(StatusCode::OK, &[], s.clone().into_bytes()),
        },
        Some(v) => v,
    };
    let Value::Object(obj) = value else {
        return build(StatusCode::OK, &[], value.to_string().into_bytes());
    };
    let field = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let status = match field("statusCode").or_else(|| field("status")) {
        None | Some(Value::Null) => StatusCode::OK,
        Some(v) => {
            let code = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            code.and_then(|c| u16::try_from(c).ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| format!("invalid statusCode {v}"))?
        }
    };
    let headers: Vec<(String, String)> = match field("headers") {
        Some(Value::Object(h)) => h
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let body = match field("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(v) => serde_json::to_string_pretty(v)
            .unwrap_or_default()
            .into_bytes(),
    };
    build(status, &headers, body)
}

fn build(
    status: StatusCode,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<Response<Body>, String> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let map = response.headers_mut();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name `{k}`"))?;
        let value =
            HeaderValue::from_str(v).map_err(|_| format!("invalid value for header `{k}`"))?;
        map.insert(name, value);
    }
    if !map.contains_key("content-type") {
        map.insert(
            "content-type",
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(v: Value) -> Vec<String> {
        queue_messages(&v).into_iter().map(|m| m.text).collect()
    }

    #[test]
    fn array_is_one_message_per_element() {
        assert_eq!(
            texts(json!(["queue message 1", "queue message 2"])),
            ["queue message 1", "queue message 2"]
        );
    }

    #[test]
    fn objects_are_written_as_json_text() {
        let t = texts(json!({"id": 1}));
        assert_eq!(
            serde_json::from_str::<Value>(&t[0]).unwrap(),
            json!({"id": 1})
        );
    }

    #[test]
    fn strings_holding_json_are_parsed_before_fanning_out() {
        assert_eq!(texts(json!("[1, 2]")), ["1", "2"]);
        let t = texts(json!("{\"id\":1005}"));
        assert_eq!(t.len(), 1);
        assert_eq!(
            serde_json::from_str::<Value>(&t[0]).unwrap(),
            json!({"id": 1005})
        );
    }

    #[test]
    fn null_writes_nothing_and_scalars_one_message() {
        assert!(texts(Value::Null).is_empty());
        assert_eq!(texts(json!(42)), ["42"]);
        assert_eq!(texts(json!([null, "x"])), ["x"]);
    }

    #[test]
    fn base64_looking_strings_are_flagged() {
        let m = queue_messages(&json!("test"));
        assert!(m[0].base64_pitfall, "`test` is valid base64");
        assert!(!queue_messages(&json!("hello world"))[0].base64_pitfall);
    }

    #[test]
    fn result_fields_are_case_insensitive_but_binding_names_are_not() {
        let r = InvocationResult::parse(
            br#"{"outputs":{"Res":{"body":"x"}},"logs":["a",1],"returnValue":7}"#,
        )
        .unwrap();
        assert!(r.output("Res").is_some());
        assert!(
            r.output("res").is_none(),
            "the host drops `Res` for binding `res`"
        );
        assert_eq!(r.output_in_other_case("res"), Some("Res"));
        assert_eq!(r.output_in_other_case("Res"), None);
        assert_eq!(r.logs, ["a", "1"]);
        assert_eq!(r.output("$return"), Some(&json!(7)));
        assert!(InvocationResult::parse(b"[1]").is_err());
        assert!(InvocationResult::parse(b"nope").is_err());
    }

    #[test]
    fn http_output_maps_status_headers_and_body() {
        let r = http_response(Some(&json!({"statusCode": "201", "headers": {"Content-Type": "application/json"}, "body": {"ok": true}}))).unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["content-type"], "application/json");
        let r = http_response(Some(&json!({"status": 404, "body": "nope"}))).unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(http_response(None).unwrap().status(), 200);
        assert!(http_response(Some(&json!({"statusCode": "abc"}))).is_err());
    }
}
