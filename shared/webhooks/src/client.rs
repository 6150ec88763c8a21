//! The HTTP client that delivers webhooks (reqwest + rustls), hardened for requests to
//! URLs chosen by third parties:
//! - every connection goes through [`GuardedResolver`], which refuses hosts resolving to
//!   addresses the [`UrlPolicy`] forbids (checked when connecting, so DNS rebinding after the
//!   endpoint was created does not help); IP-literal hosts are checked before sending;
//! - redirects are never followed (a 3xx is a failed attempt: following one would let an
//!   endpoint bounce us to an internal address);
//! - no proxy from the environment; short connect and total timeouts;
//! - at most [`ClientConfig::max_response_bytes`] of the response body are read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};

use crate::retry::parse_retry_after;
use crate::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::url_policy::{UrlError, UrlPolicy, resolve};

/// Timeouts and limits of deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// Whole request: connect, send, response headers and the bounded body read.
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            max_response_bytes: 1024,
        }
    }
}

/// One signed request.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRequest<'a> {
    pub url: &'a str,
    pub msg_id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
    pub body: &'a str,
}

/// Why no HTTP response was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The URL or its resolved address is not allowed by the policy.
    Blocked,
    Timeout,
    Connect,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Response {
        status: u16,
        retry_after: Option<Duration>,
        /// The first bytes of the body (lossy UTF-8).
        excerpt: String,
    },
    Failed {
        kind: FailureKind,
        message: String,
    },
}

/// Resolves with the system resolver, then applies the URL policy to every address.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: UrlPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = resolve(&host, 0).await.map_err(boxed)?;
            policy
                .check_addrs(&host, addrs.iter().map(SocketAddr::ip))
                .map_err(boxed)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn boxed(error: UrlError) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(error)
}

#[derive(Debug, Clone)]
pub struct DeliveryClient {
    http: reqwest::Client,
    policy: UrlPolicy,
    config: ClientConfig,
}

impl DeliveryClient {
    pub fn new(policy: UrlPolicy, config: ClientConfig) -> Result<Self, reqwest::Error> {
        let mut default_headers = HeaderMap::new();
        default_headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("meshpay-webhooks/", env!("CARGO_PKG_VERSION"))),
        );
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!policy.allows_private())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .default_headers(default_headers)
            .build()?;
        Ok(DeliveryClient {
            http,
            policy,
            config,
        })
    }

    pub fn policy(&self) -> UrlPolicy {
        self.policy
    }

    pub fn config(&self) -> ClientConfig {
        self.config
    }

    /// Sends one attempt. Never fails: every problem is an [`AttemptOutcome::Failed`].
    pub async fn send(&self, request: &DeliveryRequest<'_>) -> AttemptOutcome {
        // IP-literal hosts never reach the resolver: check them (and the scheme) here.
        if let Err(error) = self.policy.check_syntax(request.url) {
            return AttemptOutcome::Failed {
                kind: FailureKind::Blocked,
                message: error.to_string(),
            };
        }
        let sent = self
            .http
            .post(request.url)
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_ID, request.msg_id)
            .header(HEADER_TIMESTAMP, request.timestamp.to_string())
            .header(HEADER_SIGNATURE, request.signature)
            .body(request.body.to_owned())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return failed(&error),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut excerpt = Vec::new();
        // Bounded read; a body error after the status line does not change the outcome.
        while excerpt.len() < self.config.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.config.max_response_bytes - excerpt.len();
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        AttemptOutcome::Response {
            status,
            retry_after,
            excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
        }
    }
}

/// Classifies a transport error; the message names the cause without the URL (which may carry
/// a merchant's token in its query).
fn failed(error: &reqwest::Error) -> AttemptOutcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<UrlError>() {
            return AttemptOutcome::Failed {
                kind: FailureKind::Blocked,
                message: blocked.to_string(),
            };
        }
        source = e.source();
    }
    let (kind, what) = if error.is_timeout() {
        (FailureKind::Timeout, "timed out")
    } else if error.is_connect() {
        (FailureKind::Connect, "connection failed")
    } else {
        (FailureKind::Other, "request failed")
    };
    let cause = std::iter::successors(std::error::Error::source(error), |e| e.source())
        .last()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    AttemptOutcome::Failed {
        kind,
        message: format!("{what}{cause}"),
    }
}
