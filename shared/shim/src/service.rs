//! The one service the host talks to: readiness, envelope invocations by function name, and
//! forwarded HTTP requests passed straight to the app router.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use meshpay_domain::ErrorChain;
use serde_json::Value;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::context::{EnvelopeHttpContext, HttpOrigin, InvocationContext, invocation_id};
use crate::definition::{BindingType, FunctionDefinition};
use crate::function::{BoxError, Invoker, Rejection};
use crate::outputs::{Outputs, QueueOutputs};
use crate::problem::Problem;
use crate::telemetry;
use crate::trigger::http::{HttpResponseOutput, HttpTriggerRequest};
use crate::trigger::queue::QueueMetadata;
use crate::wire::{InvocationRequest, InvocationResponse, from_value_or_text};
use meshpay_telemetry::span::{self, Trigger, attr};
use meshpay_telemetry::{Context, FutureExt as _, KeyValue, metrics};

pub(crate) struct Registered {
    pub(crate) definition: FunctionDefinition,
    /// `None` for HTTP functions: the app router serves them.
    pub(crate) invoker: Option<Invoker>,
}

pub(crate) struct Shared {
    pub(crate) router: Router,
    pub(crate) functions: HashMap<String, Arc<Registered>>,
    pub(crate) route_prefix: String,
    pub(crate) envelope_limit_bytes: usize,
    pub(crate) http_response_limit_bytes: usize,
    pub(crate) max_dequeue_count: u64,
}

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .fallback(dispatch)
        .with_state(Arc::new(shared))
}

enum Target {
    Ready,
    Envelope(Arc<Registered>),
    UnknownFunction(String),
    Forward,
}

impl Shared {
    /// Routing is by path alone: the host posts envelopes to `/{FunctionName}` (one segment,
    /// no route prefix) and forwards HTTP at `/{prefix}/...`.
    fn target(&self, method: &Method, path: &str) -> Target {
        if path == "/" && (method == Method::GET || method == Method::HEAD) {
            return Target::Ready;
        }
        let single_segment = path
            .strip_prefix('/')
            .filter(|name| !name.is_empty() && !name.contains('/'));
        match single_segment {
            Some(name) if method == Method::POST => match self.functions.get(name) {
                Some(function) => Target::Envelope(function.clone()),
                None if self.route_prefix.is_empty() || name == self.route_prefix => {
                    Target::Forward
                }
                None => Target::UnknownFunction(name.to_owned()),
            },
            _ => Target::Forward,
        }
    }
}

async fn dispatch(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match shared.target(request.method(), request.uri().path()) {
        // The host's readiness probe: any response counts, so answer without work.
        Target::Ready => StatusCode::OK.into_response(),
        Target::Envelope(function) => envelope(&shared, &function, request).await,
        Target::UnknownFunction(name) => {
            tracing::warn!(function = %name, "invocation for an unknown function");
            Problem::unknown_function(&name).into_response()
        }
        Target::Forward => forward(&shared, request).await,
    }
}

async fn call_router(router: &Router, request: Request) -> Response {
    match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

async fn forward(shared: &Shared, mut request: Request) -> Response {
    request.extensions_mut().insert(HttpOrigin::Forwarded);
    let path = request.uri().path().to_owned();
    let id = invocation_id(request.headers()).unwrap_or("-").to_owned();
    let response = call_router(&shared.router, request).await;
    match response.extensions().get::<QueueOutputs>() {
        Some(queues) if !queues.is_empty() => {
            let bindings: Vec<&str> = queues.bindings().map(|(name, _)| name).collect();
            // Messages cannot travel on a forwarded response; dropping them would lose work.
            tracing::error!(
                %path, invocation_id = %id, ?bindings,
                "handler emitted queue outputs on a forwarded HTTP request; declare the queue \
                 output binding in the function's function.json so the host sends an envelope"
            );
            Problem::internal(
                "queue_outputs_on_forwarded_request",
                "misconfigured function",
            )
            .into_response()
        }
        _ => response,
    }
}

async fn envelope(shared: &Shared, function: &Registered, request: Request) -> Response {
    let name = function.definition.name();
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, shared.envelope_limit_bytes).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let inner: BoxError = error.into_inner();
            if inner.is::<http_body_util::LengthLimitError>() {
                tracing::warn!(function = name, "invocation body over the limit");
                return Problem::payload_too_large(shared.envelope_limit_bytes).into_response();
            }
            return Problem::malformed_invocation(format!("body could not be read: {inner}"))
                .into_response();
        }
    };
    let envelope: InvocationRequest = match serde_json::from_slice(&bytes) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(function = name, %error, "malformed invocation JSON");
            let detail = format!("body is not an invocation {{\"Data\",\"Metadata\"}}: {error}");
            return Problem::malformed_invocation(detail).into_response();
        }
    };
    let context = InvocationContext::from_envelope(name, &parts.headers, &envelope.metadata);
    let span = tracing::info_span!(
        "invocation",
        function = name,
        invocation_id = context.invocation_id_or_dash()
    );
    let host_parent = telemetry::header_parent(&parts.headers);
    async {
        match &function.invoker {
            Some(invoker) => {
                let max_dequeue_count = shared.max_dequeue_count;
                let definition = &function.definition;
                invoke(
                    definition,
                    invoker,
                    envelope,
                    context,
                    host_parent,
                    max_dequeue_count,
                )
                .await
            }
            None => http_envelope(shared, &function.definition, envelope, context).await,
        }
    }
    .instrument(span)
    .await
}

/// Queue and timer functions: decode, run the handler, turn the result into a reply.
async fn invoke(
    definition: &FunctionDefinition,
    invoker: &Invoker,
    mut envelope: InvocationRequest,
    context: InvocationContext,
    host_parent: Option<Context>,
    max_dequeue_count: u64,
) -> Response {
    // Named explicitly in failure logs (not only via the span) so every log format keeps them.
    let function = definition.name();
    let id = context.invocation_id_or_dash().to_owned();
    let trace = InvocationTrace::start(definition, &mut envelope, &context, host_parent);
    let outcome = run(definition, invoker, envelope, context, &id)
        .with_context(trace.context.clone())
        .await;
    let (response, failed) = match outcome {
        Ok(mut outputs) => {
            telemetry::inject(&mut outputs.queues, &trace.context);
            let response = reply(definition, outputs, None);
            let failed = (!response.status().is_success()).then_some("reply refused");
            (response, failed)
        }
        Err((response, reason)) => (response, Some(reason)),
    };
    trace.end(function, failed, max_dequeue_count);
    response
}

/// Decodes the envelope and runs the handler; `Err` carries the failure reply and its reason.
async fn run(
    definition: &FunctionDefinition,
    invoker: &Invoker,
    envelope: InvocationRequest,
    context: InvocationContext,
    id: &str,
) -> Result<Outputs, (Response, &'static str)> {
    let function = definition.name();
    let future = match invoker(envelope, context, definition) {
        Ok(future) => future,
        Err(Rejection::Malformed(detail)) => {
            tracing::warn!(function, invocation_id = %id, %detail, "malformed invocation");
            return Err((
                Problem::malformed_invocation(detail).into_response(),
                "malformed invocation",
            ));
        }
        Err(Rejection::InvalidMessage(error)) => {
            tracing::error!(
                function, invocation_id = %id, %error,
                "trigger message rejected; the host will retry, then poison it"
            );
            return Err((
                Problem::invalid_message(error.to_string()).into_response(),
                "invalid message",
            ));
        }
    };
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(outputs)) => Ok(outputs),
        Ok(Err(error)) => {
            tracing::error!(
                function, invocation_id = %id, error = %ErrorChain(&*error),
                "handler failed; the host will retry"
            );
            Err((
                Problem::internal("handler_failed", "the function's handler returned an error")
                    .into_response(),
                "handler failed",
            ))
        }
        Err(_) => {
            tracing::error!(function, invocation_id = %id, "handler panicked; the host will retry");
            Err((
                Problem::internal("handler_panicked", "the function's handler panicked")
                    .into_response(),
                "handler panicked",
            ))
        }
    }
}

/// The span of a queue or timer invocation. A queue message's own `traceparent` (the step
/// that wrote it) is the parent; without one, the host's invocation `traceparent` is.
struct InvocationTrace {
    context: Context,
    /// `Some` for queue triggers: the delivery's dequeue count.
    dequeue_count: Option<Option<u64>>,
}

impl InvocationTrace {
    fn start(
        definition: &FunctionDefinition,
        envelope: &mut InvocationRequest,
        context: &InvocationContext,
        host_parent: Option<Context>,
    ) -> Self {
        let mut attributes = Vec::new();
        if let Some(id) = &context.invocation_id {
            attributes.push(KeyValue::new(attr::INVOCATION_ID, id.clone()));
        }
        let trigger = definition.trigger();
        let (kind, parent, linked, dequeue_count) = if trigger.kind == BindingType::QueueTrigger {
            let (message_parent, ids) = match envelope.data.get_mut(&trigger.name) {
                Some(data) => telemetry::take_message_context(data),
                None => (None, Vec::new()),
            };
            attributes.extend(ids);
            let metadata = QueueMetadata::from_metadata(&envelope.metadata);
            if let Some(id) = metadata.id {
                attributes.push(KeyValue::new(attr::MESSAGE_ID, id));
            }
            if let Some(count) = metadata.dequeue_count {
                attributes.push(KeyValue::new(
                    attr::DEQUEUE_COUNT,
                    i64::try_from(count).unwrap_or(i64::MAX),
                ));
            }
            // The message's trace (the payment's) is the parent; the host's own context for
            // this invocation is a trace of its own, linked.
            let (parent, linked) = match message_parent {
                Some(message) => (Some(message), host_parent),
                None => (host_parent, None),
            };
            (Trigger::Queue, parent, linked, Some(metadata.dequeue_count))
        } else {
            (Trigger::Timer, host_parent, None, None)
        };
        let context =
            span::start_linked_invocation(definition.name(), kind, parent, linked, attributes);
        if let Some(count) = dequeue_count {
            metrics::queue_delivery(definition.name(), count);
        }
        InvocationTrace {
            context,
            dequeue_count,
        }
    }

    fn end(&self, function: &str, failed: Option<&str>, max_dequeue_count: u64) {
        if failed.is_some()
            && let Some(Some(count)) = self.dequeue_count
            && count >= max_dequeue_count
        {
            metrics::queue_poisoned(function);
        }
        span::end(&self.context, failed);
    }
}

/// HTTP functions the host does not forward: rebuild the request, run it through the app
/// router, and carry the response (and any queue outputs) back in `Outputs`.
async fn http_envelope(
    shared: &Shared,
    definition: &FunctionDefinition,
    mut envelope: InvocationRequest,
    context: InvocationContext,
) -> Response {
    let binding = &definition.trigger().name;
    let Some(raw) = envelope.data.remove(binding) else {
        return Problem::malformed_invocation(format!("`Data.{binding}` is missing"))
            .into_response();
    };
    let trigger: HttpTriggerRequest = match from_value_or_text(raw) {
        Ok(trigger) => trigger,
        Err(error) => {
            let detail = format!("`Data.{binding}` is not an HTTP request: {error}");
            tracing::warn!(%detail, "malformed invocation");
            return Problem::malformed_invocation(detail).into_response();
        }
    };
    let origin = HttpOrigin::Envelope(Box::new(EnvelopeHttpContext {
        invocation: context,
        params: trigger.params.clone(),
        identities: trigger.identities.clone(),
    }));
    let request = match trigger.into_request(origin) {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%error, "malformed invocation");
            return Problem::malformed_invocation(error.to_string()).into_response();
        }
    };
    let response = call_router(&shared.router, request).await;
    let limit = shared.http_response_limit_bytes;
    match HttpResponseOutput::from_response(response, limit).await {
        Ok((http, queues)) => {
            let outputs = Outputs {
                queues,
                ..Outputs::default()
            };
            reply(definition, outputs, Some(http))
        }
        Err(error) => {
            tracing::error!(%error, "app response cannot be carried in an envelope");
            Problem::internal("unrepresentable_response", "response cannot be enveloped")
                .into_response()
        }
    }
}

/// Builds the 2xx reply. Every queue output must be a declared output binding: the host
/// ignores unknown names, which would silently drop messages.
fn reply(
    definition: &FunctionDefinition,
    outputs: Outputs,
    http: Option<HttpResponseOutput>,
) -> Response {
    match envelope_response(definition, outputs, http) {
        Ok(response) => (StatusCode::OK, Json(response)).into_response(),
        Err(binding) => {
            tracing::error!(
                %binding,
                "handler emitted messages for an output binding that function.json does not declare"
            );
            Problem::internal("undeclared_output_binding", "misconfigured function").into_response()
        }
    }
}

/// `Err(binding)` names an undeclared output binding.
pub(crate) fn envelope_response(
    definition: &FunctionDefinition,
    outputs: Outputs,
    http: Option<HttpResponseOutput>,
) -> Result<InvocationResponse, String> {
    let Outputs {
        queues,
        logs,
        mut return_value,
    } = outputs;
    let mut response = InvocationResponse::default();
    for (binding, messages) in queues.into_inner() {
        match definition.output(&binding) {
            Some(declared) if declared.kind != BindingType::Http => {}
            _ => return Err(binding),
        }
        warn_on_base64_lookalikes(&binding, &messages);
        response.outputs.insert(binding, Value::Array(messages));
    }
    if let (Some(http), Some(declared)) = (http, definition.http_output()) {
        let value = serde_json::to_value(http).map_err(|_| declared.name.clone())?;
        if declared.name == "$return" {
            return_value = Some(value);
        } else {
            response.outputs.insert(declared.name.clone(), value);
        }
    }
    for line in &logs {
        tracing::debug!(log = %line, "function log line");
    }
    response.logs = logs;
    response.return_value = return_value;
    Ok(response)
}

/// The host base64-decodes string outputs that happen to be valid base64 (reference §4).
fn warn_on_base64_lookalikes(binding: &str, messages: &[Value]) {
    let looks_like_base64 = |text: &str| {
        !text.is_empty()
            && text.len().is_multiple_of(4)
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    };
    let count = messages
        .iter()
        .filter(|m| m.as_str().is_some_and(looks_like_base64))
        .count();
    if count > 0 {
        tracing::warn!(
            binding,
            count,
            "string queue messages that are valid base64 may be decoded by the host; send JSON objects"
        );
    }
}
