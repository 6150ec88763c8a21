//! Queue service and queue handles over the official `azure_storage_queue` clients.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, StatusCode};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use azure_storage_queue::models::{
    QueueClientGetPropertiesResultHeaders, QueueClientPeekMessagesOptions,
    QueueClientReceiveMessagesOptions, QueueClientSendMessageOptions, QueueMessage,
};
use azure_storage_queue::{QueueClient, QueueClientOptions};
use time::OffsetDateTime;
use url::Url;

use crate::shared_key::SharedKeyPolicy;
use crate::{MessageEncoding, QueueError, SasToken, StorageConnection};

/// The storage service version sent as `x-ms-version`. The SDK's default (2026-04-06) is newer
/// than older Azurite releases accept; 2025-11-05 is accepted by Azurite 3.35+ and by Azure, and
/// has every queue operation used here.
pub const API_VERSION: &str = "2025-11-05";

/// Largest message text the service stores (64 KiB, after encoding).
pub const MAX_MESSAGE_TEXT_BYTES: usize = 64 * 1024;

/// Most messages one receive call may return (service limit).
pub const MAX_RECEIVE_BATCH: u8 = 32;

/// Longest visibility timeout the service accepts (7 days).
const MAX_VISIBILITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A queue service account: makes [`Queue`] handles. Cheap to clone.
#[derive(Clone)]
pub struct QueueService {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    endpoint: Url,
    sas: Option<SasToken>,
    credential: Option<Arc<dyn TokenCredential>>,
    options: QueueClientOptions,
}

impl fmt::Debug for QueueService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueService")
            .field("endpoint", &self.inner.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl QueueService {
    /// A service for `connection` using [`API_VERSION`].
    pub fn new(connection: &StorageConnection) -> Result<Self, QueueError> {
        Self::with_version(connection, API_VERSION)
    }

    /// A service sending `x-ms-version: <version>`.
    pub fn with_version(connection: &StorageConnection, version: &str) -> Result<Self, QueueError> {
        let mut client_options = ClientOptions::default();
        let (sas, credential) = match connection {
            StorageConnection::SharedKey { account, key, .. } => {
                client_options
                    .per_try_policies
                    .push(Arc::new(SharedKeyPolicy::new(account.clone(), key.clone())));
                (None, None)
            }
            StorageConnection::Sas { sas, .. } => (Some(sas.clone()), None),
            StorageConnection::ManagedIdentity { client_id, .. } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                let credential = ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| QueueError::Credential(e.to_string()))?;
                (None, Some(credential as Arc<dyn TokenCredential>))
            }
        };
        let options = QueueClientOptions {
            client_options,
            version: version.to_owned(),
        };
        Ok(Self {
            inner: Arc::new(ServiceInner {
                endpoint: connection.endpoint().clone(),
                sas,
                credential,
                options,
            }),
        })
    }

    /// Resolves the binding connection `name` from settings (see
    /// [`StorageConnection::from_settings`]) and builds the service.
    pub fn from_settings(
        name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, QueueError> {
        Self::new(&StorageConnection::from_settings(name, lookup)?)
    }

    /// The queue service endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
    }

    /// A handle on queue `name` (no request is made).
    pub fn queue(&self, name: &str) -> Result<Queue, QueueError> {
        validate_queue_name(name)?;
        let mut url = self.inner.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| QueueError::InvalidQueueName(name.to_owned()))?
            .pop_if_empty()
            .push(name);
        if let Some(sas) = &self.inner.sas {
            url.set_query(Some(sas.as_query()));
        }
        let client = QueueClient::new(
            url,
            self.inner.credential.clone(),
            Some(self.inner.options.clone()),
        )?;
        Ok(Queue {
            name: name.to_owned(),
            client: Arc::new(client),
        })
    }
}

/// Azure's queue naming rule: 3-63 chars of `a-z0-9-`, alphanumeric at both ends, no `--`.
pub fn validate_queue_name(name: &str) -> Result<(), QueueError> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let valid = (3..=63).contains(&name.len())
        && valid_chars
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(QueueError::InvalidQueueName(name.to_owned()))
    }
}

/// Options of [`Queue::send`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SendOptions {
    /// Keep the new message invisible this long (rounded up to whole seconds).
    pub initial_visibility_delay: Option<Duration>,
    /// Message time to live (service default: 7 days).
    pub time_to_live: Option<Duration>,
}

/// The service's receipt for a sent message.
#[derive(Clone, Debug)]
pub struct SentMessage {
    /// Message id.
    pub id: String,
    /// Pop receipt (lets the sender delete or update it).
    pub pop_receipt: Option<String>,
    /// When the message was stored.
    pub insertion_time: Option<OffsetDateTime>,
}

/// A message taken from the queue (invisible to others until `next_visible_time`).
#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    /// Message id.
    pub id: String,
    /// Needed to delete or update the message; changes on every update.
    pub pop_receipt: String,
    /// How many times the message has been received, this time included.
    pub dequeue_count: u64,
    /// When the message was first stored.
    pub insertion_time: OffsetDateTime,
    /// When the service drops the message.
    pub expiration_time: OffsetDateTime,
    /// When the message becomes visible again unless deleted or updated.
    pub next_visible_time: OffsetDateTime,
    /// The stored text (base64 of the body under the host's default encoding).
    pub text: String,
}

impl ReceivedMessage {
    /// The body under `encoding`.
    pub fn body(&self, encoding: MessageEncoding) -> Result<Vec<u8>, QueueError> {
        encoding
            .decode(&self.text)
            .ok_or_else(|| QueueError::NotBase64 {
                id: self.id.clone(),
            })
    }
}

/// A message seen without taking it (tests, diagnostics).
#[derive(Clone, Debug)]
pub struct PeekedMessage {
    /// Message id.
    pub id: String,
    /// Receives so far.
    pub dequeue_count: u64,
    /// The stored text.
    pub text: String,
}

impl PeekedMessage {
    /// The body under `encoding`.
    pub fn body(&self, encoding: MessageEncoding) -> Result<Vec<u8>, QueueError> {
        encoding
            .decode(&self.text)
            .ok_or_else(|| QueueError::NotBase64 {
                id: self.id.clone(),
            })
    }
}

/// One queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    name: String,
    client: Arc<QueueClient>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the queue unless it exists; true when this call created it.
    pub async fn create_if_not_exists(&self) -> Result<bool, QueueError> {
        let response = self.client.create(None).await?;
        Ok(response.status() == StatusCode::Created)
    }

    /// Deletes the queue and its messages.
    pub async fn delete_queue(&self) -> Result<(), QueueError> {
        self.client.delete(None).await?;
        Ok(())
    }

    /// Deletes every message.
    pub async fn clear(&self) -> Result<(), QueueError> {
        self.client.clear(None).await?;
        Ok(())
    }

    /// Sends `body` stored under `encoding`.
    pub async fn send(
        &self,
        body: &[u8],
        encoding: MessageEncoding,
        options: SendOptions,
    ) -> Result<SentMessage, QueueError> {
        self.send_text(&encoding.encode(body), options).await
    }

    /// Sends `text` as the stored message text, unchanged.
    pub async fn send_text(
        &self,
        text: &str,
        options: SendOptions,
    ) -> Result<SentMessage, QueueError> {
        if text.len() > MAX_MESSAGE_TEXT_BYTES {
            return Err(QueueError::MessageTooLarge {
                encoded_bytes: text.len(),
            });
        }
        let message = QueueMessage {
            message_text: Some(text.to_owned()),
        };
        let send_options = QueueClientSendMessageOptions {
            visibility_timeout: options.initial_visibility_delay.map(whole_seconds),
            message_time_to_live: options.time_to_live.map(ttl_seconds),
            ..Default::default()
        };
        let sent = self
            .client
            .send_message(message.try_into()?, Some(send_options))
            .await?
            .into_model()?
            .into_message()?;
        Ok(SentMessage {
            id: sent
                .message_id
                .ok_or(QueueError::MissingField("MessageId"))?,
            pop_receipt: sent.pop_receipt,
            insertion_time: sent.insertion_time,
        })
    }

    /// Takes up to `max_messages` (1..=32) messages, invisible to others for `visibility_timeout`.
    pub async fn receive(
        &self,
        max_messages: u8,
        visibility_timeout: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(i32::from(max_messages.clamp(1, MAX_RECEIVE_BATCH))),
            visibility_timeout: Some(whole_seconds(visibility_timeout).max(1)),
            ..Default::default()
        };
        let items = self
            .client
            .receive_messages(Some(options))
            .await?
            .into_model()?
            .items;
        items
            .unwrap_or_default()
            .into_iter()
            .map(received)
            .collect()
    }

    /// Deletes a received message.
    pub async fn delete_message(&self, id: &str, pop_receipt: &str) -> Result<(), QueueError> {
        self.client.delete_message(id, pop_receipt, None).await?;
        Ok(())
    }

    /// Makes a received message visible again after `visibility` (0 = at once); returns the
    /// new pop receipt (the old one is void).
    pub async fn update_visibility(
        &self,
        id: &str,
        pop_receipt: &str,
        visibility: Duration,
    ) -> Result<String, QueueError> {
        let response = self
            .client
            .update_message(id, pop_receipt, whole_seconds(visibility), None)
            .await?;
        // The SDK exposes the new receipt only as the raw response header.
        response
            .headers()
            .get_optional_string(&azure_core::http::headers::HeaderName::from_static(
                "x-ms-popreceipt",
            ))
            .ok_or(QueueError::MissingField("x-ms-popreceipt"))
    }

    /// Up to `max_messages` (1..=32) visible messages, left in place.
    pub async fn peek(&self, max_messages: u8) -> Result<Vec<PeekedMessage>, QueueError> {
        let options = QueueClientPeekMessagesOptions {
            number_of_messages: Some(i32::from(max_messages.clamp(1, MAX_RECEIVE_BATCH))),
            ..Default::default()
        };
        let items = self
            .client
            .peek_messages(Some(options))
            .await?
            .into_model()?
            .items;
        items
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                Ok(PeekedMessage {
                    id: m.message_id.ok_or(QueueError::MissingField("MessageId"))?,
                    dequeue_count: m
                        .dequeue_count
                        .and_then(|c| u64::try_from(c).ok())
                        .unwrap_or(0),
                    text: m.message_text.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The service's approximate message count (visible and invisible).
    pub async fn approximate_count(&self) -> Result<u64, QueueError> {
        let response = self.client.get_properties(None).await?;
        let count = response.approximate_messages_count()?.unwrap_or(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

fn received(
    m: azure_storage_queue::models::ReceivedMessage,
) -> Result<ReceivedMessage, QueueError> {
    Ok(ReceivedMessage {
        id: m.message_id.ok_or(QueueError::MissingField("MessageId"))?,
        pop_receipt: m
            .pop_receipt
            .ok_or(QueueError::MissingField("PopReceipt"))?,
        dequeue_count: m
            .dequeue_count
            .and_then(|c| u64::try_from(c).ok())
            .ok_or(QueueError::MissingField("DequeueCount"))?,
        insertion_time: m
            .insertion_time
            .ok_or(QueueError::MissingField("InsertionTime"))?,
        expiration_time: m
            .expiration_time
            .ok_or(QueueError::MissingField("ExpirationTime"))?,
        next_visible_time: m
            .time_next_visible
            .ok_or(QueueError::MissingField("TimeNextVisible"))?,
        text: m.message_text.unwrap_or_default(),
    })
}

/// Whole seconds, rounded up (a retry delay is never shorter than configured), capped at the
/// service's 7-day maximum.
fn whole_seconds(d: Duration) -> i32 {
    let d = d.min(MAX_VISIBILITY);
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// TTL in seconds; the service takes -1 for "never expires", anything that large maps to it.
fn ttl_seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_azure_rules() {
        for ok in ["abc", "probes-poison", "payments-broadcast", "a1b"] {
            assert!(validate_queue_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Probes",
            "-abc",
            "abc-",
            "a--b",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(validate_queue_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_round_up_to_whole_seconds_and_cap_at_seven_days() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(2500)), 3);
        assert_eq!(
            whole_seconds(Duration::from_secs(30 * 24 * 3600)),
            7 * 24 * 3600
        );
    }

    #[test]
    fn queue_url_is_appended_to_path_style_and_host_style_endpoints() {
        let dev = QueueService::new(&StorageConnection::development().unwrap()).unwrap();
        let q = dev.queue("probes").unwrap();
        assert_eq!(
            q.client.url().as_str(),
            "http://127.0.0.1:10001/devstoreaccount1/probes"
        );

        let conn = StorageConnection::parse(
            "QueueEndpoint=https://acme.queue.core.windows.net/;SharedAccessSignature=sv=1&sig=x",
        )
        .unwrap();
        let q = QueueService::new(&conn).unwrap().queue("probes").unwrap();
        assert_eq!(
            q.client.url().as_str(),
            "https://acme.queue.core.windows.net/probes?sv=1&sig=x"
        );
    }
}
