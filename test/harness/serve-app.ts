/**
 * `pagewise serve` over a test's Azurite: the task hub and the vault in the env's vault account, keys in
 * the env's temp dir, no timers, quiet unless the test collects the log. One setup for every serve suite.
 */
import * as path from 'node:path';
import { LocalServer, LocalServerOptions, startLocalServer } from '../../runtime/serve';
import type { TestEnv } from './env';

export function serveTestApp(
  env: TestEnv,
  options: { overrides?: Record<string, string | undefined> } & Partial<Omit<LocalServerOptions, 'taskHub' | 'appSettings' | 'overrides'>> = {},
): Promise<LocalServer> {
  const { overrides, ...rest } = options;
  return startLocalServer({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: env.appSettings(overrides),
    keysDir: path.join(env.tmp, 'serve-keys'),
    timers: false,
    log: () => undefined,
    ...rest,
  });
}
