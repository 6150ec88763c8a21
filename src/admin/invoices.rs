//! `meshpay admin invoices`: reversals parked for review (a reorg removed a credited payment the
//! merchant had already spent): list them, post one once the merchant's balance covers it, or
//! close one with a note; and `sweep <invoice> --token <address>`: a token the chain's
//! configuration does not know, paid to an invoice's deposit address (recorded on the invoice,
//! never credited), moved to the treasury by a hot wallet and posted to the `unrecognized`
//! account, never to a merchant. The sweep signs, so it runs with the function app's settings
//! (signers file and its secrets); the `sweep` timer confirms the transaction and posts it.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use meshpay_domain::{Address, InvoiceId};
use meshpay_payins::sweep::Sweeper;
use meshpay_store::{RetryOutcome, ReversalReview, Store};
use serde_json::{Value, json};

#[derive(Debug, Clone, Subcommand)]
pub enum InvoicesCommand {
    /// Parked reversals, newest first (`--all`: resolved ones too).
    Reviews {
        #[arg(long)]
        all: bool,
    },
    /// Posts a parked reversal now; refused (with the figures) while the merchant's available
    /// balance is still short.
    RetryReversal {
        #[arg(long)]
        id: i64,
    },
    /// Closes a parked reversal with a note; nothing is posted (the credit stays).
    CloseReview {
        #[arg(long)]
        id: i64,
        #[arg(long)]
        note: String,
    },
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

fn review_json(r: &ReversalReview) -> Value {
    json!({
        "id": r.id, "invoice_id": r.invoice, "reference": r.reference, "asset": r.asset,
        "amount": r.amount.to_string(), "required": r.required.to_string(),
        "available": r.available.to_string(), "reason": r.reason, "parked_at": r.parked_at,
        "resolved_at": r.resolved_at, "resolution": r.resolution, "note": r.note,
    })
}

pub async fn run(store: &Store, command: InvoicesCommand) -> anyhow::Result<Value> {
    match command {
        InvoicesCommand::Reviews { all } => {
            let list: Vec<Value> = store
                .invoice_reversal_reviews(!all)
                .await?
                .iter()
                .map(review_json)
                .collect();
            Ok(json!({ "count": list.len(), "reviews": list }))
        }
        InvoicesCommand::RetryReversal { id } => {
            match store
                .retry_invoice_reversal(id)
                .await
                .with_context(|| format!("review {id} (unknown or resolved?)"))?
            {
                RetryOutcome::Reversed => {
                    tracing::warn!(id, "parked invoice reversal posted by an operator");
                    Ok(json!({ "id": id, "reversed": true }))
                }
                RetryOutcome::StillShort {
                    available,
                    required,
                } => bail!(
                    "review {id}: the merchant's available balance {available} is still below \
                     the reversal {required}; nothing posted"
                ),
            }
        }
        InvoicesCommand::CloseReview { id, note } => {
            if !store.close_invoice_reversal_review(id, &note).await? {
                bail!("review {id} is unknown or already resolved");
            }
            tracing::warn!(id, note = %note, "parked invoice reversal closed by an operator");
            Ok(json!({ "id": id, "closed": true }))
        }
        InvoicesCommand::Sweep { invoice, token } => sweep(store, invoice, token).await,
    }
}

async fn sweep(store: &Store, invoice: String, token: String) -> anyhow::Result<Value> {
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
        bail!("no sweep planned");
    };
    tracing::warn!(%invoice, %token, %sweep, "unrecognized token swept by an operator");
    Ok(json!({
        "invoice_id": invoice, "token": token, "sweep_id": sweep, "chain": report.chain,
        "sent": report.sent, "waiting": report.waiting,
    }))
}
