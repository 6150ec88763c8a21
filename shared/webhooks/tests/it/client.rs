//! The delivery client against local servers: redirects, bounded reads, timeouts, SSRF.

use std::time::{Duration, Instant};

use meshpay_webhooks::{
    AttemptOutcome, ClientConfig, DeliveryClient, DeliveryRequest, FailureKind, UrlPolicy,
};

use crate::support::Hook;

fn request(url: &str) -> DeliveryRequest<'_> {
    DeliveryRequest {
        url,
        msg_id: "msg_test",
        timestamp: 1_700_000_000,
        signature: "v1,AAAA",
        body: r#"{"type":"payment.settled"}"#,
    }
}

fn dev_client(config: ClientConfig) -> DeliveryClient {
    DeliveryClient::new(UrlPolicy::AllowPrivate, config).unwrap()
}

#[tokio::test]
async fn redirects_are_reported_not_followed() {
    let hook = Hook::start(&[], 200).await;
    let outcome = dev_client(ClientConfig::default())
        .send(&request(&hook.url("/redirect")))
        .await;
    let AttemptOutcome::Response { status, .. } = outcome else {
        panic!("expected a response, got {outcome:?}");
    };
    assert_eq!(status, 307);
    assert!(
        hook.received().is_empty(),
        "the redirect target was not called"
    );
}

#[tokio::test]
async fn only_the_first_bytes_of_a_response_are_read() {
    let hook = Hook::start(&[], 200).await;
    let outcome = dev_client(ClientConfig::default())
        .send(&request(&hook.url("/big")))
        .await;
    let AttemptOutcome::Response {
        status, excerpt, ..
    } = outcome
    else {
        panic!("expected a response, got {outcome:?}");
    };
    assert_eq!(status, 200);
    assert_eq!(excerpt.len(), ClientConfig::default().max_response_bytes);
}

#[tokio::test]
async fn headers_carry_the_standard_webhooks_triple_and_the_exact_body() {
    let hook = Hook::start(&[], 204).await;
    let outcome = dev_client(ClientConfig::default())
        .send(&request(&hook.url("/hook")))
        .await;
    assert!(matches!(
        outcome,
        AttemptOutcome::Response { status: 204, .. }
    ));
    let received = &hook.received()[0];
    assert_eq!(received.header("webhook-id"), "msg_test");
    assert_eq!(received.header("webhook-timestamp"), "1700000000");
    assert_eq!(received.header("webhook-signature"), "v1,AAAA");
    assert!(
        received
            .header("user-agent")
            .starts_with("meshpay-webhooks/")
    );
    assert_eq!(received.body, r#"{"type":"payment.settled"}"#);
}

#[tokio::test]
async fn a_silent_endpoint_times_out() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = ClientConfig {
        timeout: Duration::from_millis(500),
        ..ClientConfig::default()
    };
    let started = Instant::now();
    let outcome = dev_client(config)
        .send(&request(&format!("http://{addr}/hook")))
        .await;
    server.abort();
    assert!(
        matches!(
            outcome,
            AttemptOutcome::Failed {
                kind: FailureKind::Timeout,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn production_policy_refuses_loopback_by_literal_and_by_resolution() {
    let hook = Hook::start(&[], 200).await;
    let port = hook.addr.port();
    let client = DeliveryClient::new(UrlPolicy::PublicHttps, ClientConfig::default()).unwrap();
    for url in [
        format!("https://127.0.0.1:{port}/hook"),
        format!("https://2130706433:{port}/hook"),
        format!("https://localhost:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
    ] {
        let outcome = client.send(&request(&url)).await;
        assert!(
            matches!(
                outcome,
                AttemptOutcome::Failed {
                    kind: FailureKind::Blocked,
                    ..
                }
            ),
            "{url}: {outcome:?}"
        );
    }
    assert!(hook.received().is_empty());
}
