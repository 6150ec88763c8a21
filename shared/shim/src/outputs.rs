//! Output bindings: the typed builder returned by queue/timer handlers, and the
//! [`QueueOutputs`] response extension through which axum handlers emit queue messages.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("queue message for output binding `{binding}` cannot be serialized: {source}")]
pub struct OutputError {
    pub binding: String,
    #[source]
    pub source: serde_json::Error,
}

fn to_message(binding: &str, message: &impl Serialize) -> Result<Value, OutputError> {
    serde_json::to_value(message).map_err(|source| OutputError {
        binding: binding.to_owned(),
        source,
    })
}

/// Messages per output binding name. Each binding is written as a JSON array, which the host
/// turns into one queue message per element (zero elements = no message).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueOutputs(BTreeMap<String, Vec<Value>>);

impl QueueOutputs {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push_json(&mut self, binding: impl Into<String>, message: Value) {
        self.0.entry(binding.into()).or_default().push(message);
    }

    pub fn push(
        &mut self,
        binding: impl Into<String>,
        message: &impl Serialize,
    ) -> Result<(), OutputError> {
        let binding = binding.into();
        let message = to_message(&binding, message)?;
        self.push_json(binding, message);
        Ok(())
    }

    /// Builder form of [`push_json`](Self::push_json).
    pub fn with_json(mut self, binding: impl Into<String>, message: Value) -> Self {
        self.push_json(binding, message);
        self
    }

    /// True when no binding holds a message.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(Vec::is_empty)
    }

    pub fn get(&self, binding: &str) -> Option<&[Value]> {
        self.0.get(binding).map(Vec::as_slice)
    }

    pub fn bindings(&self) -> impl Iterator<Item = (&str, &[Value])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    fn merge(&mut self, other: QueueOutputs) {
        for (binding, messages) in other.0 {
            self.0.entry(binding).or_default().extend(messages);
        }
    }

    pub(crate) fn messages_mut(&mut self) -> impl Iterator<Item = &mut Value> {
        self.0.values_mut().flatten()
    }

    pub(crate) fn into_inner(self) -> BTreeMap<String, Vec<Value>> {
        self.0
    }
}

/// Lets a handler return `(StatusCode::ACCEPTED, queue_outputs, Json(body))`.
impl IntoResponseParts for QueueOutputs {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        match res.extensions_mut().get_mut::<QueueOutputs>() {
            Some(existing) => existing.merge(self),
            None => {
                res.extensions_mut().insert(self);
            }
        }
        Ok(res)
    }
}

/// Attaches one queue message for `binding` to a response (appending to any already there).
pub fn with_queue_output(response: impl IntoResponse, binding: &str, message: Value) -> Response {
    let mut response = response.into_response();
    let extensions = response.extensions_mut();
    match extensions.get_mut::<QueueOutputs>() {
        Some(existing) => existing.push_json(binding, message),
        None => {
            extensions.insert(QueueOutputs::new().with_json(binding, message));
        }
    }
    response
}

/// What a queue or timer handler produces: messages per output binding, log lines for the
/// host's function log, and an optional return value (for a `$return` binding).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    pub(crate) queues: QueueOutputs,
    pub(crate) logs: Vec<String>,
    pub(crate) return_value: Option<Value>,
}

impl Outputs {
    /// No messages, no logs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one message to `binding`; call repeatedly for many.
    pub fn message(
        mut self,
        binding: impl Into<String>,
        message: &impl Serialize,
    ) -> Result<Self, OutputError> {
        self.queues.push(binding, message)?;
        Ok(self)
    }

    /// Adds one already-serialized message to `binding`.
    pub fn message_json(mut self, binding: impl Into<String>, message: Value) -> Self {
        self.queues.push_json(binding, message);
        self
    }

    /// Adds every message of `messages` to `binding`.
    pub fn messages<'a, T: Serialize + 'a>(
        mut self,
        binding: impl Into<String>,
        messages: impl IntoIterator<Item = &'a T>,
    ) -> Result<Self, OutputError> {
        let binding = binding.into();
        for message in messages {
            self.queues.push(binding.clone(), message)?;
        }
        Ok(self)
    }

    /// A line for the host's function log (Information level, Application Insights).
    pub fn log(mut self, line: impl Into<String>) -> Self {
        self.logs.push(line.into());
        self
    }

    pub fn return_value(mut self, value: Value) -> Self {
        self.return_value = Some(value);
        self
    }

    pub fn queues(&self) -> &QueueOutputs {
        &self.queues
    }

    pub fn logs(&self) -> &[String] {
        &self.logs
    }

    pub fn return_value_ref(&self) -> Option<&Value> {
        self.return_value.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    #[test]
    fn queue_outputs_part_and_helper_accumulate_on_one_response() {
        let parts = QueueOutputs::new().with_json("out", json!({"n": 1}));
        let response = (StatusCode::ACCEPTED, parts, "ok").into_response();
        let response = with_queue_output(response, "out", json!({"n": 2}));
        let response = with_queue_output(response, "audit", json!("x-1"));
        let outputs = response.extensions().get::<QueueOutputs>().unwrap();
        assert_eq!(
            outputs.get("out").unwrap(),
            &[json!({"n": 1}), json!({"n": 2})]
        );
        assert_eq!(outputs.get("audit").unwrap(), &[json!("x-1")]);
    }

    #[test]
    fn outputs_builder_keeps_many_messages_per_binding_in_order() {
        let outputs = Outputs::new()
            .messages("out", &[1, 2, 3])
            .unwrap()
            .message("other", &"m")
            .unwrap()
            .log("done");
        assert_eq!(
            outputs.queues().get("out").unwrap(),
            &[json!(1), json!(2), json!(3)]
        );
        assert_eq!(outputs.logs(), ["done"]);
    }

    #[test]
    fn empty_bindings_count_as_no_output() {
        let mut outputs = QueueOutputs::new();
        assert!(outputs.is_empty());
        outputs.0.insert("out".into(), Vec::new());
        assert!(outputs.is_empty());
    }
}
