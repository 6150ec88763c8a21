//! [`KeyVaultSigner`]: an alloy signer whose secp256k1 key never leaves Azure Key Vault.

use crate::ecdsa::{address_of, ethereum_signature, public_key_from_jwk};
use crate::{CredentialConfig, KeyVaultSignerError, RetryConfig, retry::with_retry};
use alloy::consensus::SignableTransaction;
use alloy::network::TxSigner;
use alloy::primitives::{Address, B256, ChainId, Signature, hex};
use alloy::signers::{Signer, k256::ecdsa::VerifyingKey};
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_keys::{
    KeyClient, KeyClientOptions, ResourceExt,
    models::{
        Key, KeyClientGetKeyOptions, KeyClientSignOptions, SignParameters, SignatureAlgorithm,
    },
};
use serde::{Deserialize, Serialize};
use std::{fmt, sync::Arc};

/// `[signer]` with `kind = "key_vault"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyVaultConfig {
    /// `https://<vault>.vault.azure.net/` (or a Managed HSM URL).
    pub vault_url: String,
    /// Name of the EC P-256K key.
    pub key_name: String,
    /// Key version to sign with. Without it the version that is current at startup is read
    /// and pinned for the life of the signer: a key rotation must not silently change the
    /// wallet address under a running process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<String>,
    /// How to obtain Entra ID tokens.
    pub credential: CredentialConfig,
    /// EIP-155 chain id applied to transactions, if this signer serves one chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<ChainId>,
    /// Retry limits for Key Vault calls (written only when they differ from the defaults).
    #[serde(default, skip_serializing_if = "RetryConfig::is_default")]
    pub retry: RetryConfig,
}

/// Options for a `KeyClient` used by [`KeyVaultSigner`]: the SDK's retry policy off (the
/// signer retries itself, see [`RetryConfig`]) and an optional custom HTTP transport.
pub fn key_client_options(transport: Option<Transport>) -> KeyClientOptions {
    KeyClientOptions {
        client_options: ClientOptions {
            retry: RetryOptions::none(),
            transport,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Ethereum signer backed by an Azure Key Vault (or Managed HSM) EC P-256K key, signing with
/// ES256K.
///
/// [`new`](Self::new) reads the key once and caches its public key and address; each
/// signature is one `sign` call. Key Vault returns raw r‖s without normalizing s or giving a
/// recovery id: s is moved to the low half and the y-parity is found by recovering against
/// the cached public key, and a signature that does not recover to [`address`](Signer::address)
/// is an error, never a result. Cloning is cheap and clones share one client (and so one
/// token cache).
#[derive(Clone)]
pub struct KeyVaultSigner {
    client: Arc<KeyClient>,
    key_name: String,
    key_version: String,
    key_id: String,
    public_key: VerifyingKey,
    address: Address,
    chain_id: Option<ChainId>,
    retry: RetryConfig,
}

impl fmt::Debug for KeyVaultSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVaultSigner")
            .field("key_id", &self.key_id)
            .field("address", &self.address)
            .field("public_key", &hex::encode(self.public_key.to_sec1_bytes()))
            .field("chain_id", &self.chain_id)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl KeyVaultSigner {
    /// Creates the credential named by `config` and connects over the default HTTP transport.
    pub async fn from_config(config: &KeyVaultConfig) -> Result<Self, KeyVaultSignerError> {
        let credential = config.credential.build()?;
        Self::from_config_with(config, credential, None).await
    }

    /// Like [`from_config`](Self::from_config) with an explicit credential and HTTP transport
    /// (tests reach a local Key Vault double this way; the vault URL stays the real one).
    pub async fn from_config_with(
        config: &KeyVaultConfig,
        credential: Arc<dyn TokenCredential>,
        transport: Option<Transport>,
    ) -> Result<Self, KeyVaultSignerError> {
        let options = key_client_options(transport);
        let client = KeyClient::new(&config.vault_url, credential, Some(options))
            .map_err(KeyVaultSignerError::Client)?;
        Self::new(
            Arc::new(client),
            config.key_name.clone(),
            config.key_version.clone(),
            config.retry.clone(),
            config.chain_id,
        )
        .await
    }

    /// Reads the key (`get_key`), checks it can sign Ethereum transactions and caches its
    /// public key, address and version. `key_version: None` pins the current version.
    ///
    /// `client` should come with [`key_client_options`]; with the SDK's retry policy on as
    /// well, retries multiply.
    pub async fn new(
        client: Arc<KeyClient>,
        key_name: String,
        key_version: Option<String>,
        retry: RetryConfig,
        chain_id: Option<ChainId>,
    ) -> Result<Self, KeyVaultSignerError> {
        let key = with_retry(&retry, "get_key", || {
            request_key(&client, &key_name, key_version.clone())
        })
        .await?;
        if key
            .attributes
            .as_ref()
            .and_then(|attributes| attributes.enabled)
            == Some(false)
        {
            return Err(KeyVaultSignerError::KeyDisabled);
        }
        let jwk = key.key.as_ref().ok_or(KeyVaultSignerError::MissingKey)?;
        let public_key = public_key_from_jwk(jwk)?;
        let (key_id, resolved_version) = key_id_and_version(&key)?;
        if key_version
            .as_ref()
            .is_some_and(|pinned| *pinned != resolved_version)
        {
            return Err(KeyVaultSignerError::InvalidKeyId { kid: Some(key_id) });
        }
        let address = address_of(&public_key);
        tracing::info!(%address, %key_id, "Key Vault signer ready");
        Ok(Self {
            client,
            key_name,
            key_version: resolved_version,
            key_id,
            public_key,
            address,
            chain_id,
            retry,
        })
    }

    /// Signs a 32-byte digest (for transactions: the keccak256 signing hash) and returns the
    /// low-s Ethereum signature with its y-parity.
    #[tracing::instrument(level = "debug", skip_all, fields(key_id = %self.key_id, %digest), err)]
    pub async fn sign_digest(&self, digest: &B256) -> Result<Signature, KeyVaultSignerError> {
        let raw = with_retry(&self.retry, "sign", || self.timed_signature(digest)).await?;
        let raw = raw.ok_or(KeyVaultSignerError::MissingSignature)?;
        let signature = ethereum_signature(&raw, digest, &self.public_key)?;
        // Invariant, checked the way a node checks it: the sender recovered from the signature
        // is this wallet.
        if signature.recover_address_from_prehash(digest).ok() != Some(self.address) {
            return Err(KeyVaultSignerError::DoesNotRecover {
                address: self.address,
            });
        }
        Ok(signature)
    }

    /// The secp256k1 public key read at construction.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.public_key
    }

    /// The full key id (`https://<vault>/keys/<name>/<version>`) signatures are made with.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key version signatures are made with (pinned at construction).
    pub fn key_version(&self) -> &str {
        &self.key_version
    }

    /// One sign request, measured: every try counts, so throttling shows even when a retry
    /// succeeds.
    async fn timed_signature(&self, digest: &B256) -> azure_core::Result<Option<Vec<u8>>> {
        use meshpay_telemetry::metrics::{SignOutcome, key_vault_sign};
        let started = std::time::Instant::now();
        let result = self.request_signature(digest).await;
        let outcome = match &result {
            Ok(_) => SignOutcome::Signed,
            Err(error) => match error.kind() {
                azure_core::error::ErrorKind::HttpResponse { status, .. }
                    if u16::from(*status) == 429 =>
                {
                    SignOutcome::Throttled
                }
                _ => SignOutcome::Failed,
            },
        };
        key_vault_sign(started.elapsed(), outcome);
        result
    }

    async fn request_signature(&self, digest: &B256) -> azure_core::Result<Option<Vec<u8>>> {
        let parameters = SignParameters {
            algorithm: Some(SignatureAlgorithm::Es256K),
            value: Some(digest.to_vec()),
        };
        let options = KeyClientSignOptions {
            key_version: Some(self.key_version.clone()),
            ..Default::default()
        };
        let response = self
            .client
            .sign(&self.key_name, parameters.try_into()?, Some(options))
            .await?;
        Ok(response.into_model()?.result)
    }
}

async fn request_key(
    client: &KeyClient,
    key_name: &str,
    key_version: Option<String>,
) -> azure_core::Result<Key> {
    let options = KeyClientGetKeyOptions {
        key_version,
        ..Default::default()
    };
    client.get_key(key_name, Some(options)).await?.into_model()
}

/// The key id and its version segment, from the `kid` Key Vault returned.
fn key_id_and_version(key: &Key) -> Result<(String, String), KeyVaultSignerError> {
    let kid = key.key.as_ref().and_then(|jwk| jwk.kid.clone());
    let version = key
        .resource_id()
        .ok()
        .and_then(|id| id.version)
        .filter(|v| !v.is_empty());
    match (kid, version) {
        (Some(kid), Some(version)) => Ok((kid, version)),
        (kid, _) => Err(KeyVaultSignerError::InvalidKeyId { kid }),
    }
}

#[async_trait]
impl Signer for KeyVaultSigner {
    async fn sign_hash(&self, hash: &B256) -> alloy::signers::Result<Signature> {
        self.sign_digest(hash)
            .await
            .map_err(alloy::signers::Error::other)
    }

    fn address(&self) -> Address {
        self.address
    }

    fn chain_id(&self) -> Option<ChainId> {
        self.chain_id
    }

    fn set_chain_id(&mut self, chain_id: Option<ChainId>) {
        self.chain_id = chain_id;
    }
}

#[async_trait]
impl TxSigner<Signature> for KeyVaultSigner {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_transaction(
        &self,
        tx: &mut dyn SignableTransaction<Signature>,
    ) -> alloy::signers::Result<Signature> {
        apply_chain_id(self.chain_id, tx)?;
        self.sign_hash(&tx.signature_hash()).await
    }
}

alloy::network::impl_into_wallet!(KeyVaultSigner);

/// EIP-155: a signer bound to a chain sets it on the transaction and refuses one made for
/// another chain (what alloy's local signer does).
pub(crate) fn apply_chain_id(
    chain_id: Option<ChainId>,
    tx: &mut dyn SignableTransaction<Signature>,
) -> alloy::signers::Result<()> {
    if let Some(signer) = chain_id
        && !tx.set_chain_id_checked(signer)
    {
        let tx = tx.chain_id().unwrap_or_default();
        return Err(alloy::signers::Error::TransactionChainIdMismatch { signer, tx });
    }
    Ok(())
}
