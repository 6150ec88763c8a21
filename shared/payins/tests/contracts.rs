//! contracts/DepositFactory.sol on a real anvil: the off-chain deposit address is the deployed
//! one, a sweep moves ETH and ERC-20 to the treasury and nowhere else, a second sweep moves
//! nothing, and nobody but the factory's sweepers can move funds or change where they go.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::{SolCall, SolEvent, SolValue};
use meshpay_payins::deposit::{DepositFactory, IDepositFactory, IDepositForwarder};
use meshpay_testkit::anvil::{Anvil, DEV_USDC_ADDRESS};
use serde_json::{Value, json};

const ADMIN: usize = 0;
const SWEEPER: usize = 1;
const TREASURY: usize = 3;
const PAYER: usize = 5;
const STRANGER: usize = 6;

struct Chain {
    anvil: Anvil,
    factory: DepositFactory,
    usdc: Address,
}

impl Chain {
    /// anvil with DevUSDC and a factory whose treasury is account 3 and sweeper account 1.
    async fn start() -> Chain {
        let anvil = Anvil::start().await;
        anvil.deploy_dev_usdc_to(&[PAYER], 1_000_000_000).await;
        let artifact: Value = serde_json::from_str(
            &std::fs::read_to_string(
                meshpay_testkit::ports::repo_root().join("contracts/DepositFactory.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let mut code = alloy::hex::decode(artifact["bytecode"].as_str().unwrap()).unwrap();
        code.extend(
            (
                addr(&anvil, TREASURY),
                addr(&anvil, ADMIN),
                vec![addr(&anvil, SWEEPER)],
            )
                .abi_encode_params(),
        );
        let receipt = anvil
            .send_and_wait(json!({"from": anvil.address(ADMIN), "data": hex(&code)}))
            .await;
        println!("gas: factory deploy {}", gas_used(&receipt));
        let factory = Address::from_str(receipt["contractAddress"].as_str().unwrap()).unwrap();
        Chain {
            factory: DepositFactory::at(factory),
            usdc: Address::from_str(DEV_USDC_ADDRESS).unwrap(),
            anvil,
        }
    }

    async fn call(&self, from: usize, to: Address, data: Vec<u8>) -> Result<Value, String> {
        try_rpc(
            &self.anvil,
            "eth_call",
            json!([{"from": self.anvil.address(from), "to": to.to_string(), "data": hex(&data)}, "latest"]),
        )
        .await
    }

    async fn sweep(&self, from: usize, salts: Vec<B256>, tokens: Vec<Address>) -> Value {
        let data = IDepositFactory::sweepCall { salts, tokens }.abi_encode();
        self.anvil
            .send_and_wait(json!({
                "from": self.anvil.address(from),
                "to": self.factory.address().to_string(),
                "data": hex(&data),
            }))
            .await
    }

    async fn pay_eth(&self, to: Address, wei: u128) {
        self.anvil
            .send_and_wait(json!({
                "from": self.anvil.address(PAYER), "to": to.to_string(), "value": format!("{wei:#x}"),
            }))
            .await;
    }

    async fn pay_usdc(&self, to: Address, amount: u128) {
        let data = format!(
            "0xa9059cbb{}{amount:064x}",
            alloy::hex::encode(to.into_word())
        );
        self.anvil
            .send_and_wait(
                json!({"from": self.anvil.address(PAYER), "to": DEV_USDC_ADDRESS, "data": data}),
            )
            .await;
    }

    async fn code_len(&self, at: Address) -> usize {
        let code = self
            .anvil
            .rpc("eth_getCode", json!([at.to_string(), "latest"]))
            .await;
        code.as_str().unwrap().len().saturating_sub(2) / 2
    }
}

fn addr(anvil: &Anvil, i: usize) -> Address {
    Address::from_str(anvil.address(i)).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    format!("0x{}", alloy::hex::encode(bytes))
}

fn gas_used(receipt: &Value) -> u64 {
    u64::from_str_radix(
        receipt["gasUsed"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap()
}

fn salt(n: u8) -> B256 {
    B256::repeat_byte(n)
}

async fn try_rpc(anvil: &Anvil, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp: Value = reqwest::Client::new()
        .post(anvil.url())
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match resp.get("error") {
        Some(err) => Err(err.to_string()),
        None => Ok(resp["result"].clone()),
    }
}

#[tokio::test]
async fn the_deposit_address_computed_off_chain_is_where_the_factory_deploys() {
    let chain = Chain::start().await;
    let salt = salt(7);
    let predicted = chain.factory.deposit_address(salt);

    let on_chain = chain
        .call(
            ADMIN,
            chain.factory.address(),
            IDepositFactory::predictCall { salt }.abi_encode(),
        )
        .await
        .unwrap();
    assert_eq!(
        on_chain.as_str().unwrap(),
        hex(&predicted.into_word().0),
        "factory.predict"
    );
    let implementation = chain
        .call(
            ADMIN,
            chain.factory.address(),
            IDepositFactory::implementationCall {}.abi_encode(),
        )
        .await
        .unwrap();
    assert_eq!(
        implementation.as_str().unwrap(),
        hex(&chain.factory.implementation().into_word().0)
    );
    assert_eq!(
        chain.code_len(predicted).await,
        0,
        "nothing deployed before the sweep"
    );

    let receipt = chain.sweep(SWEEPER, vec![salt], vec![]).await;
    let deployed: Vec<Address> = receipt["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|log| log["topics"][0] == json!(hex(&IDepositFactory::Deployed::SIGNATURE_HASH.0)))
        .map(|log| {
            let data = alloy::hex::decode(log["data"].as_str().unwrap()).unwrap();
            Address::abi_decode(&data).unwrap()
        })
        .collect();
    assert_eq!(deployed, vec![predicted]);
    assert_eq!(chain.code_len(predicted).await, 45, "an EIP-1167 clone");
}

/// A receipt's `Flushed(token, amount)` logs: (emitting address, token, amount).
fn flushed(receipt: &Value) -> Vec<(Address, Address, U256)> {
    receipt["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|log| log["topics"][0] == json!(hex(&IDepositForwarder::Flushed::SIGNATURE_HASH.0)))
        .map(|log| {
            let topic = alloy::hex::decode(log["topics"][1].as_str().unwrap()).unwrap();
            let data = alloy::hex::decode(log["data"].as_str().unwrap()).unwrap();
            (
                Address::from_str(log["address"].as_str().unwrap()).unwrap(),
                Address::from_slice(&topic[12..]),
                U256::from_be_slice(&data),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_sweep_moves_eth_and_usdc_to_the_treasury_and_a_second_sweep_moves_nothing() {
    let chain = Chain::start().await;
    let salt = salt(9);
    let deposit = chain.factory.deposit_address(salt);
    let treasury = addr(&chain.anvil, TREASURY);
    chain.pay_usdc(deposit, 25_000_000).await;
    chain.pay_eth(deposit, 3_000_000_000_000_000).await;
    let treasury_eth = chain.anvil.eth_balance(treasury).await;

    let first = chain.sweep(SWEEPER, vec![salt], vec![chain.usdc]).await;
    println!(
        "gas: forwarder deploy + flush (USDC and ETH) {}",
        gas_used(&first)
    );
    assert_eq!(chain.anvil.usdc_balance(deposit).await, 0);
    assert_eq!(chain.anvil.eth_balance(deposit).await, U256::ZERO);
    assert_eq!(chain.anvil.usdc_balance(treasury).await, 25_000_000);
    assert_eq!(
        chain.anvil.eth_balance(treasury).await,
        treasury_eth + U256::from(3_000_000_000_000_000u128)
    );

    // The deposit address itself says what it sent: one `Flushed` per asset moved.
    assert_eq!(
        flushed(&first),
        [
            (deposit, chain.usdc, U256::from(25_000_000u64)),
            (
                deposit,
                Address::ZERO,
                U256::from(3_000_000_000_000_000u128)
            ),
        ]
    );

    let second = chain.sweep(SWEEPER, vec![salt], vec![chain.usdc]).await;
    println!("gas: second sweep, nothing to move {}", gas_used(&second));
    assert_eq!(flushed(&second), [], "nothing moved, nothing emitted");
    assert_eq!(chain.anvil.usdc_balance(treasury).await, 25_000_000);
    assert_eq!(
        chain.anvil.eth_balance(treasury).await,
        treasury_eth + U256::from(3_000_000_000_000_000u128)
    );

    // A payment to the deployed clone arrives (through its delegated `receive`) and is swept.
    chain.pay_usdc(deposit, 5_000_000).await;
    chain.pay_eth(deposit, 1_000_000_000).await;
    let third = chain.sweep(SWEEPER, vec![salt], vec![chain.usdc]).await;
    println!(
        "gas: flush of a deployed forwarder (USDC and ETH) {}",
        gas_used(&third)
    );
    assert_eq!(chain.anvil.usdc_balance(treasury).await, 30_000_000);
    assert_eq!(
        flushed(&third),
        [
            (deposit, chain.usdc, U256::from(5_000_000u64)),
            (deposit, Address::ZERO, U256::from(1_000_000_000u64)),
        ]
    );
    assert_eq!(chain.anvil.usdc_balance(deposit).await, 0);
    assert_eq!(chain.anvil.eth_balance(deposit).await, U256::ZERO);
}

#[tokio::test]
async fn a_stranger_cannot_sweep_flush_or_change_the_sweepers_and_the_treasury_is_fixed() {
    let chain = Chain::start().await;
    let salt = salt(3);
    let deposit = chain.factory.deposit_address(salt);
    chain.pay_usdc(deposit, 1_000_000).await;
    chain.sweep(SWEEPER, vec![salt], vec![]).await; // deploys, USDC left in place

    let sweep = IDepositFactory::sweepCall {
        salts: vec![salt],
        tokens: vec![chain.usdc],
    }
    .abi_encode();
    let flush = IDepositForwarder::flushCall {
        tokens: vec![chain.usdc],
    }
    .abi_encode();
    let promote = IDepositFactory::setSweeperCall {
        sweeper: addr(&chain.anvil, STRANGER),
        allowed: true,
    }
    .abi_encode();
    assert!(
        chain
            .call(STRANGER, chain.factory.address(), sweep.clone())
            .await
            .is_err()
    );
    assert!(chain.call(STRANGER, deposit, flush.clone()).await.is_err());
    assert!(
        chain.call(SWEEPER, deposit, flush.clone()).await.is_err(),
        "only the factory flushes"
    );
    assert!(
        chain
            .call(STRANGER, chain.factory.implementation(), flush)
            .await
            .is_err()
    );
    assert!(
        chain
            .call(STRANGER, chain.factory.address(), promote.clone())
            .await
            .is_err()
    );
    assert!(
        chain
            .call(SWEEPER, chain.factory.address(), promote)
            .await
            .is_err(),
        "sweepers do not appoint sweepers"
    );
    assert!(
        chain
            .call(STRANGER, chain.factory.address(), sweep)
            .await
            .is_err()
    );

    // The only way the treasury is set is the constructor: no function of either contract writes it.
    let artifact: Value = serde_json::from_str(
        &std::fs::read_to_string(
            meshpay_testkit::ports::repo_root().join("contracts/DepositFactory.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mutating: Vec<&str> = artifact["abi"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "function" && item["stateMutability"] != "view")
        .map(|item| item["name"].as_str().unwrap())
        .collect();
    assert_eq!(mutating, vec!["setSweeper", "sweep"]);
    let treasury = chain
        .call(
            STRANGER,
            chain.factory.address(),
            IDepositFactory::treasuryCall {}.abi_encode(),
        )
        .await
        .unwrap();
    assert_eq!(
        treasury.as_str().unwrap(),
        hex(&addr(&chain.anvil, TREASURY).into_word().0)
    );
    assert_eq!(
        chain.anvil.usdc_balance(deposit).await,
        1_000_000,
        "nothing moved"
    );
}
