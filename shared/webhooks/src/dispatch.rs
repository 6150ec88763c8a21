//! The notify dispatcher: one bounded run per timer tick.
//!
//! 1. Fan out new `webhook` outbox rows into events and per-endpoint deliveries.
//! 2. Claim due deliveries (`FOR UPDATE SKIP LOCKED`, per-endpoint cap, per-payment order),
//!    sign each with its endpoint's secret, send them concurrently, record every attempt and
//!    decide: 2xx → succeeded; 410 → endpoint disabled, its pending deliveries failed;
//!    anything else → next attempt per the retry schedule (or `Retry-After`, if longer), or
//!    failed after the last one.
//! 3. Keep `concurrency` attempts in flight while there is work and run time left: a claim
//!    tops up the free slots (when half are free), skipping endpoints already at their
//!    in-flight cap, so one slow endpoint never holds up the others (deliveries unblocked by a
//!    success go out in the same run); then prune old history, a bounded batch per run.

use meshpay_telemetry::span::{self, attr};
use meshpay_telemetry::{Context, FutureExt as _, KeyValue, metrics, propagation};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use meshpay_chain::ChainsConfig;
use meshpay_store::webhooks::{
    AttemptRecord, AttemptVerdict, ClaimLimits, ClaimedDelivery, FanOut, WebhookEndpointId,
};
use meshpay_store::{Store, StoreError};
use std::collections::HashMap;
use time::OffsetDateTime;

use crate::cipher::SecretCipher;
use crate::client::{AttemptOutcome, DeliveryClient, DeliveryRequest};
use crate::events;
use crate::retry::RetrySchedule;

/// Bounds of one run (TigerStyle: a limit on everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchLimits {
    /// Outbox rows per fan-out transaction.
    pub fan_out_batch: u32,
    /// Deliveries per claim at most (a claim takes only as many as there are free slots).
    pub claim_batch: u32,
    /// Deliveries per endpoint per claim; an endpoint with this many in flight gets no more
    /// until one finishes (so at most twice this, less one, in flight): a slow or dead
    /// endpoint holds a few slots, never the run, and other merchants' events keep going out.
    pub per_endpoint: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// No new claim starts after this much run time (a started round finishes within the
    /// client's timeout).
    pub run_budget: Duration,
    /// Finished deliveries older than this are deleted.
    pub retention: Duration,
    /// Deliveries deleted per run at most.
    pub prune_batch: u32,
}

impl Default for DispatchLimits {
    fn default() -> Self {
        DispatchLimits {
            fan_out_batch: 200,
            claim_batch: 64,
            per_endpoint: 4,
            concurrency: 16,
            run_budget: Duration::from_secs(25),
            retention: Duration::from_secs(30 * 24 * 3600),
            prune_batch: 500,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    pub fanned_out: FanOut,
    pub attempted: u32,
    pub succeeded: u32,
    pub retrying: u32,
    pub failed: u32,
    pub endpoints_disabled: u32,
    /// Attempts whose result arrived after the delivery was claimed again (lease expired).
    pub stale: u32,
    /// Attempts whose record the store refused even without the endpoint's texts: the
    /// delivery is sent again when its lease expires; the run goes on with the others.
    pub unrecorded: u32,
    pub pruned: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("webhook store: {0}")]
    Store(#[from] StoreError),
}

pub struct Dispatcher {
    store: Store,
    chains: Arc<ChainsConfig>,
    client: DeliveryClient,
    cipher: Arc<SecretCipher>,
    schedule: RetrySchedule,
    limits: DispatchLimits,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("policy", &self.client.policy())
            .field("schedule", &self.schedule)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(
        store: Store,
        chains: Arc<ChainsConfig>,
        client: DeliveryClient,
        cipher: Arc<SecretCipher>,
        schedule: RetrySchedule,
        limits: DispatchLimits,
    ) -> Self {
        Dispatcher {
            store,
            chains,
            client,
            cipher,
            schedule,
            limits,
        }
    }

    /// One bounded run (see the module docs).
    pub async fn run_once(&self) -> Result<RunReport, DispatchError> {
        let deadline = Instant::now() + self.limits.run_budget;
        let mut report = RunReport::default();
        let lease = self.client.config().timeout + Duration::from_secs(20);
        let concurrency = self.limits.concurrency.max(1);
        let cap = self.limits.per_endpoint.max(1);
        let mut in_flight = FuturesUnordered::new();
        let mut lanes = Lanes::default();
        let mut tally = RunReport::default();
        let mut failure = None;
        loop {
            let free = concurrency - in_flight.len();
            let top_up = in_flight.is_empty() || free >= concurrency.div_ceil(2);
            if top_up && !lanes.exhausted && failure.is_none() && Instant::now() < deadline {
                let at_cap: Vec<WebhookEndpointId> = lanes
                    .busy
                    .iter()
                    .filter(|(_, n)| **n >= cap)
                    .map(|(endpoint, _)| *endpoint)
                    .collect();
                let claim = ClaimLimits {
                    batch: u32::try_from(free)
                        .unwrap_or(u32::MAX)
                        .min(self.limits.claim_batch),
                    per_endpoint: cap,
                    lease,
                };
                let fanned = &mut report.fanned_out;
                let step = async {
                    self.fan_out(fanned, deadline).await?;
                    self.store
                        .claim_webhook_deliveries_except(claim, &at_cap)
                        .await
                };
                tokio::pin!(step);
                // Attempts in flight keep going while the claim runs: each may hold one of the
                // pool's connections to record its result, and the claim may need one of them.
                let claimed = loop {
                    tokio::select! {
                        claimed = &mut step => break claimed,
                        Some((endpoint, recorded)) = in_flight.next() => {
                            lanes.finish(&mut tally, endpoint, recorded);
                        }
                    }
                };
                match claimed {
                    Ok(claimed) => {
                        // Empty because every endpoint with work was at its cap is not the
                        // end: their attempts may all have finished during the claim.
                        lanes.exhausted = claimed.is_empty() && at_cap.is_empty();
                        for delivery in claimed {
                            let endpoint = delivery.endpoint_id;
                            *lanes.busy.entry(endpoint).or_default() += 1;
                            in_flight.push(async move { (endpoint, self.deliver(delivery).await) });
                        }
                    }
                    // Attempts already sent are still recorded before the run fails.
                    Err(error) => failure = Some(error),
                }
            }
            let Some((endpoint, recorded)) = in_flight.next().await else {
                if lanes.exhausted || failure.is_some() || Instant::now() >= deadline {
                    break;
                }
                continue;
            };
            lanes.finish(&mut tally, endpoint, recorded);
        }
        report.add(&tally);
        if let Some(error) = failure {
            return Err(error.into());
        }
        report.pruned = self
            .store
            .prune_webhook_history(self.limits.retention, self.limits.prune_batch)
            .await?;
        Ok(report)
    }

    /// Fans out until the outbox has no more webhook rows (or time is up).
    async fn fan_out(&self, total: &mut FanOut, deadline: Instant) -> Result<(), StoreError> {
        let chains = &self.chains;
        loop {
            let batch = self
                .store
                .fan_out_webhook_events(self.limits.fan_out_batch, |event, payment| {
                    let rendered = events::render(event, payment, chains);
                    if rendered.is_none() {
                        tracing::error!(
                            outbox_id = event.outbox_id,
                            "webhook event skipped: cannot render"
                        );
                    }
                    rendered
                })
                .await?;
            total.outbox_rows += batch.outbox_rows;
            total.events += batch.events;
            total.deliveries += batch.deliveries;
            total.skipped += batch.skipped;
            total.busy |= batch.busy;
            if batch.busy
                || batch.outbox_rows < self.limits.fan_out_batch
                || Instant::now() >= deadline
            {
                return Ok(());
            }
        }
    }

    /// One attempt as a `notify` span in the trace of the state change it announces.
    async fn deliver(&self, delivery: ClaimedDelivery) -> Option<Recorded> {
        let parent = propagation::context_from_traceparent(delivery.traceparent.as_deref())
            .unwrap_or_else(Context::current);
        let mut attributes = vec![
            KeyValue::new("meshpay.webhook.event_type", delivery.event_type.clone()),
            KeyValue::new("meshpay.webhook.attempt", i64::from(delivery.attempt)),
        ];
        if let Some(payment) = delivery.payment_id {
            attributes.push(KeyValue::new(attr::PAYMENT_ID, payment.to_string()));
        }
        let context = span::start_child("notify", &parent, attributes);
        let recorded = self.attempt(delivery).with_context(context.clone()).await;
        let outcome = match recorded.as_ref().map(|r| &r.verdict) {
            Some(AttemptVerdict::Succeeded) => "delivered",
            Some(AttemptVerdict::RetryIn(_)) => "retry",
            Some(AttemptVerdict::GiveUp) => "failed",
            Some(AttemptVerdict::DisableEndpoint { .. }) => "endpoint_disabled",
            None => "unrecorded",
        };
        metrics::webhook_delivery(outcome);
        span::record_on(&context, attr::OUTCOME, outcome);
        span::end(&context, None);
        recorded
    }

    /// Signs, sends and records one attempt.
    async fn attempt(&self, delivery: ClaimedDelivery) -> Option<Recorded> {
        let started_at = OffsetDateTime::now_utc();
        let clock = Instant::now();
        let associated = delivery.endpoint_id.as_uuid();
        let outcome = match self
            .cipher
            .open(&delivery.secret_ciphertext, associated.as_bytes())
        {
            Ok(secret) => {
                let msg_id = delivery.event_id.to_string();
                let timestamp = started_at.unix_timestamp();
                let signature = secret.sign(&msg_id, timestamp, delivery.body.as_bytes());
                let request = DeliveryRequest {
                    url: &delivery.url,
                    msg_id: &msg_id,
                    timestamp,
                    signature: &signature,
                    body: &delivery.body,
                };
                self.client.send(&request).await
            }
            // A wrong MESHPAY_WEBHOOK_SECRET_KEY: retried per schedule, so fixing the setting
            // within the retry window loses nothing.
            Err(error) => AttemptOutcome::Failed {
                kind: crate::client::FailureKind::Other,
                message: error.to_string(),
            },
        };
        let duration_ms = u32::try_from(clock.elapsed().as_millis()).unwrap_or(u32::MAX);
        let (verdict, record) = judge(&self.schedule, &delivery, started_at, duration_ms, outcome);
        tracing::info!(
            delivery = %delivery.id,
            endpoint = %delivery.endpoint_id,
            event = %delivery.event_type,
            attempt = delivery.attempt,
            status = record.status_code,
            error = record.error.as_deref(),
            duration_ms,
            verdict = ?verdict,
            "webhook attempt"
        );
        self.record(&delivery, record, verdict).await
    }

    /// Stores the attempt and its verdict. Whatever the endpoint answered is sanitised already;
    /// should the store still refuse the row, the attempt is recorded again without the
    /// endpoint's texts, so the retry schedule holds (a delivery is never re-sent every lease
    /// period because of what its endpoint answers). `None` when even that fails.
    async fn record(
        &self,
        delivery: &ClaimedDelivery,
        mut record: AttemptRecord,
        verdict: AttemptVerdict,
    ) -> Option<Recorded> {
        let error = match self.store.record_webhook_attempt(&record, &verdict).await {
            Ok(applied) => return Some(Recorded { verdict, applied }),
            Err(error) => error,
        };
        tracing::error!(
            delivery = %delivery.id, %error,
            "webhook attempt not recorded; recording it without the endpoint's texts"
        );
        record.response_excerpt = None;
        record.error = Some(UNRECORDABLE.to_owned());
        match self.store.record_webhook_attempt(&record, &verdict).await {
            Ok(applied) => Some(Recorded { verdict, applied }),
            Err(error) => {
                tracing::error!(
                    delivery = %delivery.id, %error,
                    "webhook attempt not recorded; it is sent again when its lease expires"
                );
                None
            }
        }
    }
}

/// The error stored for an attempt whose own texts the store refused.
const UNRECORDABLE: &str = "the attempt's result could not be stored; see the logs";

/// Text from an endpoint (response excerpt, error) made fit to store: PostgreSQL `text` cannot
/// hold U+0000, which a merchant's server may well send; it becomes U+FFFD.
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

struct Recorded {
    verdict: AttemptVerdict,
    applied: bool,
}
/// What a run has in flight per endpoint, and whether the last claim found nothing.
#[derive(Default)]
struct Lanes {
    busy: HashMap<WebhookEndpointId, u32>,
    /// Set when a claim found nothing: no claim until an attempt ends its delivery (which may
    /// unblock the next event of its payment); the run ends when nothing is left in flight.
    exhausted: bool,
}

impl Lanes {
    fn finish(
        &mut self,
        tally: &mut RunReport,
        endpoint: WebhookEndpointId,
        recorded: Option<Recorded>,
    ) {
        if let Some(n) = self.busy.get_mut(&endpoint) {
            *n = n.saturating_sub(1);
        }
        let ended = recorded
            .as_ref()
            .is_some_and(|r| !matches!(r.verdict, AttemptVerdict::RetryIn(_)));
        self.exhausted &= !ended;
        tally.tally(recorded);
    }
}

impl RunReport {
    /// Adds another report's attempt counts (not its fan-out or pruning).
    fn add(&mut self, other: &RunReport) {
        self.attempted += other.attempted;
        self.succeeded += other.succeeded;
        self.retrying += other.retrying;
        self.failed += other.failed;
        self.endpoints_disabled += other.endpoints_disabled;
        self.stale += other.stale;
        self.unrecorded += other.unrecorded;
    }

    fn tally(&mut self, recorded: Option<Recorded>) {
        self.attempted += 1;
        let Some(recorded) = recorded else {
            self.unrecorded += 1;
            return;
        };
        if !recorded.applied {
            self.stale += 1;
            return;
        }
        match recorded.verdict {
            AttemptVerdict::Succeeded => self.succeeded += 1,
            AttemptVerdict::RetryIn(_) => self.retrying += 1,
            AttemptVerdict::GiveUp => self.failed += 1,
            AttemptVerdict::DisableEndpoint { .. } => {
                self.failed += 1;
                self.endpoints_disabled += 1;
            }
        }
    }
}

/// Standard Webhooks status handling: 2xx succeeds, 410 disables the endpoint, everything
/// else (3xx included: redirects are not followed) is retried per schedule; a `Retry-After`
/// longer than the schedule's gap (429, 503) is honoured.
pub fn judge(
    schedule: &RetrySchedule,
    delivery: &ClaimedDelivery,
    started_at: OffsetDateTime,
    duration_ms: u32,
    outcome: AttemptOutcome,
) -> (AttemptVerdict, AttemptRecord) {
    let attempts = u32::try_from(delivery.attempt).unwrap_or(u32::MAX);
    let mut record = AttemptRecord {
        delivery_id: delivery.id,
        attempt: delivery.attempt,
        started_at,
        duration_ms,
        status_code: None,
        error: None,
        response_excerpt: None,
    };
    let retry = |minimum: Option<Duration>| match schedule.next_delay(attempts) {
        Some(delay) => AttemptVerdict::RetryIn(minimum.map_or(delay, |m| delay.max(m))),
        None => AttemptVerdict::GiveUp,
    };
    let verdict = match outcome {
        AttemptOutcome::Response {
            status,
            retry_after,
            excerpt,
        } => {
            record.status_code = Some(status);
            record.response_excerpt = (!excerpt.is_empty()).then(|| storable(excerpt));
            match status {
                200..=299 => AttemptVerdict::Succeeded,
                410 => {
                    record.error = Some("410 Gone: endpoint disabled".into());
                    AttemptVerdict::DisableEndpoint {
                        reason: "the endpoint answered 410 Gone".into(),
                    }
                }
                _ => {
                    record.error = Some(format!("HTTP {status}"));
                    retry(retry_after)
                }
            }
        }
        AttemptOutcome::Failed { message, .. } => {
            record.error = Some(storable(message));
            retry(None)
        }
    };
    (verdict, record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_store::webhooks::{WebhookDeliveryId, WebhookEndpointId, WebhookEventId};

    fn delivery(attempt: i32) -> ClaimedDelivery {
        ClaimedDelivery {
            id: WebhookDeliveryId::new(),
            attempt,
            event_id: WebhookEventId::new(),
            event_type: "payment.settled".into(),
            endpoint_id: WebhookEndpointId::new(),
            url: "https://example.com/hook".into(),
            secret_ciphertext: Vec::new(),
            body: "{}".into(),
            payment_id: None,
            traceparent: None,
        }
    }

    fn response(status: u16, retry_after: Option<u64>) -> AttemptOutcome {
        AttemptOutcome::Response {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            excerpt: String::new(),
        }
    }

    fn verdict(attempt: i32, outcome: AttemptOutcome) -> AttemptVerdict {
        let schedule = RetrySchedule::parse("0,10s,20s").unwrap();
        judge(
            &schedule,
            &delivery(attempt),
            OffsetDateTime::now_utc(),
            5,
            outcome,
        )
        .0
    }

    #[test]
    fn two_hundreds_succeed_and_gone_disables_the_endpoint() {
        for status in [200, 201, 204, 299] {
            assert_eq!(
                verdict(1, response(status, None)),
                AttemptVerdict::Succeeded
            );
        }
        assert!(matches!(
            verdict(1, response(410, None)),
            AttemptVerdict::DisableEndpoint { .. }
        ));
    }

    #[test]
    fn redirects_errors_and_transport_failures_retry_until_the_schedule_ends() {
        let failures = [
            response(301, None),
            response(404, None),
            response(500, None),
            AttemptOutcome::Failed {
                kind: crate::client::FailureKind::Timeout,
                message: "timed out".into(),
            },
        ];
        for outcome in failures {
            let AttemptVerdict::RetryIn(delay) = verdict(1, outcome.clone()) else {
                panic!("{outcome:?} must be retried");
            };
            assert!(delay >= Duration::from_secs(8) && delay <= Duration::from_secs(12));
            assert_eq!(verdict(3, outcome), AttemptVerdict::GiveUp);
        }
    }

    #[test]
    fn a_longer_retry_after_is_honoured_a_shorter_one_is_not() {
        assert_eq!(
            verdict(1, response(429, Some(60))),
            AttemptVerdict::RetryIn(Duration::from_secs(60))
        );
        let AttemptVerdict::RetryIn(delay) = verdict(1, response(503, Some(1))) else {
            panic!("retried");
        };
        assert!(delay >= Duration::from_secs(8));
    }

    #[test]
    fn texts_from_the_endpoint_are_stored_without_nul() {
        let schedule = RetrySchedule::parse("0,10s").unwrap();
        let now = OffsetDateTime::now_utc();
        let answered = AttemptOutcome::Response {
            status: 500,
            retry_after: None,
            excerpt: "a\0b".into(),
        };
        let (_, record) = judge(&schedule, &delivery(1), now, 5, answered);
        assert_eq!(record.response_excerpt.as_deref(), Some("a\u{FFFD}b"));
        let failed = AttemptOutcome::Failed {
            kind: crate::client::FailureKind::Other,
            message: "\0".into(),
        };
        let (_, record) = judge(&schedule, &delivery(1), now, 5, failed);
        assert_eq!(record.error.as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn the_record_keeps_status_error_and_excerpt() {
        let schedule = RetrySchedule::standard();
        let (_, record) = judge(
            &schedule,
            &delivery(2),
            OffsetDateTime::now_utc(),
            42,
            AttemptOutcome::Response {
                status: 500,
                retry_after: None,
                excerpt: "boom".into(),
            },
        );
        assert_eq!(record.attempt, 2);
        assert_eq!(record.status_code, Some(500));
        assert_eq!(record.error.as_deref(), Some("HTTP 500"));
        assert_eq!(record.response_excerpt.as_deref(), Some("boom"));
        assert_eq!(record.duration_ms, 42);
    }
}
