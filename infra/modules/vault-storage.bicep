// The secondary copy: a separate storage account holding the encrypted, deduplicated vault container.
// Identity-only by default (no account keys), never public, TLS 1.2+, with soft delete on blobs and
// containers, versioning (previous versions deleted by lifecycle management after versionRetentionDays) and optional
// version-level immutability (WORM).

param name string
param location string
param tags object

@description('Container that holds the vault.')
param containerName string

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string

@allowed([
  'Hot'
  'Cool'
])
param accessTier string

@description('Days a deleted blob or container can still be restored.')
@minValue(1)
@maxValue(365)
param softDeleteDays int

@description('Keep every overwritten or deleted blob as a version.')
param versioningEnabled bool

@description('Days a previous (overwritten or deleted) version is kept before lifecycle management deletes it.')
@minValue(1)
param versionRetentionDays int

@description('Version-level immutability (WORM) in days; 0 leaves it off. Turning it on forces versioning.')
@minValue(0)
param immutabilityDays int

@description('Allow account-key / account-SAS access. Off: only Entra ID (managed identity, az login) works.')
param allowSharedKeyAccess bool

var immutable = immutabilityDays > 0

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: accessTier
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: allowSharedKeyAccess
    defaultToOAuthAuthentication: true
    // Account-level version-level WORM: every blob version is protected for immutabilityDays after it is
    // written. Left 'Unlocked' so the period can still be shortened or removed; lock it by hand once agreed.
    immutableStorageWithVersioning: immutable
      ? {
          enabled: true
          immutabilityPolicy: {
            immutabilityPeriodSinceCreationInDays: immutabilityDays
            state: 'Unlocked'
            allowProtectedAppendWrites: false
          }
        }
      : null
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: versioningEnabled || immutable
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
      allowPermanentDelete: false
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

// Versioning keeps what a prune deletes as previous versions; without this rule they would be billed forever.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = if (versioningEnabled || immutable) {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'pagewise-expire-previous-versions'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${containerName}/'
              ]
            }
            actions: {
              version: {
                delete: {
                  daysAfterCreationGreaterThan: versionRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    blobService
  ]
}

output name string = account.name
output containerUrl string = '${account.properties.primaryEndpoints.blob}${containerName}'
