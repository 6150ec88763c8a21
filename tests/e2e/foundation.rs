//! The host protocol end to end: devhost + target/debug/meshpay on this repo's host.json and
//! functions/ (HTTP, queue, poison and timer paths, bad invocations), against a real Azurite.

use std::time::Duration;

use meshpay_testkit::api::{Client, Method};
use meshpay_testkit::azurite::Azurite;
use meshpay_testkit::devhost::Devhost;
use serde_json::{Value, json};

/// Bound for queue round trips (they take well under a second).
const WAIT: Duration = Duration::from_secs(30);

/// The stack with retries made immediate, so the poison path completes in about a second
/// (host.json's maxDequeueCount is kept).
async fn start(azurite: &Azurite, heartbeat_schedule: &str) -> Devhost {
    Devhost::builder()
        .env("AzureWebJobsStorage", azurite.connection_string())
        .env("HEARTBEAT_SCHEDULE", heartbeat_schedule)
        .host_set("extensions.queues.visibilityTimeout", "00:00:00")
        .host_set("extensions.queues.maxPollingInterval", "00:00:00.100")
        .start()
        .await
}

/// Effectively never during a test (midnight on January 1st).
const NEVER: &str = "0 0 0 1 1 *";

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn health_answers_200_through_devhost() {
    let azurite = Azurite::start().await;
    let host = start(&azurite, NEVER).await;
    let reply = Client::for_devhost(&host)
        .send(Method::GET, "health", None, None, None)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["status"], "ok");
}

#[tokio::test]
async fn probe_message_flows_through_probe_worker_to_probe_results() {
    let azurite = Azurite::start().await;
    let host = start(&azurite, NEVER).await;
    let reply = Client::for_devhost(&host)
        .send(
            Method::POST,
            "probe",
            None,
            None,
            Some(json!({"n": 42}).to_string()),
        )
        .await;
    assert_eq!(reply.status, 202);

    let results = azurite.wait_for_messages("probe-results", 1, WAIT).await;
    assert_eq!(
        parse(&results[0]),
        json!({"message": {"n": 42}, "dequeue_count": 1})
    );
    assert_eq!(
        azurite
            .queue("probes")
            .await
            .approximate_count()
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn failing_probe_reaches_probes_poison_after_max_dequeue_count() {
    let azurite = Azurite::start().await;
    let host = start(&azurite, NEVER).await;
    let reply = Client::for_devhost(&host)
        .send(
            Method::POST,
            "probe",
            None,
            None,
            Some(json!({"fail": true}).to_string()),
        )
        .await;
    assert_eq!(reply.status, 202);

    let poisoned = azurite.wait_for_messages("probes-poison", 1, WAIT).await;
    assert_eq!(parse(&poisoned[0]), json!({"fail": true}));
    assert_eq!(
        azurite
            .queue("probes")
            .await
            .approximate_count()
            .await
            .unwrap(),
        0
    );
    assert!(
        azurite
            .queue("probe-results")
            .await
            .peek(1)
            .await
            .unwrap()
            .is_empty(),
        "a failed invocation writes no outputs"
    );
    // host.json's maxDequeueCount is 5: the worker failed 5 times before the move.
    let log = std::fs::read_to_string(host.log_path()).unwrap();
    assert!(log.contains("after 5 attempt(s)"), "{}", host.log_tail(40));
}

#[tokio::test]
async fn heartbeat_timer_fires_and_writes_to_heartbeats() {
    let azurite = Azurite::start().await;
    let _host = start(&azurite, "* * * * * *").await;
    let beats = azurite.wait_for_messages("heartbeats", 1, WAIT).await;
    let beat = parse(&beats[0]);
    assert_eq!(beat["is_past_due"], false);
    assert!(beat["fired_at"].is_string(), "{beat}");
}

#[tokio::test]
async fn handler_answers_malformed_invocations_with_400_and_unknown_functions_with_404() {
    let azurite = Azurite::start().await;
    let host = start(&azurite, NEVER).await;
    let client = reqwest::Client::new();

    let malformed = client
        .post(format!("{}/probe-worker", host.handler_url()))
        .header("content-type", "application/json")
        .body("{\"Data\": {\"message\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let text = malformed.text().await.unwrap();
    assert!(!text.is_empty(), "the 400 explains what is wrong");

    let envelope = json!({"Data": {"message": "\"{}\""}, "Metadata": {"DequeueCount": "1"}});
    let unknown = client
        .post(format!("{}/no-such-function", host.handler_url()))
        .json(&envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let health = Client::for_devhost(&host)
        .send(Method::GET, "health", None, None, None)
        .await;
    assert_eq!(health.status, 200, "bad input never takes the handler down");
}
