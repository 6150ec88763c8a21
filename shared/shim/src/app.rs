//! `FunctionApp`: registers every function (by its embedded `function.json`) with the app's
//! axum Router and builds the single service the host talks to.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use serde::de::DeserializeOwned;

use crate::context::InvocationContext;
use crate::definition::{DefinitionError, FunctionDefinition, FunctionJson, TriggerKind};
use crate::outputs::Outputs;
use crate::service::{self, Shared};
use crate::trigger::queue::{MessageError, QueueInvocation, QueueMetadata, decode_message};
use crate::trigger::timer::{TimerInfo, TimerInvocation};
use crate::wire::InvocationRequest;

/// What handlers may fail with: anything convertible, e.g. `anyhow::Error`, a `thiserror`
/// enum, or a `String`. The source chain is logged.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Default body limit for envelopes (the host's queue messages are at most 64 KB).
pub const DEFAULT_ENVELOPE_LIMIT_BYTES: usize = 1024 * 1024;
/// Default limit for an app response carried inside an envelope reply.
pub const DEFAULT_HTTP_RESPONSE_LIMIT_BYTES: usize = 4 * 1024 * 1024;

pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<Outputs, BoxError>> + Send>>;

/// Why an envelope is refused before a handler runs.
pub(crate) enum Rejection {
    /// The envelope does not have the shape the trigger implies (HTTP 400).
    Malformed(String),
    /// The trigger message is not the handler's type (HTTP 422: retried, then poisoned).
    InvalidMessage(MessageError),
}

/// Decodes an envelope for one function and starts its handler.
pub(crate) type Invoker = Arc<
    dyn Fn(
            InvocationRequest,
            InvocationContext,
            &FunctionDefinition,
        ) -> Result<HandlerFuture, Rejection>
        + Send
        + Sync,
>;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error("function `{0}` is registered twice")]
    Duplicate(String),
    #[error(
        "function `{function}` is registered as a {registered_as} function but its trigger is `{trigger}`"
    )]
    WrongTrigger {
        function: String,
        registered_as: &'static str,
        trigger: String,
    },
    #[error("HTTP function `{0}` has no `http` output binding")]
    MissingHttpOutput(String),
    #[error(
        "function `{0}` has the same name as the route prefix, so its envelope path is ambiguous"
    )]
    ShadowsRoutePrefix(String),
}

struct Entry {
    function: FunctionJson,
    registered_as: TriggerKind,
    invoker: Option<Invoker>,
}

/// Builder for the handler's service. HTTP functions are served by `router` (ordinary axum
/// handlers at `/{route_prefix}/...`); queue and timer functions by typed async handlers.
pub struct FunctionApp {
    router: Router,
    route_prefix: String,
    envelope_limit_bytes: usize,
    http_response_limit_bytes: usize,
    entries: Vec<Entry>,
}

impl FunctionApp {
    pub fn new(router: Router) -> Self {
        Self {
            router,
            route_prefix: "api".to_owned(),
            envelope_limit_bytes: DEFAULT_ENVELOPE_LIMIT_BYTES,
            http_response_limit_bytes: DEFAULT_HTTP_RESPONSE_LIMIT_BYTES,
            entries: Vec::new(),
        }
    }

    /// host.json `extensions.http.routePrefix` (default `api`).
    pub fn route_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.route_prefix = prefix.into().trim_matches('/').to_owned();
        self
    }

    pub fn envelope_limit_bytes(mut self, limit_bytes: usize) -> Self {
        self.envelope_limit_bytes = limit_bytes;
        self
    }

    /// An HTTP-triggered function whose route the router serves. Needed for the envelope form
    /// (non-forwarded, or forwarded-ineligible because of extra output bindings).
    pub fn http(mut self, function: FunctionJson) -> Self {
        self.entries.push(Entry {
            function,
            registered_as: TriggerKind::Http,
            invoker: None,
        });
        self
    }

    /// A queue-triggered function; `T` is the message type.
    pub fn queue<T, H, Fut, E>(mut self, function: FunctionJson, handler: H) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        H: Fn(QueueInvocation<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outputs, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let handler = Arc::new(handler);
        let invoker: Invoker = Arc::new(move |mut envelope, context, definition| {
            let binding = &definition.trigger().name;
            let raw = envelope
                .data
                .remove(binding)
                .ok_or_else(|| Rejection::Malformed(format!("`Data.{binding}` is missing")))?;
            let message = decode_message::<T>(raw).map_err(Rejection::InvalidMessage)?;
            let invocation = QueueInvocation {
                message,
                metadata: QueueMetadata::from_metadata(&envelope.metadata),
                context,
            };
            let future = handler(invocation);
            Ok(Box::pin(async move { future.await.map_err(Into::into) }) as HandlerFuture)
        });
        self.entries.push(Entry {
            function,
            registered_as: TriggerKind::Queue,
            invoker: Some(invoker),
        });
        self
    }

    /// A timer-triggered function.
    pub fn timer<H, Fut, E>(mut self, function: FunctionJson, handler: H) -> Self
    where
        H: Fn(TimerInvocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outputs, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let handler = Arc::new(handler);
        let invoker: Invoker = Arc::new(move |mut envelope, context, definition| {
            let binding = &definition.trigger().name;
            let raw = envelope
                .data
                .remove(binding)
                .ok_or_else(|| Rejection::Malformed(format!("`Data.{binding}` is missing")))?;
            let timer = TimerInfo::from_value(raw).map_err(|e| {
                Rejection::Malformed(format!("`Data.{binding}` is not a TimerInfo: {e}"))
            })?;
            let future = handler(TimerInvocation { timer, context });
            Ok(Box::pin(async move { future.await.map_err(Into::into) }) as HandlerFuture)
        });
        self.entries.push(Entry {
            function,
            registered_as: TriggerKind::Timer,
            invoker: Some(invoker),
        });
        self
    }

    /// Names of the functions registered so far, in registration order.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|entry| entry.function.name)
    }

    /// Parses and checks every definition, then returns the one service to serve on
    /// `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`.
    pub fn build(self) -> Result<Router, BuildError> {
        let mut functions = HashMap::new();
        for entry in self.entries {
            let definition = entry.function.parse()?;
            check_entry(&definition, &entry.registered_as, &self.route_prefix)?;
            let name = definition.name().to_owned();
            let registered = service::Registered {
                definition,
                invoker: entry.invoker,
            };
            if functions
                .insert(name.clone(), Arc::new(registered))
                .is_some()
            {
                return Err(BuildError::Duplicate(name));
            }
        }
        let shared = Shared {
            router: self.router,
            functions,
            route_prefix: self.route_prefix,
            envelope_limit_bytes: self.envelope_limit_bytes,
            http_response_limit_bytes: self.http_response_limit_bytes,
        };
        Ok(service::router(shared))
    }
}

fn check_entry(
    definition: &FunctionDefinition,
    registered_as: &TriggerKind,
    route_prefix: &str,
) -> Result<(), BuildError> {
    let name = definition.name();
    if &definition.trigger_kind() != registered_as {
        return Err(BuildError::WrongTrigger {
            function: name.to_owned(),
            registered_as: match registered_as {
                TriggerKind::Http => "HTTP",
                TriggerKind::Queue => "queue",
                _ => "timer",
            },
            trigger: definition.trigger().kind.as_str().to_owned(),
        });
    }
    if *registered_as == TriggerKind::Http && definition.http_output().is_none() {
        return Err(BuildError::MissingHttpOutput(name.to_owned()));
    }
    if name.eq_ignore_ascii_case(route_prefix) {
        return Err(BuildError::ShadowsRoutePrefix(name.to_owned()));
    }
    Ok(())
}
