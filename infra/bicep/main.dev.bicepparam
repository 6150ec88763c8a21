// Development environment: smallest sizes, public endpoints (Entra ID + RBAC only), short retention.
//   export MESHPAY_PG_ADMIN_OBJECT_ID=$(az ad group show -g meshpay-dev-db-admins --query id -o tsv)
//   export MESHPAY_WEBHOOK_SECRET_KEY=$(openssl rand -base64 32)   # FIRST deployment only, never again
//   az deployment group create -g rg-meshpay-dev -f infra/bicep/main.bicep -p infra/bicep/main.dev.bicepparam
using './main.bicep'

param environmentName = 'dev'

param walletKeyCount = 1

// Chain names as in chains.toml; caps in wei as decimal strings.
param networkFeeCapsWei = {
  sepolia: '50000000000'
}

// Empty unless exported: the stored secret is kept (docs/DEPLOY.md, step 2).
param webhookSecretKey = readEnvironmentVariable('MESHPAY_WEBHOOK_SECRET_KEY', '')

// Chain event webhooks (faster confirmations): set true once the provider's signing key is known,
// and export MESHPAY_CHAIN_WEBHOOK_KEY=<key> for that deployment (and to rotate it).
param chainWebhookEnabled = false
param chainWebhookKey = readEnvironmentVariable('MESHPAY_CHAIN_WEBHOOK_KEY', '')

param storageSkuName = 'Standard_LRS'

param postgresSkuName = 'Standard_B1ms'
param postgresSkuTier = 'Burstable'
param postgresBackupRetentionDays = 7
param postgresAdminObjectId = readEnvironmentVariable('MESHPAY_PG_ADMIN_OBJECT_ID')
param postgresAdminPrincipalName = 'meshpay-dev-db-admins'
param postgresAdminPrincipalType = 'Group'

param logRetentionDays = 30

param enablePrivateNetworking = false
