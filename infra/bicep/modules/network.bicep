// Optional private networking: a VNet with one subnet for the app's outbound traffic (Flex
// Consumption VNet integration) and one for private endpoints, plus the private DNS zones that
// make the services' usual host names resolve to those endpoints inside the VNet.
// Zone names are those of the Azure public cloud.

@description('Name prefix, e.g. meshpay-prod.')
param namePrefix string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('VNet address space.')
param addressPrefix string

@description('Subnet delegated to the function app (Flex Consumption: Microsoft.App/environments).')
param appSubnetPrefix string

@description('Subnet for private endpoints.')
param privateEndpointSubnetPrefix string

var dnsZoneNames = [
  'privatelink.blob.${environment().suffixes.storage}'
  'privatelink.queue.${environment().suffixes.storage}'
  'privatelink.table.${environment().suffixes.storage}'
  'privatelink.vaultcore.azure.net'
  'privatelink.postgres.database.azure.com'
]

// No custom rules: the defaults already deny inbound traffic from the internet; the NSGs exist
// so that rules can be added without re-creating subnets.
resource appNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${namePrefix}-app'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource endpointNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${namePrefix}-pe'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: 'vnet-${namePrefix}'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'snet-app'
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: {
            id: appNsg.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'snet-pe'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          networkSecurityGroup: {
            id: endpointNsg.id
          }
          privateEndpointNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

resource dnsZones 'Microsoft.Network/privateDnsZones@2024-06-01' = [for zoneName in dnsZoneNames: {
  name: zoneName
  location: 'global'
  tags: tags
}]

resource dnsLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [for (zoneName, i) in dnsZoneNames: {
  parent: dnsZones[i]
  name: 'link-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}]

output appSubnetId string = vnet.properties.subnets[0].id
output privateEndpointSubnetId string = vnet.properties.subnets[1].id
output blobZoneId string = dnsZones[0].id
output queueZoneId string = dnsZones[1].id
output tableZoneId string = dnsZones[2].id
output vaultZoneId string = dnsZones[3].id
output postgresZoneId string = dnsZones[4].id
