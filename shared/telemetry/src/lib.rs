//! meshpay-telemetry: OpenTelemetry for a payment's path across HTTP and queue hops.
//!
//! * [`propagation`]: W3C `traceparent` text to and from an OpenTelemetry [`Context`]. Queue
//!   messages carry no headers, so the shim writes the text into each JSON message it emits
//!   and reads it back from each message it delivers.
//! * [`span`]: the one span per function invocation, and the attribute names handlers add to
//!   it (payment id, chain, wallet, nonce, tx hash, outcome; never secrets or raw bytes).
//! * [`metrics`]: the instruments every crate records into.
//! * `export` (feature): the SDK with OTLP/HTTP exporters. Only the binary enables it; until it
//!   installs providers, every call here goes to OpenTelemetry's no-op globals, which allocate
//!   no exporter and start no task or thread.

pub mod metrics;
pub mod propagation;
pub mod span;

#[cfg(feature = "export")]
pub mod export;

pub use opentelemetry::trace::{FutureExt, SpanKind, TraceContextExt};
pub use opentelemetry::{Context, KeyValue};
pub use propagation::{TRACEPARENT, current_traceparent, parse_traceparent, traceparent_of};
