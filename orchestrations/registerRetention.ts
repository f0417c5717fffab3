/** Registers the retention orchestrators (issue #13); which ones depends on the app's role (functions/index.ts). */
import * as df from 'durable-functions';
import { Orchestrators } from './contracts';
import { markingFailure } from './failedStatus';
import { reportingOperation } from './operationReport';
import { pruneVaultOrchestrator } from './pruneVault';
import { retainByPolicyOrchestrator } from './retainByPolicy';

/** `prune`: also the prune orchestrator (an app without the delete right registers none). */
export function registerRetentionOrchestrations(o: { prune: boolean }): void {
  df.app.orchestration(Orchestrators.retainByPolicy, markingFailure(retainByPolicyOrchestrator));
  // #18: a prune is an operation telemetry follows (PagewisePrune<Phase>, operation id = instance ID).
  if (o.prune) df.app.orchestration(Orchestrators.pruneVault, markingFailure(reportingOperation('prune', pruneVaultOrchestrator)));
}
