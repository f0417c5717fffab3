// Linux Node function app (Functions v4 host, Node major version nodeVersion) with a system-assigned identity (or, given one, a
// user-assigned identity: the prune app), on either an Elastic Premium plan (default) or a Flex
// Consumption plan; on Elastic Premium it may share an existing plan.
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

@description('User-assigned identity resource ID; empty = a system-assigned identity.')
param userAssignedIdentityId string = ''

@description('Client ID of userAssignedIdentityId (the host storage connection and DefaultAzureCredential pick it).')
param userAssignedIdentityClientId string = ''

@description('Elastic Premium: run on this existing plan instead of creating planName.')
param existingPlanId string = ''

@description('Node.js major version of the Functions Node worker (infra/README.md "Node version").')
@allowed([
  '22'
  '24'
])
param nodeVersion string

@description('''Client ID of the Entra app registration that signs users in (App Service authentication, #18).
Empty: no App Service authentication; the API takes function keys (PAGEWISE_AUTH=keys).''')
param entraClientId string = ''

@description('Tenant of that app registration.')
param entraTenantId string = tenant().tenantId

var isFlex = hostingPlan == 'FlexConsumption'
var isUserAssigned = !empty(userAssignedIdentityId)
var createPlan = empty(existingPlanId)

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = if (createPlan) {
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

var hostSettings = concat(
  [
    {
      // Identity-based connection: the host derives the blob/queue/table endpoints from the account name.
      name: 'AzureWebJobsStorage__accountName'
      value: hostStorage.name
    }
    {
      name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
      value: appInsightsConnectionString
    }
  ],
  isUserAssigned
    ? [
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: userAssignedIdentityClientId
        }
        {
          // DefaultAzureCredential (the engine's vault access) uses this identity.
          name: 'AZURE_CLIENT_ID'
          value: userAssignedIdentityClientId
        }
      ]
    : []
)

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
  linuxFxVersion: 'Node|${nodeVersion}'
  use32BitWorkerProcess: false
}

resource site 'Microsoft.Web/sites@2023-12-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: isUserAssigned
    ? {
        type: 'UserAssigned'
        userAssignedIdentities: {
          '${userAssignedIdentityId}': {}
        }
      }
    : {
        type: 'SystemAssigned'
      }
  properties: {
    serverFarmId: createPlan ? plan.id : existingPlanId
    httpsOnly: true
    clientAffinityEnabled: false
    keyVaultReferenceIdentity: isUserAssigned ? userAssignedIdentityId : 'SystemAssigned'
    siteConfig: union(commonSiteConfig, isFlex ? {} : elasticPremiumSiteConfig)
    functionAppConfig: isFlex
      ? {
          deployment: {
            storage: {
              type: 'blobContainer'
              value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
              authentication: isUserAssigned
                ? {
                    type: 'UserAssignedIdentity'
                    userAssignedIdentityResourceId: userAssignedIdentityId
                  }
                : {
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
            version: nodeVersion
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

// App Service authentication (#18): every request needs an Entra ID sign-in before it reaches the host; the host then
// sees the caller as x-ms-client-principal (functions/auth/principal.ts maps its Pagewise.* app roles). API routes are
// registered anonymous in this mode (PAGEWISE_AUTH=entra), so this is the gate; requireRole is the second.
resource authSettings 'Microsoft.Web/sites/config@2023-12-01' = if (!empty(entraClientId)) {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: true
      // A browser (the portal at /api/portal/) is sent to sign in; an API client without a token gets a 401.
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
      // Event Grid delivers to the host's webhook with the eventgrid_extension system key; it cannot sign in.
      excludedPaths: [
        '/runtime/webhooks/eventgrid'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          openIdIssuer: '${environment().authentication.loginEndpoint}${entraTenantId}/v2.0'
          clientId: entraClientId
        }
        validation: {
          // Tokens for this app only: its client ID or its Application ID URI (scripts use az account get-access-token).
          allowedAudiences: [
            entraClientId
            'api://${entraClientId}'
          ]
        }
        login: {
          disableWWWAuthenticate: false
        }
      }
    }
    login: {
      // The app needs only the principal header, never the users' tokens: none are stored.
      tokenStore: {
        enabled: false
      }
    }
    httpSettings: {
      requireHttps: true
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
// Empty for a user-assigned identity: its principal is the identity resource's.
output principalId string = isUserAssigned ? '' : site.identity.principalId
output planId string = createPlan ? plan.id : existingPlanId
