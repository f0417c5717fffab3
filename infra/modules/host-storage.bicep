// Storage account for the Functions host and the Durable Functions task hub (AzureWebJobsStorage).
// The app reaches it with its managed identity (AzureWebJobsStorage__accountName). Shared-key access is
// left on only when an Elastic Premium content share is requested: Azure Files content shares cannot use
// an identity, so the platform needs the account key for WEBSITE_CONTENTAZUREFILECONNECTIONSTRING.

param name string
param location string
param tags object

@description('Azure Files share for the Elastic Premium app content; empty for Flex Consumption.')
param contentShareName string = ''

@description('Blob container that holds the Flex Consumption deployment package; empty for Elastic Premium.')
param deploymentContainerName string = ''

var needsContentShare = !empty(contentShareName)
var needsDeploymentContainer = !empty(deploymentContainerName)

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: needsContentShare
    defaultToOAuthAuthentication: true
  }
}

resource fileService 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' = if (needsContentShare) {
  parent: account
  name: 'default'
}

resource contentShare 'Microsoft.Storage/storageAccounts/fileServices/shares@2023-05-01' = if (needsContentShare) {
  parent: fileService
  name: contentShareName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = if (needsDeploymentContainer) {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (needsDeploymentContainer) {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
