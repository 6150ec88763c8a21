//! `meshpay admin api-key …`: create (with a rate limit and an expiry), list, rotate, revoke.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use meshpay_domain::{ApiKeyId, Scopes};
use meshpay_store::{KeyOptions, Store};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{key_json, parse_merchant, rfc3339};

#[derive(Debug, Clone, Subcommand)]
pub enum ApiKeyCommand {
    /// Creates a key and prints it once (it is stored hashed).
    Create {
        #[arg(long)]
        merchant: String,
        /// Comma-separated scopes.
        #[arg(long, default_value = "quotes:write,payments:write,payments:read")]
        scopes: String,
        /// Requests per second for this key (`20/s`, per instance); default: the
        /// `MESHPAY_RATE_LIMIT_PER_SEC` setting.
        #[arg(long, value_name = "N/s", value_parser = parse_rate)]
        rate_limit: Option<u32>,
        /// The key stops working after this long (`90d`, `12h`, `30m`, `45s`).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
    /// Lists keys (prefix, scopes, created, last used, expiry, revocation); never a secret.
    List {
        /// Only this merchant's keys.
        #[arg(long)]
        merchant: Option<String>,
    },
    /// Creates a replacement key (same merchant, scopes and rate limit) and revokes the old one
    /// after the grace period, so clients can switch without an outage.
    Rotate {
        #[arg(long)]
        key_id: String,
        /// How long the old key keeps working (`24h`); `0s` revokes it now.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        grace: Duration,
        /// Expiry of the new key, from now.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
    /// Revokes a key now.
    Revoke {
        #[arg(long)]
        key_id: String,
    },
}

/// `20/s` or `20`: requests per second, at least 1.
pub fn parse_rate(text: &str) -> Result<u32, String> {
    let number = text.trim().strip_suffix("/s").unwrap_or(text.trim());
    number
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=100_000).contains(n))
        .ok_or_else(|| format!("{text:?}: expected requests per second like `20/s` (1..=100000)"))
}

/// `90d`, `12h`, `30m` or `45s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let secs_per = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => {
            return Err(format!(
                "{text:?}: expected a duration like `90d`, `12h`, `30m`, `45s`"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(secs_per))
        .filter(|secs| *secs <= 10 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: expected a duration up to 10 years like `90d`"))
}

fn expiry(expires_in: Option<Duration>) -> anyhow::Result<Option<OffsetDateTime>> {
    expires_in
        .map(|d| {
            if d.is_zero() {
                bail!("--expires-in must be longer than 0s");
            }
            Ok(OffsetDateTime::now_utc() + d)
        })
        .transpose()
}

pub async fn run(store: &Store, command: ApiKeyCommand) -> anyhow::Result<Value> {
    match command {
        ApiKeyCommand::Create {
            merchant,
            scopes,
            rate_limit,
            expires_in,
        } => {
            let options = KeyOptions {
                rate_limit_per_sec: rate_limit,
                expires_at: expiry(expires_in)?,
            };
            let key = store
                .create_api_key_with(
                    parse_merchant(&merchant)?,
                    Scopes::parse_list(&scopes)?,
                    options,
                )
                .await?;
            let mut out = key_json(&key);
            out["rate_limit_per_sec"] = json!(rate_limit);
            out["expires_at"] = json!(rfc3339(options.expires_at)?);
            Ok(out)
        }
        ApiKeyCommand::List { merchant } => {
            let merchant = merchant.as_deref().map(parse_merchant).transpose()?;
            let mut keys = Vec::new();
            for k in store.list_api_keys(merchant).await? {
                keys.push(json!({
                    "id": k.id, "merchant_id": k.merchant_id, "prefix": k.prefix,
                    "scopes": k.scopes, "rate_limit_per_sec": k.rate_limit_per_sec,
                    "created_at": rfc3339(Some(k.created_at))?,
                    "last_used_at": rfc3339(k.last_used_at)?,
                    "expires_at": rfc3339(k.expires_at)?,
                    "revoked_at": rfc3339(k.revoked_at)?,
                    "replaced_by": k.replaced_by,
                }));
            }
            Ok(json!({ "count": keys.len(), "keys": keys }))
        }
        ApiKeyCommand::Rotate {
            key_id,
            grace,
            expires_in,
        } => {
            let id: ApiKeyId = key_id
                .parse()
                .with_context(|| format!("--key-id {key_id:?}"))?;
            let rotated = store.rotate_api_key(id, grace, expiry(expires_in)?).await?;
            Ok(json!({
                "new_key": key_json(&rotated.new_key),
                "old_key_id": rotated.old_key,
                "old_key_revoked_at": rfc3339(Some(rotated.old_revoked_at))?,
            }))
        }
        ApiKeyCommand::Revoke { key_id } => {
            let id: ApiKeyId = key_id
                .parse()
                .with_context(|| format!("--key-id {key_id:?}"))?;
            let info = store.revoke_api_key(id).await?;
            Ok(
                json!({ "id": info.id, "merchant_id": info.merchant_id, "revoked_at": rfc3339(info.revoked_at)? }),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_parse_in_the_documented_forms_only() {
        assert_eq!(parse_rate("20/s"), Ok(20));
        assert_eq!(parse_rate("5"), Ok(5));
        for bad in ["0/s", "20/m", "-1", "x"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "d", "12", "1w", "99999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
