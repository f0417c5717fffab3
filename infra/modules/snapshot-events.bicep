// Event Grid system topic on one watched resource group (this module's scope), delivering successful
// managed-disk snapshot writes to the function app's Event Grid function diskEvents (functions/events/eventGrid.ts; it
// takes blob events too, functions/events/diskEvents.ts classifyEvent tells them apart).
//
// An Azure resource can have only one system topic: if the resource group already has one, deploy the
// event subscription below onto that topic instead (see infra/README.md).

param systemTopicName string

@description('Resource ID of the destination function: <functionAppId>/functions/diskEvents.')
param functionResourceId string

@allowed([
  'EventGridSchema'
  'CloudEventSchemaV1_0'
])
param eventDeliverySchema string

param tags object

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: 'global' // subscription and resource-group topics are global
  tags: tags
  properties: {
    source: resourceGroup().id
    topicType: 'Microsoft.Resources.ResourceGroups'
  }
}

resource snapshotWritten 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'pagewise-snapshot-created'
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
        'Microsoft.Resources.ResourceWriteSuccess'
      ]
      // Fires on create and on every later update (tags, ...) of a snapshot: the function must be
      // idempotent, which Pagewise's backup ID (source, snapshot, etag) gives it.
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: [
            'Microsoft.Compute/snapshots/write'
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
