//! `meshpay serve`: every function is registered here, in one place.

use std::time::Instant;

use anyhow::Context as _;
use axum::Router;
use meshpay_api::AppState;
use meshpay_shim::FunctionApp;

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
        .merge(meshpay_fn_openapi::router())
        .method_not_allowed_fallback(meshpay_api::error::method_not_allowed)
        .with_state(state)
}

/// Every function: a folder under `functions/` that is not registered here fails a test.
pub fn function_app(payments: AppState) -> FunctionApp {
    FunctionApp::new(router(payments))
        .http(meshpay_fn_health::FUNCTION)
        .http(meshpay_fn_probe::FUNCTION)
        .http(meshpay_fn_quotes::FUNCTION)
        .http(meshpay_fn_authorize::FUNCTION)
        .http(meshpay_fn_payments::FUNCTION)
        .http(meshpay_fn_cancel::FUNCTION)
        .http(meshpay_fn_balances::FUNCTION)
        .http(meshpay_fn_openapi::FUNCTION)
        .queue(
            meshpay_fn_probe_worker::FUNCTION,
            meshpay_fn_probe_worker::handle,
        )
        .timer(meshpay_fn_heartbeat::FUNCTION, meshpay_fn_heartbeat::handle)
}

pub async fn run(args: ServeArgs, started: Instant) -> anyhow::Result<()> {
    // DATABASE_URL and MESHPAY_CHAINS_CONFIG (local.settings.json locally); no I/O but the
    // chains file: the pool connects on first use.
    let payments = AppState::from_env().context("payments API configuration")?;
    let app = function_app(payments).build().context("registering functions")?;
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
        let app = function_app(payments_state());
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
        let app = function_app(payments_state()).build().unwrap();
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
