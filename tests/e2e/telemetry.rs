//! OpenTelemetry end to end: `meshpay` exports OTLP/HTTP JSON to an in-test receiver while one
//! payment goes authorize → broadcast → confirm → settle → merchant webhook (notify) through
//! devhost, Azurite, anvil and PostgreSQL. The queue hops carry the trace inside their messages
//! and the webhook delivery continues it from the outbox row, so one trace id covers all five.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use meshpay_domain::PaymentStatus;
use meshpay_testkit::api::Client;
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use meshpay_testkit::payment::fresh_recipient as recipient;
use meshpay_testkit::stack::{ChainSetup, HandlerSettings, Stack};

use crate::support::PipelineStack;

const WAIT: Duration = Duration::from_secs(90);
/// The trace the test's client starts: `authorize` must continue it.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const PAYMENT_STEPS: [&str; 5] = ["authorize", "broadcast", "confirm", "settle", "notify"];

struct Telemetry;
type Ctx = PipelineStack<Telemetry>;

/// A merchant endpoint that accepts every webhook.
async fn accepting_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", post(|| async { StatusCode::NO_CONTENT }));
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, task)
}

fn trace_of<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.trace_id == trace_id).collect()
}

#[tokio::test]
async fn one_trace_covers_a_payment_from_authorize_to_its_webhook_with_the_payment_id() {
    let receiver = OtlpReceiver::start().await;
    let settings = HandlerSettings::default()
        .dev_signers()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        .env("OTEL_SERVICE_NAME", "meshpay-e2e")
        .env("MESHPAY_CONFIRM_POLL_INTERVAL_MS", "100")
        .env("NOTIFY_SCHEDULE", "* * * * * *")
        .env("MESHPAY_WEBHOOK_URL_POLICY", "allow-private")
        .env("MESHPAY_WEBHOOK_SECRET_KEY", STANDARD.encode([9u8; 32]));
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
    let (_endpoint, _server) = {
        let (url, server) = accepting_endpoint().await;
        (
            stack
                .api()
                .create_webhook_endpoint(&stack.merchant.key, &url)
                .await,
            server,
        )
    };

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
    let payment_id = id.to_string();

    let deadline = Instant::now() + WAIT;
    loop {
        let payment = stack.store.get_payment_unscoped(id).await.unwrap().unwrap();
        let spans = receiver.spans();
        let names: BTreeSet<&str> = trace_of(&spans, CLIENT_TRACE)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        if payment.status == PaymentStatus::Settled
            && PAYMENT_STEPS.iter().all(|step| names.contains(step))
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

    let spans = receiver.spans();
    let trace = trace_of(&spans, CLIENT_TRACE);
    let span_ids: BTreeSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    for span in &trace {
        assert_eq!(span.service.as_deref(), Some("meshpay-e2e"), "{span:?}");
        // Every span hangs off the client's span or another span of this trace.
        assert!(
            span.parent_span_id == "00f067aa0ba902b7"
                || span_ids.contains(span.parent_span_id.as_str()),
            "{span:?} has a parent outside the trace"
        );
    }
    for step in PAYMENT_STEPS {
        let of_step: Vec<_> = trace.iter().filter(|s| s.name == step).collect();
        assert!(
            of_step
                .iter()
                .any(|s| s.attribute("meshpay.payment_id") == Some(payment_id.as_str())),
            "no {step} span names {payment_id}: {of_step:?}"
        );
    }
    let broadcast = trace
        .iter()
        .find(|s| s.name == "broadcast" && s.attribute("meshpay.tx_hash").is_some())
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

    // Metrics arrive by the same exporter configuration.
    let deadline = Instant::now() + WAIT;
    let wanted = [
        "meshpay.payment.transitions",
        "meshpay.payment.authorize_to_settled",
        "meshpay.queue.deliveries",
        "meshpay.webhook.deliveries",
    ];
    loop {
        let names = receiver.metric_names();
        if wanted.iter().all(|m| names.contains(*m)) {
            break;
        }
        assert!(Instant::now() < deadline, "metrics received: {names:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
