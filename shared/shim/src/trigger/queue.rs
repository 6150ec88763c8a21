//! Queue trigger: `Data.<binding>` is the message text, `Metadata` the queue message facts.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::context::InvocationContext;
use crate::wire::{
    Sys, lenient_datetime, lenient_opt_string, lenient_u64, serialize_datetime,
    unwrap_double_encoded,
};

/// A queue-triggered invocation as a handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueInvocation<T> {
    pub message: T,
    pub metadata: QueueMetadata,
    pub context: InvocationContext,
}

/// The queue trigger's binding data. Every field is optional because each is decoded on its
/// own: a field the host formats unexpectedly is logged and dropped rather than failing (and
/// eventually poisoning) every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueMetadata {
    #[serde(rename = "DequeueCount")]
    pub dequeue_count: Option<u64>,
    #[serde(rename = "Id")]
    pub id: Option<String>,
    #[serde(rename = "InsertionTime", serialize_with = "serialize_datetime")]
    pub insertion_time: Option<OffsetDateTime>,
    #[serde(rename = "ExpirationTime", serialize_with = "serialize_datetime")]
    pub expiration_time: Option<OffsetDateTime>,
    #[serde(rename = "NextVisibleTime", serialize_with = "serialize_datetime")]
    pub next_visible_time: Option<OffsetDateTime>,
    #[serde(rename = "PopReceipt")]
    pub pop_receipt: Option<String>,
    #[serde(rename = "sys")]
    pub sys: Option<Sys>,
}

impl QueueMetadata {
    /// Decodes the metadata map in either the documented or the host-source encoding.
    pub fn from_metadata(metadata: &Map<String, Value>) -> Self {
        Self {
            dequeue_count: field(metadata, "DequeueCount", lenient_u64),
            id: field(metadata, "Id", lenient_opt_string),
            insertion_time: field(metadata, "InsertionTime", lenient_datetime),
            expiration_time: field(metadata, "ExpirationTime", lenient_datetime),
            next_visible_time: field(metadata, "NextVisibleTime", lenient_datetime),
            pop_receipt: field(metadata, "PopReceipt", lenient_opt_string),
            sys: field(metadata, "sys", |v| {
                serde_json::from_value::<Option<Sys>>(unwrap_double_encoded(v))
            }),
        }
    }
}

fn field<T>(
    metadata: &Map<String, Value>,
    key: &str,
    decode: impl FnOnce(Value) -> Result<Option<T>, serde_json::Error>,
) -> Option<T> {
    let value = metadata.get(key)?.clone();
    match decode(value) {
        Ok(decoded) => decoded,
        Err(error) => {
            tracing::warn!(key, %error, "queue metadata field ignored: unexpected format");
            None
        }
    }
}

/// Why a message body is not a `T`. Carries the serde error, which names the offending field.
#[derive(Debug, thiserror::Error)]
#[error("queue message is not a valid {type_name}: {source}")]
pub struct MessageError {
    pub type_name: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// Turns `Data.<binding>` into a `T`, in either encoding. The text is parsed as JSON first
/// (the usual case: our messages are JSON); if that fails and `T` accepts a plain string
/// (`String`, `serde_json::Value`), the text itself is the message.
pub fn decode_message<T: DeserializeOwned>(value: Value) -> Result<T, MessageError> {
    let wrap = |source| MessageError {
        type_name: std::any::type_name::<T>(),
        source,
    };
    match unwrap_double_encoded(value) {
        Value::String(text) => match serde_json::from_str::<T>(&text) {
            Ok(message) => Ok(message),
            Err(json_error) => {
                serde_json::from_value(Value::String(text)).map_err(|_| wrap(json_error))
            }
        },
        other => serde_json::from_value(other).map_err(wrap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Probe {
        id: u32,
    }

    #[test]
    fn json_message_decodes_from_single_and_double_encoding() {
        let single = json!("{\"id\":7}");
        let double = json!("\"{\\\"id\\\":7}\"");
        assert_eq!(decode_message::<Probe>(single).unwrap(), Probe { id: 7 });
        assert_eq!(decode_message::<Probe>(double).unwrap(), Probe { id: 7 });
    }

    #[test]
    fn plain_text_message_decodes_as_string_in_both_encodings() {
        assert_eq!(decode_message::<String>(json!("hello")).unwrap(), "hello");
        assert_eq!(
            decode_message::<String>(json!("\"hello\"")).unwrap(),
            "hello"
        );
    }

    #[test]
    fn object_value_decodes_directly() {
        assert_eq!(
            decode_message::<Probe>(json!({"id": 3})).unwrap(),
            Probe { id: 3 }
        );
    }

    #[test]
    fn wrong_shape_names_the_type_and_the_problem() {
        let err = decode_message::<Probe>(json!("{\"id\":\"x\"}")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Probe"), "{text}");
        assert!(text.contains("invalid type"), "{text}");
    }

    #[test]
    fn malformed_metadata_field_is_dropped_not_fatal() {
        let metadata = json!({"DequeueCount": "two", "Id": "\"m-1\""});
        let parsed = QueueMetadata::from_metadata(metadata.as_object().unwrap());
        assert_eq!(parsed.dequeue_count, None);
        assert_eq!(parsed.id.as_deref(), Some("m-1"));
    }
}
