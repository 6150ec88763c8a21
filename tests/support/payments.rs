//! The payments API stack for end-to-end tests and the benchmark: a fresh migrated PostgreSQL
//! database, anvil with DevUSDC deployed, Azurite, and devhost running `meshpay` on this repo's
//! functions. Merchants, keys and funding go through the store's public API (what
//! `meshpay admin` uses); everything else goes over HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use meshpay_domain::{Amount, AssetId, FeeBps, MerchantId, Scope, Scopes};
use meshpay_store::{AssetLimit, NewMerchant, Store};
use meshpay_testkit::anvil::Anvil;
use meshpay_testkit::azurite::Azurite;
use meshpay_testkit::devhost::{Devhost, DevhostBuilder};
use meshpay_testkit::postgres::TestDb;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A recipient that is not on the deny list (anvil account 6).
pub const RECIPIENT: &str = "0x976EA74026E726554dB657fA54763abd0C3a0aa9";
/// Service fee every test merchant pays unless told otherwise.
pub const FEE_BPS: u32 = 25;

/// Functions downstream of the API, disabled in this stack (app setting
/// `AzureWebJobs.<name>.Disabled`, as on the real host).
pub const PIPELINE_FUNCTIONS: [&str; 5] = ["broadcast", "confirm", "settle", "reconcile", "notify"];

/// Options for [`Stack::start_with`].
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// `MESHPAY_QUOTE_TTL_SECONDS`.
    pub quote_ttl_secs: Option<u64>,
    /// Handler executable (the benchmark passes the release build).
    pub executable: Option<PathBuf>,
    /// `RUST_LOG` for the handler (the benchmark turns logging down).
    pub rust_log: Option<String>,
}

pub struct Stack {
    pub db: TestDb,
    pub store: Store,
    pub anvil: Anvil,
    pub azurite: Azurite,
    pub devhost: Devhost,
    pub http: reqwest::Client,
    chains_file: PathBuf,
}

/// A merchant and its API key.
pub struct Merchant {
    pub id: MerchantId,
    pub key: String,
}

/// An HTTP reply, body parsed when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub raw: Vec<u8>,
    pub body: Value,
}

impl Reply {
    /// The problem `code` of an error reply.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(StackOptions::default()).await
    }

    pub async fn start_with(options: StackOptions) -> Stack {
        let (db, anvil, azurite) = tokio::join!(
            TestDb::create_migrated(&meshpay_store::MIGRATOR),
            Anvil::start(),
            Azurite::start()
        );
        // Account 0's first transaction: the address chains.dev.toml configures.
        let usdc = anvil.deploy_dev_usdc().await;
        assert!(
            usdc.eq_ignore_ascii_case(meshpay_testkit::anvil::DEV_USDC_ADDRESS),
            "{usdc}"
        );
        let chains_file = write_chains_config(anvil.url());
        let mut builder: DevhostBuilder = Devhost::builder()
            .env("DATABASE_URL", db.url())
            .env("MESHPAY_CHAINS_CONFIG", chains_file.display().to_string())
            .env("AzureWebJobsStorage", azurite.connection_string());
        // The API's own stage only: the pipeline after it would consume the broadcast queue
        // these tests inspect (and needs signers the stack does not configure).
        for function in PIPELINE_FUNCTIONS {
            builder = builder.env(&format!("AzureWebJobs.{function}.Disabled"), "true");
        }
        if let Some(ttl) = options.quote_ttl_secs {
            builder = builder.env("MESHPAY_QUOTE_TTL_SECONDS", ttl.to_string());
        }
        if let Some(log) = options.rust_log {
            builder = builder.env("RUST_LOG", log);
        }
        if let Some(executable) = options.executable {
            builder = builder.executable(executable);
        }
        let devhost = builder.start().await;
        let store = Store::from_pool(db.pool().clone());
        Stack {
            db,
            store,
            anvil,
            azurite,
            devhost,
            http: reqwest::Client::new(),
            chains_file,
        }
    }

    /// A merchant with every scope, the test fee rate and no limits.
    pub async fn merchant(&self) -> Merchant {
        self.merchant_with(Scopes::all(), Vec::new()).await
    }

    pub async fn merchant_with(&self, scopes: Scopes, limits: Vec<AssetLimit>) -> Merchant {
        let merchant = self
            .store
            .create_merchant(&NewMerchant {
                name: "test merchant".into(),
                service_fee_bps: FeeBps::new(FEE_BPS).unwrap(),
                limits,
            })
            .await
            .unwrap();
        let key = self
            .store
            .create_api_key(merchant.id, scopes)
            .await
            .unwrap();
        Merchant {
            id: merchant.id,
            key: key.key.expose().to_owned(),
        }
    }

    /// An extra key for `merchant` with only `scopes`.
    pub async fn key_with(&self, merchant: MerchantId, scopes: &[Scope]) -> String {
        let scopes: Scopes = scopes.iter().copied().collect();
        let key = self.store.create_api_key(merchant, scopes).await.unwrap();
        key.key.expose().to_owned()
    }

    /// Funds `merchant` with `amount` (decimal, asset units) of `asset` (`anvil:USDC`).
    pub async fn fund(&self, merchant: MerchantId, asset: &str, amount: &str) {
        let id = AssetId::from_str(asset).unwrap();
        let decimals = if id.symbol() == "USDC" { 6 } else { 18 };
        let amount = Amount::parse_positive_decimal(amount, decimals).unwrap();
        let reference = format!("test-{}", uuid::Uuid::new_v4());
        self.store
            .fund(merchant, &id, amount, &reference)
            .await
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        self.devhost.api_url(path.trim_start_matches('/'))
    }

    /// Sends a request; `body` is sent as-is with `Content-Type: application/json`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        idempotency_key: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        self.send_to(self.url(path), method, key, idempotency_key, body)
            .await
    }

    /// The handler's own URL for `path`, bypassing devhost (forwarded form, no queue writes).
    pub fn handler_url(&self, path: &str) -> String {
        format!("{}/api{path}", self.devhost.handler_url())
    }

    /// [`Stack::send`] to any URL.
    pub async fn send_to(
        &self,
        url: String,
        method: reqwest::Method,
        key: Option<&str>,
        idempotency_key: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        let mut request = self.http.request(method, url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(idem) = idempotency_key {
            request = request.header("Idempotency-Key", idem);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        reply(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.send(reqwest::Method::GET, path, Some(key), None, None)
            .await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.send(
            reqwest::Method::POST,
            path,
            Some(key),
            None,
            Some(body.to_string()),
        )
        .await
    }

    /// `POST /quotes` that must succeed; returns the quote.
    pub async fn quote(&self, key: &str, asset: &str, amount: &str) -> Value {
        let body = serde_json::json!({
            "chain": "anvil", "asset": asset, "amount": amount, "recipient": RECIPIENT,
        });
        let reply = self.post("/quotes", key, &body).await;
        assert_eq!(reply.status, 201, "quote: {:?}", reply.body);
        reply.body
    }

    /// `POST /payments` for `quote_id` with an idempotency key.
    pub async fn authorize(&self, key: &str, idempotency_key: &str, quote_id: &str) -> Reply {
        let body = serde_json::json!({ "quote_id": quote_id });
        self.send(
            reqwest::Method::POST,
            "/payments",
            Some(key),
            Some(idempotency_key),
            Some(body.to_string()),
        )
        .await
    }

    /// `GET /balances` as `{symbol: (available base units, held base units)}`.
    pub async fn balances(&self, key: &str) -> Vec<(String, u128, u128)> {
        let reply = self.get("/balances", key).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let units = |v: &Value| v["base_units"].as_str().unwrap().parse::<u128>().unwrap();
                (
                    b["asset"].as_str().unwrap().to_owned(),
                    units(&b["available"]),
                    units(&b["held"]),
                )
            })
            .collect()
    }

    /// Rows in a table: "nothing written" checks (test-only SQL; the API has no count).
    pub async fn count(&self, table: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(self.db.pool())
            .await
            .unwrap();
        n
    }

    /// The ledger invariant (every asset sums to zero, no negative balance, holds match):
    /// asserted at the end of every test.
    pub async fn assert_ledger_invariants(&self) {
        if let Err(error) = self.store.check_ledger_invariants().await {
            panic!(
                "ledger invariants violated: {error}\n{}",
                self.devhost.log_tail(40)
            );
        }
    }

    /// How long to wait for queue messages.
    pub const QUEUE_WAIT: Duration = Duration::from_secs(30);
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.chains_file);
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = response.bytes().await.unwrap().to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        raw,
        body,
    }
}

/// chains.dev.toml pointed at this stack's anvil, in a file of its own.
fn write_chains_config(anvil_url: &str) -> PathBuf {
    let root = meshpay_testkit::ports::repo_root();
    let text = std::fs::read_to_string(root.join("chains.dev.toml")).unwrap();
    let text = text.replace("http://127.0.0.1:8545", anvil_url);
    let path = std::env::temp_dir().join(format!("meshpay-chains-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    path
}
