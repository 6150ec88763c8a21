//! Which Entra ID credential reaches Key Vault, chosen by configuration (azure_identity 1.0
//! has no default/chained credential, and guessing is how the wrong identity signs).

use crate::KeyVaultSignerError;
use azure_core::credentials::TokenCredential;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, DeveloperToolsCredential,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `[signer.credential]`: `kind = "managed_identity" | "azure_cli" | "developer_tools"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialConfig {
    /// The Function App's managed identity (production). `client_id` selects a user-assigned
    /// identity; without it the system-assigned identity is used.
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// The developer's `az login` session. Development only.
    AzureCli {
        /// Tenant to request tokens from, when not the CLI's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant_id: Option<String>,
    },
    /// Azure CLI, then Azure Developer CLI, whichever is logged in. Development only.
    DeveloperTools,
}

impl CredentialConfig {
    /// True for credentials that belong on a developer's machine, not in Azure.
    pub fn is_dev_only(&self) -> bool {
        !matches!(self, Self::ManagedIdentity { .. })
    }

    /// Creates the credential. It caches tokens itself; the `KeyClient`'s bearer policy adds
    /// a per-client cache on top, so build one signer per key and reuse it.
    pub fn build(&self) -> Result<Arc<dyn TokenCredential>, KeyVaultSignerError> {
        let credential: Arc<dyn TokenCredential> = match self {
            Self::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                ManagedIdentityCredential::new(Some(options))
                    .map_err(KeyVaultSignerError::Credential)?
            }
            Self::AzureCli { tenant_id } => {
                let options = AzureCliCredentialOptions {
                    tenant_id: tenant_id.clone(),
                    ..Default::default()
                };
                AzureCliCredential::new(Some(options)).map_err(KeyVaultSignerError::Credential)?
            }
            Self::DeveloperTools => {
                DeveloperToolsCredential::new(None).map_err(KeyVaultSignerError::Credential)?
            }
        };
        Ok(credential)
    }
}
