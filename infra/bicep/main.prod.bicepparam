// Production environment: zone-redundant app plan, storage and database, geo-redundant backups,
// one warm HTTP instance, two hot wallets.
//   export MESHPAY_PG_ADMIN_OBJECT_ID=$(az ad group show -g meshpay-prod-db-admins --query id -o tsv)
//   export MESHPAY_WEBHOOK_SIGNING_KEY=$(openssl rand -hex 32)   # first deployment / rotation only
//   az deployment group create -g rg-meshpay-prod -f infra/bicep/main.bicep -p infra/bicep/main.prod.bicepparam
using './main.bicep'

param environmentName = 'prod'

param walletKeyCount = 2

// Chain names as in chains.toml; caps in wei as decimal strings (200 gwei, 2 gwei).
param networkFeeCapsWei = {
  ethereum: '200000000000'
  base: '2000000000'
}

param webhookSigningKey = readEnvironmentVariable('MESHPAY_WEBHOOK_SIGNING_KEY', '')

param instanceMemoryMB = 2048
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

// Recommended once a runner / jump host inside the VNet exists for migrations and admin commands
// (docs/DEPLOY.md, "Private networking"); the public endpoints accept only Entra ID tokens.
param enablePrivateNetworking = false
