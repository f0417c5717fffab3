// The custom role "Pagewise vault writer" (issue #13): read, list, write and append blobs — everything a
// backup, restore, verify or forget needs — and NO delete. The backup app's identity gets it on the vault
// container, so a compromised backup app cannot erase the vault; only the prune app's identity deletes.

@description('Role name; unique per resource group.')
param roleName string = 'Pagewise vault writer'

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'pagewise-vault-writer')
  properties: {
    roleName: roleName
    description: 'Pagewise backup app: read, list, write and append vault blobs; no delete (prune runs under its own identity).'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/read'
        ]
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
        ]
        notDataActions: []
      }
    ]
  }
}

output roleDefinitionId string = role.id
