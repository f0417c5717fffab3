// Linux Node 20 function app (Functions v4 host) with a system-assigned identity, on either an
// Elastic Premium plan (default) or a Flex Consumption plan.
//
// The two plans are configured differently:
// - Elastic Premium: runtime via linuxFxVersion, FUNCTIONS_* / WEBSITE_RUN_FROM_PACKAGE app settings, and an
//   Azure Files content share (key-based; Azure Files content shares have no identity option).
// - Flex Consumption: runtime, scale and the deployment container live in functionAppConfig; the platform
//   rejects or ignores linuxFxVersion, FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
//   WEBSITE_RUN_FROM_PACKAGE and the content-share settings, so they are not sent.

param name string
param planName string
param location string
param tags object

@allowed([
  'ElasticPremium'
  'FlexConsumption'
])
param hostingPlan string

@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param elasticPremiumSku string

@description('Elastic Premium: most instances the plan may scale out to.')
@minValue(1)
@maxValue(100)
param maximumElasticWorkerCount int

@description('Flex Consumption: most instances the app may scale out to.')
@minValue(1)
@maxValue(1000)
param flexMaximumInstanceCount int

@allowed([
  512
  2048
  4096
])
param flexInstanceMemoryMB int

@description('Host storage account (same resource group).')
param hostStorageName string

@description('Elastic Premium content share (must exist in the host account).')
param contentShareName string

@description('Flex Consumption deployment container (must exist in the host account).')
param deploymentContainerName string

param appInsightsConnectionString string

@description('Application settings owned by Pagewise itself, as { name, value } pairs.')
param appSettings array

@description('Allow publishing-profile (basic) credentials on the SCM/Kudu endpoint. FTP basic auth is always off.')
param allowScmBasicAuth bool

var isFlex = hostingPlan == 'FlexConsumption'

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: planName
  location: location
  tags: tags
  kind: isFlex ? 'functionapp' : 'elastic'
  sku: isFlex
    ? {
        name: 'FC1'
        tier: 'FlexConsumption'
      }
    : {
        name: elasticPremiumSku
        tier: 'ElasticPremium'
      }
  properties: {
    reserved: true // Linux
    maximumElasticWorkerCount: isFlex ? null : maximumElasticWorkerCount
  }
}

var hostSettings = [
  {
    // Identity-based connection: the host derives the blob/queue/table endpoints from the account name.
    name: 'AzureWebJobsStorage__accountName'
    value: hostStorage.name
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsightsConnectionString
  }
]

var elasticPremiumSettings = [
  {
    name: 'FUNCTIONS_EXTENSION_VERSION'
    value: '~4'
  }
  {
    name: 'FUNCTIONS_WORKER_RUNTIME'
    value: 'node'
  }
  {
    name: 'WEBSITE_RUN_FROM_PACKAGE'
    value: '1'
  }
  {
    name: 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING'
    value: 'DefaultEndpointsProtocol=https;AccountName=${hostStorage.name};EndpointSuffix=${environment().suffixes.storage};AccountKey=${hostStorage.listKeys().keys[0].value}'
  }
  {
    name: 'WEBSITE_CONTENTSHARE'
    value: contentShareName
  }
]

var commonSiteConfig = {
  minTlsVersion: '1.2'
  scmMinTlsVersion: '1.2'
  ftpsState: 'Disabled'
  http20Enabled: true
  appSettings: concat(hostSettings, isFlex ? [] : elasticPremiumSettings, appSettings)
}

var elasticPremiumSiteConfig = {
  linuxFxVersion: 'Node|20'
  use32BitWorkerProcess: false
}

resource site 'Microsoft.Web/sites@2023-12-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    keyVaultReferenceIdentity: 'SystemAssigned'
    siteConfig: union(commonSiteConfig, isFlex ? {} : elasticPremiumSiteConfig)
    functionAppConfig: isFlex
      ? {
          deployment: {
            storage: {
              type: 'blobContainer'
              value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
              authentication: {
                type: 'SystemAssignedIdentity'
              }
            }
          }
          scaleAndConcurrency: {
            maximumInstanceCount: flexMaximumInstanceCount
            instanceMemoryMB: flexInstanceMemoryMB
          }
          runtime: {
            name: 'node'
            version: '20'
          }
        }
      : null
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: allowScmBasicAuth
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
output principalId string = site.identity.principalId
