//! `confirm-webhook`: `POST /api/webhooks/chain` takes chain-event webhooks as *hints*: their
//! transaction hashes are mapped to our broadcast payments and a confirm message is enqueued
//! for each (output `confirm`, queue `payments-confirm`: it starts a polling chain where none
//! runs), and a confirm hint is sent to every instance (`NOTIFY`), which makes a polling chain
//! already running for the payment check the chain at once (`meshpay_confirm::wake`). Nothing
//! in a payload (amounts, blocks, statuses) is trusted: the confirm step reads the receipt from
//! the chain itself.
//!
//! An Alchemy `ADDRESS_ACTIVITY` event naming a watched deposit address also asks for a pay-in
//! detection run of that invoice's chain (output `detect`, queue `payins-detect`), coalesced per
//! chain ([`meshpay_payins::hint`]); only the chain is taken from it, and whether an address
//! matched shows nowhere in the answer.
//!
//! Accepted formats, both HMAC-SHA256 under `MESHPAY_CHAIN_WEBHOOK_KEY` over the raw body:
//! - Alchemy Address Activity: `X-Alchemy-Signature` (hex). Replays: the body's `id` is
//!   remembered; an event whose `createdAt` is older than the tolerance is answered 200 and
//!   ignored (the signature cannot prove freshness, and polling covers it anyway).
//! - Ours, Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`; a
//!   timestamp outside the tolerance is refused (401).
//!
//! Answers: 401 for a missing, invalid or stale signature (also when no key is configured);
//! 413 above 256 KiB; 400 for a signed body that is not the format; 200 otherwise, including a
//! replay of an id already seen (no effect). Because of its queue output the host never
//! forwards this function: it arrives as an envelope whose `Body` is the request text, which
//! is what the signature covers.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler as _;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use meshpay_api::{ApiError, ErrorCode};
use meshpay_confirm::webhook::{
    self, ALCHEMY_SIGNATURE_HEADER, Hint, STANDARD_ID_HEADER, STANDARD_SIGNATURE_HEADER,
    STANDARD_TIMESTAMP_HEADER, SignatureError, StandardHeaders,
};
use meshpay_confirm::{ConfirmMessage, WebhookConfig};
use meshpay_domain::PaymentStatus;
use meshpay_payins::hint::DetectMessage;
use meshpay_shim::{Function, FunctionJson, QueueOutputs};
use meshpay_store::Store;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::OpenApi;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("confirm-webhook");

/// Output binding name in function.json (queue `payments-confirm`).
pub const CONFIRM_OUTPUT: &str = "confirm";
/// Output binding name in function.json (queue `payins-detect`).
pub const DETECT_OUTPUT: &str = "detect";

/// What the handler needs: the store (dedupe, hash lookup) and the webhook configuration.
#[derive(Clone)]
pub struct WebhookState {
    pub store: Store,
    pub config: Arc<WebhookConfig>,
}

/// `POST /api/webhooks/chain`.
pub fn function(state: WebhookState) -> Function {
    let limit = state.config.max_body_bytes;
    Function::http(FUNCTION, ChainWebhookApi::openapi)
        .on(Method::POST, receive.layer(DefaultBodyLimit::max(limit)))
        .with_state(state)
}

/// This function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(receive))]
pub struct ChainWebhookApi;

/// Which format signed the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Alchemy,
    Standard,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Alchemy => "alchemy",
            Source::Standard => "standard",
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized(error: &SignatureError) -> ApiError {
    // The key itself is never logged; the kind of failure is.
    tracing::warn!(%error, "chain webhook refused");
    ApiError::new(
        ErrorCode::Unauthorized,
        "webhook signature missing, invalid or outside the accepted time window",
    )
}

#[utoipa::path(
    post,
    path = "/api/webhooks/chain",
    tag = "chain webhooks",
    request_body(description = "An Alchemy Address Activity event (`X-Alchemy-Signature`) or a Standard Webhooks message (`webhook-id`, `webhook-timestamp`, `webhook-signature`) naming transaction hashes", content_type = "application/json"),
    responses(
        (status = 200, description = "Verified; the named payments are queued for a confirmation check", content_type = "application/json"),
        (status = 400, description = "The body is not the event format its signature names", content_type = "application/problem+json"),
        (status = 401, description = "Signature missing, invalid or outside the accepted time window", content_type = "application/problem+json"),
        (status = 413, description = "Body over the configured limit", content_type = "application/problem+json"),
    )
)]
async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let config = &state.config;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "webhook bodies are limited to {} bytes",
                config.max_body_bytes
            ),
        ),
        _ => ApiError::new(ErrorCode::InvalidJson, "the body could not be read"),
    })?;
    let (source, webhook_id) = verify(config, &headers, &body)?;
    let hint = match source {
        Source::Alchemy => webhook::alchemy_hint(&body, config.max_hashes),
        Source::Standard => webhook::standard_hint(&body, config.max_hashes),
    }
    .map_err(|error| ApiError::new(ErrorCode::InvalidJson, error.to_string()))?;
    if source == Source::Alchemy && is_stale(&hint, config) {
        tracing::info!(event = ?hint.event_id, "stale Alchemy event ignored");
        return Ok(answer("stale", &hint, 0));
    }
    let webhook_id = webhook_id
        .or_else(|| hint.event_id.clone())
        .unwrap_or_else(|| hex::encode(Sha256::digest(&body)));
    let payments = state
        .store
        .payments_by_tx_hashes(&hint.tx_hashes)
        .await
        .map_err(|e| ApiError::internal("chain webhook: payment lookup", &e))?;
    let mut queued = QueueOutputs::new();
    let mut hinted = Vec::new();
    for (payment_id, status, _) in payments {
        // Only a broadcast payment waits for a confirmation; a confirmed one is with settle.
        if status == PaymentStatus::Broadcast && !hinted.contains(&payment_id) {
            queued.push_json(CONFIRM_OUTPUT, json!(ConfirmMessage::new(payment_id)));
            hinted.push(payment_id);
        }
    }
    let enqueued = hinted.len();
    let first = state
        .store
        .record_chain_webhook(source.as_str(), &webhook_id, hint.tx_hashes.len(), enqueued)
        .await
        .map_err(|e| ApiError::internal("chain webhook: dedupe", &e))?;
    if !first {
        tracing::info!(source = source.as_str(), %webhook_id, "chain webhook replayed: no effect");
        return Ok(answer("duplicate", &hint, 0));
    }
    // The queue message starts a chain if none runs; a running chain (on any instance) is
    // woken instead, which checks the chain at once. Losing the wake-up costs only latency.
    if let Err(error) = state.store.hint_confirmations(&hinted).await {
        tracing::warn!(%error, "confirm hint not sent; the polling chains keep their pace");
    }
    if source == Source::Alchemy {
        request_detection(&state.store, &body, config.max_hashes, &mut queued).await?;
    }
    tracing::info!(
        source = source.as_str(), %webhook_id, tx_hashes = hint.tx_hashes.len(), enqueued,
        "chain webhook accepted"
    );
    Ok((queued, answer("accepted", &hint, enqueued)).into_response())
}

/// Asks for a detection run of each chain with a watched deposit address the event names (at
/// most one queued per chain at a time: the store coalesces).
async fn request_detection(
    store: &Store,
    body: &[u8],
    max_addresses: usize,
    queued: &mut QueueOutputs,
) -> Result<(), ApiError> {
    let addresses = meshpay_payins::hint::alchemy_addresses(body, max_addresses);
    let chains = store
        .chains_watching(&addresses)
        .await
        .map_err(|e| ApiError::internal("chain webhook: deposit address lookup", &e))?;
    for chain in chains {
        let requested = store
            .request_payin_detection(&chain)
            .await
            .map_err(|e| ApiError::internal("chain webhook: detection request", &e))?;
        if let Some(at) = requested {
            queued.push_json(DETECT_OUTPUT, json!(DetectMessage::new(chain.clone(), at)));
        }
        tracing::info!(%chain, queued = requested.is_some(), "pay-in detection hinted");
    }
    Ok(())
}

/// Verifies the signature of whichever format the headers name; returns the format and the
/// dedupe id the headers carry (Standard Webhooks), if any.
fn verify(
    config: &WebhookConfig,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Source, Option<String>), ApiError> {
    let key = config
        .key
        .as_ref()
        .ok_or_else(|| unauthorized(&SignatureError::NotConfigured))?;
    if let Some(signature) = header(headers, STANDARD_SIGNATURE_HEADER) {
        let (Some(id), Some(timestamp)) = (
            header(headers, STANDARD_ID_HEADER),
            header(headers, STANDARD_TIMESTAMP_HEADER),
        ) else {
            return Err(unauthorized(&SignatureError::Missing));
        };
        let standard = StandardHeaders {
            id,
            timestamp,
            signature,
        };
        let now = OffsetDateTime::now_utc().unix_timestamp();
        webhook::verify_standard(key, &standard, body, now, config.tolerance)
            .map_err(|e| unauthorized(&e))?;
        return Ok((Source::Standard, Some(id.to_owned())));
    }
    webhook::verify_alchemy(key, body, header(headers, ALCHEMY_SIGNATURE_HEADER))
        .map_err(|e| unauthorized(&e))?;
    Ok((Source::Alchemy, None))
}

/// An Alchemy event created longer ago (or further ahead) than the tolerance.
fn is_stale(hint: &Hint, config: &WebhookConfig) -> bool {
    let Some(created_at) = hint.created_at else {
        return false;
    };
    let age = OffsetDateTime::now_utc() - created_at;
    age.unsigned_abs() > config.tolerance
}

fn answer(status: &str, hint: &Hint, enqueued: usize) -> Response {
    let body = json!({
        "status": status,
        "tx_hashes": hint.tx_hashes.len(),
        "enqueued": enqueued,
    });
    (StatusCode::OK, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use meshpay_confirm::ConfirmConfig;
    use meshpay_confirm::webhook::{WebhookKey, sign_alchemy, sign_standard};
    use tower::ServiceExt as _;

    const KEY: &str = "whsec_bWVzaHBheS10ZXN0LXNpZ25pbmcta2V5LTMyLWJ5dGVz";

    /// A state whose database is never reached: every case here is refused before any query.
    fn state(key: Option<&str>) -> WebhookState {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://meshpay@127.0.0.1:1/unused")
            .unwrap();
        let mut config = ConfirmConfig::default().webhook;
        config.key = key.map(|k| WebhookKey::new(k.into()));
        WebhookState {
            store: Store::from_pool(pool),
            config: Arc::new(config),
        }
    }

    async fn post(state: WebhookState, headers: &[(&str, String)], body: Vec<u8>) -> Response {
        let mut request =
            Request::post("/api/webhooks/chain").header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        meshpay_shim::FunctionApp::new()
            .register(function(state))
            .http_router()
            .unwrap()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap()
    }

    async fn code(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        value["code"].as_str().unwrap_or_default().to_owned()
    }

    fn alchemy_body() -> Vec<u8> {
        br#"{"id":"whevt_1","type":"ADDRESS_ACTIVITY","event":{"activity":[]}}"#.to_vec()
    }

    #[test]
    fn function_json_is_a_post_route_with_confirm_and_detect_queue_outputs() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.trigger().methods, ["post"]);
        assert_eq!(def.trigger().route.as_deref(), Some("webhooks/chain"));
        let out = def.output(CONFIRM_OUTPUT).unwrap();
        assert_eq!(out.queue_name.as_deref(), Some("payments-confirm"));
        let out = def.output(DETECT_OUTPUT).unwrap();
        assert_eq!(out.queue_name.as_deref(), Some("payins-detect"));
        assert!(!def.is_http_forwardable());
    }

    #[tokio::test]
    async fn forged_alchemy_signature_is_401_and_enqueues_nothing() {
        let body = alchemy_body();
        let forged = sign_alchemy(&WebhookKey::new("whsec_attacker".into()), &body).unwrap();
        let response = post(
            state(Some(KEY)),
            &[(ALCHEMY_SIGNATURE_HEADER, forged)],
            body,
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.extensions().get::<QueueOutputs>().is_none());
        assert_eq!(code(response).await, "unauthorized");
    }

    #[tokio::test]
    async fn unsigned_request_and_unconfigured_key_are_401() {
        let response = post(state(Some(KEY)), &[], alchemy_body()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = alchemy_body();
        let signed = sign_alchemy(&WebhookKey::new(KEY.into()), &body).unwrap();
        let response = post(state(None), &[(ALCHEMY_SIGNATURE_HEADER, signed)], body).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn stale_standard_webhook_is_401_even_when_correctly_signed() {
        let body = br#"{"type":"chain.transactions","data":{"tx_hashes":[]}}"#.to_vec();
        let old = OffsetDateTime::now_utc().unix_timestamp() - 3600;
        let key = WebhookKey::new(KEY.into());
        let signature = sign_standard(&key, "msg_1", old, &body).unwrap();
        let response = post(
            state(Some(KEY)),
            &[
                (STANDARD_ID_HEADER, "msg_1".into()),
                (STANDARD_TIMESTAMP_HEADER, old.to_string()),
                (STANDARD_SIGNATURE_HEADER, signature),
            ],
            body,
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn body_over_256_kib_is_413() {
        let body = vec![b' '; 256 * 1024 + 1];
        let response = post(
            state(Some(KEY)),
            &[(ALCHEMY_SIGNATURE_HEADER, "00".into())],
            body,
        )
        .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(code(response).await, "payload_too_large");
    }

    #[tokio::test]
    async fn signed_body_of_the_wrong_shape_is_400() {
        let body = br#"{"hello":"world"}"#.to_vec();
        let signed = sign_alchemy(&WebhookKey::new(KEY.into()), &body).unwrap();
        let response = post(
            state(Some(KEY)),
            &[(ALCHEMY_SIGNATURE_HEADER, signed)],
            body,
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn stale_alchemy_event_is_acknowledged_without_effect() {
        let body = br#"{"id":"whevt_old","createdAt":"2020-01-01T00:00:00Z","event":{"activity":[{"hash":"0x1111111111111111111111111111111111111111111111111111111111111111"}]}}"#.to_vec();
        let signed = sign_alchemy(&WebhookKey::new(KEY.into()), &body).unwrap();
        let response = post(
            state(Some(KEY)),
            &[(ALCHEMY_SIGNATURE_HEADER, signed)],
            body,
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.extensions().get::<QueueOutputs>().is_none());
    }
}
