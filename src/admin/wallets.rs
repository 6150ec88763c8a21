//! `meshpay admin wallets halted|resume` (and `topup`, in `super::books`): hot wallets halted because their nonce counter was
//! found behind the chain (the key used outside meshpay, or committed broadcasts lost), and
//! resuming one once the operator has accounted for the nonces the chain used.

use anyhow::{Context, bail};
use clap::Subcommand;
use meshpay_domain::Address;
use meshpay_store::Store;
use serde_json::{Value, json};

use super::rfc3339;

#[derive(Debug, Clone, Subcommand)]
pub enum WalletsCommand {
    /// Lists halted hot wallets with the reason, longest halted first.
    Halted {
        /// Only this chain (name in chains.toml).
        #[arg(long)]
        chain: Option<String>,
    },
    /// Lets a halted wallet hand out nonces again, from `--nonce` on.
    Resume {
        #[arg(long)]
        chain: String,
        /// The wallet's address (`0x…`).
        #[arg(long)]
        wallet: String,
        /// The chain's pending nonce for the wallet, read by the operator: every nonce below it
        /// is accepted as used, the counter continues from it.
        #[arg(long)]
        nonce: u64,
    },
    /// Records money sent to a hot wallet (`--tx`), verified on chain, as a ledger top-up.
    Topup(super::books::TopupArgs),
}

pub async fn run(store: &Store, command: WalletsCommand) -> anyhow::Result<Value> {
    match command {
        WalletsCommand::Halted { chain } => {
            let mut wallets = Vec::new();
            for halted in store.halted_wallets(chain.as_deref()).await? {
                wallets.push(json!({
                    "chain": halted.chain, "wallet": halted.address, "reason": halted.reason,
                    "halted_at": rfc3339(Some(halted.since))?,
                }));
            }
            Ok(json!({ "count": wallets.len(), "wallets": wallets }))
        }
        WalletsCommand::Resume {
            chain,
            wallet,
            nonce,
        } => {
            let address: Address = wallet
                .parse()
                .with_context(|| format!("wallet {wallet:?} is not an address"))?;
            if !store.resume_wallet(&chain, address, nonce).await? {
                bail!("hot wallet {address} on {chain} is not halted");
            }
            tracing::warn!(%chain, wallet = %address, nonce, "hot wallet resumed by an operator");
            Ok(json!({ "chain": chain, "wallet": address, "resumed_at_nonce": nonce }))
        }
        WalletsCommand::Topup(_) => bail!("wallets topup needs the chains config"),
    }
}
