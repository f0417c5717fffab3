// Grants roles on the vault container alone (not the whole account) to one principal: the backup app's
// writer role, the prune app's delete right.

@description('Vault storage account (this module\'s resource group).')
param storageAccountName string

@description('The vault container.')
param containerName string

@description('Object ID of the principal.')
param principalId string

@description('Full role definition resource IDs (built-in: subscriptionResourceId(...); custom: the definition\'s id).')
param roleDefinitionResourceIds string[]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: containerName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleDefinitionResourceIds: {
    name: guid(container.id, principalId, roleId)
    scope: container
    properties: {
      roleDefinitionId: roleId
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]
