//! `meshpay admin invoices sweep <invoice> --token <address>`: a token the chain's
//! configuration does not know, paid to an invoice's deposit address (recorded on the invoice,
//! never credited), moved to the treasury by a hot wallet and posted to the `unrecognized`
//! account, never to a merchant. It signs, so it runs with the function app's settings (signers
//! file and its secrets); the `sweep` timer confirms the transaction and posts it.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use meshpay_domain::{Address, InvoiceId};
use meshpay_payins::sweep::Sweeper;
use meshpay_store::Store;
use serde_json::{Value, json};

#[derive(Debug, Clone, Subcommand)]
pub enum InvoicesCommand {
    /// Sweeps an unrecognized token off the invoice's deposit address to the treasury. Refused
    /// for a configured token (the sweep timer moves those), when nothing unswept of it is
    /// recorded on the invoice, and while another sweep of the chain is in flight.
    Sweep {
        /// `inv_…`
        invoice: String,
        /// The token contract (`0x…`).
        #[arg(long)]
        token: String,
    },
}

pub async fn run(store: &Store, command: InvoicesCommand) -> anyhow::Result<Value> {
    let InvoicesCommand::Sweep { invoice, token } = command;
    let invoice: InvoiceId = invoice
        .parse()
        .with_context(|| format!("invoice {invoice:?}"))?;
    let token: Address = token
        .parse()
        .with_context(|| format!("--token {token:?} is not an address"))?;
    let settings = crate::settings::Settings::from_env()?;
    let chains = Arc::new(settings.chains);
    let relay = meshpay_relay::LazyRelay::new(meshpay_relay::RelaySetup {
        store: store.clone(),
        chains: chains.clone(),
        signers: settings.signers,
        secrets: settings.signer_secrets,
        config: settings.relay,
    });
    let sweeper = Sweeper::new(store.clone(), chains, relay, settings.sweep);
    let report = sweeper
        .operator_sweep(invoice, token)
        .await
        .context("operator sweep")?;
    let Some((sweep, _)) = report.planned else {
        anyhow::bail!("no sweep planned");
    };
    tracing::warn!(%invoice, %token, %sweep, "unrecognized token swept by an operator");
    Ok(json!({
        "invoice_id": invoice, "token": token, "sweep_id": sweep, "chain": report.chain,
        "sent": report.sent, "waiting": report.waiting,
    }))
}
