/**
 * Starts an orchestration at most once per instance ID. Backup instance IDs are deterministic (and so
 * are those of restores and verifications sent with an Idempotency-Key), so a duplicate request or
 * event delivery finds the instance already there. On an
 * explicit request a failed or terminated instance may start again (the engine resumes from what the
 * vault already holds); an event delivered again never restarts one (`restartFailed: false`).
 */
import type { DurableClient, DurableOrchestrationStatus } from 'durable-functions';
import { reportStarted } from './operationEvents';

const RESTARTABLE = new Set(['Failed', 'Terminated', 'Canceled']);

/** An instance in one of these states may be started again under the same ID. */
export const isRestartable = (status: DurableOrchestrationStatus): boolean => RESTARTABLE.has(status.runtimeStatus);

export interface StartOnceResult {
  instanceId: string;
  /** true when this call started the instance; false when it existed (status tells how far it got). */
  started: boolean;
  status?: DurableOrchestrationStatus;
}

export async function startOnce(
  client: DurableClient,
  orchestrator: string,
  instanceId: string,
  input: unknown,
  options: { restartFailed?: boolean } = {},
): Promise<StartOnceResult> {
  const existing = await findStatus(client, instanceId);
  if (existing && (options.restartFailed === false || !isRestartable(existing))) return { instanceId, started: false, status: existing };
  try {
    await client.startNew(orchestrator, { instanceId, input });
    // #18: only the call that created the instance says it started (a duplicate start joins it silently).
    reportStarted(orchestrator, instanceId, input);
    return { instanceId, started: true };
  } catch (err) {
    // Another starter won the race between our status check and our start: that is the duplicate case.
    // The winner's instance may not be readable yet (it is being created), so look again briefly.
    const conflict = err instanceof Error && /\b409\b|already (pending|running|exists)/i.test(err.message);
    for (let attempt = 0; ; attempt++) {
      const now = await findStatus(client, instanceId);
      if (now && !isRestartable(now)) return { instanceId, started: false, status: now };
      if (!conflict || now || attempt >= CONFLICT_LOOKUPS) throw err;
      await new Promise((resolve) => setTimeout(resolve, CONFLICT_LOOKUP_DELAY_MS));
    }
  }
}

/** After a conflicting start: how often, and how far apart, to look for the winner's instance. */
const CONFLICT_LOOKUPS = 20;
const CONFLICT_LOOKUP_DELAY_MS = 100;

/** The status of an instance, or undefined when there is none (DurableClient reports that as a 404 error). */
export async function findStatus(client: DurableClient, instanceId: string): Promise<DurableOrchestrationStatus | undefined> {
  try {
    return await client.getStatus(instanceId, { showInput: true });
  } catch (err) {
    if (err instanceof Error && /HTTP 404/.test(err.message)) return undefined;
    throw err;
  }
}
