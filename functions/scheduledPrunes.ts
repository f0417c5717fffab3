/**
 * The prune app's timer (role `prune`, issue #13): on PAGEWISE_PRUNE_SCHEDULE (NCRONTAB) forget by the
 * policy's retention rules (when there is a policy with them) and prune the vault, through the retention
 * orchestration, one instance per firing.
 */
import * as df from 'durable-functions';
import type { InvocationContext, Timer } from '@azure/functions';
import { Orchestrators, RetainByPolicyInput } from '../orchestrations/contracts';
import { retentionInstanceId } from '../orchestrations/instanceIds';
import { PRUNE_SCHEDULE_SETTING } from './settings';
import { startOnce } from './starter';

export async function runScheduledPrune(client: df.DurableClient, context: InvocationContext, now: Date): Promise<string> {
  const input: RetainByPolicyInput = { backupInstances: [], prune: true };
  const started = await startOnce(client, Orchestrators.retainByPolicy, retentionInstanceId(now), input, { restartFailed: false });
  context.log(`scheduled prune at ${now.toISOString()}: ${started.started ? 'started' : `already ${started.status?.runtimeStatus}`} (${started.instanceId})`);
  return started.instanceId;
}

df.app.client.timer('scheduledPrune', {
  schedule: `%${PRUNE_SCHEDULE_SETTING}%`,
  handler: async (_timer: Timer, client: df.DurableClient, context: InvocationContext) => {
    await runScheduledPrune(client, context, new Date());
  },
});
