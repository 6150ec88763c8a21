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
async fn unknown_routes_wrong_methods_and_paths_outside_the_prefix_are_404() {
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
    assert_eq!(
        client
            .post(host.api_url("hello"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
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

/// Polls `hello` until the (restarted) handler answers it.
async fn wait_until_serving(host: &Devhost) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(r) = client.get(host.api_url("hello")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "handler did not come back: {}",
            host.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn scratch_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("devhost-it-{name}-{}", uuid::Uuid::new_v4()))
}

#[tokio::test]
async fn a_handler_that_keeps_dying_at_start_is_restarted_with_backoff_instead_of_stopping_devhost()
{
    let azurite = Azurite::start().await;
    let count = scratch_file("starts");
    // Five failed starts: past the three-in-a-window point where the host used to give up.
    let mut host = start_with(
        &azurite,
        &[
            ("FAKE_CRASH_STARTS", "5"),
            ("FAKE_START_COUNT_FILE", count.to_str().unwrap()),
        ],
    )
    .await;
    wait_until_serving(&host).await;
    assert!(host.is_running());
    let starts: u32 = std::fs::read_to_string(&count)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(starts, 6, "five crashed starts, then one that came up");
    let log = host.log_tail(200);
    assert!(log.contains("recycling after"), "backoff is logged: {log}");
    let _ = std::fs::remove_file(count);
}

#[tokio::test]
async fn a_function_timeout_restarts_the_handler_and_fails_every_invocation_in_flight_on_it() {
    let azurite = Azurite::start().await;
    let release = scratch_file("release");
    let mut host = Devhost::builder()
        .app_root(APP)
        .executable(FAKE_HANDLER)
        .env("AzureWebJobsStorage", azurite.connection_string())
        .env("FAKE_RELEASE_FILE", release.to_str().unwrap())
        .host_set("functionTimeout", "00:00:03")
        .start()
        .await;
    let before = host.handler_url();
    let client = reqwest::Client::new();
    let hang = tokio::spawn(client.get(host.api_url("wait/hang")).send());
    // Let the hanging request reach the handler before the second one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bystander = tokio::spawn(client.get(host.api_url("wait/release")).send());

    let timed_out = hang.await.unwrap().unwrap();
    assert_eq!(timed_out.status(), 500, "the timed-out invocation fails");
    // Had the handler survived, the bystander would now answer 200.
    std::fs::write(&release, "go").unwrap();
    let bystander = bystander.await.unwrap().unwrap();
    assert_eq!(
        bystander.status(),
        500,
        "an invocation in flight on the restarted handler fails too: {}",
        host.log_tail(40)
    );

    wait_until_serving(&host).await;
    assert_ne!(host.refresh_handler_url().await, before, "a new handler");
    assert!(host.is_running());
    let _ = std::fs::remove_file(release);
}

#[tokio::test]
async fn a_monitored_timer_first_sends_the_hosts_default_last_then_the_previous_occurrence() {
    let azurite = Azurite::start().await;
    let _host = start_with(&azurite, &[("MONITORED_SCHEDULE", "* * * * * *")]).await;
    let runs = azurite.wait_for_messages("monitored", 2, WAIT).await;
    let first = &parse(&runs[0])["timer"]["ScheduleStatus"];
    let second = &parse(&runs[1])["timer"]["ScheduleStatus"];
    assert_eq!(first["Last"], "0001-01-01T00:00:00", "{first}");
    assert_eq!(first["LastUpdated"], "0001-01-01T00:00:00", "{first}");
    assert_eq!(second["Last"], first["Next"], "{second}");
    assert_ne!(second["Next"], first["Next"], "{second}");
}

#[tokio::test]
async fn an_output_named_in_another_case_than_its_binding_is_not_written() {
    let azurite = Azurite::start().await;
    let host = start(&azurite).await;
    let client = reqwest::Client::new();
    for id in ["shouted", "exact"] {
        let query = if id == "shouted" { "?shout=1" } else { "" };
        let r = client
            .post(host.api_url(&format!("submit/{id}{query}")))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Outputs are written before the HTTP answer: had `OUT` been written, it would be first.
    let seen = azurite.wait_for_messages("seen", 1, WAIT).await;
    let data: String = serde_json::from_str(parse(&seen[0])["data"].as_str().unwrap()).unwrap();
    assert_eq!(parse(&data)["id"], "exact");
    assert!(
        host.log_tail(200).contains("output `OUT` ignored"),
        "the dropped output is named in the log"
    );
}

/// Sends `POST path` with a `Transfer-Encoding: chunked` body over a raw connection; the
/// response status line and body.
async fn post_chunked(host: &Devhost, path: &str, body: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let url = url::Url::parse(&host.api_url(path)).unwrap();
    let mut stream = tokio::net::TcpStream::connect((url.host_str().unwrap(), url.port().unwrap()))
        .await
        .unwrap();
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        url.path(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, rest) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    // The answer itself may be chunked: keep what lies between the first `{` and last `}`.
    let body = match (rest.find('{'), rest.rfind('}')) {
        (Some(a), Some(b)) => rest[a..=b].to_owned(),
        _ => rest.to_owned(),
    };
    (status, body)
}

#[tokio::test]
async fn a_chunked_request_body_never_reaches_the_handler_as_with_the_host() {
    let azurite = Azurite::start().await;
    let host = start(&azurite).await;

    let (status, body) = post_chunked(&host, "echo", r#"{"a":1}"#).await;
    assert!(status.contains(" 200 "), "{status}");
    let echoed = parse(&body);
    assert_eq!(echoed["body"], "", "forwarded: {echoed}");
    assert_eq!(echoed["transfer_encoding"], Value::Null, "{echoed}");

    let (status, body) = post_chunked(&host, "submit/c1", r#"{"a":1}"#).await;
    assert!(status.contains(" 201 "), "{status}");
    let received = &parse(&body)["received"];
    assert_eq!(received["Body"], Value::Null, "envelope: {received}");
}
