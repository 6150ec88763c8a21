//! `meshpay serve`: every function is registered here, in one place.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use axum::response::IntoResponse as _;
use meshpay_api::AppState;
use meshpay_relay::RelaySetup;
use meshpay_shim::FunctionApp;
use meshpay_store::Store;
use meshpay_webhooks::WebhookServices;
use tower_http::catch_panic::CatchPanicLayer;

use crate::cli::ServeArgs;
use crate::settings::Settings;

/// Every function, each listed once: a folder under `functions/` that is not registered here
/// fails a test (the diagnostics ones only in builds with the `diagnostics` feature).
pub fn function_app(states: States) -> FunctionApp {
    let States {
        payments,
        webhooks,
        confirm,
        broadcast,
        detector,
        sweeper,
    } = states;
    let endpoints = meshpay_fn_webhook_endpoints::EndpointsState::new(payments.clone(), &webhooks);
    let chain_webhook = meshpay_fn_confirm_webhook::WebhookState {
        store: payments.store.clone(),
        config: std::sync::Arc::new(confirm.config().webhook.clone()),
    };
    let app = FunctionApp::new()
        .host_json(include_str!("../host.json"))
        .register(meshpay_fn_health::function())
        .register(meshpay_fn_fallback::function())
        .register(meshpay_fn_openapi::function())
        .register(meshpay_fn_quotes::function(payments.clone()))
        .register(meshpay_fn_authorize::function(payments.clone()))
        .register(meshpay_fn_payments::function(payments.clone()))
        .register(meshpay_fn_cancel::function(payments.clone()))
        .register(meshpay_fn_balances::function(payments.clone()))
        .register(meshpay_fn_invoices::function(payments.clone()))
        .register(meshpay_fn_invoice_cancel::function(payments.clone()))
        .register(meshpay_fn_pay::function(payments.clone()))
        .register(meshpay_fn_pay_status::function(payments.clone()))
        .register(meshpay_fn_webhook_endpoints::function(endpoints))
        .register(meshpay_fn_webhook_deliveries::function(payments))
        .register(meshpay_fn_confirm_webhook::function(chain_webhook))
        .register(meshpay_fn_broadcast::function(broadcast.clone()))
        .register(meshpay_fn_confirm::function(confirm.clone()))
        .register(meshpay_fn_settle::function(confirm.clone()))
        .register(meshpay_fn_reconcile::function(
            confirm,
            Some(broadcast.shared_relay()),
        ))
        .register(meshpay_fn_notify::function(webhooks.dispatcher.clone()))
        .register(meshpay_fn_invoices_detect::function(detector.clone()))
        .register(meshpay_fn_invoices_hint::function(detector))
        .register(meshpay_fn_sweep::function(sweeper));
    diagnostics(app)
}

/// probe, probe-worker, heartbeat: development and end-to-end test aids. The production
/// package is built without them (`make build`) and leaves their folders out
/// (scripts/package.sh), so the host never indexes a function the binary lacks.
#[cfg(feature = "diagnostics")]
fn diagnostics(app: FunctionApp) -> FunctionApp {
    app.register(meshpay_fn_probe::function())
        .register(meshpay_fn_probe_worker::function())
        .register(meshpay_fn_heartbeat::function())
}

#[cfg(not(feature = "diagnostics"))]
fn diagnostics(app: FunctionApp) -> FunctionApp {
    app
}

/// Connections the pool holds for the broadcast step on top of `MESHPAY_DB_MAX_CONNECTIONS`:
/// each broadcast keeps one for its sign-and-store transaction, and a queue batch runs up to 16
/// at once, so without them broadcasts would take the connections HTTP requests wait for.
const BROADCAST_DB_CONNECTIONS: u32 = 8;
/// The connection confirm's hint subscription (`LISTEN`) holds for the process's lifetime.
const HINT_LISTENER_DB_CONNECTIONS: u32 = 1;

/// The functions' shared states, built once from the settings on the process's one database
/// pool. No I/O but an Entra token (with `MESHPAY_DB_AUTH=entra`): the pool connects on first
/// use and the relay's signers are built at the first broadcast, so the handler is ready at once
/// and a database or Key Vault outage shows up as failed calls, not as a process that cannot
/// start.
pub struct States {
    pub payments: AppState,
    pub webhooks: WebhookServices,
    /// The confirm/settle/reconcile engine (shared by the four functions).
    pub confirm: Arc<meshpay_confirm::Pipeline>,
    /// One relay (signers) for broadcasting and reconcile's wallet healing.
    pub broadcast: meshpay_fn_broadcast::Broadcast,
    /// Pay-in detection (the `invoices-detect` timer).
    pub detector: Arc<meshpay_payins::detect::Detector>,
    /// Sweeps of deposit addresses (the `sweep` timer), with the broadcast step's relay.
    pub sweeper: Arc<meshpay_payins::sweep::Sweeper>,
}

impl States {
    pub async fn new(settings: Settings) -> anyhow::Result<States> {
        let pool_size = settings.database.max_connections
            + BROADCAST_DB_CONNECTIONS
            + HINT_LISTENER_DB_CONNECTIONS;
        let database = settings
            .database
            .with_max_connections(pool_size)
            .with_acquire_timeout(meshpay_api::DB_ACQUIRE_TIMEOUT);
        let store = Store::connect_lazy_with(&database)
            .await
            .context("database login")?;
        let chains = Arc::new(settings.chains);
        let payments =
            AppState::with_rpc_fees(store.clone(), chains.clone()).with_config(settings.api);
        let webhooks = WebhookServices::new(settings.webhooks, store.clone(), chains.clone())
            .context("webhooks configuration")?;
        let confirm = Arc::new(meshpay_confirm::Pipeline::new(
            store.clone(),
            chains.clone(),
            settings.confirm,
        ));
        // Hints from the chain webhook (taken by any instance) wake this process's chains.
        confirm.listen_for_hints();
        let detector = Arc::new(meshpay_payins::detect::Detector::new(
            store.clone(),
            chains.clone(),
            settings.payins,
        ));
        let sweep_store = store.clone();
        let sweep_chains = chains.clone();
        let broadcast = meshpay_fn_broadcast::Broadcast::lazy(RelaySetup {
            store,
            chains,
            signers: settings.signers,
            secrets: settings.signer_secrets,
            config: settings.relay,
        });
        let sweeper = Arc::new(meshpay_payins::sweep::Sweeper::new(
            sweep_store,
            sweep_chains,
            broadcast.shared_relay(),
            settings.sweep,
        ));
        Ok(States {
            payments,
            webhooks,
            confirm,
            broadcast,
            detector,
            sweeper,
        })
    }
}

pub async fn run(args: ServeArgs, settings: Settings, started: Instant) -> anyhow::Result<()> {
    let states = States::new(settings).await?;
    let app = function_app(states)
        .build()
        .context("registering functions")?
        .layer(CatchPanicLayer::custom(panic_response));
    let listener = meshpay_shim::bind_loopback(args.port)
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(%addr, startup_ms, "meshpay ready");
    meshpay_shim::serve(listener, app, shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("meshpay stopped");
    Ok(())
}

/// A panicking HTTP handler answers a problem+json 500 instead of dropping the connection (queue
/// and timer handlers are already guarded by the shim). The panic text is logged, never sent.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(panic = %detail, "handler panicked");
    meshpay_shim::Problem::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal Server Error",
        "An internal error occurred.",
    )
    .into_response()
}

/// Ctrl-C locally; SIGTERM when the host or a supervisor stops the process.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "Ctrl-C handler unavailable");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "SIGTERM handler unavailable");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested; draining in-flight invocations");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::{Value, json};
    use tower::ServiceExt as _;

    /// The diagnostics functions: the root package's `diagnostics` feature, read from
    /// Cargo.toml (`dep:meshpay-fn-<folder>`), the one place they are listed.
    fn diagnostics_functions() -> Vec<String> {
        let manifest: toml::Table =
            toml::from_str(include_str!("../Cargo.toml")).expect("Cargo.toml parses");
        manifest["features"]["diagnostics"]
            .as_array()
            .expect("a diagnostics feature")
            .iter()
            .map(|dep| {
                let dep = dep.as_str().unwrap();
                dep.strip_prefix("dep:meshpay-fn-").unwrap().to_owned()
            })
            .collect()
    }

    // A Tokio context: the payments state's lazy pool needs one even unconnected.
    #[tokio::test]
    async fn every_function_folder_is_registered_and_builds() {
        let functions = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("functions");
        let diagnostics = diagnostics_functions();
        assert_eq!(diagnostics, ["probe", "probe-worker", "heartbeat"]);
        let mut on_disk: Vec<String> = std::fs::read_dir(functions)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.join("function.json").is_file())
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .filter(|name| cfg!(feature = "diagnostics") || !diagnostics.contains(name))
            .collect();
        on_disk.sort();
        let app = function_app_for_tests().await;
        let mut registered: Vec<String> = app.function_names().map(str::to_owned).collect();
        registered.sort();
        let missing: Vec<&String> = on_disk.iter().filter(|f| !registered.contains(f)).collect();
        assert!(
            missing.is_empty(),
            "function folders not registered in src/serve.rs: {missing:?}"
        );
        assert_eq!(registered, on_disk, "registered functions without a folder");
        let _service = app.build().unwrap();
    }

    /// `function_app` as `serve` builds it on the repo's dev chains and signers, with a test
    /// webhook key and no reachable database (its pool connects on first use).
    async fn function_app_for_tests() -> FunctionApp {
        let chains = include_str!("../chains.dev.toml");
        let signers = include_str!("../signers.dev.toml");
        let key = meshpay_webhooks::SecretCipher::new(&[7; 32]).unwrap();
        let settings = Settings {
            database: meshpay_store::DbConfig::new(
                "postgres://meshpay@127.0.0.1:1/unused",
                meshpay_store::DbAuth::Password,
            )
            .unwrap(),
            chains: meshpay_chain::ChainsConfig::from_toml_str(chains).unwrap(),
            signers: meshpay_relay::SignersFile::from_toml_str(signers).unwrap(),
            signer_secrets: meshpay_signer::SignerSecrets::default(),
            api: meshpay_api::ApiConfig::default(),
            confirm: meshpay_confirm::ConfirmConfig::default(),
            webhooks: meshpay_webhooks::WebhooksConfig::new(key),
            relay: meshpay_relay::RelayConfig::default(),
            telemetry: crate::settings::telemetry(|_| None).unwrap(),
            payins: meshpay_payins::detect::DetectConfig::default(),
            sweep: meshpay_payins::sweep::SweepConfig::default(),
        };
        function_app(States::new(settings).await.unwrap())
    }

    async fn body_json(response: axum::response::Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn forwarded_health_and_envelope_probe_worker_share_one_service() {
        let app = function_app_for_tests().await.build().unwrap();
        let health = Request::get("/api/health").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(health).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        let envelope = json!({"Data": {"message": "\"{\\\"n\\\":1}\""},
            "Metadata": {"DequeueCount": "1", "sys": {"MethodName": "probe-worker"}}});
        let invoke = Request::post("/probe-worker")
            .header("content-type", "application/json")
            .body(Body::from(envelope.to_string()))
            .unwrap();
        let response = app.oneshot(invoke).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let reply = body_json(response).await;
        assert_eq!(
            reply["Outputs"]["out"],
            json!([{"message": {"n": 1}, "dequeue_count": 1}])
        );
    }

    async fn get(app: &axum::Router, path: &str) -> Value {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        body_json(response).await
    }

    async fn served_document() -> Value {
        get(
            &function_app_for_tests().await.build().unwrap(),
            "/api/openapi.json",
        )
        .await
    }

    #[tokio::test]
    async fn every_registered_http_route_and_method_is_in_the_openapi_document() {
        let routes = function_app_for_tests().await.http_routes().unwrap();
        let doc = served_document().await;
        let functions: std::collections::BTreeSet<&str> =
            routes.iter().map(|route| route.function).collect();
        assert!(functions.contains("webhook-endpoints") && functions.contains("quotes"));
        for route in &routes {
            let method = route.method.as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][&route.path][&method].is_object(),
                "{} {} of function `{}` is missing from the OpenAPI document",
                route.method,
                route.path,
                route.function
            );
        }
    }

    #[tokio::test]
    async fn every_http_function_json_route_form_and_method_is_registered() {
        let routes = function_app_for_tests().await.http_routes().unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, _) in routes.iter().map(|r| (r.function, ())) {
            let text =
                std::fs::read_to_string(root.join("functions").join(name).join("function.json"))
                    .unwrap();
            let json: Value = serde_json::from_str(&text).unwrap();
            let trigger = &json["bindings"][0];
            let route = trigger["route"].as_str().unwrap();
            let mine: Vec<_> = routes.iter().filter(|r| r.function == name).collect();
            for method in trigger["methods"].as_array().unwrap() {
                let method = method.as_str().unwrap().to_ascii_uppercase();
                assert!(
                    mine.iter().any(|r| r.method.as_str() == method),
                    "{name}: {method} not served"
                );
            }
            let base = format!("/api/{}", route.split("/{").next().unwrap());
            assert!(
                mine.iter().any(|r| r.path.starts_with(&base)),
                "{name}: {route} not served"
            );
            if let Some(optional) = route.strip_suffix("?}") {
                let with = format!("/api/{optional}}}");
                let without = format!("/api/{}", route.rsplit_once('/').unwrap().0);
                for path in [with, without] {
                    assert!(
                        mine.iter().any(|r| r.path == path),
                        "{name}: {path} not served"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn document_is_openapi_3_1_with_every_route() {
        let doc = served_document().await;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = &doc["paths"];
        for (path, method) in [
            ("/api/quotes", "post"),
            ("/api/quotes/{id}", "get"),
            ("/api/payments", "post"),
            ("/api/payments", "get"),
            ("/api/payments/{id}", "get"),
            ("/api/payments/{id}/cancel", "post"),
            ("/api/balances", "get"),
            ("/api/webhook-endpoints", "get"),
            ("/api/webhook-endpoints", "post"),
            ("/api/webhook-endpoints/{id}", "get"),
            ("/api/webhook-endpoints/{id}", "delete"),
            ("/api/webhook-deliveries", "get"),
            ("/api/webhook-deliveries/{id}", "get"),
        ] {
            assert!(paths[path][method].is_object(), "{method} {path} missing");
        }
    }

    /// Operations that take no API key: liveness, the document itself, development probes, and
    /// the chain provider's webhook (signed by the provider instead), and the public pay page of
    /// an invoice (its unguessable id is the key).
    const WITHOUT_API_KEY: [&str; 5] =
        ["health", "document", "diagnostics", "chain webhooks", "pay"];

    #[tokio::test]
    async fn every_operation_requires_the_bearer_scheme_with_its_scope_and_documents_401() {
        let doc = served_document().await;
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let tag = op["tags"][0].as_str().unwrap_or_default();
                if WITHOUT_API_KEY.contains(&tag) {
                    continue;
                }
                // The one scope the handler's `Auth<S>` requires, named in the requirement.
                let scopes = op["security"][0]["api_key"].as_array();
                let scope = scopes.filter(|s| s.len() == 1).and_then(|s| s[0].as_str());
                assert!(
                    scope.is_some_and(|s| s.parse::<meshpay_domain::Scope>().is_ok()),
                    "{method} {path}: security must name one scope, not {scopes:?}"
                );
                let unauthorized = &op["responses"]["401"]["content"]["application/problem+json"];
                assert!(
                    unauthorized.is_object(),
                    "{method} {path} lacks a problem+json 401"
                );
            }
        }
    }

    #[tokio::test]
    async fn schemas_referenced_by_operations_exist() {
        let doc = served_document().await;
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "Problem",
            "ErrorCode",
            "QuoteView",
            "PaymentView",
            "PaymentList",
            "BalanceList",
            "Money",
        ] {
            assert!(schemas.contains_key(name), "schema {name} missing");
        }
        // every $ref points into components/schemas and resolves
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }

    async fn send(app: &axum::Router, request: Request<Body>) -> axum::response::Response {
        app.clone().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn an_undeclared_method_on_a_known_path_is_405_with_allow_when_forwarded() {
        let app = function_app_for_tests().await.build().unwrap();
        for (method, path, allow) in [
            ("TRACE", "/api/quotes", "POST"),
            ("DELETE", "/api/balances", "GET"),
            ("TRACE", "/api/payments", "POST, GET"),
            ("PUT", "/api/payments/pay_1", "GET"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            let response = send(&app, request).await;
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(response.headers()["allow"], allow, "{method} {path}");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            assert_eq!(body_json(response).await["code"], "method_not_allowed");
        }
    }

    #[tokio::test]
    async fn an_undeclared_method_is_405_with_allow_in_the_envelope_too() {
        let app = function_app_for_tests().await.build().unwrap();
        let envelope = json!({"Data": {"req": {"Url": "http://localhost/api/balances",
            "Method": "DELETE", "Headers": {}}}, "Metadata": {}});
        let request = Request::post("/balances")
            .header("content-type", "application/json")
            .body(Body::from(envelope.to_string()))
            .unwrap();
        let response = send(&app, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        let reply = body_json(response).await;
        let res = &reply["Outputs"]["res"];
        assert_eq!(res["statusCode"], "405");
        assert_eq!(res["headers"]["allow"], "GET");
        let problem: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
        assert_eq!(problem["code"], "method_not_allowed");
    }

    #[tokio::test]
    async fn queue_messages_of_another_version_are_refused_before_the_handler() {
        let app = function_app_for_tests().await.build().unwrap();
        for function in ["broadcast", "confirm", "settle"] {
            let message = json!({"v": 2, "payment_id": "pay_0123456789abcdef0123456789abcdef"});
            let envelope = json!({"Data": {"message": message.to_string()},
                "Metadata": {"DequeueCount": "1"}});
            let request = Request::post(format!("/{function}"))
                .header("content-type", "application/json")
                .body(Body::from(envelope.to_string()))
                .unwrap();
            let response = send(&app, request).await;
            assert_eq!(
                response.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{function}"
            );
            let problem = body_json(response).await;
            assert_eq!(problem["code"], "invalid_message", "{function}");
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains("version 2"), "{function}: {detail}");
        }
    }

    #[tokio::test]
    async fn every_operation_has_a_problem_json_default_listing_the_stable_codes() {
        let doc = served_document().await;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let schema = &op["responses"]["default"]["content"]["application/problem+json"]["schema"]
                    ["$ref"];
                assert_eq!(schema, "#/components/schemas/Problem", "{method} {path}");
            }
        }
        let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(codes, 25);
    }

    #[tokio::test]
    async fn parameters_state_the_bounds_the_handlers_enforce() {
        let doc = served_document().await;
        let param = |path: &str, method: &str, name: &str| -> Value {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{method} {path} lacks {name}"))["schema"]
                .clone()
        };
        let limit = param("/api/payments", "get", "limit");
        assert_eq!(
            (limit["minimum"].as_u64(), limit["maximum"].as_u64()),
            (Some(1), Some(100))
        );
        assert_eq!(
            param("/api/payments", "post", "Idempotency-Key")["pattern"],
            "^[!-~]{1,255}$"
        );
        assert_eq!(
            param("/api/payments/{id}/cancel", "post", "id")["pattern"],
            "^pay_[0-9a-fA-F]{32}$"
        );
        assert_eq!(
            param("/api/payments", "get", "status")["enum"][1],
            "authorized"
        );
        let quote = &doc["components"]["schemas"]["CreateQuoteRequest"]["properties"];
        assert_eq!(quote["recipient"]["pattern"], "^0x[0-9a-fA-F]{40}$");
        assert!(quote["amount"]["pattern"].is_string());
    }

    #[tokio::test]
    async fn created_resources_link_to_the_operations_on_their_id() {
        let doc = served_document().await;
        let links = |path: &str| doc["paths"][path]["post"]["responses"]["201"]["links"].clone();
        let payment = links("/api/payments");
        assert_eq!(payment["GetPayment"]["operationId"], "get_payment");
        assert_eq!(payment["CancelPayment"]["operationId"], "cancel_payment");
        assert_eq!(
            payment["CancelPayment"]["parameters"]["id"],
            "$response.body#/id"
        );
        let endpoint = links("/api/webhook-endpoints");
        assert_eq!(endpoint["GetEndpoint"]["operationId"], "get_endpoint");
        assert_eq!(endpoint["DeleteEndpoint"]["operationId"], "delete_endpoint");
        let quote = links("/api/quotes");
        assert_eq!(
            quote["AuthorizePayment"]["requestBody"]["quote_id"],
            "$response.body#/id"
        );
        // Every link names an operation of the document.
        let text = doc.to_string();
        for piece in text.split("\"operationId\":\"").skip(1) {
            let id = piece.split('"').next().unwrap();
            let declared = doc["paths"].as_object().unwrap().values().any(|item| {
                item.as_object()
                    .unwrap()
                    .values()
                    .any(|op| op["operationId"] == id)
            });
            assert!(declared, "link to unknown operation {id}");
        }
    }
}
