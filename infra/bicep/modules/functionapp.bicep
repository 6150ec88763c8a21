// The Function App on Linux Flex Consumption, running the `meshpay` custom handler as the
// user-assigned identity. Flex reads the app package from a blob container (identity-based),
// and takes its runtime from functionAppConfig.runtime instead of FUNCTIONS_WORKER_RUNTIME.

@description('Function app name.')
param name string

@description('Flex Consumption plan name (one app per plan).')
param planName string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Blob container URL the platform deploys the package from.')
param deploymentContainerUrl string

@description('Flex runtime name. "custom" for a bare custom-handler binary: UNCONFIRMED, see docs/DEPLOY.md.')
param runtimeName string

@description('Flex runtime version matching runtimeName.')
param runtimeVersion string

@description('Memory per instance.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Scale-out ceiling; bounds the PostgreSQL connections too (instances x pool size).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Instances kept warm for the HTTP functions (0 = scale to zero).')
@minValue(0)
param alwaysReadyHttpInstances int

@description('Spread the plan\'s instances over availability zones (not offered in every Flex region).')
param zoneRedundant bool

@description('Subnet for VNet integration; empty for none.')
param appSubnetId string

@description('App settings as an array of { name, value }.')
param appSettings array

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is the zoneRedundant parameter (on in main.prod.bicepparam), as not every Flex region offers it
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the payments API is public by design (merchants call it over the internet); data services go private with enablePrivateNetworking
  // checkov:skip=CKV_AZURE_17: merchants authenticate with API keys over TLS; requiring client certificates would lock them out
  // checkov:skip=CKV_AZURE_212: numberOfWorkers does not apply to Flex Consumption (per-function scaling; warm instances via alwaysReadyHttpInstances)
  // checkov:skip=CKV_AZURE_213: Flex Consumption replaces failed instances itself; GET /api/health serves external probes
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReadyHttpInstances > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyHttpInstances
          }
        ] : []
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: appSettings
    }
  }
}

// Deployments authenticate with Entra ID (az CLI / OIDC); basic-auth publishing stays off.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
