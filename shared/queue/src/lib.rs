//! meshpay-queue: Azure Storage queues for meshpay and devhost.
//!
//! A thin layer over the official `azure_storage_queue` 1.x crate adding what it lacks:
//! connection strings (`UseDevelopmentStorage=true`, account key, SAS) and identity-based
//! settings resolved like the Functions host does ([`StorageConnection`]), shared-key request
//! signing ([`SharedKeyPolicy`], upstream Azure/azure-sdk-for-rust#2975), the host's
//! `messageEncoding` ([`MessageEncoding`]) and typed errors ([`QueueError`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), meshpay_queue::QueueError> {
//! use meshpay_queue::{MessageEncoding, QueueService, SendOptions};
//! let service = QueueService::from_settings("AzureWebJobsStorage", |k| std::env::var(k).ok())?;
//! let probes = service.queue("probes")?;
//! probes.create_if_not_exists().await?;
//! probes.send(br#"{"hello":1}"#, MessageEncoding::Base64, SendOptions::default()).await?;
//! # Ok(()) }
//! ```

mod client;
mod connection;
mod encoding;
mod error;
mod shared_key;

pub use client::{
    API_VERSION, MAX_MESSAGE_TEXT_BYTES, MAX_RECEIVE_BATCH, PeekedMessage, Queue, QueueService,
    ReceivedMessage, SendOptions, SentMessage, validate_queue_name,
};
pub use connection::{
    DEFAULT_CONNECTION, DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME, DEV_QUEUE_ENDPOINT, SasToken,
    StorageConnection,
};
pub use encoding::MessageEncoding;
pub use error::QueueError;
pub use shared_key::{AccountKey, SharedKeyPolicy, string_to_sign};
