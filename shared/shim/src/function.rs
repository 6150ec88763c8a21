//! [`Function`]: everything the handler knows about one function, in one value: its
//! `function.json`, and its queue/timer handler or its HTTP handlers per method with their
//! OpenAPI fragment. A function crate exports one of these; `FunctionApp::register` takes it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use serde::de::DeserializeOwned;

use crate::context::InvocationContext;
use crate::definition::{FunctionDefinition, FunctionJson};
use crate::outputs::Outputs;
use crate::trigger::queue::{MessageError, QueueInvocation, QueueMetadata, decode_message};
use crate::trigger::timer::{TimerInfo, TimerInvocation};
use crate::wire::InvocationRequest;

/// What handlers may fail with: anything convertible, e.g. `anyhow::Error`, a `thiserror`
/// enum, or a `String`. The source chain is logged.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An HTTP function's part of the OpenAPI document (`<SomeApi as utoipa::OpenApi>::openapi`).
pub type OpenApiFragment = fn() -> utoipa::openapi::OpenApi;

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

/// One registered function.
pub struct Function {
    pub(crate) json: FunctionJson,
    pub(crate) kind: Kind,
}

pub(crate) enum Kind {
    Http(HttpHandlers),
    Queue(Invoker),
    Timer(Invoker),
}

/// Which of the paths a `function.json` route stands for a handler serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteForm {
    /// The route without its optional segment: `quotes` for `quotes/{id?}`.
    Base,
    /// The route with its optional segment: `quotes/{id}` for `quotes/{id?}`.
    WithOptional,
}

pub(crate) struct MethodHandler {
    pub(crate) method: Method,
    pub(crate) form: RouteForm,
    /// `None`: a method axum cannot route (refused by `FunctionApp::build`).
    pub(crate) router: Option<MethodRouter>,
}

pub(crate) struct HttpHandlers {
    pub(crate) handlers: Vec<MethodHandler>,
    pub(crate) openapi: OpenApiFragment,
}

impl Function {
    /// An HTTP-triggered function: add a handler per method with [`HttpFunction::on`], then
    /// give the handlers' state with [`HttpFunction::with_state`] (or convert a stateless one
    /// with `.into()`). Its paths come from the `function.json` route.
    pub fn http<S>(function: FunctionJson, openapi: OpenApiFragment) -> HttpFunction<S> {
        HttpFunction {
            function,
            openapi,
            handlers: Vec::new(),
        }
    }

    /// A queue-triggered function; `T` is the message type, decoded (or refused) before
    /// `handle` runs.
    pub fn queue<T, H, Fut, E>(function: FunctionJson, handle: H) -> Function
    where
        T: DeserializeOwned + Send + 'static,
        H: Fn(QueueInvocation<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outputs, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
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
            let future = handle(invocation);
            Ok(Box::pin(async move { future.await.map_err(Into::into) }) as HandlerFuture)
        });
        Function {
            json: function,
            kind: Kind::Queue(invoker),
        }
    }

    /// [`Function::queue`] with state captured here: each invocation gets a clone of `state`
    /// (an `Arc` or a cheaply cloned handle).
    pub fn queue_with<S, T, H, Fut, E>(function: FunctionJson, state: S, handle: H) -> Function
    where
        S: Clone + Send + Sync + 'static,
        T: DeserializeOwned + Send + 'static,
        H: Fn(S, QueueInvocation<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outputs, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Self::queue(function, move |invocation| {
            handle(state.clone(), invocation)
        })
    }

    /// A timer-triggered function.
    pub fn timer<H, Fut, E>(function: FunctionJson, handle: H) -> Function
    where
        H: Fn(TimerInvocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outputs, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let invoker: Invoker = Arc::new(move |mut envelope, context, definition| {
            let binding = &definition.trigger().name;
            let raw = envelope
                .data
                .remove(binding)
                .ok_or_else(|| Rejection::Malformed(format!("`Data.{binding}` is missing")))?;
            let timer = TimerInfo::from_value(raw).map_err(|e| {
                Rejection::Malformed(format!("`Data.{binding}` is not a TimerInfo: {e}"))
            })?;
            let future = handle(TimerInvocation { timer, context });
            Ok(Box::pin(async move { future.await.map_err(Into::into) }) as HandlerFuture)
        });
        Function {
            json: function,
            kind: Kind::Timer(invoker),
        }
    }

    /// [`Function::timer`] with state captured here, as [`Function::queue_with`].
    pub fn timer_with<S, H, Fut, E>(function: FunctionJson, state: S, handle: H) -> Function
    where
        S: Clone + Send + Sync + 'static,
        H: Fn(S, TimerInvocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outputs, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Self::timer(function, move |invocation| {
            handle(state.clone(), invocation)
        })
    }

    /// The function's name (its folder under `functions/`).
    pub fn name(&self) -> &'static str {
        self.json.name
    }

    /// Its embedded `function.json`.
    pub fn function_json(&self) -> FunctionJson {
        self.json
    }

    /// The OpenAPI fragment of an HTTP function.
    pub fn openapi(&self) -> Option<OpenApiFragment> {
        match &self.kind {
            Kind::Http(http) => Some(http.openapi),
            Kind::Queue(_) | Kind::Timer(_) => None,
        }
    }
}

/// An HTTP function being assembled; see [`Function::http`].
pub struct HttpFunction<S> {
    function: FunctionJson,
    openapi: OpenApiFragment,
    handlers: Vec<(Method, RouteForm, Option<MethodRouter<S>>)>,
}

impl<S: Clone + Send + Sync + 'static> HttpFunction<S> {
    /// Serves `method` on the route (without its optional segment, if it has one).
    pub fn on<H, T>(self, method: Method, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(method, RouteForm::Base, handler)
    }

    /// Serves `method` on the route with its optional segment present (`quotes/{id}` for the
    /// route `quotes/{id?}`).
    pub fn on_with_optional<H, T>(self, method: Method, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(method, RouteForm::WithOptional, handler)
    }

    fn add<H, T>(mut self, method: Method, form: RouteForm, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let router = MethodFilter::try_from(method.clone())
            .ok()
            .map(|filter| axum::routing::on(filter, handler));
        self.handlers.push((method, form, router));
        self
    }

    /// The finished function, its handlers given `state`.
    pub fn with_state(self, state: S) -> Function {
        let handlers = self
            .handlers
            .into_iter()
            .map(|(method, form, router)| MethodHandler {
                method,
                form,
                router: router.map(|router| router.with_state(state.clone())),
            })
            .collect();
        Function {
            json: self.function,
            kind: Kind::Http(HttpHandlers {
                handlers,
                openapi: self.openapi,
            }),
        }
    }
}

impl From<HttpFunction<()>> for Function {
    fn from(function: HttpFunction<()>) -> Self {
        function.with_state(())
    }
}
