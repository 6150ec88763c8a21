//! Listening where the host expects: `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

/// Set by the host for the handler process (same value as `FUNCTIONS_HTTPWORKER_PORT`).
pub const PORT_ENV: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
/// Port for standalone runs without a host.
pub const DEFAULT_PORT: u16 = 8080;

/// The host always calls `http://127.0.0.1:{port}`, so loopback is enough and safer.
pub async fn bind_loopback(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await
}

/// Serves `app` until `shutdown` resolves, then drains in-flight invocations.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Small JSON replies on keep-alive connections: Nagle would only add latency.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
