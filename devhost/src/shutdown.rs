//! The host's shutdown signal, which every long-running task (worker, listeners, timers, the
//! HTTP server) watches.

/// Resolves once shutdown was requested (the guard `wait_for` returns is dropped inside, so
/// callers' futures stay `Send`).
pub async fn shutdown_requested(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
