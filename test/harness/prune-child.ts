/**
 * A prune in a process of its own, for the test that kills one with SIGKILL (test/prune.crash.test.ts):
 * runs pruneVault on PRUNE_VAULT_URL with the key file PRUNE_KEY_FILE at the clock PRUNE_CLOCK_MS and, at
 * its mutation number PRUNE_HANG_AT, prints "hanging at <n> <step> <blob>" and waits to be killed there —
 * so the kill lands between two known mutations, not wherever a timer happens to fall.
 */
import { configureStorageEndpointsFromEnv, loadUserKey } from '../../core';
import { pruneVault } from '../../core/prune/prune';

async function main(): Promise<void> {
  configureStorageEndpointsFromEnv(process.env);
  const url = process.env.PRUNE_VAULT_URL!;
  const userKey = await loadUserKey(process.env.PRUNE_KEY_FILE!);
  const now = Number(process.env.PRUNE_CLOCK_MS);
  const hangAt = Number(process.env.PRUNE_HANG_AT ?? 0);
  let count = 0;
  await pruneVault({
    vault: { url },
    userKey,
    clock: () => now,
    beforeMutation: async (step, blobName) => {
      if (++count !== hangAt) return;
      process.stdout.write(`hanging at ${count} ${step} ${blobName}\n`);
      await new Promise(() => setInterval(() => undefined, 60_000)); // until SIGKILL
    },
  });
  process.stdout.write('finished\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
