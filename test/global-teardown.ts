/** jest globalTeardown: removes the run's stand-in certificate (see global-setup.ts). */
import { rmSync } from 'node:fs';
import { TLS_DIR_ENV } from './harness/compute-standin/tls';

export default function globalTeardown(): void {
  const dir = process.env[TLS_DIR_ENV];
  if (dir && /pagewise-test-tls-/.test(dir)) rmSync(dir, { recursive: true, force: true });
}
