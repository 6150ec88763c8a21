// The one identity the function app runs as. User-assigned (not system-assigned) so that role
// assignments, the PostgreSQL principal and the host's storage connection can all be created
// before the app exists, and survive a re-creation of the app.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
