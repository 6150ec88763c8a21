//! Client side of the Key Vault double: an azure_core transport that sends
//! `https://<vault>.vault.azure.net` requests to the double over plain http (so the client
//! keeps its real URL, challenge check included), and a fake Entra ID credential.

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{AsyncRawResponse, HttpClient, Request, Transport, new_http_client};
use azure_core::time::{Duration, OffsetDateTime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::double::TOKEN;

/// Rewrites Key Vault requests to `http://<double>`; refuses every other host, so a test can
/// never reach a real Azure endpoint.
#[derive(Debug)]
pub struct RedirectToDouble {
    double: SocketAddr,
    inner: Arc<dyn HttpClient>,
}

impl RedirectToDouble {
    pub fn transport(double: SocketAddr) -> Transport {
        Transport::new(Arc::new(Self {
            double,
            inner: new_http_client(None),
        }))
    }
}

#[async_trait]
impl HttpClient for RedirectToDouble {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let host = request.url().host_str().unwrap_or_default();
        if !host.ends_with(".vault.azure.net") {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                format!("test transport refuses {host}"),
            ));
        }
        let mut redirected = request.clone();
        let url = redirected.url_mut();
        url.set_scheme("http").map_err(|()| other("set scheme"))?;
        url.set_host(Some(&self.double.ip().to_string()))
            .map_err(|_| other("set host"))?;
        url.set_port(Some(self.double.port()))
            .map_err(|()| other("set port"))?;
        self.inner.execute_request(&redirected).await
    }
}

fn other(what: &str) -> azure_core::Error {
    azure_core::Error::with_message(azure_core::error::ErrorKind::Other, what.to_owned())
}

/// Hands out the double's token for the Key Vault scope and counts how often it was asked.
#[derive(Debug, Default)]
pub struct FakeCredential {
    calls: AtomicUsize,
}

impl FakeCredential {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if scopes != ["https://vault.azure.net/.default"] {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!("unexpected scopes {scopes:?}"),
            ));
        }
        Ok(AccessToken {
            token: Secret::new(TOKEN),
            expires_on: OffsetDateTime::now_utc() + Duration::hours(1),
        })
    }
}
