/** #18 telemetry: the `reportOperation` activity — an operation's Completed/Failed event and its metrics (functions/operationEvents.ts). */
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { redact } from '../core';
import { Activities } from '../orchestrations/contracts';
import { operationFigures, reportInput } from './operationEvents';
import { trackOperationEvent, trackOperationMetrics } from './telemetry';
import { reportingPermanentFailures } from './permanentFailures';

df.app.activity(Activities.reportOperation, {
  // An input of the wrong shape is reported back as a value (not retried); the orchestrator ignores it.
  handler: reportingPermanentFailures(async (input: unknown, context: InvocationContext) => {
    const report = reportInput(input);
    const properties = {
      instanceId: report.instanceId,
      trigger: report.trigger,
      disk: report.disk,
      backupId: report.backupId,
      ...(report.phase === 'Failed' ? { reason: report.reason, errorCode: report.errorCode } : {}),
    };
    trackOperationEvent(report.kind, report.phase, properties, report.figures);
    if (report.phase === 'Completed') trackOperationMetrics(report.kind, properties, operationFigures(report.figures ?? {}));
    else context.error(redact(`${report.kind} ${report.instanceId} failed (${report.errorCode ?? 'unknown'}): ${report.reason ?? ''}`));
  }),
});
