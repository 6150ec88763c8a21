//! The quotes router in-process (`meshpay_testkit::router`) on a real PostgreSQL database,
//! with a fixed fee estimator so fee arithmetic is checked to the wei.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use meshpay_api::AppState;
use meshpay_chain::{ChainsConfig, FeeEstimator, FixedFeeEstimator, RpcFeeEstimator};
use meshpay_store::Store;
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::postgres::TestDb;
use meshpay_testkit::router;
use serde_json::{Value, json};

const RECIPIENT: &str = "0x976EA74026E726554dB657fA54763abd0C3a0aa9";
const GWEI: u128 = 1_000_000_000;

fn chains() -> Arc<ChainsConfig> {
    let path = meshpay_testkit::ports::repo_root().join("chains.dev.toml");
    Arc::new(ChainsConfig::load(&path).unwrap())
}

struct Env {
    _db: TestDb,
    store: Store,
    app: Router,
    key: String,
}

async fn env(fees: Arc<dyn FeeEstimator>) -> Env {
    let db = TestDb::create_migrated(&meshpay_store::MIGRATOR).await;
    let store = Store::from_pool(db.pool().clone());
    let merchant = MerchantSetup::default()
        .fee_bps(25)
        .create_with_key(&store)
        .await;
    let state = AppState::new(store.clone(), chains(), fees);
    Env {
        _db: db,
        store,
        app: meshpay_shim::FunctionApp::new()
            .register(meshpay_fn_quotes::function(state))
            .http_router()
            .unwrap(),
        key: merchant.key,
    }
}

async fn post_quote(app: &Router, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    let reply = router::call(app, Method::POST, "/api/quotes", key, &[], Some(&body)).await;
    (StatusCode::from_u16(reply.status).unwrap(), reply.body)
}

fn usdc_250() -> Value {
    json!({"chain": "anvil", "asset": "USDC", "amount": "250", "recipient": RECIPIENT})
}

#[tokio::test]
async fn token_quote_with_fixed_fees_is_exact_to_the_wei() {
    let fees = FixedFeeEstimator {
        max_fee_per_gas_wei: 3 * GWEI,
        max_priority_fee_per_gas_wei: GWEI,
    };
    let env = env(Arc::new(fees)).await;
    let (status, quote) = post_quote(&env.app, Some(&env.key), usdc_250()).await;
    assert_eq!(status, StatusCode::CREATED, "{quote}");
    // 65,000 gas (the token fallback) x 3 gwei = 195,000 gwei = 0.000195 ETH
    assert_eq!(
        quote["fees"]["network"],
        json!({
            "asset": "ETH",
            "amount": {"value": "0.000195", "base_units": "195000000000000"},
            "gas_limit": "65000",
            "max_fee_per_gas_wei": "3000000000",
            "max_priority_fee_per_gas_wei": "1000000000",
        })
    );
    assert_eq!(
        quote["fees"]["service"],
        json!({"asset": "USDC", "bps": 25, "amount": {"value": "0.625", "base_units": "625000"}})
    );
    assert_eq!(
        quote["total_debit"],
        json!([
            {"asset": "USDC", "amount": {"value": "250.625", "base_units": "250625000"}},
            {"asset": "ETH", "amount": {"value": "0.000195", "base_units": "195000000000000"}},
        ])
    );
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn fee_estimates_above_the_chain_cap_are_quoted_at_the_cap() {
    // chains.dev.toml caps maxFeePerGas at 200 gwei
    let fees = FixedFeeEstimator {
        max_fee_per_gas_wei: 900 * GWEI,
        max_priority_fee_per_gas_wei: 300 * GWEI,
    };
    let env = env(Arc::new(fees)).await;
    let body = json!({"chain": "anvil", "asset": "ETH", "amount": "1", "recipient": RECIPIENT});
    let (status, quote) = post_quote(&env.app, Some(&env.key), body).await;
    assert_eq!(status, StatusCode::CREATED, "{quote}");
    let network = &quote["fees"]["network"];
    assert_eq!(network["max_fee_per_gas_wei"], "200000000000");
    assert_eq!(network["max_priority_fee_per_gas_wei"], "200000000000");
    assert_eq!(
        network["amount"]["base_units"],
        (21_000 * 200 * GWEI).to_string()
    );
}

#[tokio::test]
async fn unreachable_chain_rpc_is_503_upstream_unavailable() {
    let port = meshpay_testkit::ports::free_port();
    let text = std::fs::read_to_string(meshpay_testkit::ports::repo_root().join("chains.dev.toml"))
        .unwrap()
        .replace("http://127.0.0.1:8545", &format!("http://127.0.0.1:{port}"));
    let dead = ChainsConfig::from_toml_str(&text).unwrap();
    let fees = RpcFeeEstimator::new(&dead, Duration::from_secs(2), Duration::ZERO);
    let env = env(Arc::new(fees)).await;
    let (status, problem) = post_quote(&env.app, Some(&env.key), usdc_250()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["code"], "upstream_unavailable");
    assert!(
        !problem.to_string().contains(&port.to_string()),
        "no RPC details leak"
    );
}

#[tokio::test]
async fn missing_or_malformed_keys_are_401_without_touching_the_database() {
    // a pool that could never connect: authentication must fail before any query
    let state = AppState::lazy("postgres://nobody@127.0.0.1:1/none", 1, chains()).unwrap();
    let app = meshpay_shim::FunctionApp::new()
        .register(meshpay_fn_quotes::function(state))
        .http_router()
        .unwrap();
    for key in [None, Some("hunter2"), Some("mp_live_short")] {
        let (status, problem) = post_quote(&app, key, usdc_250()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(problem["code"], "unauthorized");
    }
}
