//! A real anvil (local EVM chain, from `node_modules`) on a free port, killed on drop.
//!
//! Accounts come from anvil's well-known dev mnemonic: public knowledge, dev and tests only.

use std::fmt::Display;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use meshpay_domain::U256;
use serde_json::{Value, json};

use crate::ports::{free_port, node_bin};

/// Chain id anvil is started with (anvil's default, used by chains.dev.toml).
pub const CHAIN_ID: u64 = 31337;

/// anvil's default mnemonic.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// The first ten accounts of [`DEV_MNEMONIC`] (m/44'/60'/0'/0/i), EIP-55 checksummed, each
/// funded with 10000 ETH at genesis.
pub const DEV_ADDRESSES: [&str; 10] = [
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
    "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
    "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
    "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
];

/// Private keys of [`DEV_ADDRESSES`], same order. Well known; never use outside dev/tests.
pub const DEV_PRIVATE_KEYS: [&str; 10] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

/// Where [`Anvil::deploy_dev_usdc`] puts the token on a fresh anvil: the CREATE address of
/// account 0 at nonce 0 (also configured in chains.dev.toml).
pub const DEV_USDC_ADDRESS: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

/// Where [`Anvil::deploy_deposit_factory`] puts contracts/DepositFactory.sol: the CREATE address
/// of account 9 at nonce 0 (also configured in chains.dev.toml).
pub const DEV_DEPOSIT_FACTORY_ADDRESS: &str = "0x700b6A60ce7EaaEA56F065753d8dcB9653dbAD35";

/// The account that deploys (and administers) the dev DepositFactory.
pub const DEPOSIT_FACTORY_ADMIN_ACCOUNT: usize = 9;

/// The hot wallets of chains.dev.toml and signers.dev.toml: anvil accounts 1 and 2.
pub const HOT_WALLET_ACCOUNTS: [usize; 2] = [1, 2];

/// [`HOT_WALLET_ACCOUNTS`]' addresses.
pub const HOT_WALLETS: [&str; 2] = [DEV_ADDRESSES[1], DEV_ADDRESSES[2]];

/// `keccak256("Transfer(address,address,uint256)")`: topic 0 of every ERC-20 transfer log.
pub const TRANSFER_TOPIC: &str =
    "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/// `mint(address,uint256)` selector of contracts/DevUSDC.sol.
const MINT_SELECTOR: &str = "40c10f19";

/// How long anvil may take to answer `eth_chainId` after spawn.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Start options.
#[derive(Debug, Clone, Default)]
pub struct AnvilOptions {
    /// Mine a block every N seconds (`--block-time`); `None` = automine on each transaction.
    pub block_time: Option<u64>,
}

/// A running anvil process.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    port: u16,
    url: String,
    log: PathBuf,
    // One pool for every call: building a reqwest client reads the OS root certificates.
    http: reqwest::Client,
}

impl Anvil {
    /// Starts anvil with automine (a block per transaction).
    pub async fn start() -> Anvil {
        Anvil::start_with(AnvilOptions::default()).await
    }

    /// Starts anvil with `options` on a free port and waits until it answers JSON-RPC.
    /// Retries on another port if the chosen one was taken in the meantime.
    pub async fn start_with(options: AnvilOptions) -> Anvil {
        let mut last_err = String::new();
        for _ in 0..3 {
            match Anvil::try_start(&options).await {
                Ok(anvil) => return anvil,
                Err(e) => last_err = e,
            }
        }
        panic!("anvil did not start: {last_err}");
    }

    async fn try_start(options: &AnvilOptions) -> Result<Anvil, String> {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("meshpay-anvil-{}-{port}.log", std::process::id()));
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;

        let mut cmd = Command::new(node_bin("anvil"));
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--chain-id", &CHAIN_ID.to_string()])
            .args(["--mnemonic", DEV_MNEMONIC])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        if let Some(secs) = options.block_time {
            cmd.args(["--block-time", &secs.to_string()]);
        }
        let child = cmd.spawn().map_err(|e| format!("spawn anvil: {e}"))?;
        // From here Drop kills the child on every early return.
        let mut anvil = Anvil {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::new(),
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = anvil.child.try_wait() {
                return Err(format!("anvil exited with {status}: {}", anvil.log_tail()));
            }
            if let Ok(v) = rpc(&anvil.http, &anvil.url, "eth_chainId", json!([])).await {
                if v.as_str() == Some(&format!("{CHAIN_ID:#x}")) {
                    return Ok(anvil);
                }
                return Err(format!("unexpected eth_chainId {v}"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no JSON-RPC answer within {START_TIMEOUT:?}: {}",
                    anvil.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// JSON-RPC URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port anvil listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Chain id ([`CHAIN_ID`]).
    pub fn chain_id(&self) -> u64 {
        CHAIN_ID
    }

    /// Dev account `i` (0..10): its checksummed address.
    pub fn address(&self, i: usize) -> &'static str {
        DEV_ADDRESSES[i]
    }

    /// Dev account `i` (0..10): its private key (0x-hex). Dev only.
    pub fn private_key(&self, i: usize) -> &'static str {
        DEV_PRIVATE_KEYS[i]
    }

    /// Calls a JSON-RPC method and returns its `result` (panics on transport or RPC error):
    /// for test setup such as `evm_mine`, `anvil_setBalance`, `evm_snapshot`.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        rpc(&self.http, &self.url, method, params)
            .await
            .unwrap_or_else(|e| panic!("anvil {method}: {e}"))
    }

    /// Deploys contracts/DevUSDC.json (6-decimal ERC-20, mintable by account 0) from account 0
    /// and returns its address: [`DEV_USDC_ADDRESS`] when it is account 0's first transaction.
    pub async fn deploy_dev_usdc(&self) -> String {
        let path = crate::ports::repo_root().join("contracts/DevUSDC.json");
        let artifact: Value = serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let bytecode = artifact["bytecode"].as_str().expect("bytecode in artifact");
        let receipt = self
            .send_and_wait(json!({"from": DEV_ADDRESSES[0], "data": bytecode}))
            .await;
        receipt["contractAddress"]
            .as_str()
            .expect("contractAddress in receipt")
            .to_owned()
    }

    /// Deploys DevUSDC as the fresh chain's first transaction (so at [`DEV_USDC_ADDRESS`], where
    /// the chains configuration expects it) and mints `amount` base units to each of `accounts`
    /// (nothing when zero).
    pub async fn deploy_dev_usdc_to(&self, accounts: &[usize], amount: u128) {
        let usdc = self.deploy_dev_usdc().await;
        assert!(
            usdc.eq_ignore_ascii_case(DEV_USDC_ADDRESS),
            "DevUSDC at {usdc}, not {DEV_USDC_ADDRESS}: not the chain's first transaction"
        );
        for &i in accounts.iter().filter(|_| amount > 0) {
            self.mint_usdc(DEV_USDC_ADDRESS, self.address(i), amount)
                .await;
        }
    }

    /// Deploys contracts/DepositFactory.json as account 9's first transaction, so at
    /// [`DEV_DEPOSIT_FACTORY_ADDRESS`]: treasury hot wallet account 1, sweepers both hot
    /// wallets, admin account 9.
    pub async fn deploy_deposit_factory(&self) {
        let path = crate::ports::repo_root().join("contracts/DepositFactory.json");
        let artifact: Value = serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let bytecode = artifact["bytecode"].as_str().expect("bytecode in artifact");
        // constructor(address treasury, address admin, address[] sweepers), ABI-encoded.
        let args = format!(
            "{}{}{:064x}{:064x}{}{}",
            abi_address(HOT_WALLETS[0]),
            abi_address(DEV_ADDRESSES[DEPOSIT_FACTORY_ADMIN_ACCOUNT]),
            0x60,
            HOT_WALLETS.len(),
            abi_address(HOT_WALLETS[0]),
            abi_address(HOT_WALLETS[1]),
        );
        let receipt = self
            .send_and_wait(json!({
                "from": DEV_ADDRESSES[DEPOSIT_FACTORY_ADMIN_ACCOUNT],
                "data": format!("{bytecode}{args}"),
            }))
            .await;
        let at = receipt["contractAddress"]
            .as_str()
            .expect("contractAddress");
        assert!(
            at.eq_ignore_ascii_case(DEV_DEPOSIT_FACTORY_ADDRESS),
            "DepositFactory at {at}, not {DEV_DEPOSIT_FACTORY_ADDRESS}: account 9 was used before"
        );
    }

    /// `address`'s native balance in the latest block, in wei.
    pub async fn eth_balance(&self, address: impl Display) -> U256 {
        let v = self
            .rpc("eth_getBalance", json!([address.to_string(), "latest"]))
            .await;
        U256::from_str(v.as_str().unwrap()).unwrap()
    }

    /// `owner`'s DevUSDC balance, in base units.
    pub async fn usdc_balance(&self, owner: impl Display) -> u128 {
        self.erc20_balance(DEV_USDC_ADDRESS, &owner.to_string())
            .await
    }

    /// Every DevUSDC `Transfer` to `recipient` on the canonical chain, oldest first (amounts in
    /// base units): what the recipient really got, whatever the database says.
    pub async fn usdc_transfers_to(&self, recipient: &str) -> Vec<u128> {
        let topic = format!("0x{}", abi_address(recipient));
        let logs = self
            .rpc(
                "eth_getLogs",
                json!([{"address": DEV_USDC_ADDRESS, "fromBlock": "0x0", "toBlock": "latest",
                        "topics": [TRANSFER_TOPIC, null, topic]}]),
            )
            .await;
        logs.as_array()
            .expect("eth_getLogs result")
            .iter()
            .map(|log| crate::hex::hex_u128(&log["data"]))
            .collect()
    }

    /// Mines `blocks` blocks now.
    pub async fn mine(&self, blocks: u64) {
        for _ in 0..blocks {
            self.rpc("evm_mine", json!([])).await;
        }
    }

    /// Mints `amount` base units of the DevUSDC at `token` to `to` (as account 0, the owner).
    pub async fn mint_usdc(&self, token: &str, to: &str, amount: u128) {
        let data = format!("0x{MINT_SELECTOR}{}{amount:064x}", abi_address(to));
        self.send_and_wait(json!({"from": DEV_ADDRESSES[0], "to": token, "data": data}))
            .await;
    }

    /// ERC-20 `balanceOf(owner)` of `token`, in base units.
    pub async fn erc20_balance(&self, token: &str, owner: &str) -> u128 {
        let data = format!("0x70a08231{}", abi_address(owner));
        let result = self
            .rpc("eth_call", json!([{"to": token, "data": data}, "latest"]))
            .await;
        let hex = result
            .as_str()
            .expect("eth_call result")
            .trim_start_matches("0x");
        // A uint256 word: the high 16 bytes must be zero for the value to fit u128.
        let (high, low) = hex.split_at(hex.len().saturating_sub(32));
        assert!(
            high.bytes().all(|b| b == b'0'),
            "balance does not fit u128: 0x{hex}"
        );
        u128::from_str_radix(low, 16).unwrap_or_else(|e| panic!("balance 0x{hex}: {e}"))
    }

    /// Sends a transaction from an unlocked dev account and waits for a successful receipt
    /// (works with automine and with `--block-time`).
    pub async fn send_and_wait(&self, tx: Value) -> Value {
        let hash = self.rpc("eth_sendTransaction", json!([tx])).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
            if !receipt.is_null() {
                assert_eq!(
                    receipt["status"],
                    json!("0x1"),
                    "transaction {hash} reverted"
                );
                return receipt;
            }
            assert!(
                Instant::now() < deadline,
                "transaction {hash} not mined within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        // SIGKILL then reap: anvil keeps no state worth a graceful stop, and reaping a killed
        // process returns at once.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// An address as a 32-byte ABI word (hex, no 0x).
fn abi_address(address: &str) -> String {
    let hex = address.trim_start_matches("0x").to_ascii_lowercase();
    assert!(hex.len() == 40, "not an address: {address}");
    format!("{hex:0>64}")
}

/// One JSON-RPC 2.0 call; `Err` on transport failure or an `error` member.
async fn rpc(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    params: Value,
) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp: Value = client
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(err) = resp.get("error") {
        return Err(err.to_string());
    }
    Ok(resp.get("result").cloned().unwrap_or(Value::Null))
}
