//! `meshpay admin payments review|requeue`: payments the broadcast, confirm or settle step
//! parked for an operator ([`Store::flag_for_review`]), and putting one back in the pipeline
//! once the cause is fixed (the competing same-nonce transaction was mined, the wallet topped up).

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
        PaymentsCommand::Requeue(args) => {
            let queues = QueueService::from_settings(&args.connection, crate::settings::env)
                .with_context(|| format!("queue connection {:?}", args.connection))?;
            requeue(store, &queues, args).await
        }
    }
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
