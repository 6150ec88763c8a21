// meshpay: one environment in one resource group.
//
//   az deployment group create -g <rg> -f infra/bicep/main.bicep -p infra/bicep/main.prod.bicepparam
//
// What it creates and why each piece is configured as it is: docs/DEPLOY.md ("Deploy to Azure").
// Every secret-bearing service authenticates with Entra ID; no connection string, account key
// or database password exists anywhere in this deployment.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

@description('Environment name, part of every resource name (2-8 lowercase letters or digits), e.g. dev, prod.')
@minLength(2)
@maxLength(8)
param environmentName string

@description('Azure region (Flex Consumption is not offered everywhere: az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Application name, part of every resource name (lowercase letters, at most 8).')
@minLength(2)
@maxLength(8)
param appName string = 'meshpay'

@description('Extra tags for every resource.')
param extraTags object = {}

// ---------------------------------------------------------------------------------------------
// Wallets, fees, webhooks
// ---------------------------------------------------------------------------------------------

@description('Number of hot-wallet keys (EC-HSM, P-256K); each is one Ethereum address to fund.')
@minValue(1)
@maxValue(16)
param walletKeyCount int = 1

@description('Name prefix of the hot-wallet keys: <prefix>-0, <prefix>-1, ...')
param walletKeyPrefix string = 'hot-wallet'

@description('''Per-chain cap on max fee per gas, in wei, as decimal strings (money is never a float),
keyed by chain name from chains.toml, e.g. { ethereum: '200000000000' }. Each entry becomes the app
setting MESHPAY_FEE_CAP_WEI_<CHAIN> (upper case, "-" as "_"). NOT READ BY THE APP YET: the cap in
force is max_fee_per_gas_cap_wei in chains.toml (docs/DEPLOY.md).''')
param networkFeeCapsWei object = {}

@description('''Key Vault secret names holding each chain's RPC URL (provider URLs carry API keys), keyed by
chain name from chains.toml, e.g. { base: 'rpc-url-base' }. Each entry becomes the app setting
MESHPAY_RPC_URL_<CHAIN> as a Key Vault reference; set the secret values out of band
(az keyvault secret set). The chains file's rpc_url is then only a fallback.''')
param rpcUrlSecretNames object = {}

@description('Largest request body the Functions host accepts, in bytes (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT). The API takes at most 64 KiB of JSON; chain webhooks are the largest bodies.')
param requestBodySizeLimitBytes int = 1048576

@description('Path of the chains file as the app sees it (MESHPAY_CHAINS_CONFIG); relative to the app root (the unzipped package: scripts/package.sh puts MESHPAY_PACKAGE_CHAINS there as chains.toml).')
param chainsConfigPath string = 'chains.toml'

@description('Path of the broadcast step\'s signers file (MESHPAY_SIGNERS_CONFIG); relative to the app root (MESHPAY_PACKAGE_SIGNERS, packaged as signers.toml).')
param signersConfigPath string = 'signers.toml'

@description('NCRONTAB schedule of the notify timer function, which sends merchant webhooks from the outbox (NOTIFY_SCHEDULE).')
param notifySchedule string = '*/10 * * * * *'

@description('NCRONTAB schedule of the reconcile timer function, which nudges stuck payments (RECONCILE_SCHEDULE).')
param reconcileSchedule string = '0 */1 * * * *'

@description('NCRONTAB schedule of the invoices-detect timer function, which finds pay-ins to deposit addresses and credits them at finality (INVOICES_DETECT_SCHEDULE).')
param invoicesDetectSchedule string = '*/15 * * * * *'

@description('NCRONTAB schedule of the sweep timer function, which flushes the deposit addresses of final invoices to the treasury (SWEEP_SCHEDULE).')
param sweepSchedule string = '0 */1 * * * *'

@description('PostgreSQL connections per app instance (MESHPAY_DB_MAX_CONNECTIONS); instances x this must fit the server max_connections.')
@minValue(1)
@maxValue(100)
param dbMaxConnections int = 5

@description('Log filter of the handler (RUST_LOG).')
param logFilter string = 'info'

@description('Key Vault secret name of the webhook secret key (MESHPAY_WEBHOOK_SECRET_KEY).')
param webhookSecretName string = 'webhook-secret-key'

@description('''Webhook secret key: 32 random bytes, standard base64 (openssl rand -base64 32). It seals the merchants'
webhook endpoint secrets in the database. Pass it on the FIRST deployment only and leave it empty
afterwards (the stored secret is kept): a new value makes every stored endpoint secret unreadable.''')
@secure()
param webhookSecretKey string = ''

@description('Give the app a chain webhook key (MESHPAY_CHAIN_WEBHOOK_KEY) from Key Vault; without it every chain webhook is refused and confirmations rely on polling.')
param chainWebhookEnabled bool = false

@description('Key Vault secret name of the chain webhook key.')
param chainWebhookSecretName string = 'chain-webhook-key'

@description('Chain webhook key from the provider (Alchemy signing key, or whsec_<base64>). Pass it when enabling and to rotate; leave empty otherwise (the secret is then kept).')
@secure()
param chainWebhookKey string = ''

@description('Expiry written on a newly set secret (ISO 8601 duration). Informational: Key Vault still serves a secret after it, and the webhook secret key is never rotated.')
param secretLifetime string = 'P10Y'

@description('Deployment time; do not set (used to date a newly written secret).')
param deployedAt string = utcNow()

// ---------------------------------------------------------------------------------------------
// Function app (Flex Consumption)
// ---------------------------------------------------------------------------------------------

@description('''Flex runtime for the custom handler. UNCONFIRMED: whether "custom" is accepted for a bare binary,
and its version string, are not documented (docs/DEPLOY.md lists the fallback).''')
param flexRuntimeName string = 'custom'

@description('Flex runtime version matching flexRuntimeName.')
param flexRuntimeVersion string = '1.0'

@description('Memory per instance.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Scale-out ceiling (Flex minimum is 40). Instances x DB pool size must fit the server max_connections.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Instances kept warm for the HTTP functions (0 = scale to zero, cold starts).')
@minValue(0)
@maxValue(10)
param alwaysReadyHttpInstances int = 0

@description('Spread the Flex plan over availability zones (region must support it).')
param zoneRedundant bool = false

@description('Queues of the pipeline (function.json names); the host creates the -poison queues itself. The diagnostics functions\' queues (probes, probe-results, heartbeats) are not deployed: those functions are not in the package.')
param queueNames array = [
  'payments-broadcast'
  'payments-confirm'
  'payments-settle'
  'payins-detect'
]

@description('Storage replication.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_ZRS'

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

@description('PostgreSQL major version.')
@allowed([
  '15'
  '16'
  '17'
])
param postgresVersion string = '16'

@description('PostgreSQL compute SKU.')
param postgresSkuName string = 'Standard_B1ms'

@description('Tier matching postgresSkuName.')
@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
param postgresSkuTier string = 'Burstable'

@description('PostgreSQL storage in GiB.')
@minValue(32)
param postgresStorageSizeGB int = 32

@description('Days of point-in-time restore.')
@minValue(7)
@maxValue(35)
param postgresBackupRetentionDays int = 7

@description('Geo-redundant backups (fixed at server creation).')
param postgresGeoRedundantBackup bool = false

@description('Zone-redundant high availability (needs GeneralPurpose or MemoryOptimized).')
param postgresZoneRedundantHa bool = false

@description('Application database name.')
param postgresDatabaseName string = 'meshpay'

@description('Object id of the Entra principal administering PostgreSQL (recommended: a group holding the DBAs and the CI deployer).')
param postgresAdminObjectId string

@description('Display name of that principal = the PostgreSQL role its members log in as (PGUSER for migrations).')
param postgresAdminPrincipalName string

@description('Type of that principal.')
@allowed([
  'Group'
  'ServicePrincipal'
  'User'
])
param postgresAdminPrincipalType string = 'Group'

// ---------------------------------------------------------------------------------------------
// Monitoring and network
// ---------------------------------------------------------------------------------------------

@description('Days of log retention in Log Analytics.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('''Where meshpay sends its own spans and metrics (MESHPAY_TELEMETRY_EXPORTER): azuremonitor = straight to this
deployment's Application Insights (its connection string, Entra-authenticated with the app identity); otlp =
to otlpEndpoint (e.g. your own OpenTelemetry Collector); none = nothing exported, no overhead.''')
@allowed([
  'azuremonitor'
  'otlp'
  'none'
])
param telemetryExporter string = 'azuremonitor'

@description('''OTLP/HTTP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) when telemetryExporter is otlp; meshpay refuses to start
with otlp and no endpoint.''')
param otlpEndpoint string = ''

@description('OTLP encoding (OTEL_EXPORTER_OTLP_PROTOCOL).')
@allowed([
  'http/protobuf'
  'http/json'
])
param otlpProtocol string = 'http/protobuf'

@description('Action group resource ids the alerts notify (empty: alerts fire without notifications).')
param alertActionGroupIds array = []

@description('''Private networking: VNet integration for the app, private endpoints for storage, Key Vault and
PostgreSQL, their public endpoints disabled. The app's HTTP endpoint stays public (merchants call it).''')
param enablePrivateNetworking bool = false

@description('VNet address space (private networking only).')
param vnetAddressPrefix string = '10.60.0.0/16'

@description('App integration subnet (private networking only; /27 or larger).')
param appSubnetPrefix string = '10.60.0.0/24'

@description('Private endpoint subnet (private networking only).')
param privateEndpointSubnetPrefix string = '10.60.1.0/24'

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var token = toLower(take(uniqueString(subscription().id, resourceGroup().id, appName, environmentName), 8))
var namePrefix = '${appName}-${environmentName}'
var tags = union(extraTags, {
  application: appName
  environment: environmentName
})
var names = {
  identity: 'id-${namePrefix}'
  deployIdentity: 'id-${namePrefix}-deploy'
  storage: take('st${appName}${environmentName}${token}', 24)
  keyVault: take('kv-${environmentName}-${token}', 24)
  postgres: 'psql-${namePrefix}-${token}'
  plan: 'plan-${namePrefix}-${token}'
  functionApp: 'func-${namePrefix}-${token}'
}
var deploymentContainerName = 'app-package'

// Storage, Key Vault and PostgreSQL close their public endpoints with private networking.
var dataPublicNetworkAccess = enablePrivateNetworking ? 'Disabled' : 'Enabled'

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: '${namePrefix}-identity'
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

// CI's identity (give it a federated credential for the pipeline): it uploads the package and
// nothing else; the app's identity never leaves the app.
module deployIdentity 'modules/identity.bicep' = {
  name: '${namePrefix}-deploy-identity'
  params: {
    name: names.deployIdentity
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: '${namePrefix}-monitoring'
  params: {
    namePrefix: namePrefix
    location: location
    tags: tags
    retentionDays: logRetentionDays
    appPrincipalId: identity.outputs.principalId
  }
}

module observability 'modules/observability.bicep' = {
  name: '${namePrefix}-observability'
  params: {
    namePrefix: namePrefix
    location: location
    tags: tags
    meshpayExportsHere: telemetryExporter == 'azuremonitor'
    workspaceId: monitoring.outputs.workspaceId
    actionGroupIds: alertActionGroupIds
  }
}

module network 'modules/network.bicep' = if (enablePrivateNetworking) {
  name: '${namePrefix}-network'
  params: {
    namePrefix: namePrefix
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
  }
}

module storage 'modules/storage.bicep' = {
  name: '${namePrefix}-storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    skuName: storageSkuName
    publicNetworkAccess: dataPublicNetworkAccess
    deploymentContainerName: deploymentContainerName
    queueNames: queueNames
    appPrincipalId: identity.outputs.principalId
    deployPrincipalId: deployIdentity.outputs.principalId
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: '${namePrefix}-keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: tags
    publicNetworkAccess: dataPublicNetworkAccess
    walletKeyCount: walletKeyCount
    walletKeyPrefix: walletKeyPrefix
    webhookSecretName: webhookSecretName
    webhookSecretKey: webhookSecretKey
    chainWebhookEnabled: chainWebhookEnabled
    chainWebhookSecretName: chainWebhookSecretName
    chainWebhookKey: chainWebhookKey
    secretExpiresEpoch: dateTimeToEpoch(dateTimeAdd(deployedAt, secretLifetime))
    appPrincipalId: identity.outputs.principalId
    workspaceId: monitoring.outputs.workspaceId
  }
}

module postgres 'modules/postgres.bicep' = {
  name: '${namePrefix}-postgres'
  params: {
    name: names.postgres
    location: location
    tags: tags
    version: postgresVersion
    skuName: postgresSkuName
    skuTier: postgresSkuTier
    storageSizeGB: postgresStorageSizeGB
    backupRetentionDays: postgresBackupRetentionDays
    geoRedundantBackup: postgresGeoRedundantBackup
    zoneRedundantHa: postgresZoneRedundantHa
    publicNetworkAccess: dataPublicNetworkAccess
    databaseName: postgresDatabaseName
    adminObjectId: postgresAdminObjectId
    adminPrincipalName: postgresAdminPrincipalName
    adminPrincipalType: postgresAdminPrincipalType
    workspaceId: monitoring.outputs.workspaceId
  }
}

// Private endpoints, one per service sub-resource (private networking only).
var endpointTargets = {
  storage: storage.outputs.id
  keyVault: keyVault.outputs.id
  postgres: postgres.outputs.id
}
var endpoints = [
  {
    groupId: 'blob'
    target: 'storage'
    zoneOutput: 'blobZoneId'
  }
  {
    groupId: 'queue'
    target: 'storage'
    zoneOutput: 'queueZoneId'
  }
  {
    groupId: 'table'
    target: 'storage'
    zoneOutput: 'tableZoneId'
  }
  {
    groupId: 'vault'
    target: 'keyVault'
    zoneOutput: 'vaultZoneId'
  }
  {
    groupId: 'postgresqlServer'
    target: 'postgres'
    zoneOutput: 'postgresZoneId'
  }
]

module privateEndpoints 'modules/private-endpoint.bicep' = [for e in endpoints: if (enablePrivateNetworking) {
  name: '${namePrefix}-pe-${e.groupId}'
  params: {
    name: 'pe-${namePrefix}-${e.groupId}'
    location: location
    tags: tags
    subnetId: network.outputs.privateEndpointSubnetId
    targetId: endpointTargets[e.target]
    groupId: e.groupId
    dnsZoneId: network.outputs[e.zoneOutput]
  }
}]

// ---------------------------------------------------------------------------------------------
// App settings: the contract with the app (names documented in docs/DEPLOY.md)
// ---------------------------------------------------------------------------------------------

// The Functions host: identity-based storage and Entra-authenticated Application Insights.
var hostSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.outputs.name
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identity.outputs.clientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: monitoring.outputs.appInsightsConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  }
  // Timer schedules (function.json: "%NOTIFY_SCHEDULE%" etc.); the host refuses to index a
  // timer function whose setting is missing.
  {
    name: 'NOTIFY_SCHEDULE'
    value: notifySchedule
  }
  {
    name: 'RECONCILE_SCHEDULE'
    value: reconcileSchedule
  }
  {
    name: 'INVOICES_DETECT_SCHEDULE'
    value: invoicesDetectSchedule
  }
  {
    name: 'SWEEP_SCHEDULE'
    value: sweepSchedule
  }
  {
    // The host's default is 100 MB: bodies are refused before they reach the handler.
    name: 'FUNCTIONS_REQUEST_BODY_SIZE_LIMIT'
    value: string(requestBodySizeLimitBytes)
  }
]

// meshpay itself. The database user is the identity's name: the PostgreSQL role
// infra/scripts/db-bootstrap.sh creates for it. No password anywhere: see MESHPAY_DB_AUTH.
var databaseUrl = 'postgres://${identity.outputs.name}@${postgres.outputs.fqdn}:5432/${postgres.outputs.databaseName}?sslmode=verify-full'

var meshpaySettings = [
  {
    name: 'AZURE_CLIENT_ID'
    value: identity.outputs.clientId
  }
  {
    name: 'DATABASE_URL'
    value: databaseUrl
  }
  {
    // Entra token as the PostgreSQL password. NOT READ BY THE APP YET (docs/DEPLOY.md, "What is
    // unverified"): until meshpay-store supports it, database calls fail authentication in Azure.
    name: 'MESHPAY_DB_AUTH'
    value: 'entra'
  }
  {
    name: 'MESHPAY_DB_MAX_CONNECTIONS'
    value: string(dbMaxConnections)
  }
  {
    name: 'MESHPAY_CHAINS_CONFIG'
    value: chainsConfigPath
  }
  {
    name: 'MESHPAY_SIGNERS_CONFIG'
    value: signersConfigPath
  }
  {
    name: 'MESHPAY_KEYVAULT_URL'
    value: keyVault.outputs.uri
  }
  {
    name: 'MESHPAY_WALLET_KEYS'
    value: join(keyVault.outputs.walletKeyNames, ',')
  }
  {
    // Required: the app refuses to start without it. Resolved by the platform with the identity
    // (keyVaultReferenceIdentity); an unresolved reference reaches the app verbatim and fails
    // its base64 check, so the app does not start on a wrong key either.
    name: 'MESHPAY_WEBHOOK_SECRET_KEY'
    value: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.webhookSecretUri})'
  }
  {
    // Merchant webhook URLs must be public https: "allow-private" is for local development only
    // and is deliberately not a parameter here.
    name: 'MESHPAY_WEBHOOK_URL_POLICY'
    value: 'public'
  }
  {
    name: 'MESHPAY_LOG_FORMAT'
    value: 'json'
  }
  {
    name: 'RUST_LOG'
    value: logFilter
  }
]

// OpenTelemetry export of the handler (docs/DEPLOY.md, "Telemetry"), chosen explicitly. Its
// cloud role is `meshpay`, next to the host's (the Function App's name) in the same operations.
var telemetrySettings = concat([
  {
    name: 'MESHPAY_TELEMETRY_EXPORTER'
    value: telemetryExporter
  }
  {
    name: 'OTEL_SERVICE_NAME'
    value: 'meshpay'
  }
], telemetryExporter == 'otlp' ? [
  {
    name: 'OTEL_EXPORTER_OTLP_ENDPOINT'
    value: otlpEndpoint
  }
  {
    name: 'OTEL_EXPORTER_OTLP_PROTOCOL'
    value: otlpProtocol
  }
] : [])

var chainWebhookSettings = chainWebhookEnabled ? [
  {
    name: 'MESHPAY_CHAIN_WEBHOOK_KEY'
    value: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.chainWebhookSecretUri})'
  }
] : []

var feeCapSettings = [for cap in items(networkFeeCapsWei): {
  name: 'MESHPAY_FEE_CAP_WEI_${toUpper(replace(cap.key, '-', '_'))}'
  value: string(cap.value)
}]

var rpcUrlSettings = [for rpc in items(rpcUrlSecretNames): {
  name: 'MESHPAY_RPC_URL_${toUpper(replace(rpc.key, '-', '_'))}'
  value: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=${rpc.value})'
}]

module functionApp 'modules/functionapp.bicep' = {
  name: '${namePrefix}-functionapp'
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityId: identity.outputs.id
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    runtimeName: flexRuntimeName
    runtimeVersion: flexRuntimeVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    zoneRedundant: zoneRedundant
    appSubnetId: enablePrivateNetworking ? network.outputs.appSubnetId : ''
    appSettings: concat(hostSettings, meshpaySettings, chainWebhookSettings, feeCapSettings, telemetrySettings, rpcUrlSettings)
  }
  dependsOn: [
    privateEndpoints
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

@description('Base URL of the API (routes under /api).')
output functionAppUrl string = 'https://${functionApp.outputs.defaultHostName}'

@description('Client id of the deployment identity (CI logs in as it to upload the package).')
output deployIdentityClientId string = deployIdentity.outputs.clientId

@description('Function app name (for zip deploy).')
output functionAppName string = functionApp.outputs.name

@description('Key Vault key ids of the hot-wallet keys (versionless).')
output walletKeyIds array = keyVault.outputs.walletKeyIds

@description('Hot-wallet key names (MESHPAY_WALLET_KEYS).')
output walletKeyNames array = keyVault.outputs.walletKeyNames

@description('Comma-separated hot-wallet key names, as the app setting MESHPAY_WALLET_KEYS.')
output walletKeys string = join(keyVault.outputs.walletKeyNames, ',')

@description('Key Vault URL (MESHPAY_KEYVAULT_URL).')
output keyVaultUrl string = keyVault.outputs.uri

@description('Key Vault name.')
output keyVaultName string = keyVault.outputs.name

@description('PostgreSQL host (PGHOST).')
output postgresHost string = postgres.outputs.fqdn

@description('PostgreSQL server name.')
output postgresServerName string = postgres.outputs.name

@description('PostgreSQL database (PGDATABASE).')
output postgresDatabase string = postgres.outputs.databaseName

@description('Name of the app identity = its PostgreSQL role (PGUSER).')
output appIdentityName string = identity.outputs.name

@description('Object (principal) id of the app identity, for pgaadauth_create_principal_with_oid.')
output appIdentityPrincipalId string = identity.outputs.principalId

@description('Client id of the app identity (AZURE_CLIENT_ID).')
output appIdentityClientId string = identity.outputs.clientId

@description('Storage account name.')
output storageAccountName string = storage.outputs.name

@description('Whether storage, Key Vault and PostgreSQL are reachable only from the VNet.')
output privateNetworking bool = enablePrivateNetworking
