/**
 * The Pagewise function app (package.json "main"): every trigger, orchestrator and activity.
 * Importing this module registers them with @azure/functions — in Azure via the Functions worker,
 * locally via the Pagewise durable runtime (runtime/).
 */
import '../orchestrations';
import './activities';
import './http/backups';
import './http/operations';
import './scheduledBackups';
import './events/eventGrid';
import './events/settleActivities';
