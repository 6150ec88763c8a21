//! [`Client`]: one method per API operation, and [`Client::send`] for any request as sent.

use std::time::Duration;

use meshpay_api::Problem;
use meshpay_api::views::{BalanceList, PaymentList, PaymentView, QuoteView};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ApiKey, AuthorizePayment, ClientError, CreateQuote, ListPayments};

/// Bound on one request made by a client from [`Client::new`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The header `POST /payments` requires.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// A client of one meshpay API (base URL with the route prefix, e.g.
/// `http://127.0.0.1:7071/api`) acting as one merchant key. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: ApiKey,
}

/// An answer as received, whatever its status (for tests of refusals and for operations without
/// a typed method).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The problem+json body of a refusal.
    pub fn problem(&self) -> Option<Problem> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    /// A client with its own connection pool and [`REQUEST_TIMEOUT`].
    pub fn new(base: impl Into<String>, key: ApiKey) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self::with_http(http, base, key))
    }

    /// A client sharing `http` (its pool and timeouts).
    pub fn with_http(http: reqwest::Client, base: impl Into<String>, key: ApiKey) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Client { http, base, key }
    }

    /// The same API as another merchant key.
    pub fn with_key(&self, key: ApiKey) -> Self {
        Client {
            key,
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` (without a leading `/`) under the base URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// `POST /quotes`.
    pub async fn create_quote(&self, quote: &CreateQuote) -> Result<QuoteView, ClientError> {
        let request = self.http.post(self.url("quotes")).json(quote);
        self.call("POST /quotes", request).await
    }

    /// `GET /quotes/{id}`.
    pub async fn quote(&self, id: &str) -> Result<QuoteView, ClientError> {
        let request = self.http.get(self.url(&format!("quotes/{id}")));
        self.call("GET /quotes/{id}", request).await
    }

    /// `POST /payments`: authorizes a quote. Repeating it with the same `idempotency_key` and
    /// body returns the first answer.
    pub async fn authorize(
        &self,
        idempotency_key: &str,
        payment: &AuthorizePayment,
    ) -> Result<PaymentView, ClientError> {
        let request = self
            .http
            .post(self.url("payments"))
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .json(payment);
        self.call("POST /payments", request).await
    }

    /// `GET /payments/{id}` (with the payment's transaction `attempts`).
    pub async fn payment(&self, id: &str) -> Result<PaymentView, ClientError> {
        let request = self.http.get(self.url(&format!("payments/{id}")));
        self.call("GET /payments/{id}", request).await
    }

    /// `GET /payments`: one page, newest first.
    pub async fn payments(&self, filter: &ListPayments) -> Result<PaymentList, ClientError> {
        let request = self.http.get(self.url("payments")).query(filter);
        self.call("GET /payments", request).await
    }

    /// `POST /payments/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<PaymentView, ClientError> {
        let request = self.http.post(self.url(&format!("payments/{id}/cancel")));
        self.call("POST /payments/{id}/cancel", request).await
    }

    /// `GET /balances`.
    pub async fn balances(&self) -> Result<BalanceList, ClientError> {
        let request = self.http.get(self.url("balances"));
        self.call("GET /balances", request).await
    }

    /// Any request with this client's key, answered as received: a refusal is a [`Reply`] too;
    /// only a request without an answer is an error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, ClientError> {
        let label = format!("{method} /{}", path.trim_start_matches('/'));
        let mut request = self.http.request(method, self.url(path));
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.exchange(&label, request).await
    }

    async fn exchange(&self, label: &str, request: RequestBuilder) -> Result<Reply, ClientError> {
        let response = request
            .bearer_auth(self.key.expose())
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                request: label.to_owned(),
                base: self.base.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|source| ClientError::Read {
            request: label.to_owned(),
            source,
        })?;
        Ok(Reply {
            status,
            headers,
            body: body.to_vec(),
        })
    }

    /// A typed operation: 2xx bodies are read as `T`, anything else is an error.
    async fn call<T: DeserializeOwned>(
        &self,
        label: &str,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let reply = self.exchange(label, request).await?;
        if !(200..300).contains(&reply.status) {
            return Err(match reply.problem() {
                Some(problem) => ClientError::Problem {
                    request: label.to_owned(),
                    status: reply.status,
                    problem: Box::new(problem),
                },
                None => ClientError::Status {
                    request: label.to_owned(),
                    status: reply.status,
                    body: String::from_utf8_lossy(&reply.body).into_owned(),
                },
            });
        }
        serde_json::from_slice(&reply.body).map_err(|source| ClientError::Decode {
            request: label.to_owned(),
            body: String::from_utf8_lossy(&reply.body).into_owned(),
            source,
        })
    }
}
