use super::*;
use crate::{CredentialConfig, LocalKeySource, RetryConfig};
use alloy::primitives::address;
use alloy::signers::local::PrivateKeySigner;

const ANVIL_0_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fn parse(text: &str) -> Result<SignerConfig, toml::de::Error> {
    #[derive(Deserialize)]
    struct File {
        signer: SignerConfig,
    }
    toml::from_str::<File>(text).map(|file| file.signer)
}

#[test]
fn key_vault_config_with_managed_identity_parses_and_is_fit_for_production() {
    let config = parse(
        r#"
        [signer]
        kind = "key_vault"
        vault_url = "https://meshpay-prod.vault.azure.net/"
        key_name = "hot-wallet-1"
        key_version = "0123456789abcdef0123456789abcdef"
        chain_id = 8453
        credential = { kind = "managed_identity", client_id = "1b9f2e0c-0000-0000-0000-000000000001" }
        retry = { max_attempts = 3 }
        "#,
    )
    .unwrap();
    let SignerConfig::KeyVault(key_vault) = &config else {
        panic!("expected key_vault: {config:?}")
    };
    assert_eq!(
        key_vault.key_version.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(key_vault.chain_id, Some(8453));
    assert_eq!(
        key_vault.credential,
        CredentialConfig::ManagedIdentity {
            client_id: Some("1b9f2e0c-0000-0000-0000-000000000001".into())
        }
    );
    assert_eq!(
        key_vault.retry,
        RetryConfig {
            max_attempts: 3,
            ..RetryConfig::default()
        }
    );
    assert!(!config.is_dev_only());
}

#[test]
fn key_vault_config_without_version_means_latest_at_startup() {
    let config = parse(
        r#"
        [signer]
        kind = "key_vault"
        vault_url = "https://v.vault.azure.net/"
        key_name = "k"
        credential = { kind = "managed_identity" }
        "#,
    )
    .unwrap();
    let SignerConfig::KeyVault(key_vault) = config else {
        panic!("expected key_vault")
    };
    assert_eq!(key_vault.key_version, None);
    assert_eq!(key_vault.retry, RetryConfig::default());
}

#[test]
fn key_vault_through_a_developer_login_is_dev_only() {
    for credential in [
        r#"{ kind = "azure_cli" }"#,
        r#"{ kind = "developer_tools" }"#,
    ] {
        let config = parse(&format!(
            "[signer]\nkind = \"key_vault\"\nvault_url = \"https://v.vault.azure.net/\"\nkey_name = \"k\"\ncredential = {credential}\n"
        ))
        .unwrap();
        assert!(config.is_dev_only(), "{credential}");
    }
}

#[test]
fn local_config_parses_is_dev_only_and_derives_anvil_accounts() {
    let config = parse(
        r#"
        [signer]
        kind = "local"
        chain_id = 31337
        key = { source = "anvil_mnemonic", index = 0 }
        "#,
    )
    .unwrap();
    assert!(config.is_dev_only());
    let SignerConfig::Local(local) = &config else {
        panic!("expected local")
    };
    assert_eq!(local.key, LocalKeySource::AnvilMnemonic { index: 0 });
    let signer = local.build_with_env(|_| None).unwrap();
    assert_eq!(
        signer.address(),
        address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    );
    assert_eq!(signer.chain_id(), Some(31337));
    let second = crate::anvil_dev_account(1).unwrap();
    assert_eq!(
        second.address(),
        address!("70997970C51812dc3A010C7d01b50e0d17dc79C8")
    );
}

#[test]
fn a_config_without_kind_is_rejected_rather_than_defaulting_to_local() {
    let error = parse("[signer]\nkey = { source = \"anvil_mnemonic\", index = 0 }\n").unwrap_err();
    assert!(error.to_string().contains("kind"), "{error}");
}

#[test]
fn misspelt_fields_are_rejected() {
    let typo_in_key_vault = r#"
        [signer]
        kind = "key_vault"
        vault_url = "https://v.vault.azure.net/"
        key_name = "k"
        key_verison = "abc"
        credential = { kind = "managed_identity" }
        "#;
    assert!(
        parse(typo_in_key_vault)
            .unwrap_err()
            .to_string()
            .contains("key_verison")
    );
    let typo_in_credential = r#"
        [signer]
        kind = "key_vault"
        vault_url = "https://v.vault.azure.net/"
        key_name = "k"
        credential = { kind = "managed_identity", clientid = "x" }
        "#;
    assert!(
        parse(typo_in_credential)
            .unwrap_err()
            .to_string()
            .contains("clientid")
    );
    let unknown_kind = "[signer]\nkind = \"aws_kms\"\n";
    assert!(parse(unknown_kind).is_err());
}

#[test]
fn hex_key_is_read_from_the_named_environment_variable() {
    let config = LocalConfig {
        key: LocalKeySource::HexKeyEnv {
            var: "HOT_KEY".into(),
        },
        chain_id: None,
    };
    let env = |var: &str| (var == "HOT_KEY").then(|| format!(" {ANVIL_0_KEY}\n"));
    let signer = config.build_with_env(env).unwrap();
    assert_eq!(
        signer.address(),
        address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    );

    let missing = config.build_with_env(|_| None).unwrap_err();
    assert!(matches!(missing, LocalKeyError::MissingEnv { ref var } if var == "HOT_KEY"));
}

#[test]
fn a_malformed_hex_key_error_does_not_echo_the_value() {
    let config = LocalConfig {
        key: LocalKeySource::HexKeyEnv {
            var: "HOT_KEY".into(),
        },
        chain_id: None,
    };
    let almost = format!("{}zz", &ANVIL_0_KEY[..64]);
    let error = config.build_with_env(|_| Some(almost.clone())).unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("HOT_KEY"));
    assert!(!shown.contains("ac0974bec39a"), "{shown}");
}

#[test]
fn keystore_is_decrypted_with_the_password_from_the_environment() {
    let dir = std::env::temp_dir().join(format!("meshpay-signer-keystore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = alloy::hex::decode(ANVIL_0_KEY).unwrap();
    PrivateKeySigner::encrypt_keystore(&dir, &mut rand::thread_rng(), key, "pw", Some("hot.json"))
        .unwrap();
    let config = LocalConfig {
        key: LocalKeySource::Keystore {
            path: dir.join("hot.json"),
            password_env: "KEYSTORE_PW".into(),
        },
        chain_id: None,
    };
    let signer = config
        .build_with_env(|var| (var == "KEYSTORE_PW").then(|| "pw".to_owned()))
        .unwrap();
    assert_eq!(
        signer.address(),
        address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    );
    let wrong = config
        .build_with_env(|_| Some("nope".to_owned()))
        .unwrap_err();
    assert!(matches!(wrong, LocalKeyError::Keystore { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wallet_signer_debug_shows_the_address_not_the_key() {
    let signer = WalletSigner::from(crate::anvil_dev_account(0).unwrap());
    let shown = format!("{signer:?}").to_lowercase();
    assert!(
        shown.contains("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"),
        "{shown}"
    );
    assert!(!shown.contains("ac0974bec39a"), "{shown}");
    assert!(signer.is_dev_only());
    assert_eq!(signer.kind(), "local");
}
