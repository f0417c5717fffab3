/**
 * The Pagewise function app (package.json "main"): every trigger, orchestrator and activity.
 * Importing this module registers them with @azure/functions — in Azure via the Functions worker,
 * locally via the Pagewise durable runtime (runtime/).
 */
import { hasAppSettings, useAppSettings } from './settings';
import '../orchestrations';
import './activities';
import './http/backups';
import './http/operations';
import './scheduledBackups';
import './events/eventGrid';
import './events/settleActivities';

// In Azure: the app settings are resolved once, at start, and configure core's endpoints and request
// gate here. A local runtime hands its own in before it loads this module.
if (!hasAppSettings()) useAppSettings(process.env);
