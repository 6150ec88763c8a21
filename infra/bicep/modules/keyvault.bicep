// Key Vault (Premium: HSM-backed keys) holding the hot-wallet signing keys and the app's secrets
// (the webhook secret key; optionally the chain webhook key). RBAC authorization only; the app
// identity gets Crypto User on each wallet key and Secrets User on each of its secrets, nothing
// vault-wide.

@description('Key Vault name (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Disabled with private networking: the app then reaches the service through private endpoints.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

@description('How many hot-wallet keys to create (names: <prefix>-0 .. <prefix>-N-1).')
@minValue(1)
@maxValue(16)
param walletKeyCount int

@description('Name prefix of the hot-wallet keys.')
param walletKeyPrefix string

@description('Name of the secret holding the webhook secret key (MESHPAY_WEBHOOK_SECRET_KEY).')
param webhookSecretName string

@description('Webhook secret key value. Empty: leave the existing secret untouched (it must already exist).')
@secure()
param webhookSecretKey string

@description('Whether the app gets a chain webhook key (MESHPAY_CHAIN_WEBHOOK_KEY) from this vault.')
param chainWebhookEnabled bool

@description('Name of the secret holding the chain webhook key.')
param chainWebhookSecretName string

@description('Chain webhook key value. Empty: leave the existing secret untouched.')
@secure()
param chainWebhookKey string

@description('Expiry written on a newly set secret (seconds since epoch); informational for secrets (Key Vault still serves them).')
param secretExpiresEpoch int

@description('Principal id of the app identity.')
param appPrincipalId string

@description('Log Analytics workspace for diagnostic settings.')
param workspaceId string

// With the public endpoint closed, only private endpoints (and trusted Azure services) get through.
var networkDefaultAction = publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'

var cryptoUserRoleId = '12338af0-0e69-4776-bea7-57ae8d297424'
var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: defaultAction is Deny with enablePrivateNetworking; without it Allow, as Flex Consumption has no fixed egress IPs (access: Entra ID + RBAC only)
  // checkov:skip=CKV_AZURE_189: public network access is Disabled with enablePrivateNetworking (a parameter the scanner cannot evaluate); see CKV_AZURE_109
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'premium'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      // Flex Consumption has no fixed outbound addresses, see storage.bicep.
      defaultAction: networkDefaultAction
    }
  }
}

// ARM creates a key only if it does not exist yet and never rotates it on redeploy: the wallet
// address is derived from the public key, so a new version would strand the funds at the old address.
resource walletKeys 'Microsoft.KeyVault/vaults/keys@2023-07-01' = [for i in range(0, walletKeyCount): {
  // checkov:skip=CKV_AZURE_40: an expiry date stops ES256K signing at that date; a hot-wallet key is retired by sweeping its funds to a new key, not by expiry
  parent: vault
  name: '${walletKeyPrefix}-${i}'
  properties: {
    kty: 'EC-HSM'
    curveName: 'P-256K'
    keyOps: [
      'sign'
      'verify'
    ]
    attributes: {
      enabled: true
    }
  }
}]

resource walletKeyCryptoUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for i in range(0, walletKeyCount): {
  name: guid(walletKeys[i].id, appPrincipalId, cryptoUserRoleId)
  scope: walletKeys[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cryptoUserRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// Written only when a value is passed (first deployment): a redeploy without the value keeps the
// current secret. A new value would make every webhook endpoint secret sealed with the old one
// unreadable (meshpay-webhooks has no key rotation yet).
module webhookSecret 'secret.bicep' = if (!empty(webhookSecretKey)) {
  name: '${name}-webhook-secret'
  params: {
    vaultName: vault.name
    name: webhookSecretName
    value: webhookSecretKey
    contentType: 'base64: 32 bytes (AES-256-GCM key sealing webhook endpoint secrets)'
    expiresEpoch: secretExpiresEpoch
  }
}

resource webhookSecretCurrent 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: webhookSecretName
}

resource webhookSecretUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, webhookSecretName, appPrincipalId, secretsUserRoleId)
  scope: webhookSecretCurrent
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    webhookSecret
  ]
}

// The key the chain-event provider signs its webhooks with (its value comes from the provider):
// written when passed, rotated by passing the provider's new key.
module chainWebhookSecret 'secret.bicep' = if (chainWebhookEnabled && !empty(chainWebhookKey)) {
  name: '${name}-chain-webhook-secret'
  params: {
    vaultName: vault.name
    name: chainWebhookSecretName
    value: chainWebhookKey
    contentType: 'chain webhook signing key (Alchemy key or whsec_ base64)'
    expiresEpoch: secretExpiresEpoch
  }
}

resource chainWebhookSecretCurrent 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: chainWebhookSecretName
}

resource chainWebhookSecretUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (chainWebhookEnabled) {
  name: guid(vault.id, chainWebhookSecretName, appPrincipalId, secretsUserRoleId)
  scope: chainWebhookSecretCurrent
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    chainWebhookSecret
  ]
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
output walletKeyNames array = [for i in range(0, walletKeyCount): walletKeys[i].name]
output walletKeyIds array = [for i in range(0, walletKeyCount): walletKeys[i].properties.keyUri]
output webhookSecretUri string = '${vault.properties.vaultUri}secrets/${webhookSecretName}/'
output chainWebhookSecretUri string = '${vault.properties.vaultUri}secrets/${chainWebhookSecretName}/'
