//! Storage connections as the Functions host finds them: a connection string in the setting
//! named by a binding's `connection` (default `AzureWebJobsStorage`), or an identity-based
//! section `<name>__queueServiceUri` / `<name>__accountName` (+ `__clientId`) authenticated
//! with a managed identity.

use std::fmt;

use url::Url;

use crate::QueueError;
use crate::shared_key::AccountKey;

/// Azurite's development account (public, published in Azurite's source; emulator only).
pub const DEV_ACCOUNT_NAME: &str = "devstoreaccount1";
/// Azurite's well-known development key (public; emulator only).
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default queue endpoint (`UseDevelopmentStorage=true`).
pub const DEV_QUEUE_ENDPOINT: &str = "http://127.0.0.1:10001/devstoreaccount1";
/// The setting the host uses when a binding names no `connection`.
pub const DEFAULT_CONNECTION: &str = "AzureWebJobsStorage";

/// A SAS token (query string without `?`). Never printed.
#[derive(Clone)]
pub struct SasToken(String);

impl SasToken {
    /// The token text, to append to request URLs.
    pub fn as_query(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SasToken(<redacted>)")
    }
}

/// Where the queue service is and how to authenticate to it.
#[derive(Clone, Debug)]
pub enum StorageConnection {
    /// Account name + key (connection strings, Azurite).
    SharedKey {
        /// Queue service endpoint without trailing slash.
        endpoint: Url,
        /// Storage account name (signed into every request).
        account: String,
        /// The account key.
        key: AccountKey,
    },
    /// A shared access signature from `SharedAccessSignature=`.
    Sas {
        /// Queue service endpoint without trailing slash.
        endpoint: Url,
        /// The token.
        sas: SasToken,
    },
    /// Entra ID through the app's managed identity (production in Azure).
    ManagedIdentity {
        /// Queue service endpoint without trailing slash.
        endpoint: Url,
        /// Client id of a user-assigned identity; `None` = system-assigned.
        client_id: Option<String>,
    },
}

impl StorageConnection {
    /// The queue service endpoint (no trailing slash).
    pub fn endpoint(&self) -> &Url {
        match self {
            Self::SharedKey { endpoint, .. }
            | Self::Sas { endpoint, .. }
            | Self::ManagedIdentity { endpoint, .. } => endpoint,
        }
    }

    /// Azurite with its default endpoint (`UseDevelopmentStorage=true`).
    pub fn development() -> Result<Self, QueueError> {
        Ok(Self::SharedKey {
            endpoint: parse_endpoint(DEV_QUEUE_ENDPOINT)?,
            account: DEV_ACCOUNT_NAME.to_owned(),
            key: AccountKey::from_base64(DEV_ACCOUNT_KEY)?,
        })
    }

    /// Parses `UseDevelopmentStorage=true` or
    /// `DefaultEndpointsProtocol=..;AccountName=..;AccountKey=..;QueueEndpoint=..;EndpointSuffix=..`
    /// (or `SharedAccessSignature=` instead of `AccountKey`). Keys are case-insensitive.
    pub fn parse(connection_string: &str) -> Result<Self, QueueError> {
        let parts = split_pairs(connection_string)?;
        let get = |key: &str| {
            parts
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        if get("UseDevelopmentStorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Self::development();
        }
        let account = get("AccountName");
        let endpoint = match (get("QueueEndpoint"), account) {
            (Some(endpoint), _) => parse_endpoint(endpoint)?,
            (None, Some(account)) => {
                let protocol = get("DefaultEndpointsProtocol").unwrap_or("https");
                let suffix = get("EndpointSuffix").unwrap_or("core.windows.net");
                parse_endpoint(&format!("{protocol}://{account}.queue.{suffix}"))?
            }
            (None, None) => return Err(invalid("neither QueueEndpoint nor AccountName is set")),
        };
        if let Some(key) = get("AccountKey") {
            let account = account.ok_or_else(|| invalid("AccountKey without AccountName"))?;
            return Ok(Self::SharedKey {
                endpoint,
                account: account.to_owned(),
                key: AccountKey::from_base64(key)?,
            });
        }
        if let Some(sas) = get("SharedAccessSignature") {
            let sas = SasToken(sas.trim_start_matches('?').to_owned());
            return Ok(Self::Sas { endpoint, sas });
        }
        Err(invalid(
            "neither AccountKey nor SharedAccessSignature is set",
        ))
    }

    /// Resolves the binding connection `name` (empty = `AzureWebJobsStorage`) the way the host
    /// does: the setting `name`, then `AzureWebJobs<name>`, as a connection string; else the
    /// identity-based section `name__queueServiceUri` or `name__accountName`.
    pub fn from_settings(
        name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, QueueError> {
        let name = if name.trim().is_empty() {
            DEFAULT_CONNECTION
        } else {
            name.trim()
        };
        let non_empty = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        if let Some(value) = non_empty(name).or_else(|| non_empty(&format!("AzureWebJobs{name}"))) {
            return Self::parse(&value);
        }
        let endpoint = match (
            non_empty(&format!("{name}__queueServiceUri")),
            non_empty(&format!("{name}__accountName")),
        ) {
            (Some(uri), _) => parse_endpoint(&uri)?,
            (None, Some(account)) => {
                parse_endpoint(&format!("https://{account}.queue.core.windows.net"))?
            }
            (None, None) => {
                return Err(QueueError::MissingConnection {
                    name: name.to_owned(),
                });
            }
        };
        let client_id = non_empty(&format!("{name}__clientId"));
        Ok(Self::ManagedIdentity {
            endpoint,
            client_id,
        })
    }
}

fn invalid(reason: &str) -> QueueError {
    QueueError::InvalidConnectionString(reason.to_owned())
}

/// `a=b;c=d` with `=` allowed inside values (base64 keys end in `=`).
fn split_pairs(text: &str) -> Result<Vec<(String, String)>, QueueError> {
    let mut pairs = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| invalid("expected `Key=Value` pairs separated by `;`"))?;
        pairs.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    if pairs.is_empty() {
        return Err(invalid("empty"));
    }
    Ok(pairs)
}

/// The SDK appends paths to the endpoint, so it must be a base URL without trailing slash.
fn parse_endpoint(text: &str) -> Result<Url, QueueError> {
    let trimmed = text.trim().trim_end_matches('/');
    let url = Url::parse(trimmed)
        .map_err(|e| invalid(&format!("queue endpoint `{trimmed}` is not a URL: {e}")))?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(&format!(
            "queue endpoint `{trimmed}` is not an http(s) base URL"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn development_storage_points_at_local_azurite() {
        let conn = StorageConnection::parse("UseDevelopmentStorage=true").unwrap();
        let StorageConnection::SharedKey {
            endpoint, account, ..
        } = conn
        else {
            panic!("expected shared key");
        };
        assert_eq!(endpoint.as_str(), "http://127.0.0.1:10001/devstoreaccount1");
        assert_eq!(account, "devstoreaccount1");
    }

    #[test]
    fn explicit_queue_endpoint_wins_and_loses_its_trailing_slash() {
        let conn = StorageConnection::parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_ACCOUNT_KEY};\
             QueueEndpoint=http://127.0.0.1:41234/devstoreaccount1/;"
        ))
        .unwrap();
        assert_eq!(
            conn.endpoint().as_str(),
            "http://127.0.0.1:41234/devstoreaccount1"
        );
    }

    #[test]
    fn endpoint_is_built_from_protocol_account_and_suffix() {
        let conn = StorageConnection::parse(&format!(
            "defaultendpointsprotocol=https;accountname=acme;accountkey={DEV_ACCOUNT_KEY};\
             endpointsuffix=core.chinacloudapi.cn"
        ))
        .unwrap();
        assert_eq!(
            conn.endpoint().as_str(),
            "https://acme.queue.core.chinacloudapi.cn/"
        );
    }

    #[test]
    fn sas_connection_string_keeps_the_token_without_question_mark() {
        let conn = StorageConnection::parse(
            "QueueEndpoint=https://acme.queue.core.windows.net;SharedAccessSignature=?sv=2025&sig=x",
        )
        .unwrap();
        let StorageConnection::Sas { sas, .. } = conn else {
            panic!("expected sas")
        };
        assert_eq!(sas.as_query(), "sv=2025&sig=x");
    }

    #[test]
    fn garbage_and_keyless_strings_are_rejected() {
        assert!(StorageConnection::parse("not a connection string").is_err());
        assert!(StorageConnection::parse("AccountName=acme").is_err());
        assert!(StorageConnection::parse("AccountName=acme;AccountKey=%%%").is_err());
    }

    #[test]
    fn debug_of_a_connection_hides_key_and_sas() {
        let conn =
            StorageConnection::parse(&format!("AccountName=acme;AccountKey={DEV_ACCOUNT_KEY}"))
                .unwrap();
        let printed = format!("{conn:?}");
        assert!(!printed.contains("Eby8"), "{printed}");
        let sas = StorageConnection::parse(
            "QueueEndpoint=https://a.queue.core.windows.net;SharedAccessSignature=sig=SECRET",
        )
        .unwrap();
        assert!(!format!("{sas:?}").contains("SECRET"));
    }

    fn settings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_connection_name_means_azure_web_jobs_storage() {
        let s = settings(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true")]);
        let conn = StorageConnection::from_settings("", |k| s.get(k).cloned()).unwrap();
        assert_eq!(conn.endpoint().as_str(), DEV_QUEUE_ENDPOINT);
    }

    #[test]
    fn connection_name_falls_back_to_azure_web_jobs_prefix() {
        let s = settings(&[("AzureWebJobsOrders", "UseDevelopmentStorage=true")]);
        assert!(StorageConnection::from_settings("Orders", |k| s.get(k).cloned()).is_ok());
    }

    #[test]
    fn identity_section_yields_managed_identity_with_client_id() {
        let s = settings(&[
            (
                "AzureWebJobsStorage__queueServiceUri",
                "https://acme.queue.core.windows.net/",
            ),
            ("AzureWebJobsStorage__clientId", "1111"),
        ]);
        let conn =
            StorageConnection::from_settings("AzureWebJobsStorage", |k| s.get(k).cloned()).unwrap();
        let StorageConnection::ManagedIdentity {
            endpoint,
            client_id,
        } = conn
        else {
            panic!("expected managed identity");
        };
        assert_eq!(endpoint.as_str(), "https://acme.queue.core.windows.net/");
        assert_eq!(client_id.as_deref(), Some("1111"));
    }

    #[test]
    fn account_name_section_builds_the_public_endpoint() {
        let s = settings(&[("AzureWebJobsStorage__accountName", "acme")]);
        let conn =
            StorageConnection::from_settings("AzureWebJobsStorage", |k| s.get(k).cloned()).unwrap();
        assert_eq!(
            conn.endpoint().as_str(),
            "https://acme.queue.core.windows.net/"
        );
    }

    #[test]
    fn missing_connection_names_the_setting() {
        let err = StorageConnection::from_settings("Nope", |_| None).unwrap_err();
        assert!(err.to_string().contains("`Nope`"), "{err}");
    }
}
