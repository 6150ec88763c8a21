//! The process's settings (app settings in Azure, `local.settings.json` locally): read from the
//! environment once at start-up, validated as a whole, and handed down as typed configuration.
//! The libraries never read the environment; each parses its own part from the lookup given here
//! (`from_lookup`), so a wrong or missing setting stops start-up with a message naming it.
//!
//! | part | settings |
//! |---|---|
//! | database | `DATABASE_URL`, `MESHPAY_DB_AUTH`, `MESHPAY_DB_CREDENTIAL`, `AZURE_CLIENT_ID`, `MESHPAY_DB_MAX_CONNECTIONS` |
//! | chains | `MESHPAY_CHAINS_CONFIG` (file), `MESHPAY_FEE_CAP_WEI_<CHAIN>`, `MESHPAY_RPC_URL_<CHAIN>` (a Key Vault reference in Azure) |
//! | signers | `MESHPAY_SIGNERS_CONFIG` (file; the signers themselves are built at the first broadcast), and the settings it names for local keys |
//! | API | `MESHPAY_QUOTE_TTL_SECONDS` |
//! | confirm, reconcile, chain webhook | `MESHPAY_CONFIRM_*`, `MESHPAY_RECONCILE_*`, `MESHPAY_CHAIN_WEBHOOK_*` |
//! | merchant webhooks | `MESHPAY_WEBHOOK_SECRET_KEY` (required), `MESHPAY_WEBHOOK_*` |
//! | relay | `MESHPAY_GAP_FILL_AFTER_SECS`, `MESHPAY_WALLET_STUCK_AFTER_SECS`, `MESHPAY_WALLET_MAX_IN_FLIGHT`, `MESHPAY_REPLACE_AFTER_SECS`, `MESHPAY_FAULT` (crash-test hook, dev/test builds only) |
//! | telemetry | `MESHPAY_TELEMETRY_EXPORTER`, `APPLICATIONINSIGHTS_CONNECTION_STRING`, `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`, `OTEL_SDK_DISABLED`, `OTEL_EXPORTER_OTLP_[TRACES_\|METRICS_]ENDPOINT`, `OTEL_EXPORTER_OTLP_[TRACES_\|METRICS_]PROTOCOL`, `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`, `OTEL_SERVICE_NAME`, `WEBSITE_INSTANCE_ID` (see [`telemetry`]) |
//! | pay-ins | `MESHPAY_PAYIN_DUST_MIN`, `MESHPAY_SWEEP_BATCH`, `MESHPAY_PAYIN_FAULT` (crash-test hook, dev/test builds only) |
//!
//! `Debug` shows no secret: the database password, the webhook keys and RPC URL paths are left
//! out by the types that hold them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use meshpay_api::ApiConfig;
use meshpay_chain::ChainsConfig;
use meshpay_confirm::ConfirmConfig;
use meshpay_relay::{Fault, RelayConfig, SignersFile};
use meshpay_signer::SignerSecrets;
use meshpay_store::DbConfig;
use meshpay_telemetry::export::{AzureMonitor, ExportConfig, Exporter};
use meshpay_webhooks::WebhooksConfig;

/// The chains file (`chains.toml`).
pub const CHAINS_CONFIG: &str = "MESHPAY_CHAINS_CONFIG";
/// The broadcast step's signers file (`signers.dev.toml`-style).
pub const SIGNERS_CONFIG: &str = "MESHPAY_SIGNERS_CONFIG";

/// A setting from the process environment: the one place the binary reads it.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Everything `meshpay serve` runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DbConfig,
    pub chains: ChainsConfig,
    pub signers: SignersFile,
    /// The values of the settings the signers file names (local dev keys, keystore passwords).
    pub signer_secrets: SignerSecrets,
    pub api: ApiConfig,
    pub confirm: ConfirmConfig,
    pub webhooks: WebhooksConfig,
    pub relay: RelayConfig,
    pub telemetry: ExportConfig,
    pub payins: meshpay_payins::detect::DetectConfig,
    pub sweep: meshpay_payins::sweep::SweepConfig,
}

impl Settings {
    /// The settings of the process environment.
    pub fn from_env() -> anyhow::Result<Settings> {
        Settings::from_lookup(env)
    }

    /// The settings `get` returns (the environment, or a map in tests). Reads the chains and
    /// signers files; reaches no database, RPC node or signer.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let signers = signers(&get)?;
        Ok(Settings {
            database: database(None, &get)?,
            chains: chains(None, &get)?,
            signer_secrets: SignerSecrets::read(signers.secret_names(), &get),
            signers,
            api: ApiConfig::from_lookup(&get).context("payments API configuration")?,
            confirm: ConfirmConfig::from_lookup(&get).context("confirm configuration")?,
            webhooks: WebhooksConfig::from_lookup(&get).context("webhooks configuration")?,
            relay: RelayConfig {
                fault: Fault::from_lookup(&get),
                ..RelayConfig::from_lookup(&get).context("relay configuration")?
            },
            telemetry: telemetry(&get).context("telemetry configuration")?,
            payins: meshpay_payins::detect::DetectConfig::from_lookup(&get)
                .context("pay-ins configuration")?,
            sweep: meshpay_payins::sweep::SweepConfig::from_lookup(&get)
                .context("sweep configuration")?,
        })
    }
}

/// The database settings; `url` (a CLI flag) overrides `DATABASE_URL`.
pub fn database(
    url: Option<&str>,
    get: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<DbConfig> {
    DbConfig::from_lookup(url, get).context("database configuration")
}

/// The chains file `path` names (a CLI flag) or [`CHAINS_CONFIG`] does, with the
/// `MESHPAY_FEE_CAP_WEI_<CHAIN>` overrides applied.
pub fn chains(
    path: Option<&Path>,
    get: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<ChainsConfig> {
    let path = match path {
        Some(path) => path.to_path_buf(),
        None => required_path(CHAINS_CONFIG, &get)?,
    };
    let mut chains = ChainsConfig::load(&path).context("chains configuration")?;
    chains
        .apply_fee_cap_overrides(&get)
        .context("chains configuration")?;
    chains
        .apply_rpc_url_overrides(&get)
        .context("chains configuration")?;
    if let Some((chain, problem)) = chains.placeholders().into_iter().next() {
        anyhow::bail!("chains configuration: chain {chain:?}: {problem}");
    }
    Ok(chains)
}

fn signers(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<SignersFile> {
    let path = required_path(SIGNERS_CONFIG, &get)?;
    SignersFile::load(&path).context("signers configuration")
}

/// Which OpenTelemetry signals to export, and where. `MESHPAY_TELEMETRY_EXPORTER`
/// (`otlp`, `azuremonitor` or `none`) chooses explicitly; without it, an OTLP endpoint
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` or a signal's own `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`)
/// means OTLP, else `APPLICATIONINSIGHTS_CONNECTION_STRING` (the one the Functions host uses)
/// means Application Insights, else nothing is created. `OTEL_<SIGNAL>_EXPORTER=none` drops a
/// signal and `OTEL_SDK_DISABLED=true` drops both.
///
/// OTLP: a signal needs an endpoint; the exporter reads the endpoint, protocol, headers and
/// timeout itself, as the specification defines them; only the HTTP protocols are built in, so
/// `grpc` stops start-up instead of exporting nothing. Application Insights: both signals, with
/// an Entra ID token when `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` says `Authorization=AAD`.
pub fn telemetry(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<ExportConfig> {
    let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let disabled = set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let otlp_endpoint = |upper: &str| {
        set(&format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"))
            .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
    };
    let any_otlp_endpoint = otlp_endpoint("TRACES").is_some() || otlp_endpoint("METRICS").is_some();
    let connection_string = set("APPLICATIONINSIGHTS_CONNECTION_STRING");
    let choice = set("MESHPAY_TELEMETRY_EXPORTER").map(|v| v.trim().to_ascii_lowercase());
    enum Chosen {
        Otlp,
        AzureMonitor,
    }
    let chosen = match choice.as_deref() {
        _ if disabled => None,
        Some("none") => None,
        Some("otlp") => Some(Chosen::Otlp),
        Some("azuremonitor") => Some(Chosen::AzureMonitor),
        Some(other) => {
            anyhow::bail!("MESHPAY_TELEMETRY_EXPORTER={other}: use otlp, azuremonitor or none")
        }
        None if any_otlp_endpoint => Some(Chosen::Otlp),
        None => connection_string.as_ref().map(|_| Chosen::AzureMonitor),
    };
    let exporter = match chosen {
        None => None,
        Some(Chosen::Otlp) if !any_otlp_endpoint => anyhow::bail!(
            "MESHPAY_TELEMETRY_EXPORTER=otlp needs OTEL_EXPORTER_OTLP_ENDPOINT (or a signal's own)"
        ),
        Some(Chosen::Otlp) => Some(Exporter::Otlp),
        Some(Chosen::AzureMonitor) => {
            let connection = connection_string.context(
                "MESHPAY_TELEMETRY_EXPORTER=azuremonitor needs APPLICATIONINSIGHTS_CONNECTION_STRING",
            )?;
            let authentication = set("APPLICATIONINSIGHTS_AUTHENTICATION_STRING");
            let azure = AzureMonitor::new(&connection, authentication.as_deref())
                .context("APPLICATIONINSIGHTS_CONNECTION_STRING / _AUTHENTICATION_STRING")?;
            Some(Exporter::AzureMonitor(azure))
        }
    };
    let signal = |signal: &str| -> anyhow::Result<bool> {
        let upper = signal.to_ascii_uppercase();
        let chosen = set(&format!("OTEL_{upper}_EXPORTER"));
        match chosen.as_deref().map(str::trim) {
            Some("none") => return Ok(false),
            None | Some("otlp") => {}
            Some(other) => {
                anyhow::bail!("OTEL_{upper}_EXPORTER={other}: only `otlp` or `none` is supported")
            }
        }
        match &exporter {
            None => Ok(false),
            Some(Exporter::AzureMonitor(_)) => Ok(true),
            Some(Exporter::Otlp) => {
                if otlp_endpoint(&upper).is_none() {
                    return Ok(false);
                }
                let protocol = set(&format!("OTEL_EXPORTER_OTLP_{upper}_PROTOCOL"))
                    .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"));
                match protocol.as_deref().map(str::trim) {
                    None | Some("http/protobuf") | Some("http/json") => Ok(true),
                    Some(other) => anyhow::bail!(
                        "OTLP protocol `{other}` for {signal}: use http/protobuf or http/json"
                    ),
                }
            }
        }
    };
    Ok(ExportConfig {
        service_name: set("OTEL_SERVICE_NAME").unwrap_or_else(|| "meshpay".to_owned()),
        service_version: env!("CARGO_PKG_VERSION").to_owned(),
        instance_id: set("WEBSITE_INSTANCE_ID"),
        traces: signal("traces")?,
        metrics: signal("metrics")?,
        exporter: exporter.unwrap_or(Exporter::Otlp),
    })
}

fn required_path(name: &str, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<PathBuf> {
    get(name)
        .filter(|value| !value.trim().is_empty())
        .map(PathBuf::from)
        .with_context(|| format!("environment variable {name} is not set"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use base64::Engine as _;

    use super::*;

    const WEBHOOK_KEY: [u8; 32] = [9; 32];
    const CHAIN_WEBHOOK_KEY: &str = "whsec_c2VjcmV0LWNoYWluLXdlYmhvb2sta2V5";
    const DB_PASSWORD: &str = "s3cr3t-pw";

    fn repo_file(name: &str) -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(name)
            .display()
            .to_string()
    }

    /// The settings `make dev` runs with, plus `overrides` (an empty value removes one).
    fn lookup(overrides: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let mut map: HashMap<String, String> = [
            (
                "DATABASE_URL".to_owned(),
                format!("postgres://meshpay:{DB_PASSWORD}@127.0.0.1:5432/meshpay"),
            ),
            (CHAINS_CONFIG.to_owned(), repo_file("chains.dev.toml")),
            (SIGNERS_CONFIG.to_owned(), repo_file("signers.dev.toml")),
            (
                "MESHPAY_WEBHOOK_SECRET_KEY".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(WEBHOOK_KEY),
            ),
            (
                "MESHPAY_CHAIN_WEBHOOK_KEY".to_owned(),
                CHAIN_WEBHOOK_KEY.to_owned(),
            ),
        ]
        .into_iter()
        .collect();
        for (name, value) in overrides {
            if value.is_empty() {
                map.remove(*name);
            } else {
                map.insert((*name).to_owned(), (*value).to_owned());
            }
        }
        move |name| map.get(name).cloned()
    }

    fn error(overrides: &[(&str, &str)]) -> String {
        format!(
            "{:#}",
            Settings::from_lookup(lookup(overrides)).unwrap_err()
        )
    }

    #[test]
    fn the_dev_settings_parse_into_every_part() {
        let settings = Settings::from_lookup(lookup(&[
            ("MESHPAY_DB_MAX_CONNECTIONS", "7"),
            ("MESHPAY_QUOTE_TTL_SECONDS", "90"),
            ("MESHPAY_CONFIRM_POLL_INTERVAL_MS", "250"),
            ("MESHPAY_FEE_CAP_WEI_ANVIL", "123"),
        ]))
        .unwrap();
        assert_eq!(settings.database.max_connections, 7);
        assert_eq!(settings.api.quote_ttl.as_secs(), 90);
        assert_eq!(settings.confirm.poll_interval.as_millis(), 250);
        assert!(settings.confirm.webhook.key.is_some());
        let anvil = settings.chains.chain("anvil").unwrap();
        assert_eq!(anvil.max_fee_per_gas_cap_wei, 123);
        assert!(!settings.signers.wallets.is_empty());
    }

    #[test]
    fn a_missing_or_wrong_setting_is_refused_with_its_name() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("DATABASE_URL", "")], "DATABASE_URL is not set"),
            (&[("MESHPAY_DB_AUTH", "token")], "MESHPAY_DB_AUTH"),
            (&[(CHAINS_CONFIG, "")], "MESHPAY_CHAINS_CONFIG is not set"),
            (
                &[(CHAINS_CONFIG, "no-such-chains.toml")],
                "no-such-chains.toml",
            ),
            (
                &[("MESHPAY_FEE_CAP_WEI_ANVIL", "lots")],
                "MESHPAY_FEE_CAP_WEI_ANVIL",
            ),
            (&[(SIGNERS_CONFIG, "")], "MESHPAY_SIGNERS_CONFIG is not set"),
            (
                &[(SIGNERS_CONFIG, "no-such-signers.toml")],
                "no-such-signers.toml",
            ),
            (
                &[("MESHPAY_QUOTE_TTL_SECONDS", "0")],
                "MESHPAY_QUOTE_TTL_SECONDS",
            ),
            (
                &[("MESHPAY_RECONCILE_STALE_SECS", "0")],
                "MESHPAY_RECONCILE_STALE_SECS",
            ),
            (
                &[("MESHPAY_WEBHOOK_SECRET_KEY", "")],
                "MESHPAY_WEBHOOK_SECRET_KEY",
            ),
            (
                &[("MESHPAY_WEBHOOK_URL_POLICY", "any")],
                "MESHPAY_WEBHOOK_URL_POLICY",
            ),
        ];
        for (overrides, expected) in cases {
            let error = error(overrides);
            assert!(error.contains(expected), "{overrides:?}: {error}");
        }
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let settings = Settings::from_lookup(lookup(&[])).unwrap();
        let debug = format!("{settings:?}");
        let webhook_key = base64::engine::general_purpose::STANDARD.encode(WEBHOOK_KEY);
        for secret in [DB_PASSWORD, CHAIN_WEBHOOK_KEY, &webhook_key, "c2VjcmV0"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("127.0.0.1"), "{debug}");
    }

    fn telemetry_of(pairs: &[(&str, &str)]) -> anyhow::Result<ExportConfig> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        telemetry(|name| map.get(name).cloned())
    }

    #[test]
    fn without_an_otlp_endpoint_or_a_connection_string_no_signal_is_exported() {
        let config = telemetry_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).unwrap();
        assert!(config.is_off());
        assert_eq!(config.service_name, "meshpay");
    }

    #[test]
    fn an_endpoint_exports_both_signals_unless_one_is_set_to_none_or_the_sdk_is_disabled() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        let both = telemetry_of(&[endpoint]).unwrap();
        assert!(both.traces && both.metrics);
        let traces_only = telemetry_of(&[endpoint, ("OTEL_METRICS_EXPORTER", "none")]).unwrap();
        assert!(traces_only.traces && !traces_only.metrics);
        let signal = telemetry_of(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces",
        )])
        .unwrap();
        assert!(signal.traces && !signal.metrics);
        assert!(
            telemetry_of(&[endpoint, ("OTEL_SDK_DISABLED", "true")])
                .unwrap()
                .is_off()
        );
    }

    #[test]
    fn grpc_or_another_exporter_stops_start_up_instead_of_exporting_nothing() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
        let grpc = telemetry_of(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert!(grpc.unwrap_err().to_string().contains("grpc"));
        let zipkin = telemetry_of(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")]);
        assert!(zipkin.unwrap_err().to_string().contains("zipkin"));
    }

    const CONNECTION: (&str, &str) = (
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "InstrumentationKey=11111111-2222-3333-4444-555555555555;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/",
    );

    fn is_azure_monitor(config: &ExportConfig) -> bool {
        matches!(config.exporter, Exporter::AzureMonitor(_))
    }

    #[test]
    fn the_host_connection_string_alone_exports_both_signals_to_application_insights() {
        let config = telemetry_of(&[
            CONNECTION,
            (
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                "ClientId=abc;Authorization=AAD",
            ),
        ])
        .unwrap();
        assert!(is_azure_monitor(&config) && config.traces && config.metrics);
        let debug = format!("{config:?}");
        assert!(!debug.contains("11111111-2222"), "{debug}");
        let no_metrics = telemetry_of(&[CONNECTION, ("OTEL_METRICS_EXPORTER", "none")]).unwrap();
        assert!(no_metrics.traces && !no_metrics.metrics);
    }

    #[test]
    fn an_otlp_endpoint_wins_over_the_connection_string_unless_the_exporter_is_chosen() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        let otlp = telemetry_of(&[CONNECTION, endpoint]).unwrap();
        assert_eq!(otlp.exporter, Exporter::Otlp);
        let chosen = telemetry_of(&[
            CONNECTION,
            endpoint,
            ("MESHPAY_TELEMETRY_EXPORTER", "azuremonitor"),
        ])
        .unwrap();
        assert!(is_azure_monitor(&chosen));
        for off in [
            ("MESHPAY_TELEMETRY_EXPORTER", "none"),
            ("OTEL_SDK_DISABLED", "true"),
        ] {
            assert!(telemetry_of(&[CONNECTION, endpoint, off]).unwrap().is_off());
        }
    }

    #[test]
    fn a_chosen_exporter_without_its_setting_or_a_bad_value_stops_start_up() {
        let otlp = telemetry_of(&[CONNECTION, ("MESHPAY_TELEMETRY_EXPORTER", "otlp")]);
        assert!(
            otlp.unwrap_err()
                .to_string()
                .contains("OTEL_EXPORTER_OTLP_ENDPOINT")
        );
        let azure = telemetry_of(&[("MESHPAY_TELEMETRY_EXPORTER", "azuremonitor")]);
        assert!(azure.unwrap_err().to_string().contains("CONNECTION_STRING"));
        let other = telemetry_of(&[CONNECTION, ("MESHPAY_TELEMETRY_EXPORTER", "jaeger")]);
        assert!(other.unwrap_err().to_string().contains("jaeger"));
        let bad = telemetry_of(&[(CONNECTION.0, "InstrumentationKey=")]).unwrap_err();
        assert!(format!("{bad:#}").contains("connection string"), "{bad:#}");
        let auth = telemetry_of(&[
            CONNECTION,
            (
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                "Authorization=Basic",
            ),
        ]);
        assert!(auth.is_err());
    }
}
