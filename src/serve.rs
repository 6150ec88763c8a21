//! `meshpay serve`: every function is registered here, in one place.

use std::time::Instant;

use anyhow::Context as _;
use axum::Router;
use axum::response::IntoResponse as _;
use meshpay_api::AppState;
use meshpay_shim::FunctionApp;
use meshpay_webhooks::{WebhookServices, WebhooksConfig};
use tower_http::catch_panic::CatchPanicLayer;

use crate::cli::ServeArgs;

/// The app's HTTP routes (ordinary axum handlers at `/api/...`).
fn router(payments: AppState) -> Router {
    Router::new()
        .merge(meshpay_fn_health::router())
        .merge(meshpay_fn_probe::router())
        .merge(payments_api(payments))
}

/// The payments API's HTTP functions, sharing one state (store, chains, fee estimator).
fn payments_api(state: AppState) -> Router {
    Router::new()
        .merge(meshpay_fn_quotes::router())
        .merge(meshpay_fn_authorize::router())
        .merge(meshpay_fn_payments::router())
        .merge(meshpay_fn_cancel::router())
        .merge(meshpay_fn_balances::router())
        .merge(meshpay_fn_webhook_deliveries::router())
        .merge(meshpay_fn_openapi::router())
        .method_not_allowed_fallback(meshpay_api::error::method_not_allowed)
        .with_state(state)
}

/// Every function: a folder under `functions/` that is not registered here fails a test.
pub fn function_app(payments: AppState, webhooks: &WebhookServices) -> FunctionApp {
    let endpoints = meshpay_fn_webhook_endpoints::EndpointsState::new(payments.clone(), webhooks);
    let confirm = confirm_pipeline(&payments);
    // One relay (database pool, signers) for broadcasting and reconcile's wallet healing.
    let broadcast = meshpay_fn_broadcast::Broadcast::from_env();
    let chain_webhook = meshpay_fn_confirm_webhook::WebhookState {
        store: payments.store.clone(),
        config: std::sync::Arc::new(confirm.config().webhook.clone()),
    };
    FunctionApp::new(
        router(payments)
            .merge(meshpay_fn_webhook_endpoints::router(endpoints))
            .merge(meshpay_fn_confirm_webhook::router(chain_webhook)),
    )
    .http(meshpay_fn_health::FUNCTION)
    .http(meshpay_fn_probe::FUNCTION)
    .http(meshpay_fn_quotes::FUNCTION)
    .http(meshpay_fn_authorize::FUNCTION)
    .http(meshpay_fn_payments::FUNCTION)
    .http(meshpay_fn_cancel::FUNCTION)
    .http(meshpay_fn_balances::FUNCTION)
    .http(meshpay_fn_openapi::FUNCTION)
    .http(meshpay_fn_webhook_endpoints::FUNCTION)
    .http(meshpay_fn_webhook_deliveries::FUNCTION)
    .http(meshpay_fn_confirm_webhook::FUNCTION)
    .queue(
        meshpay_fn_confirm::FUNCTION,
        meshpay_fn_confirm::handler(confirm.clone()),
    )
    .queue(
        meshpay_fn_settle::FUNCTION,
        meshpay_fn_settle::handler(confirm.clone()),
    )
    .timer(
        meshpay_fn_reconcile::FUNCTION,
        meshpay_fn_reconcile::handler(confirm, Some(broadcast.shared_relay())),
    )
    .queue(
        meshpay_fn_probe_worker::FUNCTION,
        meshpay_fn_probe_worker::handle,
    )
    .queue(meshpay_fn_broadcast::FUNCTION, broadcast.into_handler())
    .timer(meshpay_fn_heartbeat::FUNCTION, meshpay_fn_heartbeat::handle)
    .timer(
        meshpay_fn_notify::FUNCTION,
        meshpay_fn_notify::handler(webhooks.dispatcher.clone()),
    )
}

/// The confirm/settle/reconcile engine (shared by the four functions). `run` validates the
/// settings first, so the fallback to defaults is only reached by registration tests.
fn confirm_pipeline(payments: &AppState) -> std::sync::Arc<meshpay_confirm::Pipeline> {
    let config = meshpay_confirm::ConfirmConfig::from_env().unwrap_or_else(|error| {
        tracing::error!(%error, "confirm configuration invalid: using defaults");
        meshpay_confirm::ConfirmConfig::default()
    });
    std::sync::Arc::new(meshpay_confirm::Pipeline::new(
        payments.store.clone(),
        payments.chains.clone(),
        config,
    ))
}

pub async fn run(args: ServeArgs, started: Instant) -> anyhow::Result<()> {
    // DATABASE_URL (+ MESHPAY_DB_AUTH=entra in Azure) and MESHPAY_CHAINS_CONFIG
    // (local.settings.json locally); no I/O but the chains file and an Entra token: the pool
    // connects on first use.
    let payments = AppState::from_env()
        .await
        .context("payments API configuration")?;
    // MESHPAY_WEBHOOK_SECRET_KEY (required) and the other MESHPAY_WEBHOOK_* settings.
    let webhooks = WebhookServices::new(
        WebhooksConfig::from_env().context("webhooks configuration")?,
        payments.store.clone(),
        payments.chains.clone(),
    )
    .context("webhooks configuration")?;
    // MESHPAY_CONFIRM_*, MESHPAY_RECONCILE_*, MESHPAY_CHAIN_WEBHOOK_*: refuse to start on bad values.
    meshpay_confirm::ConfirmConfig::from_env().context("confirm configuration")?;
    let app = function_app(payments, &webhooks)
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

    // A Tokio context: the payments state's lazy pool needs one even unconnected.
    #[tokio::test]
    async fn every_function_folder_is_registered_and_builds() {
        let functions = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("functions");
        let mut on_disk: Vec<String> = std::fs::read_dir(functions)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.join("function.json").is_file())
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let app = function_app_for_tests();
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

    /// `function_app` as `serve` builds it, with a test webhook key and no database.
    fn function_app_for_tests() -> FunctionApp {
        let payments = payments_state();
        let key = meshpay_webhooks::SecretCipher::new(&[7; 32]).unwrap();
        let webhooks = WebhookServices::new(
            WebhooksConfig::new(key),
            payments.store.clone(),
            payments.chains.clone(),
        )
        .unwrap();
        function_app(payments, &webhooks)
    }

    /// The payments API state of `meshpay serve` without a reachable database (its pool
    /// connects on first use) on the repo's dev chains.
    fn payments_state() -> AppState {
        let dev = include_str!("../chains.dev.toml");
        let chains = std::sync::Arc::new(meshpay_chain::ChainsConfig::from_toml_str(dev).unwrap());
        AppState::lazy("postgres://meshpay@127.0.0.1:1/unused", 1, chains).unwrap()
    }

    async fn body_json(response: axum::response::Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn forwarded_health_and_envelope_probe_worker_share_one_service() {
        let app = function_app_for_tests().build().unwrap();
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
}
