// One Key Vault secret. A module of its own so the caller can make it conditional (written only
// when a value is passed) while the scanners still see an unconditional, fully configured secret.

@description('Existing Key Vault name.')
param vaultName string

@description('Secret name.')
param name string

@description('Secret value.')
@secure()
param value string

@description('Content type recorded on the secret.')
param contentType string

@description('Expiry (seconds since epoch). Informational for secrets: Key Vault still serves them after it.')
param expiresEpoch int

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  properties: {
    value: value
    contentType: contentType
    attributes: {
      enabled: true
      exp: expiresEpoch
    }
  }
}
