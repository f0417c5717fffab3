// Lets the function app read managed-disk snapshots in one watched resource group (this module's scope):
// read the snapshot and open / close a read SAS on it (beginGetAccess / endGetAccess), which is how
// Pagewise downloads a snapshot page by page.
//
// Default: a custom role with only those actions. 'DiskSnapshotContributor' uses the built-in role
// instead, which also allows deleting snapshots and listing storage-account keys in the group.

param principalId string

@allowed([
  'PagewiseSnapshotReader'
  'DiskSnapshotContributor'
])
param roleMode string

@description('Also allow creating and deleting snapshots (custom role only), for backups that snapshot a disk first.')
param allowSnapshotCreate bool

@description('''Also allow VM backups (custom role only, docs/VM.md): read the VMs, create restore points in a
Pagewise restore point collection, read their disk restore points through a read SAS, and delete the restore points
and snapshots Pagewise took (the sweeper; core/vm/arm-capture.ts deletes only what carries its tag).''')
param allowVmCapture bool = false

var diskSnapshotContributor = '7efff54f-a5b4-42b5-a1c5-5411624893ce'
var useCustomRole = roleMode == 'PagewiseSnapshotReader'
var customRoleGuid = guid(resourceGroup().id, 'pagewise-snapshot-reader')

var readActions = [
  'Microsoft.Compute/snapshots/read'
  'Microsoft.Compute/snapshots/beginGetAccess/action'
  'Microsoft.Compute/snapshots/endGetAccess/action'
  'Microsoft.Compute/disks/read'
]
var createActions = [
  'Microsoft.Compute/snapshots/write'
  'Microsoft.Compute/snapshots/delete'
]
var vmCaptureActions = [
  'Microsoft.Compute/virtualMachines/read'
  'Microsoft.Compute/restorePointCollections/read'
  'Microsoft.Compute/restorePointCollections/write'
  'Microsoft.Compute/restorePointCollections/restorePoints/read'
  'Microsoft.Compute/restorePointCollections/restorePoints/write'
  'Microsoft.Compute/restorePointCollections/restorePoints/delete'
  'Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints/read'
  'Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints/beginGetAccess/action'
  'Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints/endGetAccess/action'
]

resource snapshotReader 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (useCustomRole) {
  name: customRoleGuid
  properties: {
    // Role names are unique per tenant, hence the hash of the resource group ID.
    roleName: 'Pagewise Snapshot Reader ${uniqueString(resourceGroup().id)}'
    description: 'Read managed-disk snapshots in ${resourceGroup().name} and open/close a read SAS on them for Pagewise backups.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: union(readActions, allowSnapshotCreate || allowVmCapture ? createActions : [], allowVmCapture ? vmCaptureActions : [])
        notActions: []
      }
    ]
  }
}

var roleDefinitionId = subscriptionResourceId(
  'Microsoft.Authorization/roleDefinitions',
  useCustomRole ? customRoleGuid : diskSnapshotContributor
)

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    snapshotReader
  ]
}
