/**
 * The Pagewise function app (package.json "main"): every trigger, orchestrator and activity of its role.
 * Importing this module registers them with @azure/functions — in Azure via the Functions worker,
 * locally via the Pagewise durable runtime (runtime/). PAGEWISE_APP_ROLE (functions/settings.ts) picks
 * what registers: `all` everything; `backup` no prune and no undelete (its identity cannot delete);
 * `prune` forget, undelete, prune and the prune schedule only.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- registration depends on the role, read first */
import { app } from '@azure/functions';
import { appRole, hasAppSettings, useAppSettings } from './settings';
import { registerRetentionOrchestrations } from '../orchestrations/registerRetention';
import { startTelemetry } from './telemetry';

// In Azure: the app settings are resolved once, at start, and configure core's endpoints and request
// gate here. A local runtime hands its own in before it loads this module.
if (!hasAppSettings()) useAppSettings(process.env);

// #18 telemetry: Application Insights starts before any trigger runs (when configured), so outgoing
// storage calls are sampled and counted from the first one.
startTelemetry();

// File downloads stream (functions/http/files.ts). App-wide in Azure: every HTTP trigger then gets its
// request through the worker's HTTP proxy — bodies are still read with request.text(), so the JSON routes
// are unchanged — and a handler that throws sends no response at all (azure-functions-nodejs-library#324):
// every handler answers through answering()/problemFromError and never throws.
app.setup({ enableHttpStream: true });

const role = appRole();
if (role !== 'prune') {
  require('../orchestrations');
  require('./activities');
  require('./verifyActivities'); // #17 V
  require('./restoreActivities'); // #17 R
  require('./http/backups');
  require('./vmActivities');
  require('./http/vmBackups');
  require('./http/operations');
  require('./http/files');
  require('./scheduledBackups');
  require('./events/eventGrid');
  require('./events/settleActivities');
  // #17 B: queue-fed starts within the start budget, and the catalog of failed starts.
  require('./backupStartQueue');
  require('./http/starts');
  // #17 leftbehind: the snapshot sweeper's timer (Compute deletes; the backup app owns Compute).
  require('./sweepSnapshots');
  // #18 portal: the operations listing the portal polls, and the portal's static files.
  require('./http/operationsList');
  require('./http/portal');
  // #18 verifysched: the nightly verifications (registers its timer only when PAGEWISE_VERIFY_SCHEDULE is set).
  require('./scheduledVerifications').registerScheduledVerifications();
}
// #18 telemetry: the activity that reports an operation's end — in every role (the prune app's prunes report too).
require('./operationReports');
registerRetentionOrchestrations({ prune: role !== 'backup' });
require('./retentionActivities').registerRetentionActivities({ prune: role !== 'backup' });
require('./http/retention').registerRetentionRoutes({ undelete: role !== 'backup' });
if (role !== 'backup') require('./http/prunes');
if (role === 'prune') require('./scheduledPrunes');
// #18 auth: who the caller is (GET /api/me), and the audit log (GET /api/audit), in every role.
require('./http/me');
require('./http/audit');
