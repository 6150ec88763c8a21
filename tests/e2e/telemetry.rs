//! OpenTelemetry end to end: `meshpay` exports OTLP/HTTP JSON to an in-test receiver while one
//! payment goes authorize → broadcast → confirm → settle → merchant webhook (notify) through
//! devhost, Azurite, anvil and PostgreSQL. The queue hops carry the trace inside their messages
//! and the webhook delivery continues it from the outbox row, so one trace id covers all five.
//! The scenario and its checks serve every exporter (see `appinsights` for Azure Monitor's).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use meshpay_domain::PaymentStatus;
use meshpay_testkit::api::Client;
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::otlp::{OtlpReceiver, ReceivedSpan, ReceivedTelemetry};
use meshpay_testkit::payment::fresh_recipient as recipient;
use meshpay_testkit::stack::{ChainSetup, HandlerSettings, Stack};

use crate::support::PipelineStack;

const WAIT: Duration = Duration::from_secs(90);
/// The trace the test's client starts: `authorize` must continue it.
pub(crate) const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const CLIENT_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const PAYMENT_STEPS: [&str; 5] = ["authorize", "broadcast", "confirm", "settle", "notify"];
pub(crate) const SERVICE: &str = "meshpay-e2e";
/// The merchant webhooks' signing key (a secret: it must never reach telemetry).
pub(crate) const WEBHOOK_SECRET_KEY: [u8; 32] = [9u8; 32];
/// Metrics every payment records, whichever exporter carries them.
pub(crate) const PAYMENT_METRICS: [&str; 4] = [
    "meshpay.payment.transitions",
    "meshpay.payment.authorize_to_settled",
    "meshpay.queue.deliveries",
    "meshpay.webhook.deliveries",
];

pub(crate) struct Telemetry;
pub(crate) type Ctx = PipelineStack<Telemetry>;

/// One settled payment whose trace the endpoint has received.
pub(crate) struct TracedPayment {
    pub stack: Ctx,
    pub payment_id: String,
    _merchant_endpoint: tokio::task::JoinHandle<()>,
}

/// A merchant endpoint that accepts every webhook.
async fn accepting_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", post(|| async { StatusCode::NO_CONTENT }));
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, task)
}

/// A span of `step`: named by it, or (an Application Insights request named by its HTTP method
/// and route) carrying it as the function name.
fn is_step(span: &ReceivedSpan, step: &str) -> bool {
    span.name == step || span.attribute("faas.name") == Some(step)
}

fn trace_of<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.trace_id == trace_id).collect()
}

/// Starts the stack with `export` (the exporter's settings) on top of fast batching, pays 12.50
/// USDC with the client's own `traceparent`, and waits until the payment is settled and
/// `received` holds a span of every step in the client's trace.
pub(crate) async fn pay_traced(
    export: impl FnOnce(HandlerSettings) -> HandlerSettings,
    received: &impl ReceivedTelemetry,
) -> TracedPayment {
    let settings = export(HandlerSettings::default().dev_signers())
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        .env("OTEL_SERVICE_NAME", SERVICE)
        .env("MESHPAY_CONFIRM_POLL_INTERVAL_MS", "100")
        .env("NOTIFY_SCHEDULE", "* * * * * *")
        .env("MESHPAY_WEBHOOK_URL_POLICY", "allow-private")
        .env(
            "MESHPAY_WEBHOOK_SECRET_KEY",
            STANDARD.encode(WEBHOOK_SECRET_KEY),
        );
    let builder = Stack::builder()
        .chain(ChainSetup {
            hot_wallet_usdc: 10u128.pow(12),
            automine: true,
        })
        .devhost(settings);
    let stack = Ctx::start_with(
        builder,
        MerchantSetup::funded(10u128.pow(15), 10u128.pow(23)),
    )
    .await;
    let (url, merchant_endpoint) = accepting_endpoint().await;
    stack
        .api()
        .create_webhook_endpoint(&stack.merchant.key, &url)
        .await;

    // The client sends its own traceparent: the payment's trace continues the caller's.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("traceparent", CLIENT_TRACEPARENT.parse().unwrap());
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let client = Client::new(http, stack.devhost().api_url(""));
    let (id, _) = client
        .pay(&stack.merchant.key, "USDC", "12.50", &recipient())
        .await;

    let deadline = Instant::now() + WAIT;
    loop {
        let payment = stack.store.get_payment_unscoped(id).await.unwrap().unwrap();
        let spans = received.spans();
        let trace = trace_of(&spans, CLIENT_TRACE);
        let names: BTreeSet<&str> = trace.iter().map(|s| s.name.as_str()).collect();
        if payment.status == PaymentStatus::Settled
            && PAYMENT_STEPS
                .iter()
                .all(|step| trace.iter().any(|s| is_step(s, step)))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{id} is {}; spans of the trace: {names:?}\n{}",
            payment.status,
            stack.log_tail(60)
        );
        stack.anvil().mine(1).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    TracedPayment {
        stack,
        payment_id: id.to_string(),
        _merchant_endpoint: merchant_endpoint,
    }
}

/// One trace, continuing the client's, holds every step of the payment with its id, and the
/// broadcast's wallet, nonce and transaction hash, and no signed transaction.
pub(crate) fn assert_one_trace_covers_the_payment(
    received: &impl ReceivedTelemetry,
    payment_id: &str,
) {
    let spans = received.spans();
    let trace = trace_of(&spans, CLIENT_TRACE);
    let span_ids: BTreeSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    for span in &trace {
        assert_eq!(span.service.as_deref(), Some(SERVICE), "{span:?}");
        // Every span hangs off the client's span or another span of this trace.
        assert!(
            span.parent_span_id == CLIENT_SPAN || span_ids.contains(span.parent_span_id.as_str()),
            "{span:?} has a parent outside the trace"
        );
    }
    for step in PAYMENT_STEPS {
        let of_step: Vec<_> = trace.iter().filter(|s| is_step(s, step)).collect();
        assert!(
            of_step
                .iter()
                .any(|s| s.attribute("meshpay.payment_id") == Some(payment_id)),
            "no {step} span names {payment_id}: {of_step:?}"
        );
    }
    let broadcast = trace
        .iter()
        .find(|s| is_step(s, "broadcast") && s.attribute("meshpay.tx_hash").is_some())
        .expect("the broadcast span records the transaction");
    assert!(
        broadcast.attribute("meshpay.nonce").is_some(),
        "{broadcast:?}"
    );
    assert!(
        broadcast.attribute("meshpay.wallet").is_some(),
        "{broadcast:?}"
    );
    // No signed transaction bytes on any span.
    for span in &trace {
        for value in span.attributes.values() {
            assert!(!value.starts_with("0x02f8"), "raw transaction on {span:?}");
        }
    }
}

/// Waits until every metric a payment records has arrived.
pub(crate) async fn wait_for_payment_metrics(received: &impl ReceivedTelemetry) {
    let deadline = Instant::now() + WAIT;
    loop {
        let names = received.metric_names();
        if PAYMENT_METRICS.iter().all(|m| names.contains(*m)) {
            break;
        }
        assert!(Instant::now() < deadline, "metrics received: {names:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn one_trace_covers_a_payment_from_authorize_to_its_webhook_with_the_payment_id() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint().to_owned();
    let paid = pay_traced(
        |settings| {
            settings
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        },
        &receiver,
    )
    .await;
    assert_one_trace_covers_the_payment(&receiver, &paid.payment_id);
    // Metrics arrive by the same exporter configuration.
    wait_for_payment_metrics(&receiver).await;
}
