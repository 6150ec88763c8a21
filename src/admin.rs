//! `meshpay admin …`: operator commands. Output is one JSON document on stdout (scripts parse
//! it); errors go to stderr with a non-zero exit. Decimal amounts are read in the asset's units,
//! using the decimals of the chains config (`MESHPAY_CHAINS_CONFIG`).

mod audit;
mod books;
mod invoices;
mod keys;
mod payments;
mod wallets;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use meshpay_chain::ChainsConfig;
use meshpay_domain::{Amount, Asset, AssetId, FeeBps, MerchantId, Scopes};
use meshpay_store::{AssetLimit, CreatedApiKey, NewMerchant, Store};
use serde_json::json;

use crate::settings;

#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// PostgreSQL connection string; default: the `DATABASE_URL` setting.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Chains config (asset decimals for decimal amounts); default: the
    /// `MESHPAY_CHAINS_CONFIG` setting.
    #[arg(long, global = true)]
    pub chains_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Merchants (tenants).
    #[command(subcommand)]
    Merchant(MerchantCommand),
    /// API keys: create, list, rotate, revoke.
    #[command(subcommand, name = "api-key")]
    ApiKey(keys::ApiKeyCommand),
    /// Ledger postings.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Payments parked for review: list them, put one back in the pipeline; replace a pending
    /// transaction on its nonce, or cancel a payment.
    #[command(subcommand)]
    Payments(payments::PaymentsCommand),
    /// Hot wallets halted for a nonce counter behind the chain: list them, resume one; record a
    /// top-up.
    #[command(subcommand)]
    Wallets(wallets::WalletsCommand),
    /// Invoices: reversals parked for review (list, post once covered, close with a note); sweep
    /// a token the configuration does not know off a deposit address.
    #[command(subcommand)]
    Invoices(invoices::InvoicesCommand),
    /// Runs the books against the chain once now and prints the report; exits 1 while any
    /// discrepancy is open.
    Reconcile(books::ReconcileArgs),
    /// Discrepancies between the books and the chain: list, show, resolve with a note.
    #[command(subcommand)]
    Discrepancies(books::DiscrepanciesCommand),
    /// The audit trail of admin commands, newest first.
    Audit {
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Creates a merchant funded with every asset of a chain and an all-scopes key; prints
    /// `demo api key: <key>` on a line of its own after the JSON.
    DemoMerchant(DemoArgs),
}

#[derive(Debug, Clone, Subcommand)]
pub enum MerchantCommand {
    Create(MerchantCreateArgs),
    /// Stops all the merchant's keys (401/403 `merchant_suspended`) and its payouts (the
    /// broadcast step parks its unsent payments).
    Suspend {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        reason: String,
    },
    /// Lifts a suspension; payments parked meanwhile are requeued with `admin payments requeue`.
    Resume {
        #[arg(long)]
        merchant: String,
    },
    /// Sets the merchant's cap on open payments (default 1000).
    SetOpenPaymentsCap {
        #[arg(long)]
        merchant: String,
        /// Omit to go back to the default.
        #[arg(long)]
        cap: Option<u32>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct MerchantCreateArgs {
    #[arg(long)]
    pub name: String,
    /// Service fee in basis points (1 bps = 0.01 %).
    #[arg(long, default_value_t = 0)]
    pub service_fee_bps: u32,
    /// Per-payment limit, `ASSET=AMOUNT` (e.g. `anvil:USDC=500.00`); repeatable.
    #[arg(long, value_name = "ASSET=AMOUNT")]
    pub max_per_payment: Vec<String>,
    /// Daily (UTC) limit, `ASSET=AMOUNT`; repeatable.
    #[arg(long, value_name = "ASSET=AMOUNT")]
    pub daily_max: Vec<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum LedgerCommand {
    /// Credits a merchant's balance from the funding account (idempotent by reference).
    Fund {
        #[arg(long)]
        merchant: String,
        /// `chain:SYMBOL`, or a bare symbol when only one configured chain has it.
        #[arg(long)]
        asset: String,
        /// In the asset's units (`1000.00`).
        #[arg(long)]
        amount: String,
        #[arg(long)]
        reference: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "demo")]
    pub name: String,
    #[arg(long, default_value = "anvil")]
    pub chain: String,
    /// Funding per asset, in the asset's units.
    #[arg(long, default_value = "10000")]
    pub amount_per_asset: String,
    #[arg(long, default_value_t = 25)]
    pub service_fee_bps: u32,
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let url = args
        .database_url
        .or_else(|| settings::env(meshpay_store::connect::DATABASE_URL_ENV))
        .filter(|url| !url.trim().is_empty())
        .context("DATABASE_URL (or --database-url) is required")?;
    let db = settings::database(Some(&url), settings::env)?.with_max_connections(2);
    let store = Store::connect_with(&db).await?;
    let (command, described) = audit::describe(std::env::args_os())?;
    let actor = audit::actor(settings::env);
    let chains_config = args.chains_config;
    audit::audited(
        &store,
        &actor,
        &command,
        &described,
        execute(&store, chains_config.as_deref(), args.command),
    )
    .await
}

async fn execute(
    store: &Store,
    chains_config: Option<&std::path::Path>,
    command: AdminCommand,
) -> anyhow::Result<()> {
    let store = store.clone();
    let chains = || load_chains(chains_config);
    let output = match command {
        AdminCommand::Merchant(MerchantCommand::Create(create)) => {
            // Only limits need asset decimals: creating a plain merchant needs no chains config.
            let no_limits = create.max_per_payment.is_empty() && create.daily_max.is_empty();
            let config = if no_limits { None } else { Some(chains()?) };
            merchant_create(&store, config.as_ref(), create).await?
        }
        AdminCommand::Merchant(MerchantCommand::Suspend { merchant, reason }) => controls_json(
            &store
                .suspend_merchant(parse_merchant(&merchant)?, &reason)
                .await?,
        )?,
        AdminCommand::Merchant(MerchantCommand::Resume { merchant }) => {
            controls_json(&store.resume_merchant(parse_merchant(&merchant)?).await?)?
        }
        AdminCommand::Merchant(MerchantCommand::SetOpenPaymentsCap { merchant, cap }) => {
            controls_json(
                &store
                    .set_max_open_payments(parse_merchant(&merchant)?, cap)
                    .await?,
            )?
        }
        AdminCommand::ApiKey(command) => keys::run(&store, command).await?,
        AdminCommand::Audit { limit } => {
            let mut rows = Vec::new();
            for r in store.list_audit(limit).await? {
                rows.push(json!({
                    "id": r.id, "actor": r.actor, "command": r.command, "args": r.args,
                    "started_at": rfc3339(Some(r.started_at))?,
                    "finished_at": rfc3339(r.finished_at)?, "outcome": r.outcome, "error": r.error,
                }));
            }
            json!({ "count": rows.len(), "audit": rows })
        }
        AdminCommand::Ledger(LedgerCommand::Fund {
            merchant,
            asset,
            amount,
            reference,
        }) => {
            let asset = resolve_asset(&chains()?, &asset)?;
            let amount = asset
                .parse_amount(&amount)
                .with_context(|| format!("--amount {amount:?}"))?;
            let merchant = parse_merchant(&merchant)?;
            let outcome = store.fund(merchant, asset.id(), amount, &reference).await?;
            json!({
                "transaction_id": outcome.transaction_id, "created": outcome.created,
                "merchant_id": merchant, "asset": asset.id(),
                "amount": asset.format_amount(amount), "amount_base_units": amount,
            })
        }
        AdminCommand::Payments(command) => payments::run(&store, command).await?,
        AdminCommand::Wallets(wallets::WalletsCommand::Topup(topup)) => {
            books::topup(&store, chains()?, topup).await?
        }
        AdminCommand::Wallets(command) => wallets::run(&store, command).await?,
        AdminCommand::Invoices(command) => invoices::run(&store, command).await?,
        AdminCommand::Reconcile(reconcile) => {
            if !books::reconcile(&store, chains()?, reconcile).await? {
                std::process::exit(1);
            }
            return Ok(());
        }
        AdminCommand::Discrepancies(command) => books::discrepancies(&store, command).await?,
        AdminCommand::DemoMerchant(demo) => {
            let (output, key) = demo_merchant(&store, &chains()?, demo).await?;
            println!("{output}");
            println!("demo api key: {key}");
            return Ok(());
        }
    };
    println!("{output}");
    Ok(())
}

fn load_chains(path: Option<&std::path::Path>) -> anyhow::Result<ChainsConfig> {
    let path = match path {
        Some(path) => path.to_path_buf(),
        None => settings::env(settings::CHAINS_CONFIG)
            .filter(|path| !path.trim().is_empty())
            .map(std::path::PathBuf::from)
            .with_context(|| {
                format!(
                    "{} (or --chains-config) is required for asset decimals",
                    settings::CHAINS_CONFIG
                )
            })?,
    };
    settings::chains(Some(&path), settings::env)
}

fn parse_merchant(s: &str) -> anyhow::Result<MerchantId> {
    s.parse().with_context(|| format!("--merchant {s:?}"))
}

/// `chain:SYMBOL`, or a bare `SYMBOL` that exactly one configured chain has.
fn resolve_asset(chains: &ChainsConfig, s: &str) -> anyhow::Result<Asset> {
    let found: Vec<&Asset> = match s.parse::<AssetId>() {
        Ok(id) => chains
            .chain(id.chain())
            .and_then(|c| c.asset(id.symbol()))
            .into_iter()
            .collect(),
        Err(_) => chains.chains().iter().filter_map(|c| c.asset(s)).collect(),
    };
    match found.as_slice() {
        [asset] => Ok((*asset).clone()),
        [] => bail!("asset {s:?} is not configured"),
        _ => bail!("asset {s:?} exists on several chains: write chain:SYMBOL"),
    }
}

/// `ASSET=AMOUNT` → (asset, base units).
fn parse_limit(chains: &ChainsConfig, s: &str) -> anyhow::Result<(AssetId, Amount)> {
    let (asset, amount) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("limit {s:?} must be ASSET=AMOUNT"))?;
    let asset = resolve_asset(chains, asset)?;
    let amount =
        Amount::parse_decimal(amount, asset.decimals()).with_context(|| format!("limit {s:?}"))?;
    Ok((asset.id().clone(), amount))
}

fn collect_limits(
    chains: Option<&ChainsConfig>,
    args: &MerchantCreateArgs,
) -> anyhow::Result<Vec<AssetLimit>> {
    fn limit_for(limits: &mut Vec<AssetLimit>, asset: AssetId) -> &mut AssetLimit {
        let i = match limits.iter().position(|l| l.asset == asset) {
            Some(i) => i,
            None => {
                limits.push(AssetLimit {
                    asset,
                    max_per_payment: None,
                    daily_max: None,
                });
                limits.len() - 1
            }
        };
        &mut limits[i]
    }
    let mut limits = Vec::new();
    let Some(chains) = chains else {
        return Ok(limits);
    };
    for s in &args.max_per_payment {
        let (asset, amount) = parse_limit(chains, s)?;
        limit_for(&mut limits, asset).max_per_payment = Some(amount);
    }
    for s in &args.daily_max {
        let (asset, amount) = parse_limit(chains, s)?;
        limit_for(&mut limits, asset).daily_max = Some(amount);
    }
    Ok(limits)
}

async fn merchant_create(
    store: &Store,
    chains: Option<&ChainsConfig>,
    args: MerchantCreateArgs,
) -> anyhow::Result<serde_json::Value> {
    let limits = collect_limits(chains, &args)?;
    let merchant = store
        .create_merchant(&NewMerchant {
            name: args.name,
            service_fee_bps: FeeBps::new(args.service_fee_bps)?,
            limits,
        })
        .await?;
    let limits: Vec<_> = merchant
        .limits
        .iter()
        .map(|l| json!({ "asset": l.asset, "max_per_payment": l.max_per_payment, "daily_max": l.daily_max }))
        .collect();
    Ok(json!({
        "id": merchant.id, "name": merchant.name, "service_fee_bps": merchant.service_fee_bps,
        "limits_base_units": limits, "created_at": rfc3339(Some(merchant.created_at))?,
    }))
}

fn controls_json(c: &meshpay_store::MerchantControls) -> anyhow::Result<serde_json::Value> {
    Ok(json!({
        "merchant_id": c.id, "suspended_at": rfc3339(c.suspended_at)?,
        "suspended_reason": c.suspended_reason, "max_open_payments": c.max_open_payments,
        "default_max_open_payments": meshpay_store::DEFAULT_MAX_OPEN_PAYMENTS,
    }))
}

fn key_json(key: &CreatedApiKey) -> serde_json::Value {
    json!({
        "id": key.id, "merchant_id": key.merchant_id, "prefix": key.prefix, "scopes": key.scopes,
        "key": key.key.expose(),
        "note": "the key is shown once; it is stored hashed",
    })
}

fn rfc3339(t: Option<time::OffsetDateTime>) -> anyhow::Result<Option<String>> {
    Ok(
        t.map(|t| t.format(&time::format_description::well_known::Rfc3339))
            .transpose()?,
    )
}

async fn demo_merchant(
    store: &Store,
    chains: &ChainsConfig,
    args: DemoArgs,
) -> anyhow::Result<(serde_json::Value, String)> {
    let chain = chains
        .chain(&args.chain)
        .with_context(|| format!("chain {:?} is not configured", args.chain))?;
    // Free funding is a dev convenience: on a real chain it would credit money nobody deposited.
    anyhow::ensure!(
        chain.chain_id == meshpay_chain::DEV_CHAIN_ID,
        "demo-merchant only runs on the dev chain (chain id {}); {:?} has chain id {}",
        meshpay_chain::DEV_CHAIN_ID,
        args.chain,
        chain.chain_id
    );
    let merchant = store
        .create_merchant(&NewMerchant {
            name: args.name,
            service_fee_bps: FeeBps::new(args.service_fee_bps)?,
            limits: Vec::new(),
        })
        .await?;
    let mut funded = Vec::new();
    for asset in chain.assets() {
        let amount = asset.parse_amount(&args.amount_per_asset)?;
        let reference = format!("demo-funding-{}-{}", merchant.id, asset.id());
        store
            .fund(merchant.id, asset.id(), amount, &reference)
            .await?;
        funded.push(json!({ "asset": asset.id(), "amount": asset.format_amount(amount) }));
    }
    let key = store.create_api_key(merchant.id, Scopes::all()).await?;
    let output = json!({ "merchant_id": merchant.id, "funded": funded, "api_key": key_json(&key) });
    Ok((output, key.key.expose().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_testkit::postgres::TestDb;

    fn chains_with_mainnet() -> ChainsConfig {
        let dev = include_str!("../chains.dev.toml");
        let mainnet = dev
            .replace("chain_id = 31337", "chain_id = 1")
            .replace("name = \"anvil\"", "name = \"mainnet\"");
        ChainsConfig::from_toml_str(&mainnet).unwrap()
    }

    fn demo_args(chain: &str) -> DemoArgs {
        DemoArgs {
            name: "demo".into(),
            chain: chain.into(),
            amount_per_asset: "10000".into(),
            service_fee_bps: 25,
        }
    }

    #[tokio::test]
    async fn demo_merchant_refuses_every_chain_but_the_dev_chain_and_writes_nothing() {
        let db = TestDb::create_migrated(&meshpay_store::MIGRATOR).await;
        let store = Store::from_pool(db.pool().clone());
        let error = demo_merchant(&store, &chains_with_mainnet(), demo_args("mainnet"))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("only runs on the dev chain"),
            "{error}"
        );
        let merchants: i64 = sqlx::query_scalar("SELECT count(*) FROM merchants")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(merchants, 0);
    }

    #[tokio::test]
    async fn demo_merchant_funds_every_asset_of_the_dev_chain() {
        let db = TestDb::create_migrated(&meshpay_store::MIGRATOR).await;
        let store = Store::from_pool(db.pool().clone());
        let dev = ChainsConfig::from_toml_str(include_str!("../chains.dev.toml")).unwrap();
        let (output, key) = demo_merchant(&store, &dev, demo_args("anvil"))
            .await
            .unwrap();
        assert!(!key.is_empty());
        assert_eq!(output["funded"].as_array().unwrap().len(), 2, "{output}");
    }
}
