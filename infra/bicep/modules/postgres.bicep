// Azure Database for PostgreSQL Flexible Server: Entra ID authentication only (no passwords
// exist), TLS required. The Entra administrator is a group (DBAs + the CI deployer) that owns
// the schema; the app identity is an ordinary role created by SQL after deployment
// (docs/DEPLOY.md), so a compromised app cannot change the schema.

@description('Server name (3-63 lowercase letters, digits, hyphens).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('PostgreSQL major version.')
@allowed([
  '15'
  '16'
  '17'
])
param version string

@description('Compute SKU, e.g. Standard_B1ms (Burstable) or Standard_D2ds_v5 (GeneralPurpose).')
param skuName string

@description('Tier matching skuName.')
@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
param skuTier string

@description('Storage size in GiB.')
@minValue(32)
param storageSizeGB int

@description('Days of point-in-time restore.')
@minValue(7)
@maxValue(35)
param backupRetentionDays int

@description('Geo-redundant backups (fixed at server creation).')
param geoRedundantBackup bool

@description('Zone-redundant high availability (not available on Burstable).')
param zoneRedundantHa bool

@description('Disabled with private networking: the app then reaches the service through private endpoints.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

@description('Name of the application database.')
param databaseName string

@description('Object id of the Entra principal that administers the server (a group is recommended).')
param adminObjectId string

@description('Display name of that principal; it is also the PostgreSQL role name its members log in as.')
param adminPrincipalName string

@description('Type of that principal.')
@allowed([
  'Group'
  'ServicePrincipal'
  'User'
])
param adminPrincipalType string

@description('Log Analytics workspace for diagnostic settings.')
param workspaceId string

// Server parameters: TLS is required and at least 1.2; connection logging and throttling make
// token-guessing or pool exhaustion visible.
var serverParameters = [
  {
    name: 'require_secure_transport'
    value: 'ON'
  }
  {
    name: 'ssl_min_protocol_version'
    value: 'TLSv1.2'
  }
  {
    name: 'log_connections'
    value: 'ON'
  }
  {
    name: 'log_disconnections'
    value: 'ON'
  }
  {
    name: 'log_checkpoints'
    value: 'ON'
  }
  {
    name: 'connection_throttle.enable'
    value: 'ON'
  }
]

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    version: version
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: 'Disabled'
      tenantId: subscription().tenantId
    }
    storage: {
      storageSizeGB: storageSizeGB
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: backupRetentionDays
      geoRedundantBackup: geoRedundantBackup ? 'Enabled' : 'Disabled'
    }
    highAvailability: {
      mode: zoneRedundantHa ? 'ZoneRedundant' : 'Disabled'
    }
    network: {
      publicNetworkAccess: publicNetworkAccess
    }
  }
}

// One at a time: the server rejects concurrent configuration changes ("ServerIsBusy").
@batchSize(1)
resource serverConfigs 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = [for p in serverParameters: {
  parent: server
  name: p.name
  properties: {
    value: p.value
    source: 'user-override'
  }
}]

resource entraAdmin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = {
  parent: server
  name: adminObjectId
  properties: {
    principalName: adminPrincipalName
    principalType: adminPrincipalType
    tenantId: subscription().tenantId
  }
  dependsOn: [
    serverConfigs
  ]
}

// Without private networking the Flex Consumption app has no fixed outbound address, so the
// only workable rule is "Azure services"; authentication (Entra tokens over TLS) is the control.
resource allowAzure 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = if (publicNetworkAccess == 'Enabled') {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
  dependsOn: [
    entraAdmin
  ]
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
  dependsOn: [
    entraAdmin
    allowAzure
  ]
}

resource serverDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: server
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

output id string = server.id
output name string = server.name
output fqdn string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
