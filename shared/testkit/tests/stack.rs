//! The testkit's own services work against the real local stack (PostgreSQL from
//! `scripts/postgres.sh ensure`, anvil from node_modules).
#![allow(clippy::unwrap_used)]

use meshpay_testkit::anvil::{Anvil, AnvilOptions, CHAIN_ID, DEV_ADDRESSES, DEV_USDC_ADDRESS};
use meshpay_testkit::postgres::{TestDb, maintenance_url};
use serde_json::json;
use sqlx::{Connection, PgConnection};

async fn database_exists(name: &str) -> bool {
    let mut admin = PgConnection::connect(&maintenance_url()).await.unwrap();
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut admin)
        .await
        .unwrap();
    found.is_some()
}

#[tokio::test]
async fn each_test_db_is_a_separate_writable_database_that_is_dropped_after_use() {
    let a = TestDb::create().await;
    let b = TestDb::create().await;
    assert_ne!(a.name(), b.name());

    sqlx::query("CREATE TABLE t (v int)")
        .execute(a.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (7)")
        .execute(a.pool())
        .await
        .unwrap();
    let v: i32 = sqlx::query_scalar("SELECT v FROM t")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(v, 7);
    // b does not see a's table.
    let in_b = sqlx::query("SELECT v FROM t").fetch_one(b.pool()).await;
    assert!(in_b.is_err());

    // The URL works for a fresh connection (what a child process gets).
    let mut conn = PgConnection::connect(a.url()).await.unwrap();
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(db, a.name());
    conn.close().await.unwrap();

    let name = a.name().to_owned();
    a.drop_now().await;
    assert!(!database_exists(&name).await, "{name} still exists");
    assert!(database_exists(b.name()).await);
}

#[tokio::test]
async fn anvil_answers_with_the_dev_chain_and_the_well_known_accounts() {
    let anvil = Anvil::start().await;
    let chain_id = anvil.rpc("eth_chainId", json!([])).await;
    assert_eq!(chain_id, json!(format!("{CHAIN_ID:#x}")));

    let accounts = anvil.rpc("eth_accounts", json!([])).await;
    let expected: Vec<String> = DEV_ADDRESSES.iter().map(|a| a.to_lowercase()).collect();
    let got: Vec<String> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn anvil_is_killed_when_dropped() {
    let anvil = Anvil::start_with(AnvilOptions {
        block_time: Some(1),
    })
    .await;
    let url = anvil.url().to_owned();
    drop(anvil);
    let after = reqwest::Client::new()
        .post(&url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
        .send()
        .await;
    assert!(after.is_err(), "anvil still answers at {url}");
}

#[tokio::test]
async fn two_anvils_run_side_by_side_on_different_ports() {
    let (a, b) = tokio::join!(Anvil::start(), Anvil::start());
    assert_ne!(a.port(), b.port());
    a.rpc("evm_mine", json!([])).await;
    let ha = a.rpc("eth_blockNumber", json!([])).await;
    let hb = b.rpc("eth_blockNumber", json!([])).await;
    assert_eq!(ha, json!("0x1"));
    assert_eq!(hb, json!("0x0"));
}

#[tokio::test]
async fn dev_usdc_deploys_at_the_configured_address_and_mints_to_a_hot_wallet() {
    let anvil = Anvil::start().await;
    let usdc = anvil.deploy_dev_usdc().await;
    assert_eq!(usdc.to_lowercase(), DEV_USDC_ADDRESS.to_lowercase());

    let hot = anvil.address(1);
    assert_eq!(anvil.erc20_balance(&usdc, hot).await, 0);
    anvil.mint_usdc(&usdc, hot, 250_000_000).await;
    assert_eq!(anvil.erc20_balance(&usdc, hot).await, 250_000_000);
}

#[test]
fn chains_dev_toml_points_usdc_at_the_dev_deployment_address() {
    let text = std::fs::read_to_string(meshpay_testkit::ports::repo_root().join("chains.dev.toml"))
        .unwrap();
    assert!(
        text.contains(&format!("contract = \"{DEV_USDC_ADDRESS}\"")),
        "chains.dev.toml USDC contract"
    );
    for hot in &DEV_ADDRESSES[1..3] {
        assert!(text.contains(hot), "chains.dev.toml hot wallet {hot}");
    }
}
