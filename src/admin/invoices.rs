//! `meshpay admin invoices`: reversals parked for review (a reorg removed a credited payment the
//! merchant had already spent): list them, post one once the merchant's balance covers it, or
//! close one with a note.

use anyhow::{Context as _, bail};
use clap::Subcommand;
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
    }
}
