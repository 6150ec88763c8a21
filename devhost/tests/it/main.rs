//! devhost end to end: the real devhost binary, the fake handler
//! (`src/bin/fake_handler.rs`) on the fixture app, a real Azurite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use meshpay_testkit::azurite::Azurite;
use meshpay_testkit::devhost::Devhost;
use serde_json::{Value, json};

const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/app");
const FAKE_HANDLER: &str = env!("CARGO_BIN_EXE_devhost-fake-handler");
/// Generous bound for queue round trips (they take well under a second).
const WAIT: Duration = Duration::from_secs(20);

async fn start_with(azurite: &Azurite, env: &[(&str, &str)]) -> Devhost {
    env.iter()
        .fold(Devhost::builder(), |b, (k, v)| b.env(k, *v))
        .app_root(APP)
        .executable(FAKE_HANDLER)
        .env("AzureWebJobsStorage", azurite.connection_string())
        .start()
        .await
}

async fn start(azurite: &Azurite) -> Devhost {
    start_with(azurite, &[]).await
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn forwarded_http_reaches_the_handler_at_its_original_path_with_host_headers() {
    let azurite = Azurite::start().await;
    let host = start(&azurite).await;
    let client = reqwest::Client::new();

    let r = client
        .get(host.api_url("hello/ann?x=1&y=2"))
        .header("x-custom", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "ann");
    assert_eq!(body["path"], "/api/hello/ann");
    assert_eq!(body["query"], "x=1&y=2");
    assert_eq!(body["custom"], "yes");
    assert!(
        body["invocation_id"]
            .as_str()
            .is_some_and(|s| s.len() == 36),
        "{body}"
    );
    assert!(body["host_version"].is_string());
    assert_eq!(
        body["env_setting"], "from-local-settings",
        "local.settings.json reaches the handler"
    );
    assert!(body["app_root"].as_str().unwrap().ends_with("fixtures/app"));

    let r = client.get(host.api_url("hello")).send().await.unwrap();
    assert_eq!(r.status(), 200, "optional route parameter may be absent");
    assert_eq!(r.json::<Value>().await.unwrap()["name"], Value::Null);
}

#[tokio::test]
async fn unknown_routes_and_paths_outside_the_prefix_are_404_and_an_undeclared_method_is_405() {
    let azurite = Azurite::start().await;
    let host = start(&azurite).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(host.api_url("nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // A known route called with a method its function does not declare reaches the handler,
    // whose router answers 405 with the methods it serves.
    let wrong_method = client.post(host.api_url("hello")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    let allow = wrong_method.headers()["allow"].to_str().unwrap();
    assert!(allow.contains("GET"), "{allow}");
    let outside = format!("{}/hello", host.base_url());
    assert_eq!(client.get(outside).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn envelope_http_function_gets_data_req_and_its_http_and_queue_outputs_are_applied() {
    let azurite = Azurite::start().await;
    let host = start(&azurite).await;
    let r = reqwest::Client::new()
        .post(host.api_url("submit/s1?k=v"))
        .header("content-type", "application/json")
        .body(r#"{"a":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "statusCode \"201\" from Outputs.res");
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    let req = &body["received"];
    assert!(
        req["Url"].as_str().unwrap().ends_with("/api/submit/s1?k=v"),
        "{req}"
    );
    assert_eq!(req["Method"], "POST");
    assert_eq!(req["Query"], json!({"k": "v"}));
    assert_eq!(req["Params"], json!({"id": "s1"}));
    assert_eq!(req["Headers"]["content-type"], json!(["application/json"]));
    assert_eq!(req["Body"], r#"{"a":1}"#);
    assert_eq!(
        body["metadata"]["id"], "\"s1\"",
        "route values are binding data"
    );
    assert_eq!(body["metadata"]["sys"]["MethodName"], "submit");

    // Outputs.out went to `work`; the queue-triggered worker consumed it and echoed the
    // envelope it received to `seen`.
    let seen = azurite.wait_for_messages("seen", 1, WAIT).await;
    let seen = parse(&seen[0]);
    let data: String = serde_json::from_str(seen["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        parse(&data),
        json!({"from": "submit", "id": "s1", "body": "{\"a\":1}"})
    );
    let meta = &seen["metadata"];
    assert_eq!(meta["DequeueCount"], "1", "numbers travel as strings");
    assert!(
        meta["Id"].as_str().unwrap().starts_with('"'),
        "strings travel double-encoded: {meta}"
    );
    assert!(meta["PopReceipt"].as_str().unwrap().starts_with('"'));
    assert!(meta["InsertionTime"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(
        meta["from"], "\"submit\"",
        "JSON message properties are copied into Metadata"
    );
    assert_eq!(meta["sys"]["MethodName"], "worker");
}

#[tokio::test]
async fn a_failing_message_reaches_the_poison_queue_after_max_dequeue_count() {
    let azurite = Azurite::start().await;
    let _host = start(&azurite).await;
    azurite.send("work", r#"{"fail":true}"#).await;

    let poisoned = azurite.wait_for_messages("work-poison", 1, WAIT).await;
    assert_eq!(poisoned, [r#"{"fail":true}"#]);
    assert_eq!(
        azurite
            .queue("work")
            .await
            .approximate_count()
            .await
            .unwrap(),
        0
    );
    assert!(
        azurite
            .queue("seen")
            .await
            .peek(1)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_2xx_answer_that_is_not_json_counts_as_a_failure() {
    let azurite = Azurite::start().await;
    let _host = start(&azurite).await;
    azurite.send("work", "plain please").await;
    let poisoned = azurite.wait_for_messages("work-poison", 1, WAIT).await;
    assert_eq!(poisoned, ["plain please"]);
}

#[tokio::test]
async fn timer_fires_on_its_schedule_with_the_host_payload() {
    let azurite = Azurite::start().await;
    let _host = start_with(&azurite, &[("TICK_SCHEDULE", "* * * * * *")]).await;
    let ticks = azurite.wait_for_messages("ticks", 1, WAIT).await;
    let tick = parse(&ticks[0]);
    assert_eq!(
        tick["timer"],
        json!({"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}),
        "a schedule firing every second is not monitored"
    );
    assert_eq!(tick["metadata"]["sys"]["MethodName"], "tick");
}

#[tokio::test]
async fn admin_api_runs_a_non_http_function_once() {
    let azurite = Azurite::start().await;
    let host = start(&azurite).await;
    assert_eq!(
        host.invoke_admin("worker", r#"{"hello":"admin"}"#).await,
        202
    );
    let seen = azurite.wait_for_messages("seen", 1, WAIT).await;
    let data: String = serde_json::from_str(parse(&seen[0])["data"].as_str().unwrap()).unwrap();
    assert_eq!(parse(&data), json!({"hello": "admin"}));

    assert_eq!(host.invoke_admin("no-such-function", "").await, 404);
    assert_eq!(
        host.invoke_admin("hello", "").await,
        400,
        "HTTP functions have routes"
    );
}

#[tokio::test]
async fn a_crashed_handler_is_restarted_on_a_new_port() {
    let azurite = Azurite::start().await;
    let mut host = start(&azurite).await;
    let before = host.handler_url();
    let client = reqwest::Client::new();
    let crashed = client.get(host.api_url("crash")).send().await.unwrap();
    assert_eq!(crashed.status(), 500, "the caller sees a failed invocation");

    let deadline = Instant::now() + WAIT;
    loop {
        let r = client.get(host.api_url("hello")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "handler did not come back: {}",
            host.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(host.refresh_handler_url().await, before);
    assert!(host.is_running());
}

#[tokio::test]
async fn a_message_already_past_max_dequeue_count_is_poisoned_without_invoking() {
    let azurite = Azurite::start().await;
    azurite.send("work", "left over by a crashed host").await;
    // Receive and release it twice by hand: the next receive counts 3 > maxDequeueCount 2.
    let work = azurite.queue("work").await;
    for _ in 0..2 {
        let m = work
            .receive(1, Duration::from_secs(30))
            .await
            .unwrap()
            .remove(0);
        work.update_visibility(&m.id, &m.pop_receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    let _host = start(&azurite).await;

    let poisoned = azurite.wait_for_messages("work-poison", 1, WAIT).await;
    assert_eq!(poisoned, ["left over by a crashed host"]);
    assert!(
        azurite
            .queue("seen")
            .await
            .peek(1)
            .await
            .unwrap()
            .is_empty(),
        "the handler never saw it"
    );
}
