//! `meshpay admin payments review|requeue`: payments the broadcast, confirm or settle step
//! parked for an operator ([`Store::flag_for_review`]), and putting one back in the pipeline
//! once the cause is fixed (the competing same-nonce transaction was mined, the wallet topped up).
//! `replace` and `cancel`: re-price a pending transaction on its nonce now, or cancel the
//! payment (after broadcast: a 0-value self-transfer on its nonce), within the hold. They sign,
//! so they run with the function app's settings (signers file and its secrets).

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use meshpay_domain::{PaymentId, PaymentMessage, PaymentStatus};
use meshpay_queue::{DEFAULT_CONNECTION, MessageEncoding, QueueService, SendOptions};
use meshpay_store::Store;
use serde_json::{Value, json};

use super::rfc3339;

#[derive(Debug, Clone, Subcommand)]
pub enum PaymentsCommand {
    /// Lists payments flagged for review, newest first.
    Review {
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Clears a payment's review flag and writes its step's queue message.
    Requeue(RequeueArgs),
    /// Re-prices the payment's pending transaction on its nonce now (+12.5 % or the fresh
    /// estimate, within the quoted ceiling). Refused unless it is broadcast, stalled or
    /// cancelling with a transaction not mined.
    Replace {
        /// `pay_…`
        payment: String,
    },
    /// Cancels the payment: at once while `authorized`; after broadcast by a 0-value
    /// self-transfer on its nonce, sent now (it ends `cancelled` when that is mined, or
    /// `confirmed` if the original wins). Refused once a transaction is final.
    Cancel {
        /// `pay_…`
        payment: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RequeueArgs {
    /// `pay_…`
    #[arg(long)]
    pub payment: String,
    /// The step to run; default from the status (authorized → broadcast, broadcast → confirm,
    /// confirmed → settle).
    #[arg(long, value_enum)]
    pub step: Option<Step>,
    /// Queue connection (connection string, or `__queueServiceUri`/`__accountName` settings).
    #[arg(long, default_value = DEFAULT_CONNECTION)]
    pub connection: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Step {
    Broadcast,
    Confirm,
    Settle,
}

impl Step {
    /// The queue the step's function is triggered by (functions/*/function.json).
    pub const fn queue(self) -> &'static str {
        match self {
            Step::Broadcast => "payments-broadcast",
            Step::Confirm => "payments-confirm",
            Step::Settle => "payments-settle",
        }
    }

    fn for_status(status: PaymentStatus) -> Option<Step> {
        match status {
            PaymentStatus::Authorized => Some(Step::Broadcast),
            PaymentStatus::Broadcast | PaymentStatus::Stalled | PaymentStatus::Cancelling => {
                Some(Step::Confirm)
            }
            PaymentStatus::Confirmed => Some(Step::Settle),
            _ => None,
        }
    }
}

pub async fn run(store: &Store, command: PaymentsCommand) -> anyhow::Result<Value> {
    match command {
        PaymentsCommand::Review { limit } => review(store, limit).await,
        PaymentsCommand::Replace { payment } => replace(store, &payment, false).await,
        PaymentsCommand::Cancel { payment } => replace(store, &payment, true).await,
        PaymentsCommand::Requeue(args) => {
            let queues = QueueService::from_settings(&args.connection, crate::settings::env)
                .with_context(|| format!("queue connection {:?}", args.connection))?;
            requeue(store, &queues, args).await
        }
    }
}

/// `replace` (bump now) and `cancel` (request, then send the cancellation now).
async fn replace(store: &Store, payment: &str, cancel: bool) -> anyhow::Result<Value> {
    let id: PaymentId = payment
        .parse()
        .with_context(|| format!("payment {payment:?}"))?;
    let current = store
        .get_payment_unscoped(id)
        .await?
        .with_context(|| format!("payment {id} not found"))?;
    if cancel {
        match store.request_cancel(current.merchant_id, id).await {
            Ok(_) => {}
            Err(meshpay_store::StoreError::IllegalTransition(_))
                if current.status == PaymentStatus::Cancelling => {}
            Err(meshpay_store::StoreError::IllegalTransition(_)) => bail!(
                "payment {id} is {}: it can no longer be cancelled (its transaction is final,                  or it is settled, failed or expired)",
                current.status
            ),
            Err(error) => return Err(error.into()),
        }
        let now = store
            .get_payment_unscoped(id)
            .await?
            .with_context(|| format!("payment {id} not found"))?;
        if now.status == PaymentStatus::Cancelled {
            return Ok(json!({ "id": id, "status": now.status, "sent": null }));
        }
    } else if !current.status.is_in_flight() {
        bail!(
            "payment {id} is {}: only a broadcast, stalled or cancelling payment has a pending              transaction to replace",
            current.status
        );
    }
    let settings = crate::settings::Settings::from_env()?;
    let relay = meshpay_relay::RelaySetup {
        store: store.clone(),
        chains: std::sync::Arc::new(settings.chains),
        signers: settings.signers,
        secrets: settings.signer_secrets,
        config: settings.relay,
    }
    .build()
    .await
    .context("building the relay (signers)")?;
    let outcome = relay
        .reprice(id, meshpay_relay::RepriceMode::Now)
        .await
        .context("re-pricing")?;
    let status = store
        .get_payment_unscoped(id)
        .await?
        .map(|p| p.status)
        .with_context(|| format!("payment {id} not found"))?;
    Ok(match outcome {
        meshpay_relay::RepriceOutcome::Replaced(r) => json!({
            "id": id, "status": status, "replaced": r.replaced, "tx_hash": r.tx_hash,
            "nonce": r.nonce, "attempt": r.attempt, "cancellation": r.cancellation,
            "max_fee_per_gas": r.max_fee_per_gas_wei.to_string(),
            "max_priority_fee_per_gas": r.max_priority_fee_per_gas_wei.to_string(),
            "refused": r.refused,
        }),
        meshpay_relay::RepriceOutcome::AboveCeiling { reason, .. } if cancel => json!({
            "id": id, "status": status, "sent": null,
            "waiting": format!("{reason}; the cancellation is sent when fees allow"),
        }),
        meshpay_relay::RepriceOutcome::AboveCeiling { reason, .. } => bail!("{reason}"),
        meshpay_relay::RepriceOutcome::NotApplicable(why) => bail!("{why}"),
        meshpay_relay::RepriceOutcome::NotDue { .. } => bail!("payment {id}: nothing to replace"),
    })
}

async fn review(store: &Store, limit: u32) -> anyhow::Result<Value> {
    let mut items = Vec::new();
    for item in store.list_review(limit).await? {
        items.push(json!({
            "id": item.payment_id, "merchant_id": item.merchant_id, "status": item.status,
            "chain": item.chain, "reason": item.reason, "flagged_at": rfc3339(item.flagged_at)?,
        }));
    }
    Ok(json!({ "count": items.len(), "payments": items }))
}

async fn requeue(store: &Store, queues: &QueueService, args: RequeueArgs) -> anyhow::Result<Value> {
    let id: PaymentId = args
        .payment
        .parse()
        .with_context(|| format!("--payment {:?}", args.payment))?;
    let payment = store
        .get_payment_unscoped(id)
        .await?
        .with_context(|| format!("payment {id} not found"))?;
    if payment.status.is_terminal() {
        bail!(
            "payment {id} is {}: a terminal payment cannot be requeued",
            payment.status.as_str()
        );
    }
    let step = match args.step.or_else(|| Step::for_status(payment.status)) {
        Some(step) => step,
        None => bail!(
            "payment {id} is {}: no default step, pass --step",
            payment.status.as_str()
        ),
    };
    let queue = queues.queue(step.queue())?;
    // Cleared before sending: if the send fails the payment is no longer parked, so reconcile
    // nudges it like any stale payment (the steps are idempotent either way).
    let cleared = store.clear_review(id).await?;
    // The confirm step reads this as a `ConfirmMessage` without a poller: a check request that
    // starts a polling chain unless one is active.
    let body = serde_json::to_vec(&PaymentMessage::new(id))?;
    queue.create_if_not_exists().await?;
    // host.json `extensions.queues.messageEncoding` is base64.
    let sent = queue
        .send(&body, MessageEncoding::Base64, SendOptions::default())
        .await
        .with_context(|| {
            format!(
                "review flag cleared, but sending to {} failed",
                step.queue()
            )
        })?;
    tracing::info!(payment = %id, queue = step.queue(), was_flagged = cleared.is_some(), "payment requeued");
    Ok(json!({
        "id": id, "status": payment.status, "queue": step.queue(), "message_id": sent.id,
        "was_flagged": cleared.is_some(),
        "cleared_reason": cleared.as_ref().and_then(|c| c.reason.clone()),
        "flagged_at": rfc3339(cleared.and_then(|c| c.flagged_at))?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_step_follows_the_status_and_terminal_states_have_none() {
        assert_eq!(
            Step::for_status(PaymentStatus::Authorized),
            Some(Step::Broadcast)
        );
        assert_eq!(
            Step::for_status(PaymentStatus::Broadcast),
            Some(Step::Confirm)
        );
        assert_eq!(
            Step::for_status(PaymentStatus::Confirmed),
            Some(Step::Settle)
        );
        for s in [
            PaymentStatus::Settled,
            PaymentStatus::Failed,
            PaymentStatus::Cancelled,
        ] {
            assert_eq!(Step::for_status(s), None);
        }
    }
}
