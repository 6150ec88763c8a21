//! meshpay-chain against real inputs: the repo's chains.dev.toml and a real anvil.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use meshpay_chain::fees::{ERC20_TRANSFER_GAS_FALLBACK, NATIVE_TRANSFER_GAS};
use meshpay_chain::{
    Address, ChainsConfig, FeeError, FeeEstimator, RpcFeeEstimator, TransferSpec, U256,
};
use meshpay_testkit::anvil::{Anvil, DEV_ADDRESSES};
use meshpay_testkit::ports::repo_root;

const RECIPIENT: &str = "0x976EA74026E726554dB657fA54763abd0C3a0aa9";

/// chains.dev.toml, pointed at this test's anvil.
fn config_for(anvil_url: &str, cap_wei: u64) -> ChainsConfig {
    let text = std::fs::read_to_string(repo_root().join("chains.dev.toml")).unwrap();
    let text = text.replace("http://127.0.0.1:8545", anvil_url).replace(
        "max_fee_per_gas_cap_wei = 200000000000",
        &format!("max_fee_per_gas_cap_wei = {cap_wei}"),
    );
    ChainsConfig::from_toml_str(&text).unwrap()
}

fn estimator(config: &ChainsConfig) -> RpcFeeEstimator {
    RpcFeeEstimator::new(config, Duration::from_secs(5), Duration::ZERO)
}

fn transfer(config: &ChainsConfig, symbol: &str) -> TransferSpec {
    TransferSpec {
        asset: config
            .chain("anvil")
            .unwrap()
            .asset(symbol)
            .unwrap()
            .clone(),
        recipient: RECIPIENT.parse::<Address>().unwrap(),
        amount_base_units: U256::from(1_000_000u64),
    }
}

#[test]
fn repo_dev_chains_config_is_valid() {
    let config = ChainsConfig::load(&repo_root().join("chains.dev.toml")).unwrap();
    let anvil = config.chain("anvil").unwrap();
    assert_eq!(anvil.chain_id, 31337);
    assert_eq!(anvil.asset("USDC").unwrap().decimals(), 6);
    assert_eq!(anvil.asset("ETH").unwrap().decimals(), 18);
}

#[tokio::test]
async fn native_transfer_is_quoted_at_21000_gas_with_eip1559_fees() {
    let anvil = Anvil::start().await;
    let config = config_for(anvil.url(), 200_000_000_000);
    let chain = config.chain("anvil").unwrap();
    let fee = estimator(&config)
        .estimate(chain, &transfer(&config, "ETH"))
        .await
        .unwrap();
    assert_eq!(fee.gas_limit, NATIVE_TRANSFER_GAS);
    assert!(!fee.capped);
    // anvil starts at a 1 gwei base fee: 2 * base + tip
    assert!(fee.max_fee_per_gas_wei >= 2_000_000_000, "{fee:?}");
    assert!(fee.max_priority_fee_per_gas_wei <= fee.max_fee_per_gas_wei);
    assert_eq!(
        fee.network_fee_wei(),
        U256::from(fee.gas_limit) * U256::from(fee.max_fee_per_gas_wei)
    );
}

#[tokio::test]
async fn fees_above_the_chain_cap_are_clamped_to_it() {
    let anvil = Anvil::start().await;
    let config = config_for(anvil.url(), 1_000);
    let chain = config.chain("anvil").unwrap();
    let fee = estimator(&config)
        .estimate(chain, &transfer(&config, "ETH"))
        .await
        .unwrap();
    assert!(fee.capped);
    assert_eq!(fee.max_fee_per_gas_wei, 1_000);
    assert!(fee.max_priority_fee_per_gas_wei <= 1_000);
}

#[tokio::test]
async fn token_transfer_gas_is_estimated_with_margin_when_the_hot_wallet_holds_tokens() {
    let anvil = Anvil::start().await;
    let usdc = anvil.deploy_dev_usdc().await;
    let config = config_for(anvil.url(), 200_000_000_000);
    let chain = config.chain("anvil").unwrap();
    let hot_wallet = chain.hot_wallets[0].to_checksum(None);
    assert_eq!(hot_wallet, DEV_ADDRESSES[1]);
    anvil.mint_usdc(&usdc, &hot_wallet, 10_000_000).await;

    let fee = estimator(&config)
        .estimate(chain, &transfer(&config, "USDC"))
        .await
        .unwrap();
    // a transfer to a fresh holder costs ~35-52k gas; +20 % margin, and never the fallback
    assert!(
        fee.gas_limit > NATIVE_TRANSFER_GAS && fee.gas_limit < 100_000,
        "{fee:?}"
    );
    assert_ne!(fee.gas_limit, ERC20_TRANSFER_GAS_FALLBACK);
}

#[tokio::test]
async fn token_transfer_falls_back_to_65k_when_estimation_reverts() {
    let anvil = Anvil::start().await;
    anvil.deploy_dev_usdc().await;
    // the hot wallet holds no USDC: transfer() reverts in eth_estimateGas
    let config = config_for(anvil.url(), 200_000_000_000);
    let chain = config.chain("anvil").unwrap();
    let fee = estimator(&config)
        .estimate(chain, &transfer(&config, "USDC"))
        .await
        .unwrap();
    assert_eq!(fee.gas_limit, ERC20_TRANSFER_GAS_FALLBACK);
}

#[tokio::test]
async fn native_transfer_to_a_contract_recipient_is_quoted_with_the_gas_its_code_needs() {
    let anvil = Anvil::start().await;
    // The recipient runs code on receipt: PUSH1 1 PUSH1 0 SSTORE STOP (a fresh storage write).
    anvil
        .rpc(
            "anvil_setCode",
            serde_json::json!([RECIPIENT, "0x600160005500"]),
        )
        .await;
    let config = config_for(anvil.url(), 200_000_000_000);
    let chain = config.chain("anvil").unwrap();
    let fee = estimator(&config)
        .estimate(chain, &transfer(&config, "ETH"))
        .await
        .unwrap();
    // 21,000 + a cold SSTORE (> 20,000), plus the margin the broadcast step also applies.
    assert!(fee.gas_limit > 41_000, "{}", fee.gas_limit);
}

#[tokio::test]
async fn unreachable_rpc_is_an_error_not_a_guess() {
    // a port nothing listens on (bound then released)
    let port = meshpay_testkit::ports::free_port();
    let config = config_for(&format!("http://127.0.0.1:{port}"), 200_000_000_000);
    let chain = config.chain("anvil").unwrap();
    let error = estimator(&config)
        .estimate(chain, &transfer(&config, "ETH"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            FeeError::Rpc {
                method: "eth_feeHistory",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn rpc_errors_never_carry_the_rpc_url_or_its_api_key() {
    let port = meshpay_testkit::ports::free_port();
    let url = format!("http://127.0.0.1:{port}/v2/SECRET-API-KEY");
    let config = config_for(&url, 200_000_000_000);
    let chain = config.chain("anvil").unwrap();
    let error = estimator(&config)
        .estimate(chain, &transfer(&config, "ETH"))
        .await
        .unwrap_err();
    let mut texts = vec![error.to_string(), format!("{error:?}")];
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        texts.push(format!("{inner} {inner:?}"));
        source = inner.source();
    }
    for text in texts {
        assert!(!text.contains("SECRET-API-KEY"), "{text}");
    }
}
