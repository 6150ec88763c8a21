//! `meshpay admin reconcile` (one books pass now, its report and every open discrepancy; exit
//! status 1 while any is open), `meshpay admin discrepancies list|show|resolve`, and
//! `meshpay admin wallets topup` (a transfer to a hot wallet verified on chain, then posted).

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use meshpay_chain::ChainsConfig;
use meshpay_confirm::books::DiscrepancyView;
use meshpay_confirm::{ConfirmConfig, Pipeline};
use meshpay_domain::B256;
use meshpay_store::Store;
use meshpay_store::books::DiscrepancyFilter;
use serde_json::{Value, json};

use crate::settings;

#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// Print the whole report as JSON (default: a summary line per open discrepancy).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DiscrepanciesCommand {
    /// Open discrepancies, newest first (`--all`: resolved ones too).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One discrepancy with its transactions and history.
    Show {
        #[arg(long)]
        id: i64,
    },
    /// Resolves a discrepancy with a note (an unknown transaction resolved is counted by the
    /// books from then on; anything else still true is found again by the next run).
    Resolve {
        #[arg(long)]
        id: i64,
        #[arg(long)]
        note: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct TopupArgs {
    #[arg(long)]
    pub chain: String,
    /// Symbol (`ETH`, `USDC`) or `chain:SYMBOL`.
    #[arg(long)]
    pub asset: String,
    /// The funding transaction's hash.
    #[arg(long)]
    pub tx: String,
}

fn pipeline(store: &Store, chains: ChainsConfig) -> anyhow::Result<Pipeline> {
    let config = ConfirmConfig::from_lookup(settings::env).context("confirm configuration")?;
    Ok(Pipeline::new(store.clone(), Arc::new(chains), config))
}

/// The operator's form of an open discrepancy, as `admin reconcile --json` prints it.
fn view_json(d: &DiscrepancyView) -> Value {
    json!({
        "id": d.id, "kind": d.kind, "chain": d.chain, "wallet": d.wallet, "asset": d.asset,
        "payment_id": d.payment_id, "expected": d.expected, "actual": d.actual,
        "difference": d.difference, "transactions": d.transactions, "detail": d.detail,
        "first_seen": d.first_seen, "last_seen": d.last_seen, "first_run_id": d.first_run_id,
        "last_run_id": d.last_run_id, "resolved_at": d.resolved_at,
        "resolution_note": d.resolution_note,
    })
}

/// Runs one pass; prints it; `Ok(false)` when anything is open (the caller exits 1).
pub async fn reconcile(
    store: &Store,
    chains: ChainsConfig,
    args: ReconcileArgs,
) -> anyhow::Result<bool> {
    let pipeline = pipeline(store, chains)?;
    let (report, open) = pipeline.reconcile_books_now().await;
    let clean = open.is_empty()
        && report.violations.is_empty()
        && report.errors.is_empty()
        && report.books.as_ref().is_none_or(|b| b.errors.is_empty());
    if args.json {
        let books = report.books.as_ref();
        let output = json!({
            "run_id": report.run_id,
            "clean": clean,
            "open": open.len(),
            "discrepancies": open.iter().map(view_json).collect::<Vec<_>>(),
            "found_by_this_run": books.map(|b| b.found.iter().map(|f| f.dedupe_key.clone()).collect::<Vec<_>>()),
            "opened_by_this_run": books.map(|b| &b.opened),
            "resolved_by_this_run": books.map(|b| &b.resolved),
            "pinned": books.map(|b| &b.pinned),
            "wallets": books.map(|b| &b.wallets),
            "settled_checked": books.map(|b| b.settled_checked),
            "settled_reorged": books.map(|b| b.settled_reorged),
            "ledger_violations": report.violations,
            "errors": report.errors.iter().chain(books.into_iter().flat_map(|b| &b.errors)).collect::<Vec<_>>(),
            "skipped": report.skipped.iter().map(|s| s.to_string()).chain(books.into_iter().flat_map(|b| b.skipped.clone())).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        println!(
            "reconcile run {}: {} open discrepancies, {} ledger violations, {} errors",
            report.run_id.unwrap_or_default(),
            open.len(),
            report.violations.len(),
            report.errors.len()
        );
        for d in &open {
            println!(
                "#{} {} {} {} {}: expected {} actual {} difference {}",
                d.id,
                d.kind,
                d.chain,
                d.wallet.as_deref().unwrap_or("-"),
                d.asset.as_deref().unwrap_or("-"),
                d.expected.as_deref().unwrap_or("-"),
                d.actual.as_deref().unwrap_or("-"),
                d.difference.as_deref().unwrap_or("-"),
            );
        }
    }
    Ok(clean)
}

pub async fn discrepancies(store: &Store, command: DiscrepanciesCommand) -> anyhow::Result<Value> {
    match command {
        DiscrepanciesCommand::List { all, limit } => {
            let filter = if all {
                DiscrepancyFilter::All
            } else {
                DiscrepancyFilter::Open
            };
            let list: Vec<Value> = store
                .discrepancies(filter, limit.min(1000))
                .await?
                .into_iter()
                .map(|d| view_json(&DiscrepancyView::from(d)))
                .collect();
            Ok(json!({ "count": list.len(), "discrepancies": list }))
        }
        DiscrepanciesCommand::Show { id } => match store.discrepancy(id).await? {
            Some(d) => Ok(view_json(&DiscrepancyView::from(d))),
            None => bail!("no discrepancy {id}"),
        },
        DiscrepanciesCommand::Resolve { id, note } => {
            let d = store
                .resolve_discrepancy(id, &note)
                .await
                .with_context(|| format!("discrepancy {id}"))?;
            tracing::warn!(id, note = %note, "discrepancy resolved by an operator");
            Ok(view_json(&DiscrepancyView::from(d)))
        }
    }
}

pub async fn topup(store: &Store, chains: ChainsConfig, args: TopupArgs) -> anyhow::Result<Value> {
    let chain = chains
        .chain(&args.chain)
        .with_context(|| format!("chain {:?} is not configured", args.chain))?;
    let symbol = args
        .asset
        .rsplit_once(':')
        .map_or(args.asset.as_str(), |(_, s)| s);
    let asset = chain
        .asset(symbol)
        .with_context(|| format!("asset {:?} is not configured on {}", args.asset, args.chain))?
        .clone();
    let tx: B256 = args
        .tx
        .parse()
        .with_context(|| format!("--tx {:?} is not a transaction hash", args.tx))?;
    let pipeline = pipeline(store, chains.clone())?;
    let recorded = pipeline.record_topup(&args.chain, &asset, tx).await?;
    Ok(json!({ "chain": args.chain, "tx_hash": tx, "recorded": recorded }))
}
