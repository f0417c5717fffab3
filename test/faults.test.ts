/**
 * Backups and restores through a fault-injecting proxy: throttling, 500s, connections reset mid-body,
 * bodies truncated under a rewritten Content-Length, latency spikes — on a seeded share of requests.
 * Every backup completes and every restore is byte-identical; the figures are printed.
 */
import * as path from 'node:path';
import { backupDisk, configureStorageEndpoints, restoreBackup, verifyBackup } from '../core';
import { sampleVmLayout } from '../testkit/sample-disk';
import { startFaultProxy, FaultProxy } from './harness/fault-proxy';
import { fileSha256, MiB, startEnv, TestEnv } from './harness/env';
import { recordSummary } from './harness/fault-summary';

let env: TestEnv;
let proxy: FaultProxy;

/** The emulator's endpoints, directly and through the given proxies, are the ones configured explicitly. */
function allowEndpointsVia(...proxies: FaultProxy[]): void {
  const direct = env.az.storageEndpoints.split(',');
  configureStorageEndpoints([...direct, ...proxies.flatMap((p) => direct.map((e) => p.via(e)))], 'PAGEWISE_STORAGE_ENDPOINTS');
}

beforeAll(async () => {
  env = await startEnv();
  proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: env.az.port }, seed: 20261125, rate: 0.1, latencyInMs: 150 });
  allowEndpointsVia(proxy);
});
afterAll(async () => {
  await proxy?.stop();
  await env?.stop();
});

test('backup, verify and restore through ≥ 5% injected faults lose nothing', async () => {
  const summary = { backups: 0, restoresIdentical: 0, pagesLost: 0 };
  for (const [name, diskBytes, pageSize] of [['f1.vhd', 48 * MiB, 1 * MiB], ['f2.vhd', 32 * MiB, 256 * 1024]] as const) {
    const disk = await env.makeDisk(name, diskBytes, sampleVmLayout(diskBytes, diskBytes));
    const source = { url: proxy.via(disk.source.url) };
    const vault = { url: proxy.via(env.vault.url) };
    const result = await backupDisk({ source, vault, userKey: env.userKey, pageSize, cacheBytes: diskBytes / 16 });
    summary.backups++;
    expect(result.bytesRead).toBe(disk.allocatedBytes);
    const verified = await verifyBackup({ backupId: result.backupId, vault, userKey: env.userKey });
    expect(verified.problems).toEqual([]);
    const file = path.join(env.tmp, `${name}.img`);
    await restoreBackup({ backupId: result.backupId, vault, userKey: env.userKey, target: { url: file } });
    const identical = (await fileSha256(file)) === disk.sha256;
    if (identical) summary.restoresIdentical++;
    else summary.pagesLost++;
    const blob = proxy.via(env.targetUrl(`${name}-restored`));
    await restoreBackup({ backupId: result.backupId, vault, userKey: env.userKey, target: { url: blob } });
    expect(await env.blobSha256(env.targetUrl(`${name}-restored`))).toBe(disk.sha256);
    summary.restoresIdentical++;
  }
  const { requests, retries, faults } = proxy.stats;
  const injected = Object.values(faults).reduce((a, b) => a + b, 0);
  // The figures asked for: requests, faults by kind, retries, backups completed, pages lost, restores identical.
  console.log(`fault run: ${JSON.stringify({ requests, injected, faults, retries, ...summary })}`);
  recordSummary('faults', { requests, injected, faults, retries, ...summary });
  expect(injected / requests).toBeGreaterThanOrEqual(0.05);
  for (const kind of Object.keys(faults) as Array<keyof typeof faults>) expect(faults[kind]).toBeGreaterThan(0);
  expect(summary).toEqual({ backups: 2, restoresIdentical: 4, pagesLost: 0 });
});

test('a body cut short under a rewritten Content-Length is never taken for data', async () => {
  const { Vault } = await import('../core/repo/vault');
  const direct = Vault.open(env.vault);
  await direct.putJson('probe/doc.json', { hello: 'x'.repeat(5000) });
  await direct.putBytes('probe/bin', Buffer.alloc(100_000, 3));
  const always = await startFaultProxy({ target: { host: '127.0.0.1', port: env.az.port }, seed: 1, rate: 1, kinds: ['truncate'] });
  allowEndpointsVia(proxy, always);
  try {
    const cut = Vault.open({ url: always.via(env.vault.url) });
    await expect(cut.getJson('probe/doc.json')).rejects.toMatchObject({ code: 'VaultUnreachable', message: expect.stringMatching(/MD5/) });
    await expect(cut.getBytes('probe/bin', 1000, 50_000)).rejects.toMatchObject({ code: 'VaultUnreachable', message: expect.stringMatching(/short read/) });
    expect(always.stats.faults.truncate).toBeGreaterThanOrEqual(8); // each read tried 4 times
  } finally {
    await always.stop();
  }
});
