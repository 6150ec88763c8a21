//! The meshpay HTTP API as tests call it: every request a test sends to the API goes through
//! [`Client`], so the way requests are built and answers read lives in this one file.

use std::str::FromStr;

use meshpay_domain::PaymentId;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// The request methods [`Client::send`] takes (re-exported so tests need no HTTP crate of
/// their own).
pub use reqwest::Method;

use crate::assets::CHAIN;
use crate::payment::RECIPIENT;

/// An HTTP reply, body parsed when it is JSON (else `Null`).
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

/// A client of one API base URL (`http://…/api`).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// `base`: the URL `/api` routes are under, without a trailing slash.
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Client {
        let base: String = base.into();
        Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The API through `devhost`.
    pub fn for_devhost(devhost: &crate::devhost::Devhost) -> Client {
        Client::new(reqwest::Client::new(), devhost.api_url(""))
    }

    /// The URL of `path` (with or without a leading `/`, query included).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Sends a request; `body` is sent as-is with `Content-Type: application/json`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        idempotency_key: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        self.send_to(self.url(path), method, key, idempotency_key, body)
            .await
    }

    /// [`Client::send`] to any URL (e.g. the handler's own, bypassing the host).
    pub async fn send_to(
        &self,
        url: String,
        method: Method,
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

    /// A request whose `Authorization` header is `authorization` as given (any scheme, or
    /// none), with `body` as JSON when there is one.
    pub async fn send_authorization(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        reply(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.send(Method::GET, path, Some(key), None, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(key), None, Some(body.to_string()))
            .await
    }

    /// A `POST` of `body` as `content_type`.
    pub async fn post_as(&self, path: &str, key: &str, content_type: &str, body: String) -> Reply {
        let request = self
            .http
            .post(self.url(path))
            .bearer_auth(key)
            .header("Content-Type", content_type)
            .body(body);
        reply(request.send().await.unwrap()).await
    }

    /// A `POST` without an API key, with `headers` (e.g. a signed chain webhook).
    pub async fn post_unauthenticated(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, String)],
    ) -> Reply {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        reply(request.send().await.unwrap()).await
    }

    /// `POST /quotes` to [`RECIPIENT`] that must succeed; returns the quote.
    pub async fn quote(&self, key: &str, asset: &str, amount: &str) -> Value {
        self.quote_to(key, asset, amount, RECIPIENT).await
    }

    /// `POST /quotes` to `recipient` that must succeed; returns the quote.
    pub async fn quote_to(&self, key: &str, asset: &str, amount: &str, recipient: &str) -> Value {
        let body = json!({
            "chain": CHAIN, "asset": asset, "amount": amount, "recipient": recipient,
        });
        let reply = self.post("/quotes", key, &body).await;
        assert_eq!(reply.status, 201, "quote: {:?}", reply.body);
        reply.body
    }

    /// `POST /payments` for `quote_id` with an idempotency key.
    pub async fn authorize(&self, key: &str, idempotency_key: &str, quote_id: &str) -> Reply {
        let body = json!({ "quote_id": quote_id });
        self.send(
            Method::POST,
            "/payments",
            Some(key),
            Some(idempotency_key),
            Some(body.to_string()),
        )
        .await
    }

    /// Quotes and authorizes `amount` of `asset` to `recipient`, both of which must succeed;
    /// returns the payment's id and the quoted amount in base units.
    pub async fn pay(
        &self,
        key: &str,
        asset: &str,
        amount: &str,
        recipient: &str,
    ) -> (PaymentId, u128) {
        let quote = self.quote_to(key, asset, amount, recipient).await;
        let quote_id = quote["id"].as_str().unwrap();
        let quoted = base_units(&quote["amount"]);
        let reply = self
            .authorize(key, &format!("idem-{quote_id}"), quote_id)
            .await;
        assert_eq!(reply.status, 201, "authorize: {:?}", reply.body);
        let id = PaymentId::from_str(reply.body["id"].as_str().unwrap()).unwrap();
        (id, quoted)
    }

    /// `GET /payments/{id}` that must succeed.
    pub async fn payment(&self, key: &str, id: PaymentId) -> Value {
        let reply = self.get(&format!("/payments/{id}"), key).await;
        assert_eq!(reply.status, 200, "payment {id}: {:?}", reply.body);
        reply.body
    }

    /// `GET /balances` as `(symbol, available base units, held base units)`.
    pub async fn balances(&self, key: &str) -> Vec<(String, u128, u128)> {
        let reply = self.get("/balances", key).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["asset"].as_str().unwrap().to_owned(),
                    base_units(&b["available"]),
                    base_units(&b["held"]),
                )
            })
            .collect()
    }

    /// `POST /webhook-endpoints` for `url` that must succeed; returns (id, `whsec_…` secret).
    pub async fn create_webhook_endpoint(&self, key: &str, url: &str) -> (String, String) {
        let reply = self
            .post("/webhook-endpoints", key, &json!({ "url": url }))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        (
            reply.body["id"].as_str().unwrap().to_owned(),
            reply.body["secret"].as_str().unwrap().to_owned(),
        )
    }
}

/// A money value's `base_units` (`{"value": "1.5", "base_units": "1500000"}`).
pub fn base_units(money: &Value) -> u128 {
    money["base_units"]
        .as_str()
        .unwrap_or_else(|| panic!("no base_units in {money}"))
        .parse()
        .unwrap()
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
