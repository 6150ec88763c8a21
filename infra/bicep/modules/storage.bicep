// Storage for the Functions host (leases, timers, keys, diagnostics), the pipeline's queues and
// the Flex Consumption deployment container. Shared keys are disabled: every client, the host
// included, authenticates with Entra ID (the app's user-assigned identity).

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Replication, e.g. Standard_ZRS for production, Standard_LRS for dev.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string

@description('Disabled with private networking: the app then reaches the service through private endpoints.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

@description('Blob container the Flex Consumption platform deploys the app package from.')
param deploymentContainerName string

@description('Queues the pipeline uses; created up front so the first message never races queue creation.')
param queueNames array

@description('Principal id of the app identity.')
param appPrincipalId string

@description('Principal id of the deployment identity (CI): it may write the deployment container and nothing else.')
param deployPrincipalId string

@description('Log Analytics workspace for diagnostic settings.')
param workspaceId string

// With the public endpoint closed, only private endpoints (and trusted Azure services) get through.
var networkDefaultAction = publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'

// Built-in roles the Functions host needs with an identity-based AzureWebJobsStorage, each
// scoped to what it touches rather than the account: blob Contributor (leases, blob metadata;
// Owner's ACL rights are not needed) on the host's containers and the deployment container,
// queue Contributor on each pipeline queue and its -poison queue (all created here, so the host
// creates none), table Contributor on the account: the host's diagnostic-events tables are
// named per month at run time, so no narrower scope exists for them.
var roleIds = {
  blobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

// The Functions host's own containers (leases and timer state; host keys).
var hostContainerNames = [
  'azure-webjobs-hosts'
  'azure-webjobs-secrets'
]

// Every queue the app reads or writes: the pipeline's and the host's poison queues.
var poisonQueueNames = [for queueName in queueNames: '${queueName}-poison']
var allQueueNames = concat(queueNames, poisonQueueNames)

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: defaultAction is Deny with enablePrivateNetworking; without it Allow, as Flex Consumption has no fixed egress IPs (shared keys are off: Entra ID + RBAC only)
  // checkov:skip=CKV_AZURE_206: replication is the skuName parameter (ZRS by default); the account holds transient queue messages and host state, the ledger lives in PostgreSQL
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      // Flex Consumption has no fixed outbound addresses: without private networking the
      // firewall cannot narrow callers, so access rests on Entra ID + RBAC alone.
      defaultAction: networkDefaultAction
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in allQueueNames: {
  parent: queueService
  name: queueName
}]

resource hostContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in hostContainerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource hostBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (containerName, i) in hostContainerNames: {
  name: guid(hostContainers[i].id, appPrincipalId, roleIds.blobDataContributor)
  scope: hostContainers[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.blobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// The platform reads the package with the app's identity.
resource packageBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deploymentContainer.id, appPrincipalId, roleIds.blobDataContributor)
  scope: deploymentContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.blobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// CI uploads the package with its own identity: it can replace the code, not read queues,
// leases or keys.
resource deployBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deploymentContainer.id, deployPrincipalId, roleIds.blobDataContributor)
  scope: deploymentContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.blobDataContributor)
    principalId: deployPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (queueName, i) in allQueueNames: {
  name: guid(queues[i].id, appPrincipalId, roleIds.queueDataContributor)
  scope: queues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.queueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, roleIds.tableDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.tableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Read/write/delete logs of each data service, so queue traffic and package downloads are auditable.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
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
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
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
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
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
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainer.name}'
