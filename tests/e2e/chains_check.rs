//! `meshpay chains check` against a real node: anvil with DevUSDC deployed. The right file
//! passes with the token's on-chain `decimals()` and `symbol()`; a wrong decimals value or an
//! address without code fails the command.

use std::process::Output;

use meshpay_testkit::anvil::Anvil;
use meshpay_testkit::chains::anvil_chain_toml;
use serde_json::Value;

fn check(toml: &str, rpc_url: &str) -> (Output, Value) {
    let path = std::env::temp_dir().join(format!("meshpay-check-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshpay"))
        .args(["chains", "check"])
        .arg(&path)
        .args(["--rpc-url", rpc_url])
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, json)
}

#[tokio::test]
async fn chains_check_reads_each_tokens_decimals_and_symbol_from_the_node() {
    let anvil = Anvil::start().await;
    anvil.deploy_dev_usdc().await;
    let hot = [anvil.address(1).to_owned()];
    let good = anvil_chain_toml(anvil.url(), 1, &hot);

    let (out, report) = check(&good, anvil.url());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["rpc"]["node_chain_id"], 31337);
    let token = &report["rpc"]["tokens"][0];
    assert_eq!(
        (
            token["onchain_decimals"].as_u64(),
            token["onchain_symbol"].as_str()
        ),
        (Some(6), Some("USDC"))
    );
    assert!(!out.stdout.is_empty() && !String::from_utf8_lossy(&out.stdout).contains(anvil.url()));

    let wrong_decimals = good.replace("decimals = 6", "decimals = 18");
    let (out, report) = check(&wrong_decimals, anvil.url());
    assert!(!out.status.success());
    let problems = report["rpc"]["tokens"][0]["problems"].to_string();
    assert!(problems.contains("decimals() is 6"), "{report}");

    // A hot wallet's address: an account, no contract.
    let no_code = good.replace(meshpay_testkit::anvil::DEV_USDC_ADDRESS, anvil.address(2));
    let (out, report) = check(&no_code, anvil.url());
    assert!(!out.status.success());
    assert!(
        report["rpc"]["tokens"][0]["problems"]
            .to_string()
            .contains("no contract code"),
        "{report}"
    );
}
