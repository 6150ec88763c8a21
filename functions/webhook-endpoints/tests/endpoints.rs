//! `webhook-endpoints` through its router (`oneshot`, no server) on a fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use meshpay_api::AppState;
use meshpay_chain::ChainsConfig;
use meshpay_domain::{MerchantId, Scope};
use meshpay_fn_webhook_endpoints::{EndpointsState, function};
use meshpay_store::Store;
use meshpay_store::webhooks::WebhookEndpointId;
use meshpay_testkit::merchant::MerchantSetup;
use meshpay_testkit::postgres::TestDb;
use meshpay_testkit::router;
use meshpay_webhooks::{SecretCipher, UrlPolicy, WebhookSecret};
use serde_json::{Value, json};

struct Ctx {
    db: TestDb,
    store: Store,
    cipher: Arc<SecretCipher>,
}

impl Ctx {
    async fn new() -> Ctx {
        let db = TestDb::create_migrated(&meshpay_store::MIGRATOR).await;
        Ctx {
            store: Store::from_pool(db.pool().clone()),
            cipher: Arc::new(SecretCipher::new(&[1; 32]).unwrap()),
            db,
        }
    }

    fn app(&self, url_policy: UrlPolicy) -> Router {
        let dev = include_str!("../../../chains.dev.toml");
        let chains = Arc::new(ChainsConfig::from_toml_str(dev).unwrap());
        let app = AppState::lazy(self.db.url(), 2, chains).unwrap();
        let function = function(EndpointsState {
            app,
            url_policy,
            cipher: self.cipher.clone(),
        });
        meshpay_shim::FunctionApp::new()
            .register(function)
            .http_router()
            .unwrap()
    }

    async fn merchant(&self, scopes: &[Scope]) -> (MerchantId, String) {
        let merchant = MerchantSetup::default()
            .fee_bps(0)
            .scopes(scopes.iter().copied().collect())
            .create_with_key(&self.store)
            .await;
        (merchant.id, merchant.key)
    }

    async fn count(&self) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM webhook_endpoints")
            .fetch_one(self.db.pool())
            .await
            .unwrap();
        n
    }
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let reply = router::call(app, method, uri, Some(key), &[], body.as_ref()).await;
    (reply.status, reply.body)
}

#[tokio::test]
async fn the_secret_is_shown_once_and_stored_sealed_for_the_endpoint() {
    let ctx = Ctx::new().await;
    let app = ctx.app(UrlPolicy::AllowPrivate);
    let (_, key) = ctx.merchant(&[Scope::WebhooksWrite]).await;
    let body =
        json!({"url": "http://127.0.0.1:9/hook", "events": ["payment.settled", "payment.failed"]});
    let (status, created) = call(
        &app,
        Method::POST,
        "/api/webhook-endpoints",
        &key,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id: WebhookEndpointId = created["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(created["status"], "enabled");
    assert_eq!(
        created["events"],
        json!(["payment.settled", "payment.failed"])
    );
    let secret = WebhookSecret::parse(created["secret"].as_str().unwrap()).unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));

    let (sealed,): (Vec<u8>,) =
        sqlx::query_as("SELECT secret_ciphertext FROM webhook_endpoints WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_one(ctx.db.pool())
            .await
            .unwrap();
    assert!(
        !sealed.windows(16).any(|w| secret.as_bytes().starts_with(w)),
        "not in clear"
    );
    let opened = ctx.cipher.open(&sealed, id.as_uuid().as_bytes()).unwrap();
    assert_eq!(opened.as_bytes(), secret.as_bytes());

    let (status, list) = call(&app, Method::GET, "/api/webhook-endpoints", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(
        list["data"][0].get("secret").is_none(),
        "never shown again: {list}"
    );
}

#[tokio::test]
async fn production_policy_refuses_private_and_plain_http_urls_and_writes_nothing() {
    let ctx = Ctx::new().await;
    let app = ctx.app(UrlPolicy::PublicHttps);
    let (_, key) = ctx.merchant(&[Scope::WebhooksWrite]).await;
    for url in [
        "http://example.com/hook",
        "https://10.0.0.1/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.1/hook",
        "https://127.0.0.1/hook",
        "https://2130706433/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://localhost/hook",
        "https://user:pw@example.com/hook",
        "not a url",
    ] {
        let (status, problem) = call(
            &app,
            Method::POST,
            "/api/webhook-endpoints",
            &key,
            Some(json!({"url": url})),
        )
        .await;
        assert_eq!(status, 422, "{url}: {problem}");
        assert_eq!(problem["code"], "validation_failed", "{url}");
        assert!(
            problem["detail"].as_str().unwrap().starts_with("url:"),
            "{problem}"
        );
    }
    assert_eq!(ctx.count().await, 0);
}

#[tokio::test]
async fn bad_event_lists_unknown_fields_and_missing_scopes_are_refused() {
    let ctx = Ctx::new().await;
    let app = ctx.app(UrlPolicy::AllowPrivate);
    let (_, key) = ctx.merchant(&[Scope::WebhooksWrite]).await;
    let (_, reader) = ctx.merchant(&[Scope::PaymentsRead]).await;
    let url = "http://127.0.0.1:9/hook";
    for (body, status) in [
        (json!({"url": url, "events": []}), 422),
        (json!({"url": url, "events": ["payment.refunded"]}), 422),
        (json!({"url": url, "secret": "mine"}), 422),
        (json!({"events": ["payment.settled"]}), 422),
    ] {
        let (got, problem) = call(
            &app,
            Method::POST,
            "/api/webhook-endpoints",
            &key,
            Some(body.clone()),
        )
        .await;
        assert_eq!(got, status, "{body}: {problem}");
    }
    let (status, problem) = call(
        &app,
        Method::POST,
        "/api/webhook-endpoints",
        &reader,
        Some(json!({"url": url})),
    )
    .await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/webhook-endpoints",
        "mp_live_nope",
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(ctx.count().await, 0);
}

#[tokio::test]
async fn delete_is_tenant_scoped_and_a_second_delete_is_not_found() {
    let ctx = Ctx::new().await;
    let app = ctx.app(UrlPolicy::AllowPrivate);
    let (_, key) = ctx.merchant(&[Scope::WebhooksWrite]).await;
    let (_, other) = ctx.merchant(&[Scope::WebhooksWrite]).await;
    let (_, created) = call(
        &app,
        Method::POST,
        "/api/webhook-endpoints",
        &key,
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
    )
    .await;
    let path = format!("/api/webhook-endpoints/{}", created["id"].as_str().unwrap());
    let (status, _) = call(&app, Method::DELETE, &path, &other, None).await;
    assert_eq!(
        status, 404,
        "another merchant's endpoint does not exist for them"
    );
    let (status, _) = call(&app, Method::DELETE, &path, &key, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&app, Method::DELETE, &path, &key, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::DELETE,
        "/api/webhook-endpoints/we_nothex",
        &key,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, list) = call(&app, Method::GET, "/api/webhook-endpoints", &key, None).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn a_merchant_has_at_most_sixteen_endpoints() {
    let ctx = Ctx::new().await;
    let app = ctx.app(UrlPolicy::AllowPrivate);
    let (_, key) = ctx.merchant(&[Scope::WebhooksWrite]).await;
    let body = json!({"url": "http://127.0.0.1:9/hook"});
    for _ in 0..16 {
        let (status, _) = call(
            &app,
            Method::POST,
            "/api/webhook-endpoints",
            &key,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, problem) = call(
        &app,
        Method::POST,
        "/api/webhook-endpoints",
        &key,
        Some(body),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("limit_exceeded"))
    );
}

#[tokio::test]
async fn get_reads_one_endpoint_without_its_secret_and_is_tenant_scoped() {
    let ctx = Ctx::new().await;
    let app = ctx.app(UrlPolicy::AllowPrivate);
    let (_, key) = ctx.merchant(&[Scope::WebhooksWrite]).await;
    let (_, other) = ctx.merchant(&[Scope::WebhooksWrite]).await;
    let (_, created) = call(
        &app,
        Method::POST,
        "/api/webhook-endpoints",
        &key,
        Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["payment.settled"]})),
    )
    .await;
    let path = format!("/api/webhook-endpoints/{}", created["id"].as_str().unwrap());
    let (status, endpoint) = call(&app, Method::GET, &path, &key, None).await;
    assert_eq!(status, 200, "{endpoint}");
    assert_eq!(endpoint["id"], created["id"]);
    assert_eq!(endpoint["url"], "http://127.0.0.1:9/hook");
    assert_eq!(endpoint["events"], json!(["payment.settled"]));
    assert!(endpoint.get("secret").is_none());
    let (status, _) = call(&app, Method::GET, &path, &other, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::DELETE, &path, &key, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&app, Method::GET, &path, &key, None).await;
    assert_eq!(status, 404, "a deleted endpoint is gone");
    let (status, _) = call(&app, Method::GET, "/api/webhook-endpoints/we_x", &key, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_url_holding_nul_is_refused_with_422_and_nothing_is_written() {
    let ctx = Ctx::new().await;
    let app = ctx.app(UrlPolicy::AllowPrivate);
    let (_, key) = ctx.merchant(&[Scope::WebhooksWrite]).await;
    let (status, problem) = call(
        &app,
        Method::POST,
        "/api/webhook-endpoints",
        &key,
        Some(json!({"url": "http://127.0.0.1:9/ho\u{0}ok"})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "validation_failed");
    assert_eq!(ctx.count().await, 0);
}
