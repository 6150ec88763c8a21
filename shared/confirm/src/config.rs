//! Tunables of the confirm, settle, reconcile and chain-webhook functions, parsed once at start
//! from the settings below (the binary supplies them: [`ConfirmConfig::from_lookup`]).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MESHPAY_CONFIRM_POLL_INTERVAL_MS` | 2000 | longest pause between chain checks inside one invocation |
//! | `MESHPAY_CONFIRM_POLL_MIN_MS` | 250 | shortest pause: a transaction's pause is a quarter of its age between the two (`cadence`) |
//! | `MESHPAY_CONFIRM_HEAD_POLL_MS` | 100 | shortest pause between head reads of the one shared reader per chain that runs while chains wait, to check a transaction the moment its final block appears (`wake`); the reader paces itself to an eighth of the chain's measured block time, at most 2 s; 0: off |
//! | `MESHPAY_CONFIRM_INVOCATION_WAIT_MS` | 20000 | longest one confirm invocation keeps checking before it re-enqueues itself |
//! | `MESHPAY_CONFIRM_MAX_WAIT_SECS` | 3600 | a polling chain gives up (reason recorded) after this; reconcile starts a new one |
//! | `MESHPAY_RECONCILE_STALE_SECS` | 300 | a payment waiting this long for its next step is nudged (once per this period) |
//! | `MESHPAY_RECONCILE_BATCH` | 200 | most payments nudged per step and run |
//! | `MESHPAY_RECONCILE_NONCES_PER_WALLET` | 200 | most nonces of one hot wallet the books walk per run (the cursor carries on) |
//! | `MESHPAY_RECONCILE_SETTLED_WINDOW_BLOCKS` | 7200 | settled payments included this many blocks below the head are re-checked |
//! | `MESHPAY_RECONCILE_SETTLED_SAMPLE` | 20 | mined payments (and as many sweeps) re-checked per chain and run: any the last check found reorged first, then the least recently checked |
//! | `MESHPAY_OUTBOX_GRACE_SECS` | 60 | an undelivered outbox queue message older than this is dispatched by reconcile |
//! | `MESHPAY_OUTBOX_RETENTION_SECS` | 604800 | dispatched outbox rows are pruned after this |
//! | `MESHPAY_CHAIN_WEBHOOK_KEY` | unset | chain webhook signing key (unset: every webhook is refused) |
//! | `MESHPAY_CHAIN_WEBHOOK_TOLERANCE_SECS` | 300 | Standard Webhooks timestamp tolerance; Alchemy `createdAt` age limit |

use std::time::Duration;

use crate::webhook::WebhookKey;

pub const POLL_INTERVAL_ENV: &str = "MESHPAY_CONFIRM_POLL_INTERVAL_MS";
pub const POLL_MIN_ENV: &str = "MESHPAY_CONFIRM_POLL_MIN_MS";
pub const HEAD_POLL_ENV: &str = "MESHPAY_CONFIRM_HEAD_POLL_MS";
pub const INVOCATION_WAIT_ENV: &str = "MESHPAY_CONFIRM_INVOCATION_WAIT_MS";
pub const MAX_WAIT_ENV: &str = "MESHPAY_CONFIRM_MAX_WAIT_SECS";
pub const RECONCILE_STALE_ENV: &str = "MESHPAY_RECONCILE_STALE_SECS";
pub const RECONCILE_BATCH_ENV: &str = "MESHPAY_RECONCILE_BATCH";
pub const NONCES_PER_WALLET_ENV: &str = "MESHPAY_RECONCILE_NONCES_PER_WALLET";
pub const SETTLED_WINDOW_ENV: &str = "MESHPAY_RECONCILE_SETTLED_WINDOW_BLOCKS";
pub const SETTLED_SAMPLE_ENV: &str = "MESHPAY_RECONCILE_SETTLED_SAMPLE";
pub const OUTBOX_GRACE_ENV: &str = "MESHPAY_OUTBOX_GRACE_SECS";
pub const OUTBOX_RETENTION_ENV: &str = "MESHPAY_OUTBOX_RETENTION_SECS";
pub const WEBHOOK_KEY_ENV: &str = "MESHPAY_CHAIN_WEBHOOK_KEY";
pub const WEBHOOK_TOLERANCE_ENV: &str = "MESHPAY_CHAIN_WEBHOOK_TOLERANCE_SECS";

#[derive(Debug, thiserror::Error)]
#[error("{name} must be a whole number between {min} and {max}, got {value:?}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub min: u64,
    pub max: u64,
}

/// Everything the four functions are tuned by.
#[derive(Debug, Clone)]
pub struct ConfirmConfig {
    /// Bound on every JSON-RPC call.
    pub rpc_timeout: Duration,
    /// Ceiling of the pause between two checks of a pending transaction.
    pub poll_interval: Duration,
    /// Floor of that pause (the pause of a just-sent transaction; see [`crate::cadence`]).
    pub poll_interval_min: Duration,
    /// How often the shared head reader of a chain reads its head while chains wait on it
    /// (`None`: no head wake-ups, the cadence alone; see [`crate::wake`]).
    pub head_poll: Option<Duration>,
    pub invocation_wait: Duration,
    pub max_chain_wait: Duration,
    pub reconcile: ReconcileConfig,
    pub webhook: WebhookConfig,
}

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    pub stale_after: Duration,
    pub batch_limit: u32,
    /// A run stops starting new steps after this (each step is itself bounded by `batch_limit`).
    pub budget: Duration,
    /// Chain webhook ids are remembered this long for replay dedupe.
    pub webhook_retention: Duration,
    /// A payment nudged this many times for one step is reported as a discrepancy.
    pub flag_after_nudges: i32,
    /// Most nonces of one hot wallet the books walk per run.
    pub nonces_per_wallet: u32,
    /// Settled payments this many blocks below the head or closer are re-checked.
    pub settled_window_blocks: u64,
    /// Settled payments re-checked per chain and run.
    pub settled_sample: u32,
    /// An outbox queue message still undelivered after this is dispatched by reconcile.
    pub outbox_grace: Duration,
    /// Dispatched outbox rows are deleted after this.
    pub outbox_retention: Duration,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub key: Option<WebhookKey>,
    pub tolerance: Duration,
    /// Most transaction hashes acted on per webhook (the rest are ignored: it is only a hint).
    pub max_hashes: usize,
    /// Largest body accepted (413 above).
    pub max_body_bytes: usize,
}

impl Default for ConfirmConfig {
    fn default() -> Self {
        ConfirmConfig {
            rpc_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(2),
            poll_interval_min: Duration::from_millis(250),
            head_poll: Some(Duration::from_millis(100)),
            invocation_wait: Duration::from_secs(20),
            max_chain_wait: Duration::from_secs(3600),
            reconcile: ReconcileConfig {
                stale_after: Duration::from_secs(300),
                batch_limit: 200,
                budget: Duration::from_secs(50),
                webhook_retention: Duration::from_secs(7 * 24 * 3600),
                flag_after_nudges: 10,
                nonces_per_wallet: 200,
                settled_window_blocks: 7200,
                settled_sample: 20,
                outbox_grace: Duration::from_secs(60),
                outbox_retention: Duration::from_secs(7 * 24 * 3600),
            },
            webhook: WebhookConfig {
                key: None,
                tolerance: Duration::from_secs(300),
                max_hashes: 1000,
                max_body_bytes: 256 * 1024,
            },
        }
    }
}

impl ConfirmConfig {
    /// The defaults overridden by `lookup` (the settings the binary read, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = ConfirmConfig::default();
        let number = |name: &'static str, default: u64, min: u64, max: u64| match lookup(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or(ConfigError {
                    name,
                    value: text,
                    min,
                    max,
                }),
        };
        c.poll_interval = Duration::from_millis(number(POLL_INTERVAL_ENV, 2_000, 10, 60_000)?);
        c.poll_interval_min = Duration::from_millis(number(POLL_MIN_ENV, 250, 10, 60_000)?);
        let head_poll = number(HEAD_POLL_ENV, 100, 0, 60_000)?;
        c.head_poll = (head_poll > 0).then(|| Duration::from_millis(head_poll));
        // Well inside host.json's functionTimeout (5 min) together with the RPC timeouts.
        c.invocation_wait = Duration::from_millis(number(INVOCATION_WAIT_ENV, 20_000, 0, 180_000)?);
        c.max_chain_wait = Duration::from_secs(number(MAX_WAIT_ENV, 3_600, 1, 7 * 86_400)?);
        c.reconcile.stale_after = Duration::from_secs(number(RECONCILE_STALE_ENV, 300, 1, 86_400)?);
        c.reconcile.batch_limit =
            u32::try_from(number(RECONCILE_BATCH_ENV, 200, 1, 1_000)?).unwrap_or(200);
        c.reconcile.nonces_per_wallet =
            u32::try_from(number(NONCES_PER_WALLET_ENV, 200, 1, 10_000)?).unwrap_or(200);
        c.reconcile.settled_window_blocks = number(SETTLED_WINDOW_ENV, 7_200, 1, 10_000_000)?;
        c.reconcile.settled_sample =
            u32::try_from(number(SETTLED_SAMPLE_ENV, 20, 0, 1_000)?).unwrap_or(20);
        c.reconcile.outbox_grace = Duration::from_secs(number(OUTBOX_GRACE_ENV, 60, 0, 86_400)?);
        c.reconcile.outbox_retention =
            Duration::from_secs(number(OUTBOX_RETENTION_ENV, 604_800, 60, 31_536_000)?);
        c.webhook.tolerance = Duration::from_secs(number(WEBHOOK_TOLERANCE_ENV, 300, 1, 86_400)?);
        c.webhook.key = lookup(WEBHOOK_KEY_ENV)
            .filter(|k| !k.trim().is_empty())
            .map(WebhookKey::new);
        Ok(c)
    }

    /// How long a polling chain's lease runs past a claim: one invocation (its checks, RPC
    /// timeouts included) plus the time for its next message to be picked up.
    pub fn lease(&self) -> Duration {
        self.invocation_wait + self.rpc_timeout * 4 + Duration::from_secs(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<ConfirmConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ConfirmConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_without_settings() {
        let c = from(&[]).unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(2));
        assert_eq!(c.poll_interval_min, Duration::from_millis(250));
        assert_eq!(c.reconcile.stale_after, Duration::from_secs(300));
        assert!(c.webhook.key.is_none());
        assert_eq!(c.webhook.max_body_bytes, 256 * 1024);
        assert_eq!(c.head_poll, Some(Duration::from_millis(100)));
    }

    #[test]
    fn a_head_poll_of_zero_turns_head_wake_ups_off() {
        assert_eq!(from(&[(HEAD_POLL_ENV, "0")]).unwrap().head_poll, None);
        assert_eq!(
            from(&[(HEAD_POLL_ENV, "40")]).unwrap().head_poll,
            Some(Duration::from_millis(40))
        );
    }

    #[test]
    fn settings_override_and_out_of_range_values_are_refused() {
        let c = from(&[
            (POLL_INTERVAL_ENV, "250"),
            (POLL_MIN_ENV, "50"),
            (WEBHOOK_KEY_ENV, "whsec_abc"),
        ])
        .unwrap();
        assert_eq!(c.poll_interval, Duration::from_millis(250));
        assert_eq!(c.poll_interval_min, Duration::from_millis(50));
        assert!(c.webhook.key.is_some());
        let err = from(&[(RECONCILE_STALE_ENV, "0")]).unwrap_err();
        assert_eq!(err.name, RECONCILE_STALE_ENV);
        assert!(from(&[(MAX_WAIT_ENV, "soon")]).is_err());
    }

    #[test]
    fn the_webhook_key_never_appears_in_debug_output() {
        let c = from(&[(WEBHOOK_KEY_ENV, "whsec_c2VjcmV0LXNpZ25pbmcta2V5")]).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
    }
}
