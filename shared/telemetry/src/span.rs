//! The span of one function invocation and the attributes handlers put on it.
//!
//! The shim starts one span per invocation, named by the function, and runs the handler inside
//! its context; anything below adds attributes with [`record`] without knowing about spans.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{Link, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, Value, global};

/// Set once, when the binary installs a trace exporter. Until then no span is started and no
/// context is passed on: a message that arrives with a `traceparent` leaves without one.
static TRACING: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported (see [`TRACING`]).
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

#[cfg(feature = "export")]
pub(crate) fn enable_tracing() {
    TRACING.store(true, Ordering::Relaxed);
}

/// The instrumentation scope of every meshpay span.
pub const TRACER: &str = "meshpay";

/// Attribute names. Values are identifiers and outcomes only: never secrets, signed bytes,
/// keys or addresses' private material.
pub mod attr {
    pub const FUNCTION: &str = "faas.name";
    pub const TRIGGER: &str = "faas.trigger";
    pub const INVOCATION_ID: &str = "faas.invocation_id";
    pub const MESSAGE_ID: &str = "messaging.message.id";
    pub const DEQUEUE_COUNT: &str = "meshpay.queue.dequeue_count";
    pub const PAYMENT_ID: &str = "meshpay.payment_id";
    pub const INVOICE_ID: &str = "meshpay.invoice_id";
    pub const CHAIN_ID: &str = "meshpay.chain_id";
    pub const WALLET: &str = "meshpay.wallet";
    pub const NONCE: &str = "meshpay.nonce";
    pub const TX_HASH: &str = "meshpay.tx_hash";
    /// What the step decided (`broadcast`, `confirmed`, `settled`, `retry`, `failed`, ...).
    pub const OUTCOME: &str = "meshpay.outcome";
    pub const HTTP_STATUS: &str = "http.response.status_code";
    pub const HTTP_ROUTE: &str = "http.route";
}

/// How an invocation was triggered (OpenTelemetry FaaS conventions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Http,
    Queue,
    Timer,
}

impl Trigger {
    fn kind(self) -> SpanKind {
        match self {
            Trigger::Http => SpanKind::Server,
            Trigger::Queue => SpanKind::Consumer,
            Trigger::Timer => SpanKind::Internal,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Queue => "pubsub",
            Trigger::Timer => "timer",
        }
    }
}

/// Starts the span of one invocation of `function` under `parent` (a remote context read from
/// a `traceparent`, or `None` for a new trace) and returns the context to run the handler in.
pub fn start_invocation(
    function: &str,
    trigger: Trigger,
    parent: Option<Context>,
    attributes: Vec<KeyValue>,
) -> Context {
    start_linked_invocation(function, trigger, parent, None, attributes)
}

/// [`start_invocation`] with a link to `linked`: a queue message's own trace is the parent,
/// and the host's context for the same invocation (its request telemetry, a trace of its
/// own) is linked, so either leads to the other.
pub fn start_linked_invocation(
    function: &str,
    trigger: Trigger,
    parent: Option<Context>,
    linked: Option<Context>,
    mut attributes: Vec<KeyValue>,
) -> Context {
    if !tracing_enabled() {
        return Context::new();
    }
    attributes.push(KeyValue::new(attr::FUNCTION, function.to_owned()));
    attributes.push(KeyValue::new(attr::TRIGGER, trigger.name()));
    let parent = parent.unwrap_or_default();
    let links = linked
        .map(|cx| cx.span().span_context().clone())
        .filter(|linked| linked.is_valid() && *linked != *parent.span().span_context())
        .map(|linked| vec![Link::with_context(linked)])
        .unwrap_or_default();
    let tracer = global::tracer(TRACER);
    let span = tracer
        .span_builder(function.to_owned())
        .with_kind(trigger.kind())
        .with_attributes(attributes)
        .with_links(links)
        .start_with_context(&tracer, &parent);
    parent.with_span(span)
}

/// Starts a child span of `parent` (e.g. one webhook delivery inside the `notify` run).
pub fn start_child(name: &str, parent: &Context, attributes: Vec<KeyValue>) -> Context {
    if !tracing_enabled() {
        return Context::new();
    }
    let tracer = global::tracer(TRACER);
    let span = tracer
        .span_builder(name.to_owned())
        .with_kind(SpanKind::Internal)
        .with_attributes(attributes)
        .start_with_context(&tracer, parent);
    parent.with_span(span)
}

/// Adds an attribute to the span the current task runs in (nothing when there is none).
pub fn record(key: &'static str, value: impl Into<Value>) {
    Context::map_current(|cx| {
        let span = cx.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new(key, value));
        }
    });
}

/// Adds an attribute to `context`'s span.
pub fn record_on(context: &Context, key: &'static str, value: impl Into<Value>) {
    context.span().set_attribute(KeyValue::new(key, value));
}

/// Ends the context's span, marking it failed with `error` when there is one.
pub fn end(context: &Context, error: Option<&str>) {
    let span = context.span();
    if let Some(error) = error {
        span.set_status(Status::error(error.to_owned()));
    }
    span.end();
}
