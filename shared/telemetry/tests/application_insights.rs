//! The Application Insights exporter as the binary starts it, against the ingestion double:
//! what one queue invocation's span becomes (a request of the message's operation, linking the
//! host's invocation) and that the upload runs on the caller's runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use meshpay_telemetry::KeyValue;
use meshpay_telemetry::export::{self, AzureMonitor, ExportConfig, Exporter};
use meshpay_telemetry::propagation::context_from_traceparent;
use meshpay_telemetry::span::{self, Trigger, attr};
use meshpay_testkit::appinsights::AppInsightsIngestion;
use serde_json::Value;

const MESSAGE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const HOST: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_step_is_a_request_of_the_message_operation_linking_the_host_invocation() {
    let ingestion = AppInsightsIngestion::start().await;
    let config = ExportConfig {
        service_name: "meshpay-test".into(),
        service_version: "0".into(),
        instance_id: Some("instance-1".into()),
        exporter: Exporter::AzureMonitor(
            AzureMonitor::new(&ingestion.connection_string(), None).unwrap(),
        ),
        traces: true,
        metrics: false,
    };
    let telemetry = export::start(&config).unwrap().unwrap();

    let context = span::start_linked_invocation(
        "broadcast",
        Trigger::Queue,
        context_from_traceparent(Some(MESSAGE)),
        context_from_traceparent(Some(HOST)),
        vec![KeyValue::new(attr::INVOCATION_ID, "inv-1")],
    );
    span::record_on(&context, attr::PAYMENT_ID, "pay_1");
    span::end(&context, None);
    // The host's context as the only parent: nothing to link.
    let timer = span::start_linked_invocation(
        "reconcile",
        Trigger::Timer,
        context_from_traceparent(Some(HOST)),
        context_from_traceparent(Some(HOST)),
        Vec::new(),
    );
    span::end(&timer, None);
    // Flushing blocks on the upload, which runs on this runtime: off its workers.
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let envelopes = loop {
        let envelopes = ingestion.envelopes();
        if envelopes.len() >= 2 || Instant::now() > deadline {
            break envelopes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let named = |name: &str| -> &Value {
        envelopes
            .iter()
            .find(|e| e["data"]["baseData"]["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {envelopes:?}"))
    };
    let broadcast = named("broadcast");
    assert_eq!(broadcast["data"]["baseType"], "RequestData");
    assert_eq!(
        broadcast["tags"]["ai.operation.id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        broadcast["tags"]["ai.operation.parentId"],
        "00f067aa0ba902b7"
    );
    assert_eq!(broadcast["tags"]["ai.cloud.role"], "meshpay-test");
    assert_eq!(broadcast["tags"]["ai.cloud.roleInstance"], "instance-1");
    let properties = &broadcast["data"]["baseData"]["properties"];
    assert_eq!(properties["meshpay.payment_id"], "pay_1");
    assert_eq!(properties["faas.name"], "broadcast");
    let links: Value =
        serde_json::from_str(properties["_MS.links"].as_str().expect("a link")).unwrap();
    assert_eq!(
        links,
        serde_json::json!([{
            "operation_Id": "0af7651916cd43dd8448eb211c80319c",
            "id": "b7ad6b7169203331",
        }])
    );
    let reconcile = named("reconcile");
    assert_eq!(
        reconcile["tags"]["ai.operation.id"],
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert!(reconcile["data"]["baseData"]["properties"]["_MS.links"].is_null());
}
