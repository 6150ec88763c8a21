//! meshpay-shim: the Azure Functions custom-handler protocol as an axum service, in the model
//! of `lambda_http`.
//!
//! * Every function is one [`Function`] value (its `function.json` plus its handlers),
//!   registered once with [`FunctionApp::register`].
//! * HTTP functions are ordinary axum handlers, one per method, mounted at the paths their
//!   `function.json` route stands for; another method on a known path answers 405 with
//!   `Allow`. Forwarded requests
//!   (`enableForwardingHttpRequest`/`enableProxyingHttpRequest`) reach it unchanged at
//!   `/api/...`; envelope invocations (`POST /{function}` with `Data.<req>`) are rebuilt into an
//!   `http::Request` and the response is carried back as `Outputs.<res>`. Queue messages from
//!   an HTTP handler travel as the [`QueueOutputs`] response extension.
//! * Queue and timer functions are typed async handlers registered by function name with
//!   [`Function::queue`] and [`Function::timer`] (or `queue_with`/`timer_with`, capturing
//!   state), returning [`Outputs`].
//! * `GET /` answers at once (the host's readiness probe).
//!
//! Wire facts: `docs/custom-handler-protocol.md`.

mod app;
mod context;
pub mod definition;
mod document;
mod function;
mod outputs;
pub mod problem;
mod route;
mod server;
mod service;
mod telemetry;
pub mod trigger;
pub mod wire;

pub use app::{
    BuildError, DEFAULT_ENVELOPE_LIMIT_BYTES, DEFAULT_HTTP_RESPONSE_LIMIT_BYTES, FunctionApp,
    HttpRoute,
};
pub use context::{EnvelopeHttpContext, HttpOrigin, InvocationContext, RequestExt};
pub use definition::{
    Binding, BindingType, DefinitionError, Direction, FunctionDefinition, FunctionJson, TriggerKind,
};
pub use document::{ApiDocument, FragmentError};
pub use function::{BoxError, Function, HttpFunction, OpenApiFragment};
pub use outputs::{OutputError, Outputs, QueueOutputs, with_queue_output};
pub use problem::{PROBLEM_JSON, Problem, problem_response};
pub use route::RouteError;
pub use server::{DEFAULT_PORT, PORT_ENV, bind_loopback, serve};
pub use trigger::http::{HttpEnvelopeError, HttpResponseOutput, HttpTriggerRequest};
pub use trigger::queue::{MessageError, QueueInvocation, QueueMetadata, decode_message};
pub use trigger::timer::{ScheduleStatus, TimerInfo, TimerInvocation, TimerSchedule};
pub use wire::{InvocationRequest, InvocationResponse, RetryContext, Sys};

/// Embeds a function's `function.json` beside its code:
/// `Function::http(meshpay_shim::function_json!("health"), HealthApi::openapi)`
#[macro_export]
macro_rules! function_json {
    ($name:literal) => {
        $crate::FunctionJson::new(
            $name,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/function.json")),
        )
    };
}
