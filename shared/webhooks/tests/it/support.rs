//! Fixtures: a store on a fresh database with funded merchants and authorized payments, a
//! dispatcher allowed to send to loopback, and a scriptable merchant endpoint.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use meshpay_chain::ChainsConfig;
use meshpay_domain::{MerchantId, PaymentEvent};
use meshpay_store::webhooks::{
    CreateEndpointOutcome, NewWebhookEndpoint, WebhookEndpoint, WebhookEndpointId,
};
use meshpay_store::{Payment, Store};
use meshpay_testkit::assets::usdc;
use meshpay_testkit::merchant::funded_merchant;
use meshpay_testkit::payment::{PaymentSetup, advance};
use meshpay_testkit::postgres::TestDb;
use meshpay_webhooks::{
    ClientConfig, DeliveryClient, DispatchLimits, Dispatcher, RetrySchedule, RunReport,
    SecretCipher, UrlPolicy, WebhookSecret,
};

pub struct Ctx {
    pub store: Store,
    pub chains: Arc<ChainsConfig>,
    pub cipher: Arc<SecretCipher>,
    _db: TestDb,
}

impl Ctx {
    pub async fn new() -> Ctx {
        let db = TestDb::create_migrated(&meshpay_store::MIGRATOR).await;
        let dev = include_str!("../../../../chains.dev.toml");
        Ctx {
            store: Store::from_pool(db.pool().clone()),
            chains: Arc::new(ChainsConfig::from_toml_str(dev).unwrap()),
            cipher: Arc::new(SecretCipher::new(&[42; 32]).unwrap()),
            _db: db,
        }
    }

    /// A dispatcher for loopback endpoints with `schedule` (offsets, e.g. "0,1s,2s").
    pub fn dispatcher(&self, schedule: &str) -> Dispatcher {
        let client = DeliveryClient::new(UrlPolicy::AllowPrivate, ClientConfig::default()).unwrap();
        Dispatcher::new(
            self.store.clone(),
            self.chains.clone(),
            client,
            self.cipher.clone(),
            RetrySchedule::parse(schedule).unwrap(),
            DispatchLimits::default(),
        )
    }

    /// A merchant funded with 1000 USDC and 1 ETH.
    pub async fn merchant(&self) -> MerchantId {
        funded_merchant(&self.store, 1_000_000_000, 10u128.pow(18)).await
    }

    /// An authorized 25 USDC payment (version 1).
    pub async fn payment(&self, m: MerchantId) -> Payment {
        PaymentSetup::new(usdc(), 25_000_000)
            .reference("order-7")
            .metadata(serde_json::json!({"big": "not in webhooks"}))
            .ttl(time::Duration::seconds(60))
            .authorize(&self.store, m)
            .await
    }

    /// Moves `p` through `events` (the pipeline's transitions); returns the final payment.
    pub async fn advance(&self, p: Payment, events: &[PaymentEvent]) -> Payment {
        advance(&self.store, p, events).await
    }

    /// Registers `url` for `m` (every event type unless `types`); returns it with its secret.
    pub async fn endpoint(
        &self,
        m: MerchantId,
        url: &str,
        types: Option<&[String]>,
    ) -> (WebhookEndpoint, WebhookSecret) {
        let id = WebhookEndpointId::new();
        let secret = WebhookSecret::generate();
        let sealed = self.cipher.seal(&secret, id.as_uuid().as_bytes()).unwrap();
        let new = NewWebhookEndpoint {
            id,
            merchant_id: m,
            url,
            event_types: types,
            secret_ciphertext: &sealed,
        };
        match self.store.create_webhook_endpoint(&new).await.unwrap() {
            CreateEndpointOutcome::Created(e) => (e, secret),
            CreateEndpointOutcome::LimitReached => panic!("endpoint limit"),
        }
    }

    /// Runs the dispatcher until `done` holds (or panics after 30 s).
    pub async fn run_until(
        &self,
        dispatcher: &Dispatcher,
        mut done: impl AsyncFnMut() -> bool,
    ) -> Vec<RunReport> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut reports = Vec::new();
        loop {
            reports.push(dispatcher.run_once().await.unwrap());
            if done().await {
                return reports;
            }
            assert!(
                Instant::now() < deadline,
                "not done after 30 s: {reports:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql)
            .fetch_one(self.store.pool())
            .await
            .unwrap();
        n
    }
}

/// One request the merchant endpoint received, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    pub answered: u16,
    /// When the request arrived.
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }

    pub fn verifies_with(&self, secret: &WebhookSecret) -> bool {
        let ts: i64 = self.header("webhook-timestamp").parse().unwrap_or(-1);
        secret.verify(
            self.header("webhook-id"),
            ts,
            self.body.as_bytes(),
            self.header("webhook-signature"),
        )
    }
}

#[derive(Clone, Default)]
struct HookState {
    received: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer, in order; 200 once empty (or `fallback`).
    script: Arc<Mutex<VecDeque<u16>>>,
    fallback: Arc<Mutex<u16>>,
}

/// A merchant endpoint on 127.0.0.1: `POST /hook` answers the scripted statuses (`POST /slow`
/// too, after [`SLOW`]);
/// `GET|POST /redirect` redirects to `/hook`; `POST /big` answers 200 with 1 MiB; `POST /nul`
/// answers 500 with a body holding U+0000 (which PostgreSQL text cannot store).
pub struct Hook {
    pub addr: SocketAddr,
    state: HookState,
    server: tokio::task::JoinHandle<()>,
}

impl Hook {
    pub async fn start(script: &[u16], fallback: u16) -> Hook {
        let state = HookState {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            fallback: Arc::new(Mutex::new(fallback)),
            ..HookState::default()
        };
        let app = Router::new()
            .route("/hook", post(hook))
            .route("/redirect", get(redirect).post(redirect))
            .route("/big", post(big))
            .route("/nul", post(nul))
            .route("/slow", post(slow))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Hook {
            addr,
            state,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Bodies' `type`s of the requests answered 2xx, in arrival order.
    pub fn acknowledged_types(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(|r| r.json()["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn hook(State(state): State<HookState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answered = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*state.fallback.lock().unwrap());
    state.received.lock().unwrap().push(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        answered,
        at: Instant::now(),
    });
    StatusCode::from_u16(answered).unwrap()
}

/// How long `POST /slow` takes to answer 200.
pub const SLOW: Duration = Duration::from_millis(1500);

async fn slow(state: State<HookState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answered = hook(state, headers, body).await;
    tokio::time::sleep(SLOW).await;
    answered
}

async fn redirect() -> (StatusCode, [(&'static str, &'static str); 1]) {
    (StatusCode::TEMPORARY_REDIRECT, [("location", "/hook")])
}

async fn nul() -> (StatusCode, &'static str) {
    (StatusCode::INTERNAL_SERVER_ERROR, "oops\0here")
}

async fn big() -> String {
    "x".repeat(1 << 20)
}
