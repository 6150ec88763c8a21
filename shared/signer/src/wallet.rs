//! [`WalletSigner`]: one type for the broadcast step, whichever kind of key signs.

use crate::KeyVaultSigner;
use crate::key_vault::apply_chain_id;
use alloy::consensus::SignableTransaction;
use alloy::network::TxSigner;
use alloy::primitives::{Address, B256, ChainId, Signature};
use alloy::signers::{Signer, local::PrivateKeySigner};
use async_trait::async_trait;

/// A hot wallet's signer: Key Vault in Azure, a local key on the dev stack.
/// `EthereumWallet::from(signer)` and `ProviderBuilder::wallet(signer)` accept it.
#[derive(Clone, Debug)]
pub enum WalletSigner {
    /// Key in Azure Key Vault / Managed HSM.
    KeyVault(KeyVaultSigner),
    /// Key in process memory; dev stack only. (`PrivateKeySigner`'s `Debug` prints only the
    /// address and chain id.)
    Local(PrivateKeySigner),
}

impl WalletSigner {
    /// True when the key lives in process memory: a production binary must refuse it.
    pub fn is_dev_only(&self) -> bool {
        matches!(self, Self::Local(_))
    }

    /// `key_vault` or `local`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::KeyVault(_) => "key_vault",
            Self::Local(_) => "local",
        }
    }
}

impl From<KeyVaultSigner> for WalletSigner {
    fn from(signer: KeyVaultSigner) -> Self {
        Self::KeyVault(signer)
    }
}

impl From<PrivateKeySigner> for WalletSigner {
    fn from(signer: PrivateKeySigner) -> Self {
        Self::Local(signer)
    }
}

#[async_trait]
impl Signer for WalletSigner {
    async fn sign_hash(&self, hash: &B256) -> alloy::signers::Result<Signature> {
        match self {
            Self::KeyVault(signer) => signer.sign_hash(hash).await,
            Self::Local(signer) => signer.sign_hash(hash).await,
        }
    }

    fn address(&self) -> Address {
        match self {
            Self::KeyVault(signer) => Signer::address(signer),
            Self::Local(signer) => Signer::address(signer),
        }
    }

    fn chain_id(&self) -> Option<ChainId> {
        match self {
            Self::KeyVault(signer) => signer.chain_id(),
            Self::Local(signer) => signer.chain_id(),
        }
    }

    fn set_chain_id(&mut self, chain_id: Option<ChainId>) {
        match self {
            Self::KeyVault(signer) => signer.set_chain_id(chain_id),
            Self::Local(signer) => signer.set_chain_id(chain_id),
        }
    }
}

#[async_trait]
impl TxSigner<Signature> for WalletSigner {
    fn address(&self) -> Address {
        Signer::address(self)
    }

    async fn sign_transaction(
        &self,
        tx: &mut dyn SignableTransaction<Signature>,
    ) -> alloy::signers::Result<Signature> {
        apply_chain_id(self.chain_id(), tx)?;
        self.sign_hash(&tx.signature_hash()).await
    }
}

alloy::network::impl_into_wallet!(WalletSigner);
