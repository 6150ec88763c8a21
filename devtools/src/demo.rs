//! `meshpay-dev demo`: one payment through a running stack (what `make dev` runs once it is up),
//! printed step by step with timings, then checked against the chain's own records; then one
//! invoice paid in (`invoice`).
//!
//! Steps: POST /quotes → POST /payments (Idempotency-Key) → poll GET /payments/{id} until
//! `settled`; each status change is printed when first seen, with the time since the start and
//! since the previous step. A status that came and went between two polls is printed with the
//! later one's time (marked). Then the receipt is read from the chain's JSON-RPC (`--rpc`), not
//! from meshpay: block, status, the ERC-20 `Transfer` log (token payments) and the recipient's
//! balance just before and at the inclusion block. Any mismatch fails the command.
//!
//! Exit status: 0 when settled and the chain agrees; non-zero with the reason otherwise
//! (problem+json `code`/`detail` of the API, `failure_reason` of a failed payment, a timeout).

mod chain;
mod invoice;
mod steps;

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use meshpay_client::{
    ApiKey, AuthorizePayment, Client, ClientError, CreateQuote, PaymentStatusView,
};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use self::steps::{Steps, failed, show_progress, status_name};

/// anvil account 3: not a hot wallet, not the token deployer, so its balance changes only by
/// what it is paid.
const DEFAULT_RECIPIENT: &str = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
/// Pause between two reads of the payment: short, so the printed timings are close to when the
/// status really changed (locally a read takes ~3 ms; settle follows confirm within ~50 ms).
const POLL_INTERVAL: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Base URL of the API (devhost's route prefix included).
    #[arg(long, default_value = "http://127.0.0.1:7071/api")]
    pub api: String,
    /// A key with the scopes quotes:write, payments:write and payments:read.
    #[arg(long, env = "MESHPAY_API_KEY", hide_env_values = true)]
    pub api_key: ApiKey,
    /// Chain name (chains config).
    #[arg(long, default_value = "anvil")]
    pub chain: String,
    /// Asset symbol on the chain (USDC, ETH).
    #[arg(long, default_value = "USDC")]
    pub asset: String,
    /// Amount in the asset's units.
    #[arg(long, default_value = "25.00")]
    pub amount: String,
    /// Recipient address (default: anvil account 3).
    #[arg(long, default_value = DEFAULT_RECIPIENT)]
    pub recipient: String,
    /// The chain's JSON-RPC endpoint, read for the receipt (the chain's own view).
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// Seconds to wait for `settled`.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Print one JSON document (steps, payment, chain check) instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Skip the invoice demo that follows the payment (always skipped with `--json`).
    #[arg(long)]
    pub no_invoice: bool,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let api = Client::new(args.api.clone(), args.api_key.clone())?;
    let rpc = chain::Rpc::new(&args.rpc)?;
    let deadline = Duration::from_secs(args.timeout);
    let mut steps = Steps::new(!args.json);
    steps.say(format_args!(
        "demo payment: {} {} on {} to {} (API {}, chain {})",
        args.amount, args.asset, args.chain, args.recipient, args.api, args.rpc
    ));

    let quote = api
        .create_quote(&CreateQuote::new(
            &args.chain,
            &args.asset,
            &args.amount,
            &args.recipient,
        ))
        .await
        .map_err(|error| with_hint(error, &args.api))?;
    steps.record(
        "quoted",
        format!(
            "{} {} {} to {}; network fee ≤ {} {}, service fee {} {} ({} bps); expires {}",
            quote.id,
            quote.amount.value,
            quote.asset,
            quote.recipient,
            quote.fees.network.amount.value,
            quote.fees.network.asset,
            quote.fees.service.amount.value,
            quote.asset,
            quote.fees.service.bps,
            quote.expires_at.format(&Rfc3339)?
        ),
    );

    let idempotency_key = format!("demo-{}", uuid::Uuid::new_v4());
    let mut payment = api
        .authorize(
            &idempotency_key,
            &AuthorizePayment {
                reference: Some("meshpay demo".into()),
                ..quote.id.as_str().into()
            },
        )
        .await?;
    let mut shown = PaymentStatusView::Quoted;
    show_progress(&mut steps, &mut shown, &payment);

    let mut last_error: Option<ClientError> = None;
    while payment.status != PaymentStatusView::Settled {
        if let Some(reason) = failed(&payment) {
            bail!("payment {} {reason}", payment.id);
        }
        if steps.elapsed() >= deadline {
            let why = last_error.map_or_else(String::new, |e| format!("; last error: {e}"));
            bail!(
                "payment {} is still {} after {} s{why} (logs: .dev/logs/devhost.log)",
                payment.id,
                status_name(payment.status),
                args.timeout
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        match api.payment(&payment.id).await {
            Ok(now) => {
                payment = now;
                show_progress(&mut steps, &mut shown, &payment);
            }
            Err(error) if error.is_retryable() => last_error = Some(error),
            Err(error) => return Err(error.into()),
        }
    }

    let chain = chain::check(&rpc, &payment)
        .await
        .context("checking the payment on chain")?;
    if args.json {
        let out = json!({
            "payment_id": payment.id,
            "quote_id": quote.id,
            "idempotency_key": idempotency_key,
            "status": status_name(payment.status),
            "total_ms": steps.elapsed().as_millis(),
            "steps": steps.steps(),
            "chain": chain,
        });
        println!("{out}");
    } else {
        chain::print(&chain, &payment);
        if !args.no_invoice {
            println!();
            invoice::run(&args.api, args.api_key.expose(), &args.rpc, 25, deadline).await?;
        }
    }
    Ok(())
}

/// A first request that reaches nothing is most likely a stack that is not running.
fn with_hint(error: ClientError, api: &str) -> anyhow::Error {
    match error {
        ClientError::Unreachable { .. } => anyhow::Error::new(error)
            .context(format!("no meshpay at {api}: is `make dev` running?")),
        other => other.into(),
    }
}
