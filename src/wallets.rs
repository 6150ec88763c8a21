//! `meshpay wallets`: the Ethereum address of each hot-wallet key, so operators can fund them.
//!
//! Where the keys come from:
//! - by default the Key Vault keys the deployment configures (`MESHPAY_KEYVAULT_URL`,
//!   `MESHPAY_WALLET_KEYS`, `AZURE_CLIENT_ID`; read by `meshpay_signer::KeyVaultWallets`);
//! - with `--signers-config FILE` the broadcast step's signers file (read by
//!   `meshpay_relay::SignersFile`, the reader the broadcast step uses): every signer is built
//!   and must sign as the address the file lists for it.
//!
//! Output (stdout): one JSON document, or with `--format signers-toml --chain NAME...` a signers
//! file for the broadcast step that lists every Key Vault key for each chain, pinned to the key
//! version read now (a later key version would be another address).

use std::future::Future;
use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use alloy::signers::Signer as _;
use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use meshpay_relay::{SignersFile, WalletEntry};
use meshpay_signer::env::{CLIENT_ID_ENV, KEYVAULT_URL_ENV, WALLET_KEYS_ENV};
use meshpay_signer::{
    CredentialConfig, KeyVaultConfig, KeyVaultSigner, KeyVaultSignerError, KeyVaultWallets,
    RetryConfig, SignerBuildError, SignerConfig, SignerSecrets, WalletSigner,
};
use serde_json::{Value, json};

use crate::settings;

#[derive(Debug, Clone, Args)]
pub struct WalletsArgs {
    /// Key Vault URL, `https://<vault>.vault.azure.net/`.
    #[arg(long, env = KEYVAULT_URL_ENV)]
    pub keyvault_url: Option<String>,
    /// Hot-wallet key names, comma-separated.
    #[arg(long, env = WALLET_KEYS_ENV, value_name = "NAME[,NAME...]")]
    pub keys: Option<String>,
    /// How to get Entra ID tokens (default: the managed identity, as the app in Azure). From a
    /// workstation: `azure-cli` (after `az login`).
    #[arg(long, value_enum)]
    pub credential: Option<CredentialKind>,
    /// Client id of the app's user-assigned managed identity (also written into
    /// `--format signers-toml` output).
    #[arg(long, env = CLIENT_ID_ENV)]
    pub client_id: Option<String>,
    /// Tenant for `--credential azure-cli`, when not the CLI's default.
    #[arg(long)]
    pub tenant_id: Option<String>,
    /// Check the broadcast step's signers file instead (`MESHPAY_SIGNERS_CONFIG` format): each
    /// signer's address against the address listed for it.
    #[arg(long, value_name = "FILE")]
    pub signers_config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Chain (name in chains.toml) to list every key for in `--format signers-toml`; repeatable.
    #[arg(long = "chain", value_name = "CHAIN")]
    pub chains: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialKind {
    ManagedIdentity,
    AzureCli,
    DeveloperTools,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `{"source": ..., "wallets": [{key_name, key_version, key_id, address}, ...]}`.
    Json,
    /// A signers file for the broadcast step (`MESHPAY_SIGNERS_CONFIG`).
    SignersToml,
}

impl WalletsArgs {
    /// The credential chosen with `--credential`, if any.
    fn credential_override(&self) -> Option<CredentialConfig> {
        self.credential.map(|kind| match kind {
            CredentialKind::ManagedIdentity => CredentialConfig::ManagedIdentity {
                client_id: self.client_id.clone(),
            },
            CredentialKind::AzureCli => CredentialConfig::AzureCli {
                tenant_id: self.tenant_id.clone(),
            },
            CredentialKind::DeveloperTools => CredentialConfig::DeveloperTools,
        })
    }

    /// The Key Vault keys, read by the signer crate's reader from the values clap took from the
    /// flags or the environment.
    fn key_vault_wallets(&self) -> anyhow::Result<KeyVaultWallets> {
        let wallets = KeyVaultWallets::from_lookup(|name| match name {
            KEYVAULT_URL_ENV => self.keyvault_url.clone(),
            WALLET_KEYS_ENV => self.keys.clone(),
            CLIENT_ID_ENV => self.client_id.clone(),
            _ => None,
        })
        .context("Key Vault wallet keys (--keyvault-url/--keys or the app settings)")?;
        Ok(match self.credential_override() {
            Some(credential) => wallets.with_credential(credential),
            None => wallets,
        })
    }
}

pub async fn run(args: WalletsArgs) -> anyhow::Result<()> {
    let output = match &args.signers_config {
        Some(path) => {
            if args.format != Format::Json {
                bail!("--signers-config prints JSON only (it checks an existing signers file)");
            }
            let report =
                signers_file_report(path, args.credential_override(), |config| async move {
                    let secrets = SignerSecrets::read(config.secret_names(), settings::env);
                    config.build(&secrets).await
                })
                .await?;
            serde_json::to_string_pretty(&report)?
        }
        None => {
            let wallets = args.key_vault_wallets()?;
            let signers = connect_all(&wallets.key_configs(), |config| async move {
                KeyVaultSigner::from_config(&config).await
            })
            .await?;
            render(&args, &wallets, &signers)?
        }
    };
    println!("{output}");
    Ok(())
}

/// One signer per key, in order; the first key that cannot be read stops the command (an
/// address list with a hole would look complete).
async fn connect_all<F, Fut>(
    configs: &[KeyVaultConfig],
    connect: F,
) -> anyhow::Result<Vec<KeyVaultSigner>>
where
    F: Fn(KeyVaultConfig) -> Fut,
    Fut: Future<Output = Result<KeyVaultSigner, KeyVaultSignerError>>,
{
    let mut signers = Vec::with_capacity(configs.len());
    for config in configs {
        let signer = connect(config.clone()).await.with_context(|| {
            format!(
                "reading key {} of {} (a 403 means your login lacks a data role on it, see docs/DEPLOY.md)",
                config.key_name, config.vault_url
            )
        })?;
        signers.push(signer);
    }
    Ok(signers)
}

fn render(
    args: &WalletsArgs,
    wallets: &KeyVaultWallets,
    signers: &[KeyVaultSigner],
) -> anyhow::Result<String> {
    match args.format {
        Format::Json => Ok(serde_json::to_string_pretty(&key_vault_json(
            wallets, signers,
        ))?),
        Format::SignersToml => {
            let client_id = args.client_id.as_deref().filter(|id| !id.trim().is_empty());
            let Some(client_id) = client_id else {
                bail!(
                    "--format signers-toml needs the app identity's client id (--client-id or {CLIENT_ID_ENV}): the broadcast step signs as it"
                );
            };
            if args.chains.is_empty() {
                bail!("--format signers-toml needs at least one --chain");
            }
            signers_toml(wallets, signers, &args.chains, client_id)
        }
    }
}

fn key_vault_json(wallets: &KeyVaultWallets, signers: &[KeyVaultSigner]) -> Value {
    let entries: Vec<Value> = wallets
        .key_names
        .iter()
        .zip(signers)
        .map(|(key_name, signer)| {
            json!({
                "key_name": key_name,
                "key_version": signer.key_version(),
                "key_id": signer.key_id(),
                "address": signer.address().to_string(),
            })
        })
        .collect();
    json!({
        "source": "key_vault",
        "vault_url": wallets.vault_url,
        "wallets": entries,
    })
}

/// A signers file (`meshpay_relay::SignersFile`, what the broadcast step reads) with every key
/// for every chain, signing with the app's managed identity.
fn signers_toml(
    wallets: &KeyVaultWallets,
    signers: &[KeyVaultSigner],
    chains: &[String],
    client_id: &str,
) -> anyhow::Result<String> {
    let mut file = SignersFile {
        wallets: Vec::with_capacity(chains.len() * signers.len()),
    };
    for chain in chains {
        for (key_name, signer) in wallets.key_names.iter().zip(signers) {
            file.wallets.push(WalletEntry {
                chain: chain.clone(),
                address: signer.address().to_string(),
                signer: SignerConfig::KeyVault(KeyVaultConfig {
                    vault_url: wallets.vault_url.clone(),
                    key_name: key_name.clone(),
                    key_version: Some(signer.key_version().to_owned()),
                    credential: CredentialConfig::ManagedIdentity {
                        client_id: Some(client_id.to_owned()),
                    },
                    chain_id: None,
                    retry: RetryConfig::default(),
                }),
            });
        }
    }
    let body = file.to_toml_string().context("writing the signers file")?;
    Ok(format!(
        "# Signers of the broadcast step (MESHPAY_SIGNERS_CONFIG), from `meshpay wallets --format signers-toml`.\n\
         # Each address must also be in hot_wallets of its chain in chains.toml, and funded.\n\n{body}"
    ))
}

/// Builds every signer of the signers file and compares its address with the listed one. When
/// any differs, prints the report (it shows which entry is wrong) and fails.
async fn signers_file_report<F, Fut>(
    path: &Path,
    credential: Option<CredentialConfig>,
    build: F,
) -> anyhow::Result<Value>
where
    F: Fn(SignerConfig) -> Fut,
    Fut: Future<Output = Result<WalletSigner, SignerBuildError>>,
{
    let file =
        SignersFile::load(path).with_context(|| format!("signers file {}", path.display()))?;
    let mut entries = Vec::with_capacity(file.wallets.len());
    let mut mismatches = Vec::new();
    for wallet in &file.wallets {
        let listed = meshpay_chain::parse_address(&wallet.address)
            .with_context(|| format!("address {:?} in {}", wallet.address, path.display()))?;
        let mut config = wallet.signer.clone();
        if let (SignerConfig::KeyVault(key), Some(credential)) = (&mut config, &credential) {
            key.credential = credential.clone();
        }
        let signer = build(config)
            .await
            .with_context(|| format!("signer for {listed} on chain {}", wallet.chain))?;
        let address: Address = signer.address();
        let matches = address == listed;
        if !matches {
            mismatches.push(format!("{listed} on {} signs as {address}", wallet.chain));
        }
        let (key_version, key_id) = match &signer {
            WalletSigner::KeyVault(key) => (
                Some(key.key_version().to_owned()),
                Some(key.key_id().to_owned()),
            ),
            WalletSigner::Local(_) => (None, None),
        };
        let key_name = match &wallet.signer {
            SignerConfig::KeyVault(key) => Some(key.key_name.clone()),
            SignerConfig::Local(_) => None,
        };
        entries.push(json!({
            "chain": wallet.chain,
            "kind": signer.kind(),
            "key_name": key_name,
            "key_version": key_version,
            "key_id": key_id,
            "address": address.to_string(),
            "listed_address": listed.to_string(),
            "matches": matches,
        }));
    }
    let json = json!({
        "source": "signers_file",
        "path": path.display().to_string(),
        "wallets": entries,
    });
    if !mismatches.is_empty() {
        // The report still goes out: it shows which entry is wrong.
        println!("{}", serde_json::to_string_pretty(&json)?);
        bail!(
            "{} signer(s) do not sign as their listed address: {}",
            mismatches.len(),
            mismatches.join("; ")
        );
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use alloy::signers::k256::ecdsa::SigningKey;
    use clap::Parser as _;
    use meshpay_signer::testing::{
        DoubleOptions, FakeCredential, KeyVaultDouble, RedirectToDouble,
    };
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::Arc;

    const CLIENT_ID: &str = "6a1d1e4c-0000-4000-8000-000000000001";

    /// A double holding key `name` (version `version`) made from `seed`.
    async fn double(name: &str, version: &str, seed: &str) -> KeyVaultDouble {
        let secret = alloy::primitives::keccak256(seed);
        let options = DoubleOptions {
            key_name: name.into(),
            key_version: version.into(),
            signing_key: SigningKey::from_slice(secret.as_slice()).unwrap(),
            ..DoubleOptions::new()
        };
        KeyVaultDouble::start(options).await
    }

    fn expected_address(double: &KeyVaultDouble) -> String {
        let key = double.options().signing_key.verifying_key();
        meshpay_signer::ecdsa::address_of(key).to_string()
    }

    fn parse(args: &[&str]) -> WalletsArgs {
        let cli = Cli::try_parse_from(args).unwrap();
        let Command::Wallets(args) = cli.command() else {
            panic!("expected wallets")
        };
        args
    }

    /// Connects each key to the double holding it, through the real `KeyClient`.
    async fn connect_to_doubles(
        configs: &[KeyVaultConfig],
        doubles: &[&KeyVaultDouble],
    ) -> anyhow::Result<Vec<KeyVaultSigner>> {
        let by_name: HashMap<String, SocketAddr> = doubles
            .iter()
            .map(|d| (d.options().key_name.clone(), d.addr()))
            .collect();
        // An unknown key goes to the first double, which answers 404 KeyNotFound.
        let fallback = doubles[0].addr();
        connect_all(configs, |config| {
            let addr = by_name.get(&config.key_name).copied().unwrap_or(fallback);
            async move {
                KeyVaultSigner::from_config_with(
                    &config,
                    Arc::new(FakeCredential::default()),
                    Some(RedirectToDouble::transport(addr)),
                )
                .await
            }
        })
        .await
    }

    fn args_for(keys: &str, extra: &[&str]) -> WalletsArgs {
        let vault = DoubleOptions::new().vault_url;
        let mut argv = vec![
            "meshpay",
            "wallets",
            "--keyvault-url",
            &vault,
            "--keys",
            keys,
        ];
        argv.extend_from_slice(extra);
        parse(&argv)
    }

    #[tokio::test]
    async fn prints_each_key_vault_key_with_its_version_and_address() {
        let first = double("hot-wallet-0", "0a0a0a0a", "first key").await;
        let second = double("hot-wallet-1", "1b1b1b1b", "second key").await;
        let args = args_for("hot-wallet-0,hot-wallet-1", &["--credential", "azure-cli"]);
        let wallets = args.key_vault_wallets().unwrap();
        assert!(matches!(
            wallets.credential,
            CredentialConfig::AzureCli { .. }
        ));
        let signers = connect_to_doubles(&wallets.key_configs(), &[&first, &second])
            .await
            .unwrap();
        let out: Value = serde_json::from_str(&render(&args, &wallets, &signers).unwrap()).unwrap();

        assert_eq!(out["source"], "key_vault");
        assert_eq!(out["vault_url"], "https://meshpay-test.vault.azure.net/");
        let entries = out["wallets"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        for (entry, (double, version)) in entries
            .iter()
            .zip([(&first, "0a0a0a0a"), (&second, "1b1b1b1b")])
        {
            assert_eq!(entry["key_name"], double.options().key_name.as_str());
            assert_eq!(entry["key_version"], version);
            assert_eq!(
                entry["key_id"],
                format!(
                    "https://meshpay-test.vault.azure.net/keys/{}/{version}",
                    double.options().key_name
                )
            );
            assert_eq!(entry["address"], expected_address(double));
        }
        assert_ne!(entries[0]["address"], entries[1]["address"]);
    }

    #[tokio::test]
    async fn a_key_that_cannot_be_read_fails_the_command_naming_it() {
        let first = double("hot-wallet-0", "0a0a0a0a", "first key").await;
        let args = args_for("hot-wallet-0,hot-wallet-9", &[]);
        let wallets = args.key_vault_wallets().unwrap();
        let error = connect_to_doubles(&wallets.key_configs(), &[&first])
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("reading key hot-wallet-9"),
            "{error:#}"
        );
    }

    #[tokio::test]
    async fn signers_toml_lists_every_key_per_chain_and_parses_as_the_broadcast_signers_file() {
        let first = double("hot-wallet-0", "0a0a0a0a", "first key").await;
        let second = double("hot-wallet-1", "1b1b1b1b", "second key").await;
        let args = args_for(
            "hot-wallet-0,hot-wallet-1",
            &[
                "--format",
                "signers-toml",
                "--chain",
                "ethereum",
                "--chain",
                "base",
                "--client-id",
                CLIENT_ID,
            ],
        );
        let wallets = args.key_vault_wallets().unwrap();
        let signers = connect_to_doubles(&wallets.key_configs(), &[&first, &second])
            .await
            .unwrap();
        let text = render(&args, &wallets, &signers).unwrap();

        let file = meshpay_relay::SignersFile::from_toml_str(&text).unwrap();
        let listed: Vec<(&str, &str)> = file
            .wallets
            .iter()
            .map(|w| (w.chain.as_str(), w.address.as_str()))
            .collect();
        let (a, b) = (expected_address(&first), expected_address(&second));
        assert_eq!(
            listed,
            [
                ("ethereum", a.as_str()),
                ("ethereum", b.as_str()),
                ("base", a.as_str()),
                ("base", b.as_str()),
            ]
        );
        assert_eq!(
            file.wallets[1].signer,
            SignerConfig::KeyVault(KeyVaultConfig {
                vault_url: "https://meshpay-test.vault.azure.net/".into(),
                key_name: "hot-wallet-1".into(),
                key_version: Some("1b1b1b1b".into()),
                credential: CredentialConfig::ManagedIdentity {
                    client_id: Some(CLIENT_ID.into())
                },
                chain_id: None,
                retry: Default::default(),
            })
        );
        assert!(!file.wallets[1].signer.is_dev_only());
    }

    #[tokio::test]
    async fn signers_toml_needs_the_app_client_id_and_a_chain() {
        let first = double("hot-wallet-0", "0a0a0a0a", "first key").await;
        let no_client = args_for(
            "hot-wallet-0",
            &["--format", "signers-toml", "--chain", "x"],
        );
        let wallets = no_client.key_vault_wallets().unwrap();
        let signers = connect_to_doubles(&wallets.key_configs(), &[&first])
            .await
            .unwrap();
        let error = render(&no_client, &wallets, &signers).unwrap_err();
        assert!(error.to_string().contains("client id"), "{error}");
        let no_chain = args_for(
            "hot-wallet-0",
            &["--format", "signers-toml", "--client-id", CLIENT_ID],
        );
        let error = render(&no_chain, &wallets, &signers).unwrap_err();
        assert!(error.to_string().contains("--chain"), "{error}");
    }

    async fn build_local(config: SignerConfig) -> Result<WalletSigner, SignerBuildError> {
        config.build(&SignerSecrets::default()).await
    }

    #[tokio::test]
    async fn the_dev_signers_file_signs_as_the_listed_anvil_accounts() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("signers.dev.toml");
        let report = signers_file_report(&path, None, build_local).await.unwrap();
        let entries = report["wallets"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        for (entry, index) in entries.iter().zip([1, 2]) {
            let anvil = meshpay_signer::anvil_dev_account(index).unwrap().address();
            assert_eq!(entry["address"], anvil.to_string());
            assert_eq!(entry["listed_address"], anvil.to_string());
            assert_eq!(entry["matches"], true);
            assert_eq!(entry["kind"], "local");
            assert_eq!(entry["chain"], "anvil");
        }
    }

    #[tokio::test]
    async fn a_signer_listed_under_another_address_fails_the_check() {
        let dir = std::env::temp_dir().join(format!("meshpay-wallets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("signers.toml");
        // Account 3's key listed as account 1's address.
        std::fs::write(
            &path,
            r#"[[wallets]]
chain = "anvil"
address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
signer = { kind = "local", key = { source = "anvil_mnemonic", index = 3 } }
"#,
        )
        .unwrap();
        let error = signers_file_report(&path, None, build_local)
            .await
            .err()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let account_3 = meshpay_signer::anvil_dev_account(3).unwrap().address();
        assert!(
            error.to_string().contains(&format!("signs as {account_3}")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn signers_file_key_vault_entries_are_built_with_the_operator_credential() {
        let first = double("hot-wallet-0", "0a0a0a0a", "first key").await;
        let dir = std::env::temp_dir().join(format!("meshpay-wallets-kv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("signers.toml");
        std::fs::write(
            &path,
            format!(
                r#"[[wallets]]
chain = "ethereum"
address = "{}"
signer = {{ kind = "key_vault", vault_url = "https://meshpay-test.vault.azure.net/", key_name = "hot-wallet-0", key_version = "0a0a0a0a", credential = {{ kind = "managed_identity", client_id = "{CLIENT_ID}" }} }}
"#,
                expected_address(&first)
            ),
        )
        .unwrap();
        let addr = first.addr();
        let operator = CredentialConfig::AzureCli { tenant_id: None };
        let report = signers_file_report(&path, Some(operator.clone()), |config| {
            let operator = operator.clone();
            async move {
                let SignerConfig::KeyVault(key) = config else {
                    panic!("expected a Key Vault signer")
                };
                // The override reached the config the signer is built from.
                assert_eq!(key.credential, operator);
                let signer = KeyVaultSigner::from_config_with(
                    &key,
                    Arc::new(FakeCredential::default()),
                    Some(RedirectToDouble::transport(addr)),
                )
                .await
                .map_err(SignerBuildError::KeyVault)?;
                Ok(WalletSigner::from(signer))
            }
        })
        .await
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let entry = &report["wallets"][0];
        assert_eq!(entry["kind"], "key_vault");
        assert_eq!(entry["key_name"], "hot-wallet-0");
        assert_eq!(entry["key_version"], "0a0a0a0a");
        assert_eq!(entry["matches"], true);
    }

    #[test]
    fn key_vault_settings_come_from_the_environment_names_the_infra_sets() {
        // Flags and the app-setting names resolve to the same reader; a missing setting is named.
        let args = parse(&["meshpay", "wallets", "--keys", "hot-wallet-0"]);
        if std::env::var_os(KEYVAULT_URL_ENV).is_none() {
            let error = args.key_vault_wallets().unwrap_err();
            assert!(format!("{error:#}").contains(KEYVAULT_URL_ENV), "{error:#}");
        }
        let args = parse(&[
            "meshpay",
            "wallets",
            "--keyvault-url",
            "https://kv.vault.azure.net/",
            "--keys",
            "a,b",
            "--client-id",
            CLIENT_ID,
        ]);
        let wallets = args.key_vault_wallets().unwrap();
        assert_eq!(wallets.key_names, ["a", "b"]);
        assert_eq!(
            wallets.credential,
            CredentialConfig::ManagedIdentity {
                client_id: Some(CLIENT_ID.into())
            }
        );
    }
}
