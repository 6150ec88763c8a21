// Production environment: zone-redundant app plan, storage and database, geo-redundant backups,
// one warm HTTP instance, two hot wallets.
//   export MESHPAY_PG_ADMIN_OBJECT_ID=$(az ad group show -g meshpay-prod-db-admins --query id -o tsv)
//   export MESHPAY_WEBHOOK_SECRET_KEY=$(openssl rand -base64 32)   # FIRST deployment only, never again
//   az deployment group create -g rg-meshpay-prod -f infra/bicep/main.bicep -p infra/bicep/main.prod.bicepparam
using './main.bicep'

param environmentName = 'prod'

param walletKeyCount = 2

// Chain names as in chains.toml; caps in wei as decimal strings (200 gwei, 2 gwei).
param networkFeeCapsWei = {
  ethereum: '200000000000'
  base: '2000000000'
}

// Empty unless exported: the stored secret is kept (docs/DEPLOY.md, step 2).
param webhookSecretKey = readEnvironmentVariable('MESHPAY_WEBHOOK_SECRET_KEY', '')

// Chain event webhooks (faster confirmations): set true once the provider's signing key is known,
// and export MESHPAY_CHAIN_WEBHOOK_KEY=<key> for that deployment (and to rotate it).
param chainWebhookEnabled = false
param chainWebhookKey = readEnvironmentVariable('MESHPAY_CHAIN_WEBHOOK_KEY', '')

param instanceMemoryMB = 2048
// Per instance: this pool plus the broadcast step's 8. Times maximumInstanceCount, it must stay
// below the PostgreSQL SKU's max_connections (docs/DEPLOY.md, Day-2 operations).
param dbMaxConnections = 5
param maximumInstanceCount = 40
param alwaysReadyHttpInstances = 1
param zoneRedundant = true

param storageSkuName = 'Standard_ZRS'

param postgresVersion = '16'
param postgresSkuName = 'Standard_D2ds_v5'
param postgresSkuTier = 'GeneralPurpose'
param postgresStorageSizeGB = 64
param postgresBackupRetentionDays = 35
param postgresGeoRedundantBackup = true
param postgresZoneRedundantHa = true
param postgresAdminObjectId = readEnvironmentVariable('MESHPAY_PG_ADMIN_OBJECT_ID')
param postgresAdminPrincipalName = 'meshpay-prod-db-admins'
param postgresAdminPrincipalType = 'Group'

param logRetentionDays = 365

// Key Vault, Storage and PostgreSQL behind private endpoints with public access off (no
// 0.0.0.0 firewall rule): migrations and admin commands run from a runner or jump host inside
// the VNet (docs/DEPLOY.md, "Private networking").
param enablePrivateNetworking = true

// RPC provider URLs (with their keys) as Key Vault references: MESHPAY_RPC_URL_<CHAIN>.
param rpcUrlSecretNames = {
  ethereum: 'rpc-url-ethereum'
  base: 'rpc-url-base'
}

// The API's bodies are at most 64 KiB; chain webhooks stay well under 1 MiB.
param requestBodySizeLimitBytes = 1048576
