//! Shared-key authorization for Azure Storage, as an azure_core pipeline policy.
//!
//! `azure_storage_queue` 1.x only authenticates with Entra ID tokens (upstream issue
//! Azure/azure-sdk-for-rust#2975). Azurite and connection-string deployments need the
//! account-key scheme described in "Authorize with Shared Key" (learn.microsoft.com,
//! rest/api/storageservices/authorize-with-shared-key). The policy is installed through
//! `ClientOptions::per_try_policies`: those run after the SDK's own per-try policies and just
//! before the transport, so the signature covers the final `x-ms-*` headers, and each retry is
//! re-dated and re-signed.

use std::fmt;
use std::sync::Arc;

use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use zeroize::Zeroizing;

use crate::QueueError;

/// A storage account key (decoded bytes). Never printed.
#[derive(Clone)]
pub struct AccountKey(Arc<Zeroizing<Vec<u8>>>);

impl AccountKey {
    /// Decodes the base64 key found in connection strings.
    pub fn from_base64(key: &str) -> Result<Self, QueueError> {
        let bytes = BASE64
            .decode(key.trim())
            .map_err(|_| QueueError::InvalidConnectionString("AccountKey is not base64".into()))?;
        if bytes.is_empty() {
            return Err(QueueError::InvalidConnectionString(
                "AccountKey is empty".into(),
            ));
        }
        Ok(Self(Arc::new(Zeroizing::new(bytes))))
    }

    /// base64(HMAC-SHA256(key, text)): the signature the service recomputes.
    pub fn sign(&self, text: &str) -> Result<String, QueueError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0)
            .map_err(|e| QueueError::Credential(format!("account key unusable for HMAC: {e}")))?;
        mac.update(text.as_bytes());
        Ok(BASE64.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(<redacted>)")
    }
}

/// Signs every request with `Authorization: SharedKey <account>:<signature>`.
#[derive(Clone)]
pub struct SharedKeyPolicy {
    account: String,
    key: AccountKey,
}

impl SharedKeyPolicy {
    /// A policy signing as `account` with `key`.
    pub fn new(account: impl Into<String>, key: AccountKey) -> Self {
        Self {
            account: account.into(),
            key,
        }
    }
}

impl fmt::Debug for SharedKeyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyPolicy")
            .field("account", &self.account)
            .field("key", &self.key)
            .finish()
    }
}

#[async_trait::async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let date = http_date(OffsetDateTime::now_utc());
        request.insert_header("x-ms-date", date);
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_str().to_owned()))
            .collect();
        let content_length = request.body().len().unwrap_or(0);
        let method = request.method().to_string();
        let text = string_to_sign(
            &method,
            request.url(),
            &headers,
            content_length,
            &self.account,
        );
        let signature = self.key.sign(&text).map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.to_string())
        })?;
        request.insert_header(
            "authorization",
            format!("SharedKey {}:{signature}", self.account),
        );
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// RFC 1123 date in GMT, the only form the service accepts in `x-ms-date`.
fn http_date(now: OffsetDateTime) -> String {
    // Rfc2822 prints "+0000"; the service wants the literal "GMT".
    let rfc2822 = now.format(&Rfc2822).unwrap_or_default();
    match rfc2822.strip_suffix("+0000") {
        Some(prefix) => format!("{prefix}GMT"),
        None => rfc2822,
    }
}

/// The Shared Key string-to-sign (service version 2015-02-21 and later, Blob/Queue/File):
/// verb, eleven standard headers (Content-Length empty when zero), canonicalized `x-ms-*`
/// headers, canonicalized resource. `headers` holds lowercase names as azure_core stores them.
pub fn string_to_sign(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    content_length: u64,
    account: &str,
) -> String {
    let header = |name: &str| -> &str {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    };
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut out = String::with_capacity(256);
    out.push_str(&method.to_ascii_uppercase());
    out.push('\n');
    for value in [
        header("content-encoding"),
        header("content-language"),
        length.as_str(),
        header("content-md5"),
        header("content-type"),
        header("date"),
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    ] {
        out.push_str(value);
        out.push('\n');
    }
    out.push_str(&canonicalized_headers(headers));
    out.push_str(&canonicalized_resource(url, account));
    out
}

fn canonicalized_headers(headers: &[(String, String)]) -> String {
    let mut ms: Vec<(String, &str)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .filter(|(k, _)| k.starts_with("x-ms-"))
        .collect();
    ms.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (name, value) in ms {
        out.push_str(name.trim_end());
        out.push(':');
        out.push_str(&collapse_whitespace(value));
        out.push('\n');
    }
    out
}

fn collapse_whitespace(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `/<account><path>` then one `\n<lowercase name>:<values sorted, comma-joined>` per query
/// parameter, names sorted. Path-style endpoints (Azurite) repeat the account: the service
/// signs the URL path as sent, e.g. `/devstoreaccount1/devstoreaccount1/queue`.
fn canonicalized_resource(url: &Url, account: &str) -> String {
    let mut out = format!("/{account}{}", url.path());
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in url.query_pairs() {
        let name = name.to_lowercase();
        match params.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value.into_owned()),
            None => params.push((name, vec![value.into_owned()])),
        }
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut values) in params {
        values.sort();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The "Get Container Metadata" example of "Authorize with Shared Key"
    /// (learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key).
    #[test]
    fn string_to_sign_matches_the_documented_get_container_metadata_example() {
        let url = Url::parse(
            "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata&timeout=20",
        )
        .unwrap();
        let headers = h(&[
            ("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT"),
            ("x-ms-version", "2015-02-21"),
        ]);
        let expected = "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\n\
                        x-ms-version:2015-02-21\n/myaccount/mycontainer\ncomp:metadata\n\
                        restype:container\ntimeout:20";
        assert_eq!(
            string_to_sign("GET", &url, &headers, 0, "myaccount"),
            expected
        );
    }

    /// The documented List Blobs canonicalized-resource example: repeated parameters are
    /// sorted and comma-joined under one lowercase name.
    #[test]
    fn canonicalized_resource_joins_repeated_parameters_sorted() {
        let url = Url::parse(
            "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=list\
             &include=snapshots&include=metadata&include=uncommittedblobs",
        )
        .unwrap();
        assert_eq!(
            canonicalized_resource(&url, "myaccount"),
            "/myaccount/mycontainer\ncomp:list\ninclude:metadata,snapshots,uncommittedblobs\n\
             restype:container"
        );
    }

    #[test]
    fn string_to_sign_includes_length_and_type_of_a_send_message_request() {
        let url = Url::parse("http://127.0.0.1:10001/devstoreaccount1/probes/messages").unwrap();
        let headers = h(&[
            ("content-type", "application/xml"),
            ("x-ms-version", "2025-11-05"),
            ("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT"),
            ("x-ms-client-request-id", "abc"),
            ("accept", "application/xml"),
        ]);
        let text = string_to_sign("post", &url, &headers, 77, "devstoreaccount1");
        assert_eq!(
            text,
            "POST\n\n\n77\n\napplication/xml\n\n\n\n\n\n\nx-ms-client-request-id:abc\n\
             x-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2025-11-05\n\
             /devstoreaccount1/devstoreaccount1/probes/messages"
        );
    }

    /// Expected value computed independently:
    /// `printf '%s' "$TEXT" | openssl dgst -sha256 -mac HMAC -macopt hexkey:<key hex> -binary | base64`.
    #[test]
    fn signature_is_base64_hmac_sha256_with_the_decoded_key() {
        let key = AccountKey::from_base64(crate::connection::DEV_ACCOUNT_KEY).unwrap();
        let text = "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\n\
                    x-ms-version:2015-02-21\n/myaccount/mycontainer\ncomp:metadata\n\
                    restype:container\ntimeout:20";
        assert_eq!(key.sign(text).unwrap(), SIGNATURE_OF_DOC_EXAMPLE);
    }

    const SIGNATURE_OF_DOC_EXAMPLE: &str = "1u9lui2jDxj0+fpbHjQ5m5NnastJRSYM+PSmfi8TXx4=";

    #[test]
    fn http_date_uses_gmt_suffix() {
        let t = time::macros::datetime!(2015-06-26 23:39:12 UTC);
        assert_eq!(http_date(t), "Fri, 26 Jun 2015 23:39:12 GMT");
    }

    #[test]
    fn debug_output_never_contains_the_key() {
        let key = AccountKey::from_base64(crate::connection::DEV_ACCOUNT_KEY).unwrap();
        let policy = SharedKeyPolicy::new("devstoreaccount1", key);
        let printed = format!("{policy:?}");
        assert!(printed.contains("redacted"));
        assert!(!printed.contains("Eby8"));
    }
}
