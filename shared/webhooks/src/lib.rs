//! meshpay-webhooks: merchant webhooks per the Standard Webhooks spec (v1.0.0).
//!
//! - [`signing`]: `webhook-id` / `webhook-timestamp` / `webhook-signature: v1,<base64
//!   HMAC-SHA256 of "{id}.{timestamp}.{body}">`, secrets `whsec_<base64>`.
//! - [`cipher`]: endpoint secrets sealed at rest (AES-256-GCM, key from configuration): they
//!   must be recoverable to sign, unlike API keys, which are only hashed.
//! - [`url_policy`]: the SSRF guard (https only and public addresses only in production).
//! - [`client`]: the delivery client (no redirects, short timeouts, bounded reads, the policy
//!   enforced at connection time).
//! - [`retry`]: the retry schedule (about 24 h with jitter, then failed).
//! - [`events`]: event types and the thin JSON body.
//! - [`dispatch`]: the outbox-driven dispatcher run by the `notify` function.
//! - [`config`]: settings and the services the functions share.
//!
//! The database side (endpoints, events, deliveries, attempts) is `meshpay_store::webhooks`.

pub mod cipher;
pub mod client;
pub mod config;
pub mod dispatch;
pub mod events;
pub mod retry;
pub mod signing;
pub mod url_policy;

pub use cipher::{CipherError, SecretCipher};
pub use client::{AttemptOutcome, ClientConfig, DeliveryClient, DeliveryRequest, FailureKind};
pub use config::{ConfigError, WebhookServices, WebhooksConfig};
pub use dispatch::{DispatchError, DispatchLimits, Dispatcher, RunReport};
pub use events::{EVENT_TYPES, EventTypeError, validate_event_types};
pub use retry::RetrySchedule;
pub use signing::{SecretError, WebhookSecret};
pub use url_policy::{UrlError, UrlPolicy, is_public_ip};
