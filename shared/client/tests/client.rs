//! The client against a canned API on loopback: typed answers, refusals with their code, and
//! which failures are worth retrying.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use meshpay_api::{ApiError, ErrorCode};
use meshpay_client::{
    ApiKey, BalanceList, BalanceView, Client, ClientError, IDEMPOTENCY_KEY, Money,
};

const KEY: &str = "mp_test_key";

fn balances() -> BalanceList {
    let money = |value: &str, base_units: &str| Money {
        value: value.into(),
        base_units: base_units.into(),
    };
    BalanceList {
        data: vec![BalanceView {
            chain: "anvil".into(),
            asset: "USDC".into(),
            available: money("10.00", "10000000"),
            held: money("0.00", "0"),
        }],
    }
}

/// `POST /api/payments` refuses with `insufficient_funds` when it got the key and the
/// idempotency key, and with a plain 400 otherwise.
async fn authorize(headers: HeaderMap) -> axum::response::Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let idempotency = headers.get(IDEMPOTENCY_KEY).and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {KEY}")) || idempotency != Some("order-1") {
        return (StatusCode::BAD_REQUEST, "headers missing").into_response();
    }
    ApiError::new(ErrorCode::InsufficientFunds, "available 1.00 USDC").into_response()
}

async fn serve() -> String {
    let app = Router::new()
        .route("/api/balances", get(|| async { axum::Json(balances()) }))
        .route("/api/payments", post(authorize))
        .route(
            "/api/payments/{id}",
            get(|| async { (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/api/")
}

fn client(base: &str) -> Client {
    Client::new(base, KEY.parse::<ApiKey>().unwrap()).unwrap()
}

#[tokio::test]
async fn answers_are_read_into_the_api_view_types() {
    let api = client(&serve().await);
    assert_eq!(api.balances().await.unwrap(), balances());
}

#[tokio::test]
async fn a_refusal_carries_the_problem_code_and_is_not_retried() {
    let api = client(&serve().await);
    let error = api.authorize("order-1", &"quo_1".into()).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InsufficientFunds));
    assert_eq!(error.status(), Some(402));
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        "POST /payments: HTTP 402 insufficient_funds: available 1.00 USDC"
    );
}

#[tokio::test]
async fn a_server_error_without_problem_json_is_shown_and_retryable() {
    let api = client(&serve().await);
    let error = api.payment("pay_1").await.unwrap_err();
    assert!(
        matches!(error, ClientError::Status { status: 502, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "GET /payments/{id}: HTTP 502: <html>bad gateway</html>"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn no_answer_is_retryable_and_names_the_api() {
    // A port just released: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}/api");
    let error = client(&base).balances().await.unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!("GET /balances: cannot reach meshpay at {base}")
    );
}

#[tokio::test]
async fn send_returns_refusals_as_replies() {
    let api = client(&serve().await);
    let reply = api
        .send(reqwest::Method::POST, "/payments", Some("order-1"), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 402);
    assert_eq!(reply.problem().unwrap().code, ErrorCode::InsufficientFunds);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
}
