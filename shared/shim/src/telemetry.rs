//! One span per invocation, and W3C trace context carried inside queue messages (queues have
//! no headers): every JSON object message a function emits gets a `traceparent` field naming
//! the emitting invocation's span, and the field is taken out of a delivered message (so
//! message types that refuse unknown fields still decode) to parent the consuming span.
//! Messages without the field start a new trace; nothing here is per function.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use meshpay_telemetry::KeyValue;
use meshpay_telemetry::span::{self, Trigger, attr};
use meshpay_telemetry::{Context, FutureExt as _, TRACEPARENT, propagation};
use serde_json::{Map, Value};

use crate::context::invocation_id;
use crate::outputs::QueueOutputs;
use crate::wire::unwrap_double_encoded;

/// Message fields recorded on the span of the invocation that reads or writes the message.
const ID_FIELDS: [(&str, &str); 2] = [
    ("payment_id", attr::PAYMENT_ID),
    ("invoice_id", attr::INVOICE_ID),
];

/// The remote parent named by a request's `traceparent` header.
pub(crate) fn header_parent(headers: &HeaderMap) -> Option<Context> {
    let text = headers.get(TRACEPARENT)?.to_str().ok()?;
    propagation::context_from_traceparent(Some(text))
}

/// Takes the `traceparent` out of a queue trigger's message (object, or its JSON text in
/// either encoding) and returns the parent it names plus the ids the message carries. A
/// message that is not a JSON object is left as it is.
pub(crate) fn take_message_context(data: &mut Value) -> (Option<Context>, Vec<KeyValue>) {
    let mut object = match unwrap_double_encoded(data.clone()) {
        Value::Object(object) => object,
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(object)) => object,
            _ => return (None, Vec::new()),
        },
        _ => return (None, Vec::new()),
    };
    let parent = match object.remove(TRACEPARENT) {
        Some(Value::String(text)) => propagation::context_from_traceparent(Some(&text)),
        _ => None,
    };
    let attributes = id_attributes(&object);
    *data = Value::Object(object);
    (parent, attributes)
}

fn id_attributes(object: &Map<String, Value>) -> Vec<KeyValue> {
    ID_FIELDS
        .iter()
        .filter_map(|(field, key)| {
            let value = object.get(*field)?.as_str()?;
            Some(KeyValue::new(*key, value.to_owned()))
        })
        .collect()
}

/// Writes `context`'s `traceparent` into every JSON object message that has none, and records
/// the ids the messages carry on the span (an HTTP `authorize` learns its payment id here).
pub(crate) fn inject(queues: &mut QueueOutputs, context: &Context) {
    let traceparent = propagation::traceparent_of(context);
    let span = meshpay_telemetry::TraceContextExt::span(context);
    for message in queues.messages_mut() {
        let Value::Object(object) = message else {
            continue;
        };
        if span.is_recording() {
            span.set_attributes(id_attributes(object));
        }
        if let Some(traceparent) = &traceparent {
            object
                .entry(TRACEPARENT)
                .or_insert_with(|| Value::String(traceparent.clone()));
        }
    }
}

/// Route layer of an HTTP function (forwarded or rebuilt from an envelope alike): the span is
/// the child of the caller's `traceparent`, and queue messages the handler emits continue it.
pub(crate) async fn http_span(function: &'static str, request: Request, next: Next) -> Response {
    let parent = header_parent(request.headers());
    let mut attributes = vec![KeyValue::new(
        "http.request.method",
        request.method().as_str().to_owned(),
    )];
    // The route template, not the path: low cardinality, and Application Insights names the
    // request by method and route (by method alone without it).
    if let Some(route) = request.extensions().get::<axum::extract::MatchedPath>() {
        attributes.push(KeyValue::new(attr::HTTP_ROUTE, route.as_str().to_owned()));
    }
    if let Some(id) = invocation_id(request.headers()) {
        attributes.push(KeyValue::new(attr::INVOCATION_ID, id.to_owned()));
    }
    let context = span::start_invocation(function, Trigger::Http, parent, attributes);
    let mut response = next.run(request).with_context(context.clone()).await;
    let status = response.status();
    meshpay_telemetry::TraceContextExt::span(&context)
        .set_attribute(KeyValue::new(attr::HTTP_STATUS, i64::from(status.as_u16())));
    if let Some(queues) = response.extensions_mut().get_mut::<QueueOutputs>() {
        inject(queues, &context);
    }
    let error = status.is_server_error().then(|| status.to_string());
    span::end(&context, error.as_deref());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_message_traceparent_is_taken_out_and_names_the_parent() {
        let mut data = json!(format!(
            r#"{{"v":1,"payment_id":"pay_1","traceparent":"{PARENT}"}}"#
        ));
        let (parent, attributes) = take_message_context(&mut data);
        assert_eq!(data, json!({"v": 1, "payment_id": "pay_1"}));
        assert_eq!(
            propagation::traceparent_of(&parent.unwrap()).as_deref(),
            Some(PARENT)
        );
        assert_eq!(attributes, vec![KeyValue::new(attr::PAYMENT_ID, "pay_1")]);
    }

    #[test]
    fn a_message_without_traceparent_or_not_an_object_is_read_unchanged() {
        let mut old = json!({"v": 1, "payment_id": "pay_2"});
        let (parent, _) = take_message_context(&mut old);
        assert!(parent.is_none());
        assert_eq!(old, json!({"v": 1, "payment_id": "pay_2"}));
        let mut text = json!("hello");
        assert!(take_message_context(&mut text).0.is_none());
        assert_eq!(text, json!("hello"));
    }

    #[test]
    fn outputs_get_the_traceparent_of_the_context_and_keep_their_own() {
        let context = propagation::context_from_traceparent(Some(PARENT)).unwrap();
        let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut queues = QueueOutputs::new()
            .with_json("out", json!({"v": 1}))
            .with_json("out", json!({"v": 1, "traceparent": own}))
            .with_json("out", json!("text"));
        inject(&mut queues, &context);
        let out = queues.get("out").unwrap();
        assert_eq!(out[0]["traceparent"], PARENT);
        assert_eq!(out[1]["traceparent"], own);
        assert_eq!(out[2], json!("text"));
    }

    #[test]
    fn with_telemetry_off_an_incoming_traceparent_is_taken_out_and_not_passed_on() {
        assert!(!span::tracing_enabled());
        let mut data = json!({"v": 1, "traceparent": PARENT});
        let (parent, _) = take_message_context(&mut data);
        assert_eq!(data, json!({"v": 1}));
        let context = span::start_invocation("broadcast", Trigger::Queue, parent, Vec::new());
        let mut queues = QueueOutputs::new().with_json("out", json!({"v": 1}));
        inject(&mut queues, &context);
        assert_eq!(queues.get("out").unwrap(), &[json!({"v": 1})]);
    }
}
