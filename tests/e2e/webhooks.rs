//! Merchant webhooks end to end through devhost + `meshpay` against PostgreSQL and Azurite,
//! with a local merchant endpoint on 127.0.0.1 that verifies every signature itself
//! (HMAC-SHA256 per Standard Webhooks, independent of meshpay-webhooks). Payments are created
//! and moved through the pipeline with the store's own API (what the pipeline steps call), so
//! no chain is needed; everything webhook-related goes over HTTP and through the `notify` timer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use meshpay_domain::{Amount, MerchantId, PaymentEvent, Scope, Scopes};
use meshpay_store::Payment;
use meshpay_testkit::api::Method;
use meshpay_testkit::assets::usdc;
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::payment::{PaymentSetup, advance};
use meshpay_testkit::stack::{HandlerSettings, Stack};
use serde_json::{Value, json};
use sha2::Sha256;

/// Longest wait for deliveries (the notify timer fires every second in these tests).
const WAIT: Duration = Duration::from_secs(60);

const PIPELINE: [&str; 4] = [
    "payment.authorized",
    "payment.broadcast",
    "payment.confirmed",
    "payment.settled",
];

/// Database, Azurite and devhost with the notify timer firing every second; no chain.
struct Ctx {
    stack: Stack,
}

impl Deref for Ctx {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

impl Ctx {
    /// `policy`: `MESHPAY_WEBHOOK_URL_POLICY`; `schedule`: the retry offsets.
    async fn start(policy: &str, schedule: &str) -> Ctx {
        let settings = HandlerSettings::default()
            .env("NOTIFY_SCHEDULE", "* * * * * *")
            .env("MESHPAY_WEBHOOK_URL_POLICY", policy)
            .env("MESHPAY_WEBHOOK_RETRY_SCHEDULE", schedule)
            .env("MESHPAY_WEBHOOK_SECRET_KEY", STANDARD.encode([9u8; 32]));
        let stack = Stack::builder()
            .without_chain()
            .devhost(settings)
            .start()
            .await;
        Ctx { stack }
    }

    /// A merchant funded with 1000 USDC and 1 ETH, and a key with `scopes`.
    async fn merchant(&self, scopes: Scopes) -> (MerchantId, String) {
        let merchant = MerchantSetup::funded(1_000_000_000, 10u128.pow(18))
            .scopes(scopes)
            .create_with_key(&self.store)
            .await;
        (merchant.id, merchant.key)
    }

    /// An authorized 25 USDC payment, as `POST /payments` would create it.
    async fn payment(&self, m: MerchantId) -> Payment {
        PaymentSetup::new(usdc(), 25_000_000)
            .reference("order-42")
            .ttl(time::Duration::minutes(1))
            .authorize(&self.store, m)
            .await
    }

    async fn advance(&self, p: Payment, events: &[PaymentEvent]) -> Payment {
        advance(&self.store, p, events).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let reply = self
            .api()
            .send(method, path, Some(key), None, body.map(|b| b.to_string()))
            .await;
        (reply.status, reply.body)
    }

    /// `POST /api/webhook-endpoints` that must succeed: (id, secret).
    async fn create_endpoint(&self, key: &str, url: &str) -> (String, String) {
        self.api().create_webhook_endpoint(key, url).await
    }

    async fn wait_for(&self, what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done().await {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}\n{}",
                self.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One request the merchant endpoint received, what it answered, and whether the signature
/// verified with the endpoint's secret.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: i64,
    body: Value,
    signature_ok: bool,
    answered: u16,
}

#[derive(Clone)]
struct MerchantServer {
    secret: Arc<Mutex<Vec<u8>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    fallback: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl MerchantServer {
    /// Answers the statuses of `script` in order, then `fallback`.
    async fn start(script: &[u16], fallback: u16) -> (MerchantServer, SocketAddr) {
        let server = MerchantServer {
            secret: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            fallback,
            received: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (server, addr)
    }

    /// The `whsec_…` secret the API returned for the endpoint.
    fn set_secret(&self, whsec: &str) {
        let b64 = whsec.strip_prefix("whsec_").expect("whsec_ prefix");
        *self.secret.lock().unwrap() = STANDARD.decode(b64).unwrap();
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn acknowledged_types(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(|r| r.body["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Verifies `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>` among the
/// space-separated signatures, as a merchant would.
fn verify(secret: &[u8], id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    header.split(' ').any(|s| s == format!("v1,{expected}"))
}

async fn receive(
    State(server): State<MerchantServer>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let signature_ok = verify(
        &server.secret.lock().unwrap(),
        &id,
        &timestamp,
        &body,
        &header("webhook-signature"),
    );
    let answered = server
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(server.fallback);
    server.received.lock().unwrap().push(Received {
        id,
        timestamp: timestamp.parse().unwrap_or(-1),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        signature_ok,
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

#[tokio::test]
async fn merchant_endpoint_receives_signed_events_in_order_even_after_failing_for_a_while() {
    let stack = Ctx::start("allow-private", "0,1s,2s,3s,4s,5s,6s,7s,8s,9s").await;
    let (m, key) = stack.merchant(Scopes::all()).await;
    // The endpoint is down for its first three requests.
    let (server, addr) = MerchantServer::start(&[500, 500, 500], 200).await;
    let (_, secret) = stack
        .create_endpoint(&key, &format!("http://{addr}/hook"))
        .await;
    server.set_secret(&secret);

    let p = stack.payment(m).await;
    let p = stack
        .advance(
            p,
            &[
                PaymentEvent::Broadcast,
                PaymentEvent::Confirm,
                PaymentEvent::Settle {
                    network_fee: Amount::ZERO,
                },
            ],
        )
        .await;
    stack
        .wait_for("four events acknowledged", async || {
            server.acknowledged_types().len() == PIPELINE.len()
        })
        .await;

    assert_eq!(server.acknowledged_types(), PIPELINE);
    let received = server.received();
    assert_eq!(
        received.len(),
        7,
        "three failures, then four deliveries: {received:?}"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut acknowledged: Vec<&str> = Vec::new();
    for r in &received {
        assert!(r.signature_ok, "signature must verify: {r:?}");
        assert!((now - 120..=now).contains(&r.timestamp), "{r:?}");
        let kind = r.body["type"].as_str().unwrap();
        let position = PIPELINE.iter().position(|t| *t == kind).unwrap();
        assert_eq!(
            acknowledged,
            PIPELINE[..position],
            "{kind} was sent before every earlier event of the payment was acknowledged"
        );
        if r.answered == 200 {
            acknowledged.push(kind);
        }
        assert_eq!(r.body["data"]["id"], p.id.to_string());
        assert_eq!(
            r.body["data"]["status"],
            kind.trim_start_matches("payment.")
        );
    }
    // The retried event kept its webhook-id; each event has its own.
    assert!(received[..4].iter().all(|r| r.id == received[0].id));
    let mut ids: Vec<&str> = received.iter().map(|r| r.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    // The delivery log over HTTP.
    let (status, page) = stack
        .send(
            Method::GET,
            "webhook-deliveries?status=succeeded",
            &key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["data"].as_array().unwrap();
    let types: Vec<&str> = items
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "payment.settled",
            "payment.confirmed",
            "payment.broadcast",
            "payment.authorized"
        ],
        "newest first"
    );
    let first = &items[3];
    assert_eq!(
        (
            first["attempts"].as_i64(),
            first["last_status_code"].as_i64()
        ),
        (Some(4), Some(200))
    );
    assert_eq!(first["event_id"], received[0].id.as_str());
    let (status, detail) = stack
        .send(
            Method::GET,
            &format!("webhook-deliveries/{}", first["id"].as_str().unwrap()),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    let codes: Vec<i64> = detail["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 500, 200]);
    assert_eq!(detail["payload"]["type"], "payment.authorized");
    let (_, paged) = stack
        .send(Method::GET, "webhook-deliveries?limit=3", &key, None)
        .await;
    let cursor = paged["next_cursor"].as_str().unwrap();
    let (_, rest) = stack
        .send(
            Method::GET,
            &format!("webhook-deliveries?limit=3&cursor={cursor}"),
            &key,
            None,
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_fails_its_deliveries() {
    let stack = Ctx::start("allow-private", "0,1s,2s").await;
    let (m, key) = stack.merchant(Scopes::all()).await;
    let (server, addr) = MerchantServer::start(&[], 410).await;
    let (endpoint, secret) = stack
        .create_endpoint(&key, &format!("http://{addr}/hook"))
        .await;
    server.set_secret(&secret);
    let p = stack.payment(m).await;
    stack.advance(p, &[PaymentEvent::Broadcast]).await;

    stack
        .wait_for("endpoint disabled", async || {
            let (_, list) = stack
                .send(Method::GET, "webhook-endpoints", &key, None)
                .await;
            list["data"][0]["status"] == "disabled"
        })
        .await;
    let (_, list) = stack
        .send(Method::GET, "webhook-endpoints", &key, None)
        .await;
    assert_eq!(list["data"][0]["id"], endpoint.as_str());
    assert!(
        list["data"][0]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410")
    );
    let (_, failed) = stack
        .send(Method::GET, "webhook-deliveries?status=failed", &key, None)
        .await;
    let failed = failed["data"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[1]["last_status_code"], 410);
    assert_eq!(
        failed[0]["attempts"], 0,
        "the broadcast event was never sent"
    );
    // Nothing more is sent to a disabled endpoint, whatever happens to the payment.
    let q = stack.payment(m).await;
    stack.advance(q, &[PaymentEvent::Cancel]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.received().len(), 1);
    assert!(server.received()[0].signature_ok);
}

#[tokio::test]
async fn private_urls_are_refused_at_creation_in_production_config() {
    let stack = Ctx::start("public", "0,5s").await;
    let (_, key) = stack.merchant(Scopes::all()).await;
    let (_, reader) = stack
        .merchant([Scope::PaymentsRead].into_iter().collect())
        .await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://172.20.0.5/hook",
        "https://192.168.0.1/hook",
        "https://169.254.169.254/metadata/instance",
        "https://[::1]/hook",
        "https://[fc00::5]/hook",
        "https://[::ffff:192.168.0.1]/hook",
        "https://3232235521/hook",
        "https://localhost/hook",
    ] {
        let (status, problem) = stack
            .send(
                Method::POST,
                "webhook-endpoints",
                &key,
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(status, 422, "{url}: {problem}");
        assert_eq!(problem["code"], "validation_failed", "{url}");
    }
    let (status, _) = stack
        .send(
            Method::POST,
            "webhook-endpoints",
            &reader,
            Some(json!({ "url": "https://example.com/hook" })),
        )
        .await;
    assert_eq!(status, 403, "webhooks:write is required");
    assert_eq!(
        stack.count("SELECT count(*) FROM webhook_endpoints").await,
        0
    );
}
