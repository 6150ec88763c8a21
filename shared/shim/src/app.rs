//! `FunctionApp`: the registry. Each [`Function`] is registered once; `build` checks every
//! definition, derives the HTTP functions' paths from their `function.json` routes, assembles
//! the OpenAPI document from their fragments, and returns the single service the host talks to.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::http::Method;
use axum::routing::MethodRouter;
use axum::{Extension, Router};

use crate::definition::{DefinitionError, FunctionDefinition, TriggerKind};
use crate::document::{ApiDocument, FragmentError, check_fragment};
use crate::function::{Function, HttpHandlers, Kind, RouteForm};
use crate::problem::Problem;
use crate::route::{RouteError, RoutePaths, openapi_path, route_paths};
use crate::service::{self, Registered, Shared};

/// Default body limit for envelopes (the host's queue messages are at most 64 KB).
pub const DEFAULT_ENVELOPE_LIMIT_BYTES: usize = 1024 * 1024;
/// Default limit for an app response carried inside an envelope reply.
pub const DEFAULT_HTTP_RESPONSE_LIMIT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error("host.json is not valid JSON: {0}")]
    HostJson(String),
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
    #[error("HTTP function `{function}`: {source}")]
    Route {
        function: String,
        #[source]
        source: RouteError,
    },
    #[error(
        "HTTP function `{function}` registers a handler for {method}, which function.json does not list"
    )]
    UndeclaredMethod { function: String, method: Method },
    #[error(
        "HTTP function `{function}` lists {method} in function.json but registers no handler for it"
    )]
    MethodWithoutHandler { function: String, method: String },
    #[error(
        "HTTP function `{function}` registers a handler for {method}, a method the router cannot serve"
    )]
    UnsupportedMethod { function: String, method: Method },
    #[error(
        "HTTP function `{0}` registers a handler on the optional segment, but its route has none"
    )]
    NoOptionalSegment(String),
    #[error("{method} {path} is served by both `{first}` and `{second}`")]
    DuplicateRoute {
        method: Method,
        path: String,
        first: String,
        second: String,
    },
    #[error("HTTP function `{function}`'s OpenAPI fragment does not match its routes: {source}")]
    OpenApi {
        function: String,
        #[source]
        source: FragmentError,
    },
}

/// Builder for the handler's service: register every function, then [`FunctionApp::build`].
pub struct FunctionApp {
    route_prefix: String,
    envelope_limit_bytes: usize,
    http_response_limit_bytes: usize,
    /// host.json `extensions.queues.maxDequeueCount`: a failure on this delivery poisons.
    max_dequeue_count: u64,
    functions: Vec<Function>,
    /// A host.json that did not parse: reported by `build`.
    host_json_error: Option<String>,
}

impl Default for FunctionApp {
    fn default() -> Self {
        Self::new()
    }
}

/// One method an HTTP function serves at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub function: &'static str,
    pub method: Method,
    /// In OpenAPI form, route prefix included: `/api/quotes/{id}`.
    pub path: String,
}

/// One method at one path, and who serves it.
struct Served {
    method: Method,
    function: &'static str,
    router: MethodRouter,
}

impl FunctionApp {
    pub fn new() -> Self {
        Self {
            route_prefix: "api".to_owned(),
            envelope_limit_bytes: DEFAULT_ENVELOPE_LIMIT_BYTES,
            http_response_limit_bytes: DEFAULT_HTTP_RESPONSE_LIMIT_BYTES,
            max_dequeue_count: DEFAULT_MAX_DEQUEUE_COUNT,
            functions: Vec::new(),
            host_json_error: None,
        }
    }

    /// host.json `extensions.http.routePrefix` (default `api`).
    pub fn route_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.route_prefix = prefix.into().trim_matches('/').to_owned();
        self
    }

    /// The route prefix from the app's host.json text (`api` when it sets none).
    pub fn host_json(mut self, host_json: &str) -> Self {
        self.host_json_error = None;
        match route_prefix_of(host_json) {
            Ok(prefix) => {
                self.max_dequeue_count = max_dequeue_count_of(host_json);
                self.route_prefix(prefix)
            }
            Err(error) => {
                self.host_json_error = Some(error.to_string());
                self
            }
        }
    }

    pub fn envelope_limit_bytes(mut self, limit_bytes: usize) -> Self {
        self.envelope_limit_bytes = limit_bytes;
        self
    }

    /// Adds one function (HTTP, queue or timer).
    pub fn register(mut self, function: impl Into<Function>) -> Self {
        self.functions.push(function.into());
        self
    }

    /// Names of the functions registered so far, in registration order.
    pub fn function_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.functions.iter().map(Function::name)
    }

    /// Every method each HTTP function serves, at each path (OpenAPI form: `/api/quotes/{id}`),
    /// as `build` will mount them.
    pub fn http_routes(&self) -> Result<Vec<HttpRoute>, BuildError> {
        let mut routes = Vec::new();
        for function in &self.functions {
            let Kind::Http(http) = &function.kind else {
                continue;
            };
            let definition = function.json.parse()?;
            let paths = function_paths(function.json.name, &definition, &self.route_prefix)?;
            for handler in &http.handlers {
                routes.push(HttpRoute {
                    function: function.json.name,
                    method: handler.method.clone(),
                    path: openapi_path(&form_path(function.json.name, &paths, handler.form)?),
                });
            }
        }
        Ok(routes)
    }

    /// Parses and checks every definition, then returns the one service to serve on
    /// `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`.
    pub fn build(mut self) -> Result<Router, BuildError> {
        let (router, functions) = self.assemble()?;
        let shared = Shared {
            router,
            functions,
            route_prefix: self.route_prefix,
            envelope_limit_bytes: self.envelope_limit_bytes,
            http_response_limit_bytes: self.http_response_limit_bytes,
            max_dequeue_count: self.max_dequeue_count,
        };
        Ok(service::router(shared))
    }

    /// The HTTP functions' router alone, checked as `build` checks it: for in-process tests of
    /// handlers, which see a response as the handler made it (queue outputs still attached).
    pub fn http_router(mut self) -> Result<Router, BuildError> {
        self.assemble().map(|(router, _)| router)
    }

    fn assemble(&mut self) -> Result<(Router, HashMap<String, Arc<Registered>>), BuildError> {
        if let Some(error) = self.host_json_error.take() {
            return Err(BuildError::HostJson(error));
        }
        let mut registered = HashMap::new();
        let mut routes: BTreeMap<String, Vec<Served>> = BTreeMap::new();
        let mut document = utoipa::openapi::OpenApi::default();
        for function in std::mem::take(&mut self.functions) {
            let definition = function.json.parse()?;
            check_entry(&definition, &function.kind, &self.route_prefix)?;
            let name = definition.name().to_owned();
            let invoker = match function.kind {
                Kind::Http(http) => {
                    let fragment = add_http_routes(
                        function.json.name,
                        &definition,
                        http,
                        &self.route_prefix,
                        &mut routes,
                    )?;
                    document.merge(fragment);
                    None
                }
                Kind::Queue(invoker) | Kind::Timer(invoker) => Some(invoker),
            };
            let entry = Registered {
                definition,
                invoker,
            };
            if registered.insert(name.clone(), Arc::new(entry)).is_some() {
                return Err(BuildError::Duplicate(name));
            }
        }
        let mut router = Router::new();
        for (path, served) in routes {
            router = router.route(&path, method_router(served));
        }
        let router = router
            .fallback(|| async { Problem::route_not_found() })
            .layer(Extension(ApiDocument::new(document)));
        Ok((router, registered))
    }
}

/// `extensions.http.routePrefix` of a host.json (the host's default `api` when absent).
fn route_prefix_of(host_json: &str) -> Result<String, serde_json::Error> {
    let host: serde_json::Value = serde_json::from_str(host_json)?;
    Ok(host["extensions"]["http"]["routePrefix"]
        .as_str()
        .unwrap_or("api")
        .to_owned())
}

/// The host's default `maxDequeueCount`.
const DEFAULT_MAX_DEQUEUE_COUNT: u64 = 5;

/// `extensions.queues.maxDequeueCount` of a host.json (the host's default 5 when absent).
fn max_dequeue_count_of(host_json: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(host_json)
        .ok()
        .and_then(|host| host["extensions"]["queues"]["maxDequeueCount"].as_u64())
        .unwrap_or(DEFAULT_MAX_DEQUEUE_COUNT)
}

/// One path's handlers in one `MethodRouter`; any other method answers 405 with `Allow`.
fn method_router(served: Vec<Served>) -> MethodRouter {
    let allow = served
        .iter()
        .map(|s| s.method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut router = MethodRouter::new();
    for s in served {
        router = router.merge(s.router);
    }
    router.fallback(move || {
        let allow = allow.clone();
        async move { Problem::method_not_allowed(&allow) }
    })
}

/// Mounts an HTTP function's handlers at the paths its route stands for and returns its
/// OpenAPI fragment, checked against what it serves.
fn add_http_routes(
    function: &'static str,
    definition: &FunctionDefinition,
    http: HttpHandlers,
    prefix: &str,
    routes: &mut BTreeMap<String, Vec<Served>>,
) -> Result<utoipa::openapi::OpenApi, BuildError> {
    let trigger = definition.trigger();
    let paths = function_paths(function, definition, prefix)?;
    let declared: Vec<String> = trigger
        .methods
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    let mut serves: Vec<(String, Method)> = Vec::new();
    for handler in http.handlers {
        if !declared.is_empty() && !declared.iter().any(|m| m == handler.method.as_str()) {
            return Err(BuildError::UndeclaredMethod {
                function: function.to_owned(),
                method: handler.method,
            });
        }
        let Some(router) = handler.router else {
            return Err(BuildError::UnsupportedMethod {
                function: function.to_owned(),
                method: handler.method,
            });
        };
        let path = form_path(function, &paths, handler.form)?;
        let at_path = routes.entry(path.clone()).or_default();
        if let Some(other) = at_path.iter().find(|s| s.method == handler.method) {
            return Err(BuildError::DuplicateRoute {
                method: handler.method,
                path,
                first: other.function.to_owned(),
                second: function.to_owned(),
            });
        }
        let router = router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                crate::telemetry::http_span(function, request, next)
            },
        ));
        at_path.push(Served {
            method: handler.method.clone(),
            function,
            router,
        });
        serves.push((path, handler.method));
    }
    if let Some(method) = declared.iter().find(|m| {
        !serves
            .iter()
            .any(|(_, served)| served.as_str() == m.as_str())
    }) {
        return Err(BuildError::MethodWithoutHandler {
            function: function.to_owned(),
            method: method.clone(),
        });
    }
    let fragment = (http.openapi)();
    check_fragment(&fragment, &serves).map_err(|source| BuildError::OpenApi {
        function: function.to_owned(),
        source,
    })?;
    Ok(fragment)
}

/// The paths of an HTTP function's route (the function's name when `route` is absent, as the
/// host does).
fn function_paths(
    function: &str,
    definition: &FunctionDefinition,
    prefix: &str,
) -> Result<RoutePaths, BuildError> {
    let route = definition.trigger().route.as_deref().unwrap_or(function);
    route_paths(prefix, route).map_err(|source| BuildError::Route {
        function: function.to_owned(),
        source,
    })
}

fn form_path(function: &str, paths: &RoutePaths, form: RouteForm) -> Result<String, BuildError> {
    match form {
        RouteForm::Base => Ok(paths.base.clone()),
        RouteForm::WithOptional => paths
            .with_optional
            .clone()
            .ok_or_else(|| BuildError::NoOptionalSegment(function.to_owned())),
    }
}

fn check_entry(
    definition: &FunctionDefinition,
    kind: &Kind,
    route_prefix: &str,
) -> Result<(), BuildError> {
    let name = definition.name();
    let (registered_as, label) = match kind {
        Kind::Http(_) => (TriggerKind::Http, "HTTP"),
        Kind::Queue(_) => (TriggerKind::Queue, "queue"),
        Kind::Timer(_) => (TriggerKind::Timer, "timer"),
    };
    if definition.trigger_kind() != registered_as {
        return Err(BuildError::WrongTrigger {
            function: name.to_owned(),
            registered_as: label,
            trigger: definition.trigger().kind.as_str().to_owned(),
        });
    }
    if registered_as == TriggerKind::Http && definition.http_output().is_none() {
        return Err(BuildError::MissingHttpOutput(name.to_owned()));
    }
    if name.eq_ignore_ascii_case(route_prefix) {
        return Err(BuildError::ShadowsRoutePrefix(name.to_owned()));
    }
    Ok(())
}
