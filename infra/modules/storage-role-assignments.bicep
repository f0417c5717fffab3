// Grants built-in roles on one storage account (in the resource group this module is deployed to)
// to a service principal. Used for the host account, the vault and every source account.

@description('Name of an existing storage account in this module\'s resource group.')
param storageAccountName string

@description('Object ID of the principal (the function app\'s system-assigned identity).')
param principalId string

@description('Built-in role definition GUIDs to grant on the account.')
param roleDefinitionIds string[]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleDefinitionIds: {
    name: guid(account.id, principalId, roleId)
    scope: account
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]
