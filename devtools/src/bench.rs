//! `meshpay-dev bench` (`make bench`): the figures of issue-style performance claims, measured
//! on a local stack the tool starts itself (meshpay-testkit: a fresh PostgreSQL database, anvil
//! with DevUSDC and 1 s blocks, Azurite, devhost + `meshpay` from the same target directory as
//! this binary, so a release build measures release). Prints one table and writes it as JSON.
//!
//! Phases, each alone on the stack:
//! 1. API: `POST /quotes` and `POST /payments` latency p50/p99 and req/s at concurrency 1, 8
//!    and 64 (pipeline functions off, so only the API stage runs).
//! 2. Limits, each alone: anvil `eth_sendRawTransaction` acceptance of pre-signed transfers,
//!    Azurite put+get+delete cycles, PostgreSQL commits.
//! 3. Single payment: authorize → settled, sequentially, minus confirmations × block time: what
//!    meshpay adds on top of the chain.
//! 4. Pipeline: N USDC payments quote → settled at a concurrency, as payments/s next to the
//!    limits (and the ratio to the slowest), with peak RSS of devhost and meshpay.
//! 5. The handler alone: spawn → first 200 (copies of the running handler), and `GET
//!    /api/health` on a bare axum route, on the handler (the shim) and through devhost.
//!
//! The single payments run twice: by confirm's polling alone, and with the chain-webhook path
//! (the bench posts a signed Alchemy hint as soon as the transaction has a receipt).
//!
//! Figures only: nothing here asserts a time.

mod api;
mod handler;
mod limits;
mod pipeline;
mod report;
mod rss;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use meshpay_testkit::merchant::{Merchant, MerchantSetup};
use meshpay_testkit::stack::{ChainSetup, HandlerSettings, Stack};
use serde_json::json;

use self::report::Report;

/// anvil mines a block this often during the run (seconds).
pub const BLOCK_TIME_SECS: u64 = 1;
/// Confirmations of the dev chains file the stack writes (`chains.dev.toml`).
pub const CONFIRMATIONS: u64 = 1;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Requests per API row (each concurrency level of each endpoint); 0 leaves the API out.
    #[arg(long, default_value_t = 320)]
    pub api_requests: usize,
    /// Payments in the pipeline run.
    #[arg(long, default_value_t = 300)]
    pub payments: usize,
    /// Payments in flight at once in the pipeline run.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Sequential payments for the single-payment overhead.
    #[arg(long, default_value_t = 5)]
    pub single: usize,
    /// Operations per limit measurement (anvil sends, Azurite cycles, PostgreSQL commits).
    #[arg(long, default_value_t = 2000)]
    pub limit_ops: usize,
    /// Fresh handler processes timed from spawn to their first 200; 0 leaves it out.
    #[arg(long, default_value_t = 20)]
    pub spawn_runs: usize,
    /// Sequential `GET /api/health` per route of the shim comparison; 0 leaves it out.
    #[arg(long, default_value_t = 2000)]
    pub route_requests: usize,
    /// Extra handler settings, `NAME=value` (repeatable), e.g. to compare a tunable.
    #[arg(long = "set", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
    /// Where the JSON of the run goes (default: target/bench/bench-<unix time>.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=value, got {text:?}"))
}

/// The chain-webhook signing key the handler is given, so the bench can play the provider.
const CHAIN_WEBHOOK_KEY: &str = "whsec_bWVzaHBheS1iZW5jaC1jaGFpbi13ZWJob29rLWtleS0=";

/// Handler settings of every phase: quotes live long enough for the run, logs quiet, the
/// chain-webhook key.
fn handler_settings(args: &BenchArgs) -> HandlerSettings {
    let base = HandlerSettings::default()
        .env("MESHPAY_QUOTE_TTL_SECONDS", "3600")
        .env("MESHPAY_CHAIN_WEBHOOK_KEY", CHAIN_WEBHOOK_KEY)
        .env("RUST_LOG", "warn");
    args.settings.iter().fold(base, |settings, (key, value)| {
        settings.env(key, value.clone())
    })
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let profile = meshpay_testkit::ports::target_bin_dir();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!(
        "meshpay bench: binaries from {}, {cores} cores; starting the local stack",
        profile.display()
    );
    let mut stack = Stack::builder()
        .chain(ChainSetup {
            hot_wallet_usdc: 10u128.pow(15),
            automine: true,
        })
        .devhost(handler_settings(&args).api_only())
        .start()
        .await;
    // Blocks on a clock from here on, as on a real chain.
    let anvil = stack.anvil();
    anvil.rpc("evm_setAutomine", json!([false])).await;
    anvil
        .rpc("evm_setIntervalMining", json!([BLOCK_TIME_SECS]))
        .await;
    let merchant = merchant(&stack).await;
    let mut report = Report::new(profile.display().to_string(), cores, &args);

    // A count of 0 leaves a phase out (e.g. to compare one figure between settings).
    if args.api_requests > 0 {
        report.api = api::run(&stack, &merchant, args.api_requests).await?;
        api::cancel_leftovers(&stack, &merchant).await?;
    }
    if args.limit_ops > 0 {
        report.limits = limits::run(&stack, args.limit_ops).await?;
    }
    if args.spawn_runs > 0 {
        report.spawn = Some(handler::spawn_to_first_200(&stack, args.spawn_runs).await?);
    }
    if args.route_requests > 0 {
        report.routes = handler::shim_overhead(&stack, args.route_requests).await?;
    }

    stack
        .restart_devhost(handler_settings(&args).dev_signers())
        .await;
    if args.single > 0 {
        report.single = pipeline::single(&stack, &merchant, args.single, None).await?;
        let hints = pipeline::WebhookHints {
            key: CHAIN_WEBHOOK_KEY,
        };
        report.single_webhook =
            Some(pipeline::single(&stack, &merchant, args.single, Some(&hints)).await?);
    }
    if args.payments > 0 {
        let pipeline_run = pipeline::run(&stack, &merchant, args.payments, args.concurrency);
        let (pipeline, peak) = rss::while_running(pipeline_run).await;
        report.pipeline = Some(pipeline?);
        report.rss = peak;
    }

    report.print();
    let path = args.json.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("target/bench/bench-{secs}.json"))
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&report.to_json())?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("written: {}", path.display());
    Ok(())
}

/// One merchant with funds for every phase (every authorization of the run locks its balance
/// rows: the worst case for one tenant).
async fn merchant(stack: &Stack) -> Merchant {
    MerchantSetup::funded(10u128.pow(15), 10u128.pow(24))
        .create_with_key(&stack.store)
        .await
}

/// p-th percentile (0..=1) of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A progress bar on stderr for `len` steps of `what`.
fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    let style = indicatif::ProgressStyle::with_template(
        "{msg:>28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}
