//! Chains configuration pointed at a test's own anvil.

use std::path::{Path, PathBuf};

use crate::anvil::{DEV_DEPOSIT_FACTORY_ADDRESS, DEV_USDC_ADDRESS};

/// chains.dev.toml with its RPC URL replaced by `anvil_url`.
pub fn dev_chains_toml(anvil_url: &str) -> String {
    let path = crate::ports::repo_root().join("chains.dev.toml");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("http://127.0.0.1:8545", anvil_url)
}

/// The dev chain (ETH and DevUSDC) on `anvil_url` with `hot_wallets` (checksum addresses),
/// final after `confirmations` blocks.
pub fn anvil_chain_toml(anvil_url: &str, confirmations: u64, hot_wallets: &[String]) -> String {
    let hot = hot_wallets
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
        [[chains]]
        name = "anvil"
        chain_id = 31337
        rpc_url = "{anvil_url}"
        confirmations = {confirmations}
        max_fee_per_gas_cap_wei = 200000000000
        hot_wallets = [{hot}]
        native = {{ symbol = "ETH", decimals = 18 }}
        deposit_factory = "{DEV_DEPOSIT_FACTORY_ADDRESS}"
        [[chains.tokens]]
        symbol = "USDC"
        contract = "{DEV_USDC_ADDRESS}"
        decimals = 6
        "#
    )
}

/// A chains file of its own (for a handler's `MESHPAY_CHAINS_CONFIG`), removed on drop.
#[derive(Debug)]
pub struct ChainsFile(PathBuf);

impl ChainsFile {
    /// [`dev_chains_toml`] for `anvil_url`, written to a fresh temporary file.
    pub fn dev(anvil_url: &str) -> ChainsFile {
        let path =
            std::env::temp_dir().join(format!("meshpay-chains-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, dev_chains_toml(anvil_url))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        ChainsFile(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ChainsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
