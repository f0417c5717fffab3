// Event Grid system topic on a watched source storage account (in this module's resource group),
// delivering page-blob creations in the watched containers to the function app's Event Grid function diskEvents
// (functions/events/eventGrid.ts, the same function snapshot writes go to).
//
// A storage account can have only one system topic: if it already has one, deploy the event
// subscription below onto that topic instead (see infra/README.md).

param storageAccountName string

@description('Region of the storage account; a storage system topic must live in the same region.')
param location string

param systemTopicName string

@description('Resource ID of the destination function: <functionAppId>/functions/diskEvents.')
param functionResourceId string

@description('Containers whose new page blobs trigger a backup.')
@minLength(1)
@maxLength(25)
param containers string[]

@allowed([
  'EventGridSchema'
  'CloudEventSchemaV1_0'
])
param eventDeliverySchema string

param tags object

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: location
  tags: tags
  properties: {
    source: account.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource blobCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'pagewise-blob-created'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionResourceId
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: eventDeliverySchema
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      advancedFilters: [
        {
          // Same effect as subjectBeginsWith, but for several containers at once.
          operatorType: 'StringBeginsWith'
          key: 'subject'
          values: [for container in containers: '/blobServices/default/containers/${container}/']
        }
        {
          // Pagewise backs up disks; block blobs dropped in the same containers are not its business.
          operatorType: 'StringIn'
          key: 'data.blobType'
          values: [
            'PageBlob'
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}
