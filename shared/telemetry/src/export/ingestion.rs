//! Application Insights: the connection string, how ingestion is authenticated, and the HTTP
//! client the exporter posts its envelopes with.
//!
//! The exporter crate leaves the HTTP client to the caller. The SDK's batch processor and
//! metric reader poll the export futures on their own threads, outside any tokio context, so
//! [`IngestionClient`] runs each request as a task of the app's runtime with the app's reqwest
//! (rustls) client: no second runtime, no second TLS stack.
//!
//! A resource with local authentication disabled (as the Bicep deploys it) refuses
//! instrumentation-key-only ingestion; then each request carries an Entra ID token of the
//! Function App's managed identity, as `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`
//! (`Authorization=AAD;ClientId=<id>`) tells the Functions host.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use bytes::Bytes;
use opentelemetry_application_insights::{Exporter, HttpClient};

/// The audience of Azure Monitor ingestion tokens.
const INGESTION_SCOPE: &str = "https://monitor.azure.com//.default";
/// One upload; the exporter retries failed uploads (with backoff, for up to ~35 s in all).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The track endpoint answers a JSON summary with one entry per refused item (a few MB at
/// most for a full batch); the bound is opentelemetry-http's for its own clients.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Where and how to send to Application Insights. `Debug` leaves the connection string out:
/// its instrumentation key lets anyone write into the resource where local auth is on.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureMonitor {
    connection_string: String,
    auth: IngestionAuth,
    /// `host:port` of an `http://` loopback ingestion endpoint (a local double), see
    /// [`plain_loopback`].
    plain_loopback: Option<String>,
}

/// How ingestion requests prove who sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestionAuth {
    /// The instrumentation key of the connection string only.
    InstrumentationKey,
    /// An Entra ID token of the managed identity (user-assigned when `client_id` is set).
    ManagedIdentity { client_id: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum AzureMonitorError {
    /// The parser's message; it never repeats the value.
    #[error("connection string: {0}")]
    ConnectionString(String),
    #[error("authentication string: {0}")]
    Authentication(&'static str),
    #[error("managed identity credential: {0}")]
    Credential(#[source] azure_core::Error),
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("the exporter must be started inside the tokio runtime it sends on")]
    NoRuntime,
}

impl AzureMonitor {
    /// `connection_string` as the portal gives it (`InstrumentationKey=…;IngestionEndpoint=…`);
    /// `authentication` in the Functions host's format: `Authorization=AAD[;ClientId=<id>]`.
    pub fn new(
        connection_string: &str,
        authentication: Option<&str>,
    ) -> Result<AzureMonitor, AzureMonitorError> {
        Exporter::new_from_connection_string(connection_string, ())
            .map_err(|error| AzureMonitorError::ConnectionString(error.to_string()))?;
        // The parser takes `InstrumentationKey=` as a key; ingestion would refuse every item.
        let has_key = connection_string.split(';').any(|pair| {
            pair.split_once('=').is_some_and(|(key, value)| {
                key.trim().eq_ignore_ascii_case("instrumentationkey") && !value.trim().is_empty()
            })
        });
        if !has_key {
            return Err(AzureMonitorError::ConnectionString(
                "missing instrumentation key".to_owned(),
            ));
        }
        let auth = match authentication.map(str::trim).filter(|a| !a.is_empty()) {
            None => IngestionAuth::InstrumentationKey,
            Some(text) => parse_authentication(text)?,
        };
        Ok(AzureMonitor {
            connection_string: connection_string.to_owned(),
            auth,
            plain_loopback: plain_loopback(connection_string),
        })
    }

    pub fn auth(&self) -> &IngestionAuth {
        &self.auth
    }

    /// The exporter for both signals (it is `Clone`; clones share the client).
    pub(super) fn exporter(&self) -> Result<Exporter<IngestionClient>, AzureMonitorError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| AzureMonitorError::NoRuntime)?;
        let credential: Option<Arc<dyn TokenCredential>> = match &self.auth {
            IngestionAuth::InstrumentationKey => None,
            IngestionAuth::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                Some(
                    ManagedIdentityCredential::new(Some(options))
                        .map_err(AzureMonitorError::Credential)?,
                )
            }
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(AzureMonitorError::Client)?;
        let client = IngestionClient {
            http,
            runtime,
            credential,
            plain_loopback: self.plain_loopback.clone(),
        };
        Exporter::new_from_connection_string(&self.connection_string, client)
            .map_err(|error| AzureMonitorError::ConnectionString(error.to_string()))
    }
}

impl fmt::Debug for AzureMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureMonitor")
            .field("connection_string", &"<redacted>")
            .field("auth", &self.auth)
            .finish()
    }
}

/// The exporter turns every ingestion endpoint into `https://`. An `http://` endpoint on the
/// loopback interface (a test double, a local proxy) is kept as written: that traffic never
/// leaves the machine. Any other host is always reached over TLS.
fn plain_loopback(connection_string: &str) -> Option<String> {
    let endpoint = connection_string.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("ingestionendpoint")
            .then(|| value.trim())
    })?;
    let url = url::Url::parse(endpoint).ok()?;
    let loopback = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
    };
    if url.scheme() != "http" || !loopback {
        return None;
    }
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

/// `Authorization=AAD` with an optional `ClientId=<id>`; keys are case-insensitive.
fn parse_authentication(text: &str) -> Result<IngestionAuth, AzureMonitorError> {
    let mut aad = false;
    let mut client_id = None;
    for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or(AzureMonitorError::Authentication(
                "expected key=value pairs",
            ))?;
        match key.trim().to_ascii_lowercase().as_str() {
            "authorization" if value.trim().eq_ignore_ascii_case("aad") => aad = true,
            "authorization" => {
                return Err(AzureMonitorError::Authentication(
                    "only Authorization=AAD is supported",
                ));
            }
            "clientid" => client_id = Some(value.trim().to_owned()),
            _ => return Err(AzureMonitorError::Authentication("unknown key")),
        }
    }
    if !aad {
        return Err(AzureMonitorError::Authentication(
            "Authorization=AAD is missing",
        ));
    }
    Ok(IngestionAuth::ManagedIdentity { client_id })
}

/// The exporter's HTTP client (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct IngestionClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    credential: Option<Arc<dyn TokenCredential>>,
    plain_loopback: Option<String>,
}

type HttpError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[async_trait]
impl HttpClient for IngestionClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let client = self.clone();
        self.runtime
            .spawn(async move { client.send(request).await })
            .await?
    }
}

impl IngestionClient {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut url = parts.uri.to_string();
        if let Some(authority) = &self.plain_loopback
            && let Some(rest) = url.strip_prefix("https://")
            && rest.split('/').next() == Some(authority.as_str())
        {
            url = format!("http://{rest}");
        }
        let mut builder = self
            .http
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body);
        if let Some(credential) = &self.credential {
            let token = credential.get_token(&[INGESTION_SCOPE], None).await?;
            builder = builder.bearer_auth(token.token.secret());
        }
        let mut response = builder.send().await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err("ingestion response larger than expected".into());
            }
            body.extend_from_slice(&chunk);
        }
        let mut answer = http::Response::builder()
            .status(status)
            .body(Bytes::from(body))?;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECTION: &str = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/";

    #[test]
    fn the_host_authentication_string_selects_the_managed_identity() {
        let user = AzureMonitor::new(CONNECTION, Some("ClientId=abc;Authorization=AAD")).unwrap();
        assert_eq!(
            user.auth(),
            &IngestionAuth::ManagedIdentity {
                client_id: Some("abc".into())
            }
        );
        let system = AzureMonitor::new(CONNECTION, Some("authorization=aad")).unwrap();
        assert_eq!(
            system.auth(),
            &IngestionAuth::ManagedIdentity { client_id: None }
        );
        let key = AzureMonitor::new(CONNECTION, None).unwrap();
        assert_eq!(key.auth(), &IngestionAuth::InstrumentationKey);
        assert!(AzureMonitor::new(CONNECTION, Some("ClientId=abc")).is_err());
        assert!(AzureMonitor::new(CONNECTION, Some("Authorization=Basic")).is_err());
    }

    #[test]
    fn a_bad_connection_string_is_refused_without_repeating_it() {
        let error = AzureMonitor::new("IngestionEndpoint=https://x.example/", None).unwrap_err();
        assert!(!error.to_string().contains("x.example"), "{error}");
        let error = AzureMonitor::new(
            "InstrumentationKey= ;IngestionEndpoint=https://x.example/",
            None,
        )
        .unwrap_err();
        assert!(!error.to_string().contains("x.example"), "{error}");
        let error = AzureMonitor::new("not a connection string", None).unwrap_err();
        assert!(!error.to_string().contains("not a connection"), "{error}");
    }

    #[test]
    fn debug_output_leaves_the_instrumentation_key_out() {
        let config = AzureMonitor::new(CONNECTION, None).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("00000000-0000"), "{debug}");
        assert!(!debug.contains("westeurope"), "{debug}");
    }

    #[test]
    fn only_a_loopback_endpoint_may_stay_plain_http() {
        let of = |endpoint: &str| {
            plain_loopback(&format!(
                "InstrumentationKey=k;IngestionEndpoint={endpoint}"
            ))
        };
        assert_eq!(of("http://127.0.0.1:4000/"), Some("127.0.0.1:4000".into()));
        assert_eq!(of("http://localhost:4000"), Some("localhost:4000".into()));
        assert_eq!(of("http://[::1]:4000/"), Some("[::1]:4000".into()));
        assert_eq!(of("http://10.0.0.4:4000/"), None);
        assert_eq!(of("http://in.applicationinsights.azure.com/"), None);
        assert_eq!(of("https://127.0.0.1:4000/"), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_polled_outside_the_runtime_runs_on_it_with_the_token() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !String::from_utf8_lossy(&request).contains("\r\n\r\nbody") {
                let n = socket.read(&mut buffer).await.unwrap();
                assert!(n > 0, "connection closed early");
                request.extend_from_slice(&buffer[..n]);
            }
            let answer = r#"{"itemsReceived":1,"itemsAccepted":1,"errors":[]}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            socket.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        let client = IngestionClient {
            http: reqwest::Client::new(),
            runtime: tokio::runtime::Handle::current(),
            credential: Some(Arc::new(FixedToken)),
            plain_loopback: Some(address.to_string()),
        };
        let request = http::Request::post(format!("https://{address}/v2/track"))
            .body(Bytes::from_static(b"body"))
            .unwrap();
        // The SDK's export thread: a plain thread polling the future with no tokio context.
        let response = std::thread::spawn(move || {
            futures_lite_block_on(async move { client.send_bytes(request).await })
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.body().starts_with(b"{\"itemsReceived\""));
        let seen = server.await.unwrap().to_ascii_lowercase();
        assert!(seen.contains("authorization: bearer token-1"), "{seen}");
    }

    /// Polls a future on the current (non-runtime) thread, as the SDK's export threads do.
    fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Wake, Waker};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            match future.as_mut().poll(&mut cx) {
                Poll::Ready(output) => return output,
                Poll::Pending => std::thread::park(),
            }
        }
    }

    #[derive(Debug)]
    struct FixedToken;

    #[async_trait]
    impl TokenCredential for FixedToken {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            assert_eq!(scopes, [INGESTION_SCOPE]);
            Ok(azure_core::credentials::AccessToken::new(
                "token-1",
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }
}
