//! `meshpay chains check FILE [--rpc-url URL]`: validates a chains file as `serve` would load it
//! (without the environment's overrides) and, with a node, checks each token of the chain the
//! node serves (`decimals()`, `symbol()`, code present). Prints one JSON document; exits
//! non-zero when anything is wrong. Template placeholders are reported, not fatal here.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use meshpay_chain::ChainsConfig;
use serde_json::json;

#[derive(Debug, Args)]
pub struct ChainsArgs {
    #[command(subcommand)]
    pub command: ChainsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ChainsCommand {
    /// Validates a chains file; with `--rpc-url`, checks its tokens on that node's chain.
    Check {
        file: PathBuf,
        /// A JSON-RPC endpoint of one of the file's chains (never printed).
        #[arg(long)]
        rpc_url: Option<url::Url>,
    },
}

pub async fn run(args: ChainsArgs) -> anyhow::Result<()> {
    let ChainsCommand::Check { file, rpc_url } = args.command;
    let config = ChainsConfig::load(&file).with_context(|| format!("{}", file.display()))?;
    let placeholders: Vec<_> = config
        .placeholders()
        .into_iter()
        .map(|(chain, problem)| json!({ "chain": chain, "problem": problem }))
        .collect();
    let chains: Vec<_> = config
        .chains()
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "chain_id": c.chain_id, "native": c.native.id().symbol(),
                "confirmations": c.confirmations, "use_finalized": c.use_finalized,
                "max_fee_per_gas_cap_wei": c.max_fee_per_gas_cap_wei.to_string(),
                "op_stack": c.op_stack,
                "tokens": c.tokens.iter().map(|t| json!({
                    "symbol": t.id().symbol(), "decimals": t.decimals(), "kind": t.kind(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut ok = true;
    let rpc = match rpc_url {
        None => serde_json::Value::Null,
        Some(url) => {
            let report = meshpay_chain::token_check::check_tokens(&config, url).await?;
            ok &= report.is_ok();
            serde_json::to_value(&report)?
        }
    };
    println!(
        "{}",
        json!({ "file": file.display().to_string(), "ok": ok, "chains": chains,
                "placeholders": placeholders, "rpc": rpc })
    );
    anyhow::ensure!(
        ok,
        "the node disagrees with the file (see `rpc.tokens[].problems`)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use meshpay_chain::config::PLACEHOLDER_HOT_WALLET;

    use super::*;

    /// Every address the shipped chain files hold, by (file, role). A change to a file must
    /// change this list too, after checking the new value against Circle's USDC address page.
    const PINNED: &[(&str, &str, &str)] = &[
        (
            "arbitrum-one",
            "USDC",
            "0xaf88d065e77c8cC2239327C5EDb3A432268e5831",
        ),
        (
            "arbitrum-sepolia",
            "USDC",
            "0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d",
        ),
        ("base", "USDC", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
        (
            "base-sepolia",
            "USDC",
            "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        ),
        (
            "ethereum",
            "USDC",
            "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
        ),
        (
            "op-mainnet",
            "USDC",
            "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85",
        ),
        (
            "op-sepolia",
            "USDC",
            "0x5fd84259d66Cd46123540766Be93DFE6D43130D7",
        ),
        (
            "polygon",
            "USDC",
            "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359",
        ),
        (
            "polygon-amoy",
            "USDC",
            "0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582",
        ),
        (
            "sepolia",
            "USDC",
            "0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238",
        ),
    ];

    /// (chain id, native symbol, op_stack) per file.
    const NETWORKS: &[(&str, u64, &str, bool)] = &[
        ("arbitrum-one", 42161, "ETH", false),
        ("arbitrum-sepolia", 421614, "ETH", false),
        ("base", 8453, "ETH", true),
        ("base-sepolia", 84532, "ETH", true),
        ("ethereum", 1, "ETH", false),
        ("op-mainnet", 10, "ETH", true),
        ("op-sepolia", 11155420, "ETH", true),
        ("polygon", 137, "POL", false),
        ("polygon-amoy", 80002, "POL", false),
        ("sepolia", 11155111, "ETH", false),
    ];

    fn shipped() -> BTreeMap<String, ChainsConfig> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/chains");
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "toml"))
            .map(|path| {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                let config =
                    ChainsConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                (name, config)
            })
            .collect()
    }

    #[test]
    fn every_address_in_the_shipped_chain_files_is_pinned() {
        let files = shipped();
        let mut found = Vec::new();
        for (file, config) in &files {
            let [chain] = config.chains() else {
                panic!("{file}: one chain per file");
            };
            assert_eq!(&chain.name, file, "a file is named after its chain");
            for token in &chain.tokens {
                let meshpay_domain::AssetKind::Erc20 { contract } = token.kind() else {
                    panic!("{file}: tokens are ERC-20");
                };
                found.push((
                    file.clone(),
                    token.id().symbol().to_owned(),
                    contract.to_checksum(None),
                ));
                assert_eq!(token.decimals(), 6, "{file}: USDC has 6 decimals");
            }
            // Nothing but the template's placeholder stands in for the operator's wallets.
            assert_eq!(chain.hot_wallets, [PLACEHOLDER_HOT_WALLET], "{file}");
            assert!(
                chain.deny_list.is_empty(),
                "{file}: unpinned deny-list addresses"
            );
        }
        let pinned: Vec<_> = PINNED
            .iter()
            .map(|(f, s, a)| ((*f).to_owned(), (*s).to_owned(), (*a).to_owned()))
            .collect();
        assert_eq!(found, pinned);
    }

    #[test]
    fn each_shipped_file_names_its_networks_chain_id_native_asset_and_fee_model() {
        let files = shipped();
        assert_eq!(files.len(), NETWORKS.len());
        for (file, chain_id, native, op_stack) in NETWORKS {
            let chain = &files[*file].chains()[0];
            assert_eq!(chain.chain_id, *chain_id, "{file}");
            assert_eq!(chain.native.id().symbol(), *native, "{file}");
            assert_eq!(chain.native.decimals(), 18, "{file}");
            assert_eq!(chain.op_stack, *op_stack, "{file}");
            assert!(chain.use_finalized || chain.confirmations > 0, "{file}");
            assert_eq!(files[*file].placeholders().len(), 1, "{file}");
        }
    }
}
