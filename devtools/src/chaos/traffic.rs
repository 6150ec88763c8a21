//! One client per payment, as a merchant's integration behaves: quote, authorize with an
//! Idempotency-Key, retry the same request with the same key on errors and timeouts, cancel
//! some, and wait for the outcome. Bad requests mixed in must be refused with a 4xx
//! problem+json.

use std::future::Future;
use std::time::{Duration, Instant};

use meshpay_client::{AuthorizePayment, Client, ClientError, CreateQuote};
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use super::plan::{BadRequest, PaymentPlan};

/// How long a client retries one request before it gives up.
const RETRY_FOR: Duration = Duration::from_secs(180);
/// Pause between two reads of the payment's state.
const POLL: Duration = Duration::from_millis(200);

/// What happened to one planned payment, as the client saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub index: usize,
    /// `pay_…` once authorized.
    pub payment_id: Option<String>,
    /// The database id (for the checks).
    pub payment_uuid: Option<uuid::Uuid>,
    /// When it reached a final status or was parked, from the first authorize request.
    pub time_to_terminal: Option<Duration>,
    /// Why the client has no outcome, or what the API answered that it must not have.
    pub problems: Vec<String>,
    /// Requests the client repeated (with the same Idempotency-Key for authorize).
    pub retries: u32,
    pub bad_request_refused: Option<bool>,
    /// The authorize request (Idempotency-Key, body) that never got an answer.
    pub unanswered: Option<(String, AuthorizePayment)>,
    /// Authorize refused because its retries outlived the quote (no payment exists).
    pub refused: Option<String>,
}

impl Outcome {
    fn set_payment(&mut self, id: &str) {
        self.payment_uuid = id
            .parse::<meshpay_domain::PaymentId>()
            .ok()
            .map(|id| id.as_uuid());
        self.payment_id = Some(id.to_owned());
    }
}

pub struct Traffic {
    pub api: Client,
    pub db: PgPool,
    pub seed: u64,
    /// A payment not final or parked after this long is reported, not waited for.
    pub settle_timeout: Duration,
}

impl Traffic {
    pub async fn run(&self, plan: &PaymentPlan) -> Outcome {
        let mut outcome = Outcome {
            index: plan.index,
            payment_id: None,
            payment_uuid: None,
            time_to_terminal: None,
            problems: Vec::new(),
            retries: 0,
            bad_request_refused: None,
            unanswered: None,
            refused: None,
        };
        if let Some(bad) = plan.bad_request {
            match self.bad_request(bad, plan).await {
                Ok(()) => outcome.bad_request_refused = Some(true),
                Err(problem) => {
                    outcome.bad_request_refused = Some(false);
                    outcome.problems.push(problem);
                }
            }
        }
        let recipient = plan.recipient.to_checksum(None);
        let request = CreateQuote::new("anvil", plan.asset.symbol(), &plan.amount, &recipient);
        let quote = match self
            .retrying(&mut outcome.retries, || self.api.create_quote(&request))
            .await
        {
            Ok(quote) => quote,
            Err(error) => {
                outcome
                    .problems
                    .push(format!("quote never created: {error}"));
                return outcome;
            }
        };
        let started = Instant::now();
        let key = format!("chaos-{}-{}", self.seed, plan.index);
        let body = AuthorizePayment::from(quote.id.as_str());
        let payment = match self
            .retrying(&mut outcome.retries, || self.api.authorize(&key, &body))
            .await
        {
            Ok(payment) => payment,
            // No answer for a long while (an overloaded or restarting stack): the merchant asks
            // again later with the same key ([`Traffic::replay`]), as an integration would.
            Err(error) if retryable(&error) => {
                outcome.unanswered = Some((key, body));
                return outcome;
            }
            // Retried past the quote's life: a refusal the merchant answers with a new quote.
            Err(error) if quote_expired(&error) => {
                outcome.refused = Some(error.to_string());
                return outcome;
            }
            Err(error) => {
                outcome.problems.push(format!("never authorized: {error}"));
                return outcome;
            }
        };
        outcome.set_payment(&payment.id);
        if let Some(after) = plan.cancel_after {
            tokio::time::sleep(after).await;
            // Refused once broadcast (409): the payment goes on, which is fine.
            let cancel = self
                .retrying(&mut outcome.retries, || self.api.cancel(&payment.id))
                .await;
            if let Err(error) = cancel
                && error.status().is_none_or(|s| s >= 500)
            {
                outcome.problems.push(format!("cancel: {error}"));
            }
        }
        let Some(uuid) = outcome.payment_uuid else {
            outcome
                .problems
                .push(format!("unparseable payment id {}", payment.id));
            return outcome;
        };
        let deadline = started + self.settle_timeout;
        while Instant::now() < deadline {
            if let Ok(Some(true)) = super::checks::resolved(&self.db, uuid).await {
                outcome.time_to_terminal = Some(started.elapsed());
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        outcome
    }

    /// Asks again, with the same Idempotency-Key and body, for an authorization that never got
    /// an answer: the stored answer comes back if the first request committed, a refusal (the
    /// quote expired meanwhile) if it did not. A payment created twice shows in the checks.
    pub async fn replay(&self, outcome: &mut Outcome) {
        let Some((key, body)) = outcome.unanswered.take() else {
            return;
        };
        match self
            .retrying(&mut outcome.retries, || self.api.authorize(&key, &body))
            .await
        {
            Ok(payment) => outcome.set_payment(&payment.id),
            Err(error) if quote_expired(&error) => outcome.refused = Some(error.to_string()),
            Err(error) => outcome.problems.push(format!(
                "authorize never answered, not even on replay: {error}"
            )),
        }
    }

    /// Repeats `call` while the answer is an error a client retries (no answer, 5xx, the same
    /// key still in flight), for up to [`RETRY_FOR`].
    async fn retrying<T, F, Fut>(&self, retries: &mut u32, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let start = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) if retryable(&error) && start.elapsed() < RETRY_FOR => {
                    *retries += 1;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Sends `bad`; `Err` describes an answer other than a 4xx problem+json.
    async fn bad_request(&self, bad: BadRequest, plan: &PaymentPlan) -> Result<(), String> {
        let recipient = plan.recipient.to_checksum(None);
        let (path, key, body) = match bad {
            BadRequest::MalformedRecipient => (
                "quotes",
                None,
                json!({"chain": "anvil", "asset": "USDC", "amount": "1.00", "recipient": "0x12"}),
            ),
            BadRequest::NegativeAmount => (
                "quotes",
                None,
                json!({"chain": "anvil", "asset": "ETH", "amount": "-1", "recipient": recipient}),
            ),
            BadRequest::UnknownQuote => (
                "payments",
                Some(format!("chaos-bad-{}-{}", self.seed, plan.index)),
                json!({"quote_id": format!("quo_{}", uuid::Uuid::now_v7().simple())}),
            ),
            BadRequest::MissingIdempotencyKey => (
                "payments",
                None,
                json!({"quote_id": format!("quo_{}", uuid::Uuid::now_v7().simple())}),
            ),
        };
        let start = Instant::now();
        loop {
            match self
                .api
                .send(Method::POST, path, key.as_deref(), Some(&body))
                .await
            {
                Ok(reply) if (400..500).contains(&reply.status) => {
                    return match reply.problem() {
                        Some(_) => Ok(()),
                        None => Err(format!("{bad:?}: {} without problem+json", reply.status)),
                    };
                }
                // The handler may be down (killed): the client tries again.
                Ok(reply) if reply.status >= 500 && start.elapsed() < RETRY_FOR => {}
                Ok(reply) => return Err(format!("{bad:?}: answered {}", reply.status)),
                Err(_) if start.elapsed() < RETRY_FOR => {}
                Err(error) => return Err(format!("{bad:?}: {error}")),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn retryable(error: &ClientError) -> bool {
    error.is_retryable()
        || error
            .code()
            .is_some_and(|code| code.as_str() == "idempotency_key_in_flight")
}

fn quote_expired(error: &ClientError) -> bool {
    error
        .code()
        .is_some_and(|code| code.as_str() == "quote_expired")
}
