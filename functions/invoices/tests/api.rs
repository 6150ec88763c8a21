//! The invoices and invoice-cancel routers in-process on a real PostgreSQL database: creation
//! with idempotent replays, validation, tenant isolation, scopes, listing and cancelling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use meshpay_api::AppState;
use meshpay_chain::{ChainsConfig, FixedFeeEstimator};
use meshpay_domain::{Address, InvoiceId, Scope, Scopes};
use meshpay_payins::deposit::{DepositFactory, invoice_salt};
use meshpay_store::Store;
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::postgres::TestDb;
use meshpay_testkit::router;
use serde_json::{Value, json};

struct Env {
    _db: TestDb,
    store: Store,
    app: Router,
    key: String,
}

async fn env() -> Env {
    let db = TestDb::create_migrated(&meshpay_store::MIGRATOR).await;
    let store = Store::from_pool(db.pool().clone());
    let path = meshpay_testkit::ports::repo_root().join("chains.dev.toml");
    let chains = Arc::new(ChainsConfig::load(&path).unwrap());
    let state = AppState::new(
        store.clone(),
        chains,
        Arc::new(FixedFeeEstimator {
            max_fee_per_gas_wei: 1,
            max_priority_fee_per_gas_wei: 1,
        }),
    );
    let key = merchant_key(&store, Scopes::all()).await;
    Env {
        _db: db,
        store,
        app: meshpay_shim::FunctionApp::new()
            .register(meshpay_fn_invoices::function(state.clone()))
            .register(meshpay_fn_invoice_cancel::function(state))
            .http_router()
            .unwrap(),
        key,
    }
}

async fn merchant_key(store: &Store, scopes: Scopes) -> String {
    let merchant = MerchantSetup::default().fee_bps(100).scopes(scopes);
    merchant.create_with_key(store).await.key
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    key: &str,
    idempotency: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut headers = vec![("host", "127.0.0.1:7071")];
    headers.extend(idempotency.map(|k| ("idempotency-key", k)));
    let reply = router::call(app, method, path, Some(key), &headers, body.as_ref()).await;
    let replayed = reply.header("idempotent-replayed").map(str::to_owned);
    (
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body,
        replayed,
    )
}

fn usdc(amount: &str) -> Value {
    json!({"chain": "anvil", "asset": "USDC", "amount": amount, "reference": "order-1"})
}

#[tokio::test]
async fn an_invoice_gets_its_predicted_deposit_address_an_eip681_uri_and_a_pay_url() {
    let env = env().await;
    let (status, body, replayed) = call(
        &env.app,
        "POST",
        "/api/invoices",
        &env.key,
        Some("k1"),
        Some(usdc("25.5")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(replayed, None);
    let id: InvoiceId = body["id"].as_str().unwrap().parse().unwrap();
    let factory: Address = "0x700b6A60ce7EaaEA56F065753d8dcB9653dbAD35"
        .parse()
        .unwrap();
    let expected = DepositFactory::at(factory).deposit_address(invoice_salt(id));
    assert_eq!(body["deposit_address"], json!(expected.to_checksum(None)));
    assert_eq!(body["status"], "open");
    assert_eq!(
        body["amount"],
        json!({"value": "25.50", "base_units": "25500000"})
    );
    assert_eq!(body["amount_received"]["base_units"], "0");
    assert_eq!(
        body["payment_uri"],
        json!(format!(
            "ethereum:0x5FbDB2315678afecb367f032d93F642f64180aa3@31337/transfer?address={}&uint256=25500000",
            expected.to_checksum(None)
        ))
    );
    assert_eq!(
        body["pay_url"],
        json!(format!("http://127.0.0.1:7071/api/pay/{id}"))
    );

    // Same key, same body: the same invoice again; another body: refused.
    let (status, again, replayed) = call(
        &env.app,
        "POST",
        "/api/invoices",
        &env.key,
        Some("k1"),
        Some(usdc("25.5")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again["id"], body["id"]);
    let (status, problem, _) = call(
        &env.app,
        "POST",
        "/api/invoices",
        &env.key,
        Some("k1"),
        Some(usdc("26")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "idempotency_key_reused");

    let (status, read, _) = call(
        &env.app,
        "GET",
        &format!("/api/invoices/{id}"),
        &env.key,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["payments"], json!([]));
    assert_eq!(read["deposit_address"], body["deposit_address"]);
}

#[tokio::test]
async fn bad_invoice_requests_get_stable_problem_codes() {
    let env = env().await;
    let cases = [
        (
            json!({"chain": "nope", "asset": "USDC", "amount": "1"}),
            "unsupported_chain",
        ),
        (
            json!({"chain": "anvil", "asset": "DAI", "amount": "1"}),
            "unsupported_asset",
        ),
        (
            json!({"chain": "anvil", "asset": "USDC", "amount": "0"}),
            "validation_failed",
        ),
        (
            json!({"chain": "anvil", "asset": "USDC", "amount": "1.0000001"}),
            "validation_failed",
        ),
        (
            json!({"chain": "anvil", "asset": "USDC", "amount": "1", "expires_in": 5}),
            "validation_failed",
        ),
        (
            json!({"chain": "anvil", "asset": "USDC", "amount": "1", "reference": ""}),
            "validation_failed",
        ),
        (
            json!({"chain": "anvil", "asset": "USDC", "amount": "1", "extra": 1}),
            "validation_failed",
        ),
    ];
    for (i, (body, code)) in cases.into_iter().enumerate() {
        let key = format!("bad-{i}");
        let (status, problem, _) = call(
            &env.app,
            "POST",
            "/api/invoices",
            &env.key,
            Some(&key),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["code"], code, "{body}");
    }
    let (status, problem, _) = call(
        &env.app,
        "POST",
        "/api/invoices",
        &env.key,
        None,
        Some(usdc("1")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "idempotency_key_required");
    let (status, _, _) = call(
        &env.app,
        "GET",
        "/api/invoices/inv_nothex",
        &env.key,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_merchant_and_a_key_without_the_scope_cannot_see_or_touch_an_invoice() {
    let env = env().await;
    let (_, body, _) = call(
        &env.app,
        "POST",
        "/api/invoices",
        &env.key,
        Some("k"),
        Some(usdc("1")),
    )
    .await;
    let id = body["id"].as_str().unwrap();
    let other = merchant_key(&env.store, Scopes::all()).await;
    let (status, _, _) = call(
        &env.app,
        "GET",
        &format!("/api/invoices/{id}"),
        &other,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(
        &env.app,
        "POST",
        &format!("/api/invoices/{id}/cancel"),
        &other,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list, _) = call(&env.app, "GET", "/api/invoices", &other, None, None).await;
    assert_eq!(list["data"], json!([]));

    let reader = merchant_key(&env.store, [Scope::InvoicesRead].into_iter().collect()).await;
    let (status, problem, _) = call(
        &env.app,
        "POST",
        "/api/invoices",
        &reader,
        Some("k"),
        Some(usdc("1")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["code"], "forbidden");
    let payer = merchant_key(&env.store, [Scope::PaymentsRead].into_iter().collect()).await;
    let (status, _, _) = call(&env.app, "GET", "/api/invoices", &payer, None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn invoices_list_newest_first_by_page_and_an_untouched_one_cancels_once_for_good() {
    let env = env().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, body, _) = call(
            &env.app,
            "POST",
            "/api/invoices",
            &env.key,
            Some(&format!("k{i}")),
            Some(usdc("1")),
        )
        .await;
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let (_, first, _) = call(
        &env.app,
        "GET",
        "/api/invoices?limit=2",
        &env.key,
        None,
        None,
    )
    .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second, _) = call(
        &env.app,
        "GET",
        &format!("/api/invoices?limit=2&cursor={cursor}"),
        &env.key,
        None,
        None,
    )
    .await;
    let listed: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        vec![ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]
    );
    assert_eq!(second["next_cursor"], Value::Null);

    let cancel = format!("/api/invoices/{}/cancel", ids[0]);
    let (status, body, _) = call(&env.app, "POST", &cancel, &env.key, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    let (status, body, _) = call(&env.app, "POST", &cancel, &env.key, None, None).await;
    assert_eq!(status, StatusCode::OK, "a retried cancel");
    assert_eq!(body["status"], "cancelled");
    let (_, open, _) = call(
        &env.app,
        "GET",
        "/api/invoices?status=open",
        &env.key,
        None,
        None,
    )
    .await;
    assert_eq!(open["data"].as_array().unwrap().len(), 2);
}
