//! `meshpay-dev chaos`: N payments through devhost + `meshpay` on a stack of its own (a fresh
//! database, anvil behind the RPC fault proxy, Azurite, a webhook receiver), with faults
//! injected at seeded random while the traffic runs; then every invariant of money movement
//! is checked against the chain and the database.
//!
//! The run prints its seed first (`CHAOS_SEED=<seed>` replays the same plan), the faults as they
//! are applied, then: payments by outcome, faults by kind, violations (each with its payment),
//! the time-to-terminal distribution, and finally `N passed, M failed`. Exit status 1 when
//! anything failed.
//!
//! PostgreSQL is shared with other users of the machine, so the server is never restarted:
//! the fault is every connection of the run's own database terminated at once, which is what
//! a server restart does to the application.

mod chain;
mod checks;
mod faults;
mod plan;
mod traffic;
mod webhook_sink;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use anyhow::Context;
use base64::Engine as _;
use clap::Args;
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use meshpay_client::{ApiKey, Client};
use meshpay_testkit::anvil::{DEV_USDC_ADDRESS, HOT_WALLETS};
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::stack::{ChainSetup, HandlerSettings, Stack};

use self::chain::Chain;
use self::checks::{Checks, WalletStart};
use self::faults::Injector;
use self::plan::{FaultSet, Plan, PlanOptions};
use self::traffic::{Outcome, Traffic};
use self::webhook_sink::WebhookSink;

#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// Payments to make.
    #[arg(long, default_value_t = 5000)]
    pub payments: usize,
    /// The seed (default: from the clock); printed, so a run replays with `CHAOS_SEED=<seed>`.
    #[arg(long, env = "CHAOS_SEED")]
    pub seed: Option<u64>,
    /// Payments in flight at once (each client waits for its payment's outcome).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Fault kinds: `all`, `none`, or a list of kill,dup,rpc,db,azurite,reorg (`-kill` removes).
    #[arg(long, default_value = "all", value_parser = FaultSet::parse)]
    pub faults: FaultSet,
    /// On average one fault per this many payments.
    #[arg(long, default_value_t = 20)]
    pub fault_every: usize,
    /// At most this many handler kills (from the third within 30 minutes the host waits
    /// 1 s, 2 s, 4 s, ... before it restarts the handler).
    #[arg(long, default_value_t = 6)]
    pub max_kills: usize,
    /// At most this many Azurite restarts.
    #[arg(long, default_value_t = 2)]
    pub max_azurite_restarts: usize,
    /// Seconds a client waits for its payment to be final or parked.
    #[arg(long, default_value_t = 300)]
    pub settle_timeout: u64,
    /// Seconds to wait after the traffic for the pipeline and webhooks to go idle.
    #[arg(long, default_value_t = 180)]
    pub drain_timeout: u64,
    /// Seconds between blocks.
    #[arg(long, default_value_t = 1)]
    pub block_time: u64,
    /// host.json override for devhost, `path=value` (repeatable), e.g.
    /// `extensions.queues.visibilityTimeout=00:00:01`.
    #[arg(long = "host-set", value_parser = parse_host_set)]
    pub host_set: Vec<(String, String)>,
    /// App setting for devhost and the handler, `NAME=value` (repeatable).
    #[arg(long = "env", value_parser = parse_host_set)]
    pub env: Vec<(String, String)>,
}

fn parse_host_set(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}`: expected path=value"))
}

/// The handler's settings for a chaos run: the dev signers, webhooks to a private address,
/// notify every second and reconcile every 10 s (so a payment whose message was lost is nudged
/// within the run), stale after 30 s, gaps filled after 20 s.
fn handler_settings(args: &ChaosArgs) -> HandlerSettings {
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let mut settings = HandlerSettings::default()
        .dev_signers()
        .env("NOTIFY_SCHEDULE", "* * * * * *")
        .env("RECONCILE_SCHEDULE", "*/10 * * * * *")
        .env("MESHPAY_RECONCILE_STALE_SECS", "30")
        .env("MESHPAY_GAP_FILL_AFTER_SECS", "20")
        .env("MESHPAY_WEBHOOK_URL_POLICY", "allow-private")
        .env("MESHPAY_WEBHOOK_SECRET_KEY", key)
        .env(
            "MESHPAY_WEBHOOK_RETRY_SCHEDULE",
            "0,1s,2s,5s,10s,20s,30s,60s",
        );
    for (name, value) in &args.env {
        settings = settings.env(name, value.clone());
    }
    for (path, value) in &args.host_set {
        settings = settings.host_set(path, value);
    }
    settings
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<bool> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
    });
    let plan = Plan::new(
        seed,
        PlanOptions {
            payments: args.payments,
            faults: args.faults,
            fault_every: args.fault_every,
            max_kills: args.max_kills,
            max_azurite_restarts: args.max_azurite_restarts,
        },
    );
    println!(
        "chaos: seed {seed} (CHAOS_SEED={seed} replays), {} payments, concurrency {}, faults {:?}",
        args.payments, args.concurrency, args.faults
    );
    println!("planned faults: {:?}", plan.counts());
    for (name, value) in args.host_set.iter().chain(&args.env) {
        println!("override: {name}={value}");
    }

    let (sink, hook_url) = WebhookSink::start().await?;
    let setup_started = Instant::now();
    let stack = Stack::builder()
        .chain(ChainSetup {
            hot_wallet_usdc: 10u128.pow(12),
            automine: false,
        })
        .rpc_proxy(seed)
        .devhost(handler_settings(&args))
        .start()
        .await;
    let usdc: Address = DEV_USDC_ADDRESS.parse()?;
    let chain = Arc::new(Chain::new(stack.anvil().url(), usdc)?);
    chain
        .rpc(
            "evm_setIntervalMining",
            serde_json::json!([args.block_time]),
        )
        .await?;
    let merchant = MerchantSetup::funded(10u128.pow(15), 10u128.pow(23))
        .create_with_key(&stack.store)
        .await;
    stack
        .api()
        .create_webhook_endpoint(&merchant.key, &hook_url)
        .await;
    let hot_wallets: Vec<Address> = HOT_WALLETS
        .iter()
        .map(|w| w.parse())
        .collect::<Result<_, _>>()?;
    let mut start = WalletStart::default();
    for wallet in &hot_wallets {
        start.eth.insert(*wallet, chain.eth_balance(*wallet).await?);
        start
            .usdc
            .insert(*wallet, chain.usdc_balance(*wallet).await?);
    }
    println!(
        "stack ready in {:.1} s (devhost {}, RPC proxy {} → anvil {})",
        setup_started.elapsed().as_secs_f64(),
        stack.devhost().base_url(),
        stack.rpc_proxy().url(),
        stack.anvil().url()
    );

    let http = reqwest::Client::builder()
        .timeout(meshpay_client::REQUEST_TIMEOUT)
        .build()?;
    let api = Client::with_http(
        http,
        stack.devhost().api_url(""),
        merchant.key.parse::<ApiKey>()?,
    );
    let db = stack.db.pool_of(8).await;
    let store = stack.store.clone();
    let merchant_id = merchant.id.as_uuid();

    let progress = ProgressBar::new(args.payments as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} payments final ({per_sec}, eta {eta}) {msg}",
        )
        .map_err(|e| anyhow::anyhow!("progress template: {e}"))?
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let (starts_tx, starts_rx) = tokio::sync::mpsc::unbounded_channel();
    let injector = Injector {
        stack,
        chain: chain.clone(),
        plan: plan.faults.clone(),
        progress: progress.clone(),
        started,
    };
    let injector = tokio::spawn(injector.run(starts_rx));

    let traffic = Traffic {
        api,
        db: db.clone(),
        seed,
        settle_timeout: Duration::from_secs(args.settle_timeout),
    };
    let mut outcomes: Vec<Outcome> = futures::stream::iter(plan.payments.iter())
        .map(|payment| {
            let _ = starts_tx.send(payment.index);
            let (traffic, progress) = (&traffic, &progress);
            async move {
                let outcome = traffic.run(payment).await;
                progress.inc(1);
                outcome
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    drop(starts_tx);
    let traffic_time = started.elapsed();
    let (stack, injected) = injector.await.context("fault injector")?;
    progress.finish_and_clear();
    let unanswered = outcomes.iter().filter(|o| o.unanswered.is_some()).count();
    if unanswered > 0 {
        println!("replaying {unanswered} authorize requests that never got an answer");
        for outcome in &mut outcomes {
            traffic.replay(outcome).await;
        }
    }
    println!(
        "traffic done in {:.1} s; draining (up to {} s)",
        traffic_time.as_secs_f64(),
        args.drain_timeout
    );

    let drain_started = Instant::now();
    let mut last = checks::Pending::default();
    while drain_started.elapsed() < Duration::from_secs(args.drain_timeout) {
        match checks::pending(&db).await {
            Ok(pending) if pending.is_idle() => {
                last = pending;
                break;
            }
            Ok(pending) => last = pending,
            Err(error) => println!("  drain: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "drained in {:.1} s (still pending: {last:?})",
        drain_started.elapsed().as_secs_f64()
    );

    let findings = Checks {
        db: &db,
        store: &store,
        chain: &chain,
        merchant: merchant_id,
        hot_wallets: &hot_wallets,
        start: &start,
    }
    .run(&sink.received())
    .await?;
    let report = Report {
        seed,
        outcomes: &outcomes,
        findings: &findings,
        injected: &injected,
        proxy: stack.rpc_proxy().injected(),
        traffic_time,
    };
    let passed = report.print();
    if !passed {
        // devhost removes its log when it stops cleanly: keep a copy of a failing run's.
        let kept = std::env::temp_dir().join(format!("meshpay-chaos-{seed}.log"));
        match std::fs::copy(stack.devhost().log_path(), &kept) {
            Ok(_) => println!("devhost log kept at {}", kept.display()),
            Err(error) => println!("devhost log not kept: {error}"),
        }
    }
    drop(stack);
    Ok(passed)
}

struct Report<'a> {
    seed: u64,
    outcomes: &'a [Outcome],
    findings: &'a checks::Findings,
    injected: &'a faults::Injected,
    proxy: BTreeMap<&'static str, u64>,
    traffic_time: Duration,
}

impl Report<'_> {
    /// Prints the report; `true` when nothing failed.
    fn print(&self) -> bool {
        let f = self.findings;
        println!();
        println!("== chaos report (seed {}) ==", self.seed);
        let authorized = self
            .outcomes
            .iter()
            .filter(|o| o.payment_id.is_some())
            .count();
        let retries: u32 = self.outcomes.iter().map(|o| o.retries).sum();
        println!(
            "payments: {} planned, {authorized} authorized, {} checked; by status {:?}; parked {}",
            self.outcomes.len(),
            f.checked,
            f.statuses,
            f.parked
        );
        let refused = self.outcomes.iter().filter(|o| o.refused.is_some()).count();
        if refused > 0 {
            println!(
                "refused: {refused} authorizations retried past their quote's life (quote_expired; no payment)"
            );
        }
        let bad: Vec<bool> = self
            .outcomes
            .iter()
            .filter_map(|o| o.bad_request_refused)
            .collect();
        println!(
            "bad requests: {} sent, {} refused with a 4xx problem+json; client retries: {retries}",
            bad.len(),
            bad.iter().filter(|ok| **ok).count()
        );
        println!(
            "throughput: {:.1} payments/s over {:.1} s of traffic",
            self.outcomes.len() as f64 / self.traffic_time.as_secs_f64().max(0.001),
            self.traffic_time.as_secs_f64()
        );
        println!("faults injected:");
        for (kind, n) in &self.injected.by_kind {
            println!("  {kind:34} {n}");
        }
        println!(
            "  {:34} {}",
            "(messages delivered twice)", self.injected.duplicated_messages
        );
        for (kind, n) in &self.proxy {
            println!("  {:34} {n}", format!("{kind} (proxy)"));
        }
        for skipped in &self.injected.skipped {
            println!("  not applied: {skipped}");
        }
        let mut times: Vec<Duration> = self
            .outcomes
            .iter()
            .filter_map(|o| o.time_to_terminal)
            .collect();
        times.sort();
        let slow = self
            .outcomes
            .iter()
            .filter(|o| o.payment_id.is_some() && o.time_to_terminal.is_none())
            .count();
        if slow > 0 {
            println!("slow: {slow} payments not final or parked within the client's wait");
        }
        println!(
            "time to terminal (authorize → final or parked, n={}): p50 {} p90 {} p99 {} max {}",
            times.len(),
            secs(percentile(&times, 50)),
            secs(percentile(&times, 90)),
            secs(percentile(&times, 99)),
            secs(times.last().copied()),
        );
        for note in &f.notes {
            println!("note: {note}");
        }

        // A payment fails on any violation of its own, or a client problem.
        let mut failed_payments: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for outcome in self.outcomes {
            let label = outcome
                .payment_id
                .clone()
                .unwrap_or_else(|| format!("payment #{}", outcome.index));
            // A payment slower than the client's wait is not a failure by itself: the checks
            // after the drain say whether it ended final or parked.
            let mut problems = outcome.problems.clone();
            if let Some(uuid) = outcome.payment_uuid
                && let Some(found) = f.per_payment.get(&uuid)
            {
                problems.extend(found.iter().cloned());
            }
            if !problems.is_empty() {
                failed_payments.insert(format!("{label} (#{})", outcome.index), problems);
            }
        }
        // A payment the merchant was never told about (no answer, not even on replay).
        let mut global = f.global.clone();
        if f.checked > authorized {
            global.push(format!(
                "{} payments exist that no client got an answer for",
                f.checked - authorized
            ));
        }
        let violations = failed_payments.values().map(Vec::len).sum::<usize>() + global.len();
        println!("violations: {violations}");
        for (payment, problems) in &failed_payments {
            for problem in problems {
                println!("  {payment}: {problem}");
            }
        }
        for problem in &global {
            println!("  {problem}");
        }
        let failed = failed_payments.len() + global.len();
        let passed = self.outcomes.len() - failed_payments.len().min(self.outcomes.len());
        println!("{passed} passed, {failed} failed");
        failed == 0
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.1}s", d.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let times: Vec<Duration> = (1..=10).map(Duration::from_secs).collect();
        assert_eq!(percentile(&times, 50), Some(Duration::from_secs(5)));
        assert_eq!(percentile(&times, 90), Some(Duration::from_secs(9)));
        assert_eq!(percentile(&times, 99), Some(Duration::from_secs(10)));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn host_overrides_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_host_set("a.b=00:00:01").unwrap(),
            ("a.b".to_owned(), "00:00:01".to_owned())
        );
        assert!(parse_host_set("nothing").is_err());
    }
}
