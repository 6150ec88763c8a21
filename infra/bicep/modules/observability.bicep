// Dashboards and alerts over the Log Analytics workspace behind Application Insights: the
// workbook (pipeline funnel, latency, wallet health, discrepancies) and one scheduled-query
// alert per condition an operator must act on. meshpay's Application Insights exporter
// (MESHPAY_TELEMETRY_EXPORTER=azuremonitor, docs/DEPLOY.md "Telemetry") lands its data in this
// workspace's tables (Application Insights' own names in brackets): its OpenTelemetry
// instruments (shared/telemetry/src/metrics.rs) in AppMetrics [customMetrics] (Name, Sum,
// Count, Min, Max, Properties = the attributes), each function invocation in AppRequests
// [requests] (Name = the function, or "POST <route>" for HTTP ones; OperationId = the payment's
// trace id) and webhook deliveries in AppDependencies [dependencies], all under
// AppRoleName "meshpay" (the host's own rows carry the Function App's name).
// docs/OPERATIONS.md says what each alert means and what to do.

@description('Name prefix, e.g. meshpay-prod.')
param namePrefix string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Resource id of the Log Analytics workspace the alerts and the workbook query.')
param workspaceId string

@description('Whether meshpay sends its own telemetry to this workspace (telemetryExporter azuremonitor); adds the telemetry-silent alert.')
param meshpayExportsHere bool = true

@description('Action group resource ids notified by every alert (empty: alerts fire without notifications).')
param actionGroupIds array = []

@description('Webhook delivery failure rate (0-100 %) over 15 minutes that raises the alert.')
@minValue(1)
@maxValue(100)
param webhookFailurePercent int = 20

@description('Key Vault throttled sign calls in 5 minutes that raise the alert.')
@minValue(1)
param keyVaultThrottleCount int = 10

var alertDefinitions = [
  {
    name: 'poison-messages'
    severity: 1
    description: 'A queue message failed its last delivery and was moved to a -poison queue (a payment step stopped).'
    frequency: 'PT5M'
    window: 'PT5M'
    query: 'union (AppMetrics | where Name == "meshpay.queue.poisoned" | project n = Sum), (AppTraces | where Message has "MaxDequeueCount" | project n = 1.0) | summarize n = sum(n) | where n > 0'
  }
  {
    name: 'stuck-wallets'
    severity: 1
    description: 'A hot wallet is halted, or its nonce counter stayed ahead of the chain for 15 minutes (its payments wait).'
    frequency: 'PT5M'
    window: 'PT15M'
    query: 'AppMetrics | where Name in ("meshpay.wallet.halted", "meshpay.wallet.nonce_lag") | extend wallet = tostring(Properties["wallet"]), chain = tostring(Properties["chain"]) | summarize halted = maxif(Max, Name == "meshpay.wallet.halted"), lag = minif(Min, Name == "meshpay.wallet.nonce_lag") by chain, wallet | where halted > 0 or lag > 0 or lag < 0'
  }
  {
    name: 'discrepancies'
    severity: 1
    description: 'Reconciliation found the books and the chain disagreeing.'
    frequency: 'PT5M'
    window: 'PT5M'
    query: 'AppMetrics | where Name == "meshpay.reconcile.discrepancies" | extend kind = tostring(Properties["kind"]) | summarize n = sum(Sum) by kind | where n > 0'
  }
  {
    name: 'keyvault-throttling'
    severity: 2
    description: 'Key Vault answered 429 to sign calls; broadcasts slow down and may time out.'
    frequency: 'PT5M'
    window: 'PT5M'
    query: 'AppMetrics | where Name == "meshpay.keyvault.throttles" | summarize n = sum(Sum) | where n >= ${keyVaultThrottleCount}'
  }
  {
    name: 'webhook-failures'
    severity: 2
    description: 'Merchant webhook attempts are failing at a high rate (at least 20 attempts in 15 minutes).'
    frequency: 'PT5M'
    window: 'PT15M'
    query: 'AppMetrics | where Name == "meshpay.webhook.deliveries" | extend outcome = tostring(Properties["outcome"]) | summarize total = sum(Sum), bad = sumif(Sum, outcome != "delivered") | where total >= 20 and bad * 100.0 / total >= ${webhookFailurePercent}'
  }
]

// Only where meshpay's own export lands here: otherwise it would fire forever.
var telemetryAlerts = meshpayExportsHere ? [
  {
    name: 'telemetry-silent'
    severity: 3
    description: 'No meshpay request for 30 minutes while the host ran functions: the handler\'s telemetry export stopped (payments are unaffected; dashboards and the other alerts go blind).'
    frequency: 'PT15M'
    window: 'PT30M'
    query: 'AppRequests | summarize meshpay = countif(AppRoleName == "meshpay"), host = countif(AppRoleName != "meshpay") | where host > 0 and meshpay == 0'
  }
] : []

resource alerts 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for alert in concat(alertDefinitions, telemetryAlerts): {
  name: 'alert-${namePrefix}-${alert.name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: ${alert.name}'
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: alert.frequency
    windowSize: alert.window
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}]

var workbookQueries = [
  {
    title: 'Pipeline funnel: payment transitions by target state'
    query: 'AppMetrics | where Name == "meshpay.payment.transitions" | extend to = tostring(Properties["to"]) | summarize transitions = sum(Sum) by to, bin(TimeGenerated, 5m) | render columnchart'
  }
  {
    title: 'Latency: authorize to settled (mean and max seconds), RPC calls by chain and method'
    query: 'AppMetrics | where Name in ("meshpay.payment.authorize_to_settled", "meshpay.rpc.duration", "meshpay.keyvault.sign.duration") | extend series = strcat(Name, " ", tostring(Properties["chain"]), " ", tostring(Properties["method"])) | summarize mean_s = sum(Sum) / sum(Count), max_s = max(Max) by series, bin(TimeGenerated, 5m) | render timechart'
  }
  {
    title: 'Wallet health: nonce lag and halted wallets'
    query: 'AppMetrics | where Name in ("meshpay.wallet.nonce_lag", "meshpay.wallet.halted") | extend wallet = strcat(tostring(Properties["chain"]), " ", tostring(Properties["wallet"])) | summarize value = max(Max) by Name, wallet, bin(TimeGenerated, 5m) | render timechart'
  }
  {
    title: 'Discrepancies by kind, poisoned messages and webhook outcomes'
    query: 'AppMetrics | where Name in ("meshpay.reconcile.discrepancies", "meshpay.queue.poisoned", "meshpay.webhook.deliveries") | extend label = strcat(Name, " ", tostring(Properties["kind"]), tostring(Properties["function"]), tostring(Properties["outcome"])) | summarize n = sum(Sum) by label, bin(TimeGenerated, 1h) | render columnchart'
  }
  {
    title: 'Invocations by function: count, failures, p95 duration (ms)'
    query: 'AppRequests | where AppRoleName == "meshpay" | extend function = tostring(Properties["faas.name"]) | summarize invocations = count(), failed = countif(Success == false), p95_ms = percentile(DurationMs, 95) by function | order by invocations desc'
  }
  {
    title: 'Slowest payments end to end (one operation per payment: open its OperationId in Transaction search)'
    query: 'union AppRequests, AppDependencies | where AppRoleName == "meshpay" | extend payment = tostring(Properties["meshpay.payment_id"]) | where isnotempty(payment) | summarize steps = make_set(tostring(Properties["faas.name"])), started = min(TimeGenerated), ended = max(TimeGenerated) by OperationId, payment | extend seconds = datetime_diff("second", ended, started) | top 20 by seconds desc'
  }
]

var workbookContent = {
  version: 'Notebook/1.0'
  items: [for (q, i) in workbookQueries: {
    type: 3
    name: 'query-${i}'
    content: {
      version: 'KqlItem/1.0'
      title: q.title
      query: q.query
      queryType: 0
      resourceType: 'microsoft.operationalinsights/workspaces'
      timeContext: {
        durationMs: 86400000
      }
    }
  }]
  fallbackResourceIds: [
    workspaceId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, namePrefix, 'meshpay-operations')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: '${namePrefix} payments operations'
    category: 'workbook'
    sourceId: workspaceId
    serializedData: string(workbookContent)
  }
}

output alertIds array = [for (alert, i) in alertDefinitions: alerts[i].id]
output workbookId string = workbook.id
