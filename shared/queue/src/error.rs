//! The one error type of this crate.

/// Why a queue operation or a connection setup failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The connection string could not be understood (the message never contains the key).
    #[error("invalid storage connection string: {0}")]
    InvalidConnectionString(String),

    /// No setting named like the binding's `connection` (nor an identity-based section) exists.
    #[error(
        "storage connection `{name}` not found: set `{name}` to a connection string or \
         `{name}__queueServiceUri` / `{name}__accountName` for managed identity"
    )]
    MissingConnection {
        /// The connection (setting) name that was looked up.
        name: String,
    },

    /// A queue name Azure Storage would reject (3-63 chars, lowercase letters, digits, single dashes).
    #[error("invalid queue name `{0}`")]
    InvalidQueueName(String),

    /// A message body larger than the service accepts.
    #[error("message of {encoded_bytes} bytes (encoded) exceeds the 64 KiB queue message limit")]
    MessageTooLarge {
        /// Size after encoding.
        encoded_bytes: usize,
    },

    /// A received message whose text is not valid for the configured encoding.
    #[error("message {id} is not valid base64 (messageEncoding is base64)")]
    NotBase64 {
        /// Message id.
        id: String,
    },

    /// The service answered without a field this crate relies on.
    #[error("queue service response lacks `{0}`")]
    MissingField(&'static str),

    /// The account key or the managed identity credential could not be set up.
    #[error("storage credential: {0}")]
    Credential(String),

    /// Transport or service error from the Azure SDK (status in [`QueueError::status`]).
    #[error(transparent)]
    Service(#[from] azure_core::Error),
}

impl QueueError {
    /// The HTTP status the service answered with, when the error is a service response.
    pub fn status(&self) -> Option<u16> {
        match self {
            QueueError::Service(e) => e.http_status().map(u16::from),
            _ => None,
        }
    }

    /// True for "the queue or message does not exist" (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}
