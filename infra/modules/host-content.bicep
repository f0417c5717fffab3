// A second app's content on the existing host account: its Elastic Premium content share or its Flex
// Consumption deployment container (the prune app beside the backup app; both share the host account,
// each with its own task hub, named after its app).

param hostStorageName string

@description('Azure Files share for the Elastic Premium app content; empty for Flex Consumption.')
param contentShareName string = ''

@description('Blob container for the Flex Consumption deployment package; empty for Elastic Premium.')
param deploymentContainerName string = ''

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource fileService 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource contentShare 'Microsoft.Storage/storageAccounts/fileServices/shares@2023-05-01' = if (!empty(contentShareName)) {
  parent: fileService
  name: contentShareName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (!empty(deploymentContainerName)) {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}
