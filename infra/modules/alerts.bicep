// The alerts an operator of a backup product needs (#18): a backup failed, a disk has had no successful backup for 26 hours,
// a scheduled verification failed. Log search alerts on Application Insights' customEvents (the events functions/telemetry.ts
// sends: Pagewise<Kind><Phase>, property disk = display URL, no SAS), mailed through one action group.

param location string
param tags object

@description('Application Insights component the app sends its events to.')
param appInsightsId string

@description('Name prefix of the rules and the action group.')
param namePrefix string

@description('Where alert mails go.')
param alertEmail string

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-alerts'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: take(replace(namePrefix, '-', ''), 12)
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// One alert per disk (dimension `disk`), so two failing disks are two alerts, and a fixed disk resolves its own.
var diskDimension = [
  {
    name: 'disk'
    operator: 'Include'
    values: [
      '*'
    ]
  }
]

var rules = [
  {
    name: '${namePrefix}-backup-failed'
    displayName: 'Pagewise: a backup failed'
    description: 'A disk or VM backup ended Failed (PagewiseBackupFailed / PagewiseVmBackupFailed). The alert names the disk; customDimensions.reason and errorCode say why.'
    severity: 1
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    overrideQueryTimeRange: null
    query: '''
customEvents
| where name in ("PagewiseBackupFailed", "PagewiseVmBackupFailed")
| extend disk = tostring(customDimensions.disk), reason = tostring(customDimensions.reason), errorCode = tostring(customDimensions.errorCode), instanceId = tostring(customDimensions.instanceId)
| project timestamp, name, disk, instanceId, errorCode, reason
'''
    dimensions: diskDimension
  }
  {
    name: '${namePrefix}-backup-missing-26h'
    displayName: 'Pagewise: no successful backup of a disk in 26 hours'
    description: 'A disk backed up in the last 7 days has had no PagewiseBackupCompleted for 26 hours (a daily schedule plus a margin): failed, never started, or the app is down.'
    severity: 1
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    // The query looks back 7 days for the disks it knows of; the window alone would only see the last hour.
    overrideQueryTimeRange: 'P7D'
    query: '''
customEvents
| where timestamp > ago(7d)
| where name == "PagewiseBackupCompleted"
| extend disk = tostring(customDimensions.disk)
| where isnotempty(disk)
| summarize lastSuccess = max(timestamp) by disk
| where lastSuccess < ago(26h)
'''
    dimensions: diskDimension
  }
  {
    name: '${namePrefix}-verify-failed'
    displayName: 'Pagewise: a scheduled verification failed'
    description: 'The nightly verification (PAGEWISE_VERIFY_SCHEDULE) found a backup that does not read back intact, or could not check it (PagewiseVerifyFailed, trigger timer).'
    severity: 1
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    overrideQueryTimeRange: null
    query: '''
customEvents
| where name == "PagewiseVerifyFailed"
| where tostring(customDimensions.trigger) == "timer"
| extend disk = tostring(customDimensions.disk), backupId = tostring(customDimensions.backupId), reason = tostring(customDimensions.reason)
| project timestamp, disk, backupId, reason
'''
    dimensions: diskDimension
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [
  for rule in rules: {
    name: rule.name
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: rule.displayName
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [
        appInsightsId
      ]
      evaluationFrequency: rule.evaluationFrequency
      windowSize: rule.windowSize
      overrideQueryTimeRange: rule.overrideQueryTimeRange
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: 'Count'
            dimensions: rule.dimensions
            operator: 'GreaterThan'
            threshold: 0
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      // A failure stays an open alert until someone looks (and resolves it), not until the next quiet window.
      autoMitigate: false
      actions: {
        actionGroups: [
          actionGroup.id
        ]
        customProperties: {
          runbook: 'infra/README.md#when-an-alert-fires'
        }
      }
    }
  }
]

output actionGroupId string = actionGroup.id
output alertRuleNames string[] = [for rule in rules: rule.name]
