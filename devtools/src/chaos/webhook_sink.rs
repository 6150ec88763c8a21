//! The merchant's webhook endpoint: records every delivery's `webhook-id` in arrival order and
//! acknowledges it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The `webhook-id` header (`msg_<hex>`): the event, stable across retries.
    pub event_id: String,
}

#[derive(Clone, Default)]
pub struct WebhookSink {
    received: Arc<Mutex<Vec<Delivery>>>,
}

impl WebhookSink {
    /// Listens on a free loopback port; returns the sink and its URL.
    pub async fn start() -> anyhow::Result<(WebhookSink, String)> {
        let sink = WebhookSink::default();
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(sink.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the webhook sink")?;
        let addr: SocketAddr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("webhook sink stopped: {error}");
            }
        });
        Ok((sink, format!("http://{addr}/hook")))
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Delivery> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn receive(State(sink): State<WebhookSink>, headers: HeaderMap) -> StatusCode {
    let event_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut received) = sink.received.lock() {
        received.push(Delivery { event_id });
    }
    StatusCode::NO_CONTENT
}
