//! Application Insights end to end: with only `APPLICATIONINSIGHTS_CONNECTION_STRING` set (as
//! the Bicep sets it for the Functions host), `meshpay` sends its spans and metrics as ingestion
//! envelopes to an in-test double of the track endpoint while one payment goes authorize →
//! broadcast → confirm → settle → notify. One operation id (the W3C trace id the host's own
//! request telemetry shares) covers every step, and no secret reaches any envelope.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use meshpay_testkit::anvil::DEV_PRIVATE_KEYS;
use meshpay_testkit::appinsights::{AppInsightsIngestion, INSTRUMENTATION_KEY};

use crate::telemetry::{
    CLIENT_TRACE, WEBHOOK_SECRET_KEY, assert_one_trace_covers_the_payment, pay_traced,
    wait_for_payment_metrics,
};

#[tokio::test]
async fn one_operation_in_application_insights_covers_a_payment_and_no_secret_is_sent() {
    let ingestion = AppInsightsIngestion::start().await;
    let connection_string = ingestion.connection_string();
    let paid = pay_traced(
        |settings| settings.env("APPLICATIONINSIGHTS_CONNECTION_STRING", connection_string),
        &ingestion,
    )
    .await;
    assert_one_trace_covers_the_payment(&ingestion, &paid.payment_id);
    wait_for_payment_metrics(&ingestion).await;

    let envelopes = ingestion.envelopes();
    // Each HTTP- or queue-triggered invocation is a request of the payment's operation, as the
    // host's request for the same invocation is.
    // An HTTP function's request is named by method and route, a queue function's by itself.
    let authorize = "POST /api/payments";
    for (step, name) in [
        ("authorize", authorize),
        ("broadcast", "broadcast"),
        ("confirm", "confirm"),
        ("settle", "settle"),
    ] {
        assert!(
            envelopes.iter().any(|e| {
                e["data"]["baseType"] == "RequestData"
                    && e["data"]["baseData"]["name"] == name
                    && e["data"]["baseData"]["properties"]["faas.name"] == step
                    && e["tags"]["ai.operation.id"] == CLIENT_TRACE
                    && e["data"]["baseData"]["success"] == true
            }),
            "no successful {step} request in operation {CLIENT_TRACE}"
        );
    }
    for envelope in &envelopes {
        assert_eq!(envelope["iKey"], INSTRUMENTATION_KEY, "{envelope}");
    }

    let sent = serde_json::to_string(&envelopes).unwrap();
    let webhook_key = STANDARD.encode(WEBHOOK_SECRET_KEY);
    let mut secrets = vec![
        paid.stack.merchant.key.as_str(),
        webhook_key.as_str(),
        paid.stack.db.url(),
    ];
    secrets.extend(DEV_PRIVATE_KEYS.iter().map(|k| k.trim_start_matches("0x")));
    for secret in secrets {
        assert!(!sent.contains(secret), "a secret was sent to ingestion");
    }
    assert!(!sent.contains("0x02f8"), "a signed transaction was sent");
}
