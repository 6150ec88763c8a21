//! Integration tests of meshpay-signer: `KeyVaultSigner` against a Key Vault double reached
//! through the real `KeyClient` (challenge, throttling, high-s answers), and signed
//! transactions accepted by a real anvil.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod key_vault;
mod on_chain;

use meshpay_signer::testing::{DoubleOptions, FakeCredential, KeyVaultDouble, RedirectToDouble};
use meshpay_signer::{
    CredentialConfig, KeyVaultConfig, KeyVaultSigner, KeyVaultSignerError, RetryConfig,
};
use std::sync::Arc;

/// Retries quick enough for tests.
fn fast_retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 4,
        initial_backoff_ms: 5,
        max_backoff_ms: 2_000,
        attempt_timeout_ms: 2_000,
    }
}

fn config_for(
    double: &KeyVaultDouble,
    key_version: Option<&str>,
    retry: RetryConfig,
) -> KeyVaultConfig {
    KeyVaultConfig {
        vault_url: double.options().vault_url.clone(),
        key_name: double.options().key_name.clone(),
        key_version: key_version.map(str::to_owned),
        // Not used: the tests pass the fake credential explicitly.
        credential: CredentialConfig::ManagedIdentity { client_id: None },
        chain_id: None,
        retry,
    }
}

/// A signer talking to `double`, and the credential it uses.
async fn connect(
    double: &KeyVaultDouble,
    key_version: Option<&str>,
    retry: RetryConfig,
) -> (
    Result<KeyVaultSigner, KeyVaultSignerError>,
    Arc<FakeCredential>,
) {
    let credential = Arc::new(FakeCredential::default());
    let signer = KeyVaultSigner::from_config_with(
        &config_for(double, key_version, retry),
        credential.clone(),
        Some(RedirectToDouble::transport(double.addr())),
    )
    .await;
    (signer, credential)
}

async fn start_double() -> KeyVaultDouble {
    KeyVaultDouble::start(DoubleOptions::new()).await
}
