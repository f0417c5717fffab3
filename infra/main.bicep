// Pagewise production deployment: the function app (Durable Functions) that backs up VM disks page by
// page into an encrypted vault container on a separate storage account, and (deployPruneApp) a second
// app of the same package, role `prune`, the only identity allowed to delete from the vault (issue #13).
//
// Deploy at resource-group scope; see infra/README.md for the two-phase flow (infrastructure, code,
// then event subscriptions) and for what each role assignment is for.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------------

@description('A storage account, by name, in this subscription.')
type storageAccountRef = {
  @description('Storage account name.')
  name: string

  @description('Its resource group; defaults to the deployment\'s resource group.')
  resourceGroup: string?
}

// ---------------------------------------------------------------------------------------------------
// Parameters: naming and hosting
// ---------------------------------------------------------------------------------------------------

@description('Region for every resource this template creates (event topics on watched accounts excepted).')
param location string = resourceGroup().location

@description('Short lowercase prefix for resource names; a hash of the resource group ID keeps names unique.')
@minLength(2)
@maxLength(12)
param namePrefix string = 'pagewise'

@description('Function app name; default <namePrefix>-<hash>. Also the *.azurewebsites.net host name.')
param functionAppName string = ''

@description('''Hosting plan. ElasticPremium (default): always-warm instances with local ephemeral disk for the
scratch cache and no hard cap on run time. FlexConsumption: scale-to-zero, per-execution billing, smaller
instances (see infra/README.md before choosing it).''')
@allowed([
  'ElasticPremium'
  'FlexConsumption'
])
param hostingPlan string = 'ElasticPremium'

@description('Elastic Premium size: EP1 = 1 vCPU / 3.5 GB, EP2 = 2 / 7 GB, EP3 = 4 / 14 GB.')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param elasticPremiumSku string = 'EP1'

@description('Elastic Premium: most instances the plan may scale out to (each one is billed while it runs).')
@minValue(1)
@maxValue(100)
param maximumElasticWorkerCount int = 3

@description('Flex Consumption: most instances the app may scale out to.')
@minValue(1)
@maxValue(1000)
param flexMaximumInstanceCount int = 40

@description('Flex Consumption: memory per instance, MB.')
@allowed([
  512
  2048
  4096
])
param flexInstanceMemoryMB int = 4096

@description('Allow publishing-profile (basic) credentials on the SCM endpoint. Off: deploy with an Entra ID login.')
param allowScmBasicAuth bool = false

@description('Days Log Analytics keeps the app\'s logs and telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Daily Log Analytics ingestion cap in GB (a cost guard); -1 = no cap.')
param logDailyQuotaGb int = -1

@description('Tags for every resource.')
param tags object = {}

// ---------------------------------------------------------------------------------------------------
// Parameters: vault (the secondary copy) and the user key
// ---------------------------------------------------------------------------------------------------

@description('''Vault account redundancy. GZRS (default): three zones in the region plus a copy in the paired region, so
neither a zone nor a region outage loses the vault. Not every region offers GZRS: then Standard_GRS.''')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param vaultStorageSku string = 'Standard_GZRS'

@description('Vault access tier. Cool stores for less but charges more per write and for early deletion.')
@allowed([
  'Hot'
  'Cool'
])
param vaultAccessTier string = 'Hot'

@description('Days a deleted vault blob or container stays restorable (soft delete).')
@minValue(1)
@maxValue(365)
param vaultSoftDeleteDays int = 14

@description('Keep overwritten / deleted vault blobs as versions (on by default: a deleted or overwritten vault blob stays recoverable).')
param vaultVersioningEnabled bool = true

@description('Days a previous version of a vault blob is kept before lifecycle management deletes it (what a prune freed is then gone).')
@minValue(1)
@maxValue(3650)
param vaultVersionRetentionDays int = 30

@description('Version-level immutability (WORM) for the vault in days; 0 = off. Blocks pruning until it expires.')
@minValue(0)
@maxValue(146000)
param vaultImmutabilityDays int = 0

@description('Allow account keys / account SAS on the vault. Off: only Entra ID identities can read or write it.')
param vaultAllowSharedKeyAccess bool = false

@description('''Base64 of the 32-byte user key that encrypts the vault (e.g. `openssl rand -base64 32`).
Required on the first deployment; leave empty on later ones to keep the stored secret unchanged.''')
@secure()
@maxLength(44)
param userKeyBase64 string = ''

@description('Days a deleted Key Vault (or secret) stays recoverable; cannot change after creation.')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteDays int = 90

// ---------------------------------------------------------------------------------------------------
// Parameters: what Pagewise backs up
// ---------------------------------------------------------------------------------------------------

@description('Storage accounts holding source page blobs (unmanaged VHDs); the app gets Storage Blob Data Reader on each.')
param sourceStorageAccounts storageAccountRef[] = []

@description('Resource groups whose managed-disk snapshots Pagewise may read (and, with events on, reacts to).')
param watchedResourceGroups string[] = []

@description('Role for snapshot access: a least-privilege custom role, or the built-in Disk Snapshot Contributor.')
@allowed([
  'PagewiseSnapshotReader'
  'DiskSnapshotContributor'
])
param snapshotRoleMode string = 'PagewiseSnapshotReader'

@description('Custom role only: also allow creating/deleting snapshots (for policies that snapshot a disk first).')
param snapshotRoleAllowsCreate bool = false

@description('Custom role only: also allow VM backups in the watched groups (restore points, their disk SAS, the sweeper\'s deletes).')
param snapshotRoleAllowsVmBackup bool = false

@description('Source account whose new page blobs trigger a backup (diskEvents); empty = no blob events.')
param watchedBlobAccountName string = ''

@description('Resource group of watchedBlobAccountName.')
param watchedBlobAccountResourceGroup string = resourceGroup().name

@description('Region of watchedBlobAccountName (its system topic must be in the same region).')
param watchedBlobAccountLocation string = location

@description('Containers in watchedBlobAccountName that are watched for new page blobs.')
@maxLength(25)
param watchedContainers string[] = []

// ---------------------------------------------------------------------------------------------------
// Parameters: Event Grid
// ---------------------------------------------------------------------------------------------------

@description('''Create the Event Grid subscriptions. Event Grid checks that the destination functions exist,
so leave this false until the code is published, then deploy again with true.''')
param deployEventSubscriptions bool = false

@description('Schema Event Grid delivers to the functions.')
@allowed([
  'EventGridSchema'
  'CloudEventSchemaV1_0'
])
param eventDeliverySchema string = 'EventGridSchema'

// The one Event Grid-triggered function the app registers (functions/events/eventGrid.ts): it takes snapshot writes
// and new page blobs alike. Not a parameter: Event Grid refuses a subscription to a function that does not exist.
var diskEventsFunctionName = 'diskEvents'

// ---------------------------------------------------------------------------------------------------
// Parameters: Pagewise engine settings (become PAGEWISE_* app settings)
// ---------------------------------------------------------------------------------------------------

@description('NCRONTAB (6 fields, UTC) for scheduled backups. Default: every day at 01:00.')
param backupSchedule string = '0 0 1 * * *'

@description('NCRONTAB (6 fields, UTC) for the snapshot sweeper (#17: orphan captures deleted, grants left open ended). Default: every day at 02:30.')
param sweepSchedule string = '0 30 2 * * *'

@description('Hours an orphan capture (a VM backup that never wrote its manifest) is kept before the sweeper deletes it: 1 to 720.')
@minValue(1)
@maxValue(720)
param sweepGraceHours int = 24

@description('JSON backup policy: {"disks":[{"url":"https://<account>.blob.core.windows.net/<container>/<disk>.vhd","days":["Mon"]}],"retention":{"keepDaily":7}} (retention optional; docs/RETENTION.md). Validated as JSON at deploy time.')
param backupPolicy string = '{"disks":[]}'

@description('Page size in bytes; a multiple of 512. Default 4 MiB.')
@minValue(512)
param pageSize int = 4194304

@description('Scratch cache capacity in bytes, per activity. Default 256 MiB.')
@minValue(512)
param cacheBytes int = 268435456

@description('Pages downloaded / processed at once per activity.')
@minValue(1)
@maxValue(64)
param concurrency int = 4

@description('Batch activities of one disk in flight at once (PAGEWISE_BATCHES_IN_FLIGHT).')
@minValue(1)
@maxValue(32)
param batchesInFlight int = 2

@description('#17 start budget: backups running at once in the task hub (PAGEWISE_MAX_RUNNING_BACKUPS); the timer\'s starts wait in the queue pagewise-backup-starts for a slot.')
@minValue(1)
@maxValue(1000)
param maxRunningBackups int = 8

@description('#17 start budget: of those, at once per storage account of the source disks (PAGEWISE_MAX_RUNNING_PER_ACCOUNT).')
@minValue(1)
@maxValue(1000)
param maxRunningPerAccount int = 4

@description('Scratch directory on the instance\'s local ephemeral disk.')
param scratchDir string = '/tmp/pagewise'

// ---------------------------------------------------------------------------------------------------
// Parameters: retention and pruning (issue #13, docs/RETENTION.md)
// ---------------------------------------------------------------------------------------------------

@description('''Deploy the prune app: a second function app (same package, PAGEWISE_APP_ROLE=prune) with its own
user-assigned identity, the only one with the delete right on the vault container. The backup app then runs
as role `backup` with the custom "Pagewise vault writer" role (no delete). False: one app, role `all`,
Storage Blob Data Contributor on the vault.''')
param deployPruneApp bool = true

@description('Prune app name; default <namePrefix>-prune-<hash>.')
param pruneAppName string = ''

@description('NCRONTAB (6 fields, UTC) for the prune app: forget by the policy\'s retention, then prune. Default: Sundays at 03:00.')
param pruneSchedule string = '0 0 3 * * 0'

// ---------------------------------------------------------------------------------------------------
// Parameters: sign-in, scheduled verification, telemetry, alerts (#18)
// ---------------------------------------------------------------------------------------------------

@description('''Client ID of the Entra ID app registration with the app roles Pagewise.Reader, Pagewise.Operator,
Pagewise.Restorer and Pagewise.Admin (infra/README.md "First deployment"). Set: App Service authentication in front
of both apps and PAGEWISE_AUTH=entra. Empty: function keys (PAGEWISE_AUTH=keys; a key holder has every role).''')
param entraClientId string = ''

@description('Tenant of that app registration.')
param entraTenantId string = tenant().tenantId

@description('NCRONTAB (6 fields, UTC) of the scheduled verification; empty = off. Default: every day at 04:00, after the backups and the sweeper.')
param verifySchedule string = '0 0 4 * * *'

@description('Bytes one scheduled verification night reads at most (PAGEWISE_VERIFY_BYTES_PER_NIGHT). Default 64 GiB.')
@minValue(1)
param verifyBytesPerNight int = 68719476736

@description('Verifications one scheduled firing starts at most (PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT), however many small backups fit the bytes. Default 32.')
@minValue(1)
@maxValue(1000)
param verifyMaxStartsPerNight int = 32

@description('Percent (0-100) of storage dependency telemetry items kept (PAGEWISE_TELEMETRY_DEPENDENCY_SAMPLING).')
@minValue(0)
@maxValue(100)
param telemetryDependencySampling int = 1

@description('Email address the alerts (failed backup, no backup of a disk in 26 h, failed scheduled verification) go to.')
@minLength(3)
param alertEmail string

@description('''Node.js major version of the function apps. 24: the newest generally available on Elastic Premium and Flex
Consumption (Linux) at the time of writing; 22 if your region does not offer 24 yet (infra/README.md "Node version").''')
@allowed([
  '22'
  '24'
])
param nodeVersion string = '24'

@description('Extra app settings, merged last (e.g. {"AzureFunctionsJobHost__functionTimeout": "02:00:00"}).')
param additionalAppSettings object = {}

// ---------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------

var suffix = uniqueString(resourceGroup().id, namePrefix)
var compactPrefix = take(toLower(replace(namePrefix, '-', '')), 8)
var isFlex = hostingPlan == 'FlexConsumption'

var appName = empty(functionAppName) ? '${namePrefix}-${suffix}' : functionAppName
var planName = '${namePrefix}-plan-${suffix}'
var pruneName = empty(pruneAppName) ? '${namePrefix}-prune-${suffix}' : pruneAppName
var prunePlanName = '${namePrefix}-prune-plan-${suffix}'
var pruneIdentityName = '${namePrefix}-prune-id-${suffix}'
var pruneContentShareName = take(toLower(pruneName), 63)
var hostStorageName = take('${compactPrefix}host${suffix}', 24)
var vaultStorageName = take('${compactPrefix}vault${suffix}', 24)
var keyVaultName = take('kv-${compactPrefix}-${suffix}', 24)
var workspaceName = '${namePrefix}-log-${suffix}'
var appInsightsName = '${namePrefix}-appi-${suffix}'
var contentShareName = take(toLower(appName), 63)
var deploymentContainerName = 'app-package'

var vaultContainerName = 'pagewise-vault'
var userKeySecretName = 'pagewise-user-key'

// Built from names (not module outputs) so the app settings are known when the deployment starts.
var vaultUrl = 'https://${vaultStorageName}.blob.${environment().suffixes.storage}/${vaultContainerName}'
var userKeySecretUri = 'https://${keyVaultName}${environment().suffixes.keyvaultDns}/secrets/${userKeySecretName}'

// Source accounts with their resource group filled in; the watched blob account is a source too.
var sourceAccounts = union(
  map(sourceStorageAccounts, account => {
    name: account.name
    resourceGroup: account.?resourceGroup ?? (resourceGroup().name)
  }),
  empty(watchedBlobAccountName)
    ? []
    : [
        {
          name: watchedBlobAccountName
          resourceGroup: watchedBlobAccountResourceGroup
        }
      ]
)

// Built-in role definition IDs.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

// ---------------------------------------------------------------------------------------------------
// App settings
// ---------------------------------------------------------------------------------------------------

var authMode = empty(entraClientId) ? 'keys' : 'entra'

var pagewiseSettings = union(
  {
    PAGEWISE_VAULT_URL: vaultUrl
    PAGEWISE_USER_KEY: '@Microsoft.KeyVault(SecretUri=${userKeySecretUri})'
    PAGEWISE_ALLOWED_ACCOUNTS: join(union([vaultStorageName], map(sourceAccounts, account => account.name)), ',')
    PAGEWISE_STORAGE_SUFFIX: environment().suffixes.storage // account names mean https://<name>.blob.<this cloud's suffix>
    PAGEWISE_BACKUP_SCHEDULE: backupSchedule
    PAGEWISE_SWEEP_SCHEDULE: sweepSchedule
    PAGEWISE_SWEEP_GRACE_HOURS: string(sweepGraceHours)
    // The sweeper lists snapshots where the app may read them: the watched groups (empty: the policy's VM subscriptions).
    PAGEWISE_SWEEP_SCOPES: join(map(watchedResourceGroups, group => '${subscription().subscriptionId}/${group}'), ',')
    PAGEWISE_BACKUP_POLICY: string(json(backupPolicy)) // fails the deployment early on invalid JSON
    PAGEWISE_WATCHED_CONTAINERS: join(watchedContainers, ',')
    PAGEWISE_PAGE_SIZE: string(pageSize)
    PAGEWISE_CACHE_BYTES: string(cacheBytes)
    PAGEWISE_CONCURRENCY: string(concurrency)
    PAGEWISE_BATCHES_IN_FLIGHT: string(batchesInFlight)
    PAGEWISE_MAX_RUNNING_BACKUPS: string(maxRunningBackups)
    PAGEWISE_MAX_RUNNING_PER_ACCOUNT: string(maxRunningPerAccount)
    PAGEWISE_SCRATCH_DIR: scratchDir
    PAGEWISE_APP_ROLE: deployPruneApp ? 'backup' : 'all'
    PAGEWISE_AUTH: authMode
    PAGEWISE_VERIFY_BYTES_PER_NIGHT: string(verifyBytesPerNight)
    PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT: string(verifyMaxStartsPerNight)
    PAGEWISE_TELEMETRY_DEPENDENCY_SAMPLING: string(telemetryDependencySampling)
  },
  // Unset is off: an empty NCRONTAB would not be "off" but a binding the host cannot resolve.
  empty(verifySchedule) ? {} : { PAGEWISE_VERIFY_SCHEDULE: verifySchedule },
  additionalAppSettings
)

var pagewiseSettingsList = [
  for setting in items(pagewiseSettings): {
    name: setting.key
    value: string(setting.value)
  }
]

// The prune app: the vault only (no source account, no backup schedule), the policy for its retention rules.
var pruneSettings = union(
  {
    PAGEWISE_VAULT_URL: vaultUrl
    PAGEWISE_USER_KEY: '@Microsoft.KeyVault(SecretUri=${userKeySecretUri})'
    PAGEWISE_ALLOWED_ACCOUNTS: vaultStorageName
    PAGEWISE_STORAGE_SUFFIX: environment().suffixes.storage
    PAGEWISE_BACKUP_POLICY: string(json(backupPolicy))
    PAGEWISE_APP_ROLE: 'prune'
    PAGEWISE_PRUNE_SCHEDULE: pruneSchedule
    PAGEWISE_SCRATCH_DIR: scratchDir
    PAGEWISE_AUTH: authMode
    PAGEWISE_TELEMETRY_DEPENDENCY_SAMPLING: string(telemetryDependencySampling)
    // Its own task hub on the shared host account (host.json names the backup app's PagewiseHub).
    AzureFunctionsJobHost__extensions__durableTask__hubName: 'PagewisePruneHub'
  },
  additionalAppSettings
)

var pruneSettingsList = [
  for setting in items(pruneSettings): {
    name: setting.key
    value: string(setting.value)
  }
]

// ---------------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------------

module monitoring 'modules/monitoring.bicep' = {
  name: 'pagewise-monitoring'
  params: {
    location: location
    workspaceName: workspaceName
    appInsightsName: appInsightsName
    retentionInDays: logRetentionDays
    dailyQuotaGb: logDailyQuotaGb
    tags: tags
  }
}

module hostStorage 'modules/host-storage.bicep' = {
  name: 'pagewise-host-storage'
  params: {
    name: hostStorageName
    location: location
    tags: tags
    contentShareName: isFlex ? '' : contentShareName
    deploymentContainerName: isFlex ? deploymentContainerName : ''
  }
}

module vaultStorage 'modules/vault-storage.bicep' = {
  name: 'pagewise-vault-storage'
  params: {
    name: vaultStorageName
    location: location
    tags: tags
    containerName: vaultContainerName
    skuName: vaultStorageSku
    accessTier: vaultAccessTier
    softDeleteDays: vaultSoftDeleteDays
    versioningEnabled: vaultVersioningEnabled
    versionRetentionDays: vaultVersionRetentionDays
    immutabilityDays: vaultImmutabilityDays
    allowSharedKeyAccess: vaultAllowSharedKeyAccess
  }
}

module keyVault 'modules/key-vault.bicep' = {
  name: 'pagewise-key-vault'
  params: {
    name: keyVaultName
    location: location
    tags: tags
    softDeleteRetentionInDays: keyVaultSoftDeleteDays
    secretName: userKeySecretName
    secretValue: userKeyBase64
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'pagewise-function-app'
  params: {
    name: appName
    planName: planName
    location: location
    tags: tags
    hostingPlan: hostingPlan
    elasticPremiumSku: elasticPremiumSku
    maximumElasticWorkerCount: maximumElasticWorkerCount
    flexMaximumInstanceCount: flexMaximumInstanceCount
    flexInstanceMemoryMB: flexInstanceMemoryMB
    hostStorageName: hostStorage.outputs.name
    contentShareName: isFlex ? '' : contentShareName
    deploymentContainerName: deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    appSettings: pagewiseSettingsList
    allowScmBasicAuth: allowScmBasicAuth
    nodeVersion: nodeVersion
    entraClientId: entraClientId
    entraTenantId: entraTenantId
  }
  dependsOn: [
    keyVault // PAGEWISE_USER_KEY refers to its secret
  ]
}

// --- Role assignments for the app's identity -------------------------------------------------------

// Host account: the Functions host keeps keys, leases and timers in blobs; the durable task hub uses
// queues, tables and blobs; the start budget (#17) its slot leases and start records (blobs,
// container pagewise-starts) and the start queue pagewise-backup-starts (+ -poison: Queue Data Contributor); Flex Consumption also reads its deployment package from a blob container.
module hostStorageAccess 'modules/storage-role-assignments.bicep' = {
  name: 'pagewise-host-storage-access'
  params: {
    storageAccountName: hostStorage.outputs.name
    principalId: functionApp.outputs.principalId
    roleDefinitionIds: [
      storageBlobDataOwner
      storageQueueDataContributor
      storageTableDataContributor
    ]
  }
}

// Vault: write staged blocks, commit block lists and manifests, read them back for restore / verify. With
// the prune app the backup app cannot delete (custom "Pagewise vault writer" on the container); alone it
// also prunes (Storage Blob Data Contributor on the account).
module vaultAccess 'modules/storage-role-assignments.bicep' = if (!deployPruneApp) {
  name: 'pagewise-vault-access'
  params: {
    storageAccountName: vaultStorage.outputs.name
    principalId: functionApp.outputs.principalId
    roleDefinitionIds: [
      storageBlobDataContributor
    ]
  }
}

module vaultWriterRole 'modules/vault-writer-role.bicep' = if (deployPruneApp) {
  name: 'pagewise-vault-writer-role'
}

module vaultWriterAccess 'modules/vault-container-access.bicep' = if (deployPruneApp) {
  name: 'pagewise-vault-writer-access'
  params: {
    storageAccountName: vaultStorage.outputs.name
    containerName: vaultContainerName
    principalId: functionApp.outputs.principalId
    roleDefinitionResourceIds: [
      vaultWriterRole.outputs.roleDefinitionId
    ]
  }
}

// Key Vault: resolve the PAGEWISE_USER_KEY reference.
module keyVaultAccess 'modules/key-vault-access.bicep' = {
  name: 'pagewise-key-vault-access'
  params: {
    keyVaultName: keyVault.outputs.name
    principalId: functionApp.outputs.principalId
  }
}

// Source accounts: read page ranges and pages of the disks to back up.
module sourceAccess 'modules/storage-role-assignments.bicep' = [
  for (account, i) in sourceAccounts: {
    name: 'pagewise-source-access-${i}'
    scope: resourceGroup(account.resourceGroup)
    params: {
      storageAccountName: account.name
      principalId: functionApp.outputs.principalId
      roleDefinitionIds: [
        storageBlobDataReader
      ]
    }
  }
]

// Watched resource groups: read snapshots and open a read SAS on them.
module snapshotAccess 'modules/snapshot-access.bicep' = [
  for (group, i) in watchedResourceGroups: {
    name: 'pagewise-snapshot-access-${i}'
    scope: resourceGroup(group)
    params: {
      principalId: functionApp.outputs.principalId
      roleMode: snapshotRoleMode
      allowSnapshotCreate: snapshotRoleAllowsCreate
      allowVmCapture: snapshotRoleAllowsVmBackup
    }
  }
]

// --- The prune app (role prune): its own user-assigned identity, delete on the vault container only ----

resource pruneIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (deployPruneApp) {
  name: pruneIdentityName
  location: location
  tags: tags
}

// Its role assignments come first: the app resolves its Key Vault reference and host storage at start.
module pruneHostStorageAccess 'modules/storage-role-assignments.bicep' = if (deployPruneApp) {
  name: 'pagewise-prune-host-storage-access'
  params: {
    storageAccountName: hostStorage.outputs.name
    principalId: deployPruneApp ? pruneIdentity.properties.principalId : ''
    roleDefinitionIds: [
      storageBlobDataOwner
      storageQueueDataContributor
      storageTableDataContributor
    ]
  }
}

module pruneVaultAccess 'modules/vault-container-access.bicep' = if (deployPruneApp) {
  name: 'pagewise-prune-vault-access'
  params: {
    storageAccountName: vaultStorage.outputs.name
    containerName: vaultContainerName
    principalId: deployPruneApp ? pruneIdentity.properties.principalId : ''
    roleDefinitionResourceIds: [
      subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    ]
  }
}

module pruneKeyVaultAccess 'modules/key-vault-access.bicep' = if (deployPruneApp) {
  name: 'pagewise-prune-key-vault-access'
  params: {
    keyVaultName: keyVault.outputs.name
    principalId: deployPruneApp ? pruneIdentity.properties.principalId : ''
  }
}

module pruneHostContent 'modules/host-content.bicep' = if (deployPruneApp) {
  name: 'pagewise-prune-host-content'
  params: {
    hostStorageName: hostStorage.outputs.name
    contentShareName: isFlex ? '' : pruneContentShareName
    deploymentContainerName: isFlex ? '${deploymentContainerName}-prune' : ''
  }
}

module pruneApp 'modules/function-app.bicep' = if (deployPruneApp) {
  name: 'pagewise-prune-app'
  params: {
    name: pruneName
    planName: prunePlanName
    // Elastic Premium: on the backup app's plan (prune is a short weekly run); Flex: one app per plan.
    existingPlanId: isFlex ? '' : functionApp.outputs.planId
    location: location
    tags: tags
    hostingPlan: hostingPlan
    elasticPremiumSku: elasticPremiumSku
    maximumElasticWorkerCount: maximumElasticWorkerCount
    flexMaximumInstanceCount: 1
    flexInstanceMemoryMB: flexInstanceMemoryMB
    hostStorageName: hostStorage.outputs.name
    contentShareName: isFlex ? '' : pruneContentShareName
    deploymentContainerName: '${deploymentContainerName}-prune'
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    appSettings: pruneSettingsList
    allowScmBasicAuth: allowScmBasicAuth
    userAssignedIdentityId: deployPruneApp ? pruneIdentity.id : ''
    userAssignedIdentityClientId: deployPruneApp ? pruneIdentity.properties.clientId : ''
    nodeVersion: nodeVersion
    entraClientId: entraClientId
    entraTenantId: entraTenantId
  }
  dependsOn: [
    pruneHostContent
    pruneHostStorageAccess
    pruneKeyVaultAccess
  ]
}

// --- Event Grid (second phase, after the code is published) ----------------------------------------

module snapshotEvents 'modules/snapshot-events.bicep' = [
  for (group, i) in watchedResourceGroups: if (deployEventSubscriptions) {
    name: 'pagewise-snapshot-events-${i}'
    scope: resourceGroup(group)
    params: {
      systemTopicName: '${namePrefix}-snapshots-${suffix}'
      functionResourceId: '${functionApp.outputs.id}/functions/${diskEventsFunctionName}'
      eventDeliverySchema: eventDeliverySchema
      tags: tags
    }
  }
]

module blobEvents 'modules/blob-events.bicep' = if (deployEventSubscriptions && !empty(watchedBlobAccountName) && !empty(watchedContainers)) {
  name: 'pagewise-blob-events'
  scope: resourceGroup(watchedBlobAccountResourceGroup)
  params: {
    storageAccountName: watchedBlobAccountName
    location: watchedBlobAccountLocation
    systemTopicName: '${namePrefix}-blobs-${suffix}'
    functionResourceId: '${functionApp.outputs.id}/functions/${diskEventsFunctionName}'
    containers: watchedContainers
    eventDeliverySchema: eventDeliverySchema
    tags: tags
  }
  dependsOn: [
    sourceAccess // the app can read a blob before it is told about it
  ]
}

// --- Alerts (#18): failed backup, no backup of a disk in 26 h, failed scheduled verification ---------

module alerts 'modules/alerts.bicep' = {
  name: 'pagewise-alerts'
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    namePrefix: namePrefix
    alertEmail: alertEmail
  }
}

// ---------------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------------

output functionAppName string = functionApp.outputs.name
output functionAppHostName string = functionApp.outputs.defaultHostName
output vaultUrl string = vaultStorage.outputs.containerUrl
output principalId string = functionApp.outputs.principalId
output keyVaultName string = keyVault.outputs.name
output hostStorageAccountName string = hostStorage.outputs.name
output vaultStorageAccountName string = vaultStorage.outputs.name
output pruneAppName string = deployPruneApp ? pruneName : ''
output prunePrincipalId string = deployPruneApp ? pruneIdentity.properties.principalId : ''
output authMode string = authMode
output portalUrl string = 'https://${functionApp.outputs.defaultHostName}/api/portal/'
output alertRuleNames string[] = alerts.outputs.alertRuleNames
