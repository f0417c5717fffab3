/**
 * Checks a start request can succeed before an orchestration is started for it, so a bad request is
 * answered at once with a specific problem (400/404/409) instead of a 202 whose orchestration then
 * fails. The engine checks the same things again when it runs (a target can appear in between); these
 * are for the caller's feedback and so that a bad request leaves no instance behind.
 */
import { OrchestrationRuntimeStatus, type DurableClient } from 'durable-functions';
import { assertDiskWriteTarget, assertSourceIsNotVault, checkRestorable, displayUrl, PagewiseError, parseStorageUrl, ResolvedSettings, resolveSettings, sameDisk, targetExists, vaultExists } from '../core';
import type { BackupOrchestrationInput, EngineOverrides } from '../orchestrations/contracts';
import { backupIdOfInstance } from '../orchestrations/instanceIds';
import { engineSettings, PagewiseSettings, readUserKey } from './settings';

/** Page size, cache and concurrency as the activities will resolve them (app settings + overrides). */
export function checkEngineSettings(settings: PagewiseSettings, overrides: EngineOverrides = {}): ResolvedSettings {
  return resolveSettings(engineSettings(settings, overrides));
}

/** The secondary copy belongs on separate storage: never the source disk's own container. */
export function checkSourceIsNotVault(settings: PagewiseSettings, sourceUrl: string): void {
  assertSourceIsNotVault(parseStorageUrl(sourceUrl, 'blob', 'the source disk URL'), parseStorageUrl(settings.vault.url, 'container', 'PAGEWISE_VAULT_URL'));
}

/**
 * The app's vault exists. The app never creates it (a mistyped PAGEWISE_VAULT_URL would silently start
 * a new vault): a missing container is a configuration error, reported as such.
 */
export async function checkVaultExists(settings: PagewiseSettings): Promise<void> {
  if (!(await vaultExists(settings.vault))) {
    throw new PagewiseError('VaultNotFound', `configuration error: PAGEWISE_VAULT_URL names the container ${displayUrl(settings.vault.url)}, which does not exist; the app does not create its vault (deploy infra/, or run pagewise init --vault <url>)`);
  }
}

/** The backup exists, is complete, and the app's user key opens it (manifest MAC checked). */
export async function checkBackupReadable(settings: PagewiseSettings, backupId: string): Promise<void> {
  await checkVaultExists(settings);
  await checkRestorable(settings.vault, backupId, readUserKey());
}

/**
 * A restore target inside the vault or on a disk being backed up is refused (core checks that, and the
 * backup orchestrations that are running: their activities run elsewhere), and one that exists unless
 * `overwrite` — as the engine would, but before an instance is started.
 */
export async function checkRestoreTarget(settings: PagewiseSettings, durable: DurableClient, targetUrl: string, overwrite: boolean): Promise<void> {
  await assertDiskWriteTarget({ url: targetUrl }, 'target.url', [settings.vault]);
  await assertNotBeingBackedUp(durable, targetUrl, 'target.url');
  if (overwrite) return;
  const what = 'the restore target';
  if (await targetExists({ url: targetUrl }, what)) throw new PagewiseError('TargetExists', `${what} already exists; set "overwrite": true to replace it`);
}

/** Refuses a write onto the source of a running or pending backup orchestration (wherever its activities run). */
export async function assertNotBeingBackedUp(durable: DurableClient, targetUrl: string, what: string): Promise<void> {
  const running = await durable.getStatusBy({ runtimeStatus: [OrchestrationRuntimeStatus.Running, OrchestrationRuntimeStatus.Pending] });
  const backingUp = running.some((s) => backupIdOfInstance(s.instanceId) !== undefined && isDiskOf(s.input, targetUrl));
  if (backingUp) throw new PagewiseError('BadInput', `${what} is a disk that is being backed up right now; write it after that backup has finished`);
}

function isDiskOf(input: unknown, targetUrl: string): boolean {
  const url = (input as Partial<BackupOrchestrationInput> | undefined)?.source?.url;
  try {
    return typeof url === 'string' && sameDisk(url, targetUrl);
  } catch {
    return false; // a source URL that does not parse names no disk a target URL can
  }
}
