//! The invocation envelope exchanged with the host, and the lenient decoders that accept both
//! the documented encoding and the one the host's source produces (strings JSON-encoded twice,
//! numbers sent as strings; reference §3.1).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Header carrying the host's invocation id on every request it sends.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// `POST /{FunctionName}` body: `{"Data": {...}, "Metadata": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct InvocationRequest {
    #[serde(rename = "Data", alias = "data", default)]
    pub data: Map<String, Value>,
    #[serde(rename = "Metadata", alias = "metadata", default)]
    pub metadata: Map<String, Value>,
}

/// The 2xx `application/json` answer to an envelope invocation. The host matches property
/// names case-insensitively; these are the documented spellings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct InvocationResponse {
    #[serde(rename = "Outputs", alias = "outputs", default)]
    pub outputs: Map<String, Value>,
    #[serde(
        rename = "Logs",
        alias = "logs",
        default,
        deserialize_with = "null_as_default"
    )]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue", alias = "returnValue", default)]
    pub return_value: Option<Value>,
}

/// `Metadata.sys`, present on every invocation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Sys {
    #[serde(rename = "MethodName", deserialize_with = "lenient_string")]
    pub method_name: String,
    #[serde(
        rename = "UtcNow",
        default,
        deserialize_with = "lenient_datetime",
        serialize_with = "serialize_datetime"
    )]
    pub utc_now: Option<OffsetDateTime>,
    #[serde(rename = "RandGuid", default, deserialize_with = "lenient_opt_string")]
    pub rand_guid: Option<String>,
}

/// `Metadata.RetryContext`, present when a function-level retry policy re-runs an invocation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RetryContext {
    #[serde(rename = "RetryCount", default, deserialize_with = "lenient_u64")]
    pub retry_count: Option<u64>,
    #[serde(rename = "MaxRetryCount", default, deserialize_with = "lenient_i64")]
    pub max_retry_count: Option<i64>,
    #[serde(rename = "Exception", default)]
    pub exception: Option<Value>,
}

/// Removes the one level of string encoding the host's `JsonConvert.SerializeObject` fallback
/// adds: `"\"abc\""` becomes `"abc"`. Anything else is returned unchanged.
pub fn unwrap_double_encoded(value: Value) -> Value {
    match value {
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::String(inner)) => Value::String(inner),
            _ => Value::String(text),
        },
        other => other,
    }
}

/// Decodes a `Data` value that is either the object itself or its JSON text (possibly
/// double-encoded): what the host sends for HTTP requests and timer infos.
pub(crate) fn from_value_or_text<T: serde::de::DeserializeOwned>(
    value: Value,
) -> serde_json::Result<T> {
    match unwrap_double_encoded(value) {
        Value::String(text) => serde_json::from_str(&text),
        other => serde_json::from_value(other),
    }
}

/// Reads a key from a metadata map, tolerating either encoding, parsed into `T`.
pub(crate) fn metadata_value<T: serde::de::DeserializeOwned>(
    metadata: &Map<String, Value>,
    key: &str,
) -> Option<T> {
    let value = unwrap_double_encoded(metadata.get(key)?.clone());
    serde_json::from_value(value).ok()
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient_opt_string(d)?.ok_or_else(|| serde::de::Error::custom("expected a string"))
}

pub(crate) fn lenient_opt_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(match unwrap_double_encoded(Value::deserialize(d)?) {
        Value::Null => None,
        Value::String(text) => Some(text),
        other => Some(other.to_string()),
    })
}

pub(crate) fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    lenient_number(d, Value::as_u64)
}

pub(crate) fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    lenient_number(d, Value::as_i64)
}

/// Accepts `1`, `"1"` and `"\"1\""`.
fn lenient_number<'de, D, N>(d: D, as_n: fn(&Value) -> Option<N>) -> Result<Option<N>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = unwrap_double_encoded(Value::deserialize(d)?);
    let number = match &value {
        Value::Null => return Ok(None),
        Value::String(text) => serde_json::from_str::<Value>(text.trim())
            .ok()
            .as_ref()
            .and_then(as_n),
        other => as_n(other),
    };
    number
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {value}")))
}

/// Accepts RFC 3339 timestamps (what Newtonsoft's ISO format is), possibly double-encoded.
/// `null` or absent gives `None`; any other shape is an error.
pub(crate) fn lenient_datetime<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<OffsetDateTime>, D::Error> {
    match lenient_opt_string(d)? {
        None => Ok(None),
        Some(text) => OffsetDateTime::parse(&text, &Rfc3339)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp `{text}`: {e}"))),
    }
}

pub(crate) fn serialize_datetime<S: serde::Serializer>(
    value: &Option<OffsetDateTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        None => serializer.serialize_none(),
        Some(at) => {
            let text = at.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
            serializer.serialize_str(&text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn double_encoded_string_is_unwrapped_once() {
        assert_eq!(unwrap_double_encoded(json!("\"abc\"")), json!("abc"));
        assert_eq!(unwrap_double_encoded(json!("abc")), json!("abc"));
        assert_eq!(
            unwrap_double_encoded(json!("{\"a\":1}")),
            json!("{\"a\":1}")
        );
        assert_eq!(unwrap_double_encoded(json!("1")), json!("1"));
        assert_eq!(unwrap_double_encoded(json!(3)), json!(3));
    }

    #[test]
    fn numbers_arrive_as_numbers_or_strings() {
        #[derive(Deserialize)]
        struct N {
            #[serde(deserialize_with = "lenient_u64")]
            n: Option<u64>,
        }
        for wire in [json!({"n": 7}), json!({"n": "7"}), json!({"n": "\"7\""})] {
            assert_eq!(serde_json::from_value::<N>(wire).unwrap().n, Some(7));
        }
        assert!(serde_json::from_value::<N>(json!({"n": "seven"})).is_err());
    }

    #[test]
    fn null_logs_read_as_empty() {
        let response: InvocationResponse =
            serde_json::from_value(json!({"Outputs": {}, "Logs": null, "ReturnValue": null}))
                .unwrap();
        assert!(response.logs.is_empty());
        assert_eq!(response.return_value, None);
    }
}
