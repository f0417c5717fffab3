/**
 * One runtime per task hub (runtime/taskHubLease.ts): a second runtime on a held task hub is refused
 * naming its holder; a holder that stopped renewing is taken over once its lease lapses (waited for when
 * its process is provably gone from this host); stop releases at once; a runtime that loses its lease
 * writes nothing more; the CLI's local engine is refused while a serve holds the hub.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlobLeaseClient, ContainerClient } from '@azure/storage-blob';
import { captureIO, run } from '../cli/main';
import { encodeKeyFile } from '../core';
import { DEFAULT_TASK_HUB_CONTAINER, LocalApp, startLocalApp } from '../runtime/localApp';
import { startLocalServer } from '../runtime/serve';
import { readHolder, TASK_HUB_LEASE_SECONDS, TASK_HUB_LOCK_BLOB } from '../runtime/taskHubLease';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

const hub = (container = DEFAULT_TASK_HUB_CONTAINER) => ({ connectionString: env.az.accounts.vault.connectionString, container });
const hubContainer = (container: string): ContainerClient => env.az.accounts.vault.service.getContainerClient(container);
const lockBlob = (container: string) => hubContainer(container).getBlockBlobClient(TASK_HUB_LOCK_BLOB);
const start = (container: string, role: string, log?: (line: string) => void): Promise<LocalApp> =>
  startLocalApp({ taskHub: hub(container), appSettings: env.appSettings(), role, ...(log ? { log: (_level, message) => log(message) } : {}) });

/** No account key or connection string in a message. */
function expectNoSecret(text: string): void {
  for (const account of Object.values(env.az.accounts)) {
    expect(text).not.toContain(account.key);
    expect(text).not.toContain(account.connectionString);
  }
}

/** A holder as another runtime would have written it, holding the lease `leaseId` for TASK_HUB_LEASE_SECONDS from now. */
async function plantHolder(container: string, holder: { host: string; pid: number; role: string }): Promise<{ lease: BlobLeaseClient; lapsesAt: number }> {
  await hubContainer(container).createIfNotExists();
  const blob = lockBlob(container);
  await blob.upload('', 0);
  const lease = blob.getBlobLeaseClient();
  await lease.acquireLease(TASK_HUB_LEASE_SECONDS);
  const now = new Date();
  const e = encodeURIComponent;
  await blob.setMetadata(
    { pagewise_lock: '1', runtime_id: 'planted', holder_host: e(holder.host), holder_pid: String(holder.pid), holder_role: e(holder.role), holder_since: e(now.toISOString()), renewed_at: e(now.toISOString()) },
    { conditions: { leaseId: lease.leaseId } },
  );
  return { lease, lapsesAt: now.getTime() + TASK_HUB_LEASE_SECONDS * 1000 };
}

test('a second runtime on a held task hub is refused naming its holder; another task hub is not; stop releases at once', async () => {
  const first = await start('hub-a', 'test runtime A');
  let firstStopped = false;
  try {
    const refused = await start('hub-a', 'test runtime B').then(
      () => undefined,
      (err: unknown) => err as Error & { code?: string },
    );
    expect(refused?.code).toBe('TaskHubInUse');
    const message = refused!.message;
    expect(message).toContain(`task hub vault/hub-a is in use by test runtime A, pid ${process.pid} on host ${os.hostname()}, since ${first.lease.holder.since}.`);
    expect(message).toContain('send the work to that one (its HTTP API), stop it, or give this one another task hub (PAGEWISE_TASKHUB_CONNECTION_STRING)');
    expect(message).toMatch(/If it was killed, its lease lapses by \d{4}-\d\d-\d\dT[\d:.]+Z \(in about \d+ s\) unless it renews: start again then$/);
    expectNoSecret(message);
    expect(await readHolder(lockBlob('hub-a'))).toMatchObject({ runtimeId: first.lease.holder.runtimeId, role: 'test runtime A', pid: process.pid });
    expect((await lockBlob('hub-a').getProperties()).leaseState).toBe('leased');

    // The refused runtime changed nothing the first one reads: it still backs up.
    const disk = await env.makeDisk('lease-a.vhd', 2 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 61 }]);
    const started = await first.host.dispatchHttp({ method: 'POST', url: 'http://127.0.0.1:7071/api/backups', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source: { url: disk.source.url } }) });
    expect(started.status).toBe(202);
    const { id } = (await started.json()) as { id: string };
    expect((await first.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');

    // Another task hub of the same account is another lease.
    const other = await start('hub-b', 'test runtime C');
    expect(other.lease.holder.role).toBe('test runtime C');
    await other.stop();

    await first.stop();
    firstStopped = true;
    const props = await lockBlob('hub-a').getProperties();
    expect(props.leaseState).toBe('available');
    expect(await readHolder(lockBlob('hub-a'))).toBeUndefined(); // no stale name on a free lock
    const next = await start('hub-a', 'test runtime D');
    expect(next.resumed).toEqual([]);
    expect(await readHolder(lockBlob('hub-a'))).toMatchObject({ runtimeId: next.lease.holder.runtimeId, role: 'test runtime D' });
    await next.stop();
  } finally {
    if (!firstStopped) await first.stop();
  }
});

test('a holder on another host that stopped renewing: refused with the time left, taken over once its lease lapses', async () => {
  const planted = await plantHolder('hub-c', { host: 'elsewhere', pid: 4242, role: 'pagewise serve at http://127.0.0.1:7071' });
  const refused = await start('hub-c', 'test runtime').catch((err: Error) => err);
  expect(refused).toBeInstanceOf(Error);
  expect((refused as Error).message).toContain('task hub vault/hub-c is in use by pagewise serve at http://127.0.0.1:7071, pid 4242 on host elsewhere, since ');
  expect((refused as Error).message).toContain(`its lease lapses by ${new Date(planted.lapsesAt).toISOString().slice(0, 16)}`);

  await new Promise((r) => setTimeout(r, planted.lapsesAt - Date.now() + 1000));
  const app = await start('hub-c', 'test runtime');
  try {
    expect(await readHolder(lockBlob('hub-c'))).toMatchObject({ runtimeId: app.lease.holder.runtimeId, host: os.hostname(), pid: process.pid });
    // The old holder, were it only frozen, finds out at its next renewal.
    await expect(planted.lease.renewLease()).rejects.toMatchObject({ statusCode: 409 });
  } finally {
    await app.stop();
  }
}, 60_000);

test('a holder whose process is gone from this host (or an earlier life of this PID): the next runtime waits for its lease to lapse and takes over', async () => {
  const gone = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => gone.on('close', r));
  // A killed process, and a container restarted under the same host name and PID: no lease of this process holds it.
  const holders = [
    { hub: 'hub-d', pid: gone.pid! },
    { hub: 'hub-f', pid: process.pid },
  ];
  await Promise.all(
    holders.map(async ({ hub, pid }) => {
      const planted = await plantHolder(hub, { host: os.hostname(), pid, role: 'pagewise serve' });
      const logged: string[] = [];
      const app = await start(hub, 'test runtime', (line) => logged.push(line));
      try {
        expect(Date.now()).toBeGreaterThanOrEqual(planted.lapsesAt - 1000); // it waited for the lapse rather than break in
        expect(logged).toEqual([
          expect.stringMatching(new RegExp(`^task hub vault/${hub}: its last runtime \\(pagewise serve, pid ${pid} on host .+\\) is gone; taking it over when its lease lapses, in at most \\d+ s$`)),
        ]);
        expect(await readHolder(lockBlob(hub))).toMatchObject({ runtimeId: app.lease.holder.runtimeId, pid: process.pid });
      } finally {
        await app.stop();
      }
    }),
  );
}, 60_000);

test('a runtime whose lease is broken stops dead: it writes no more instance state and aborts its activities', async () => {
  const logged: string[] = [];
  const app = await start('hub-e', 'test runtime', (line) => logged.push(line));
  await lockBlob('hub-e').getBlobLeaseClient().breakLease(0);
  const reason = await app.lease.lost;
  await new Promise((r) => setImmediate(r));
  expect(logged).toEqual([reason.message]); // said once, in the app's log
  expect(reason.message).toMatch(/^this runtime stopped: its lease on task hub vault\/hub-e was lost \(409 \w+\); it writes nothing more/);
  expect(app.runtime.shutdownSignal.aborted).toBe(true);
  await expect(app.runtime.startNew('backupDiskOrchestrator', { instanceId: 'after-loss', input: {} })).rejects.toMatchObject({ code: 'TaskHubInUse' });
  expect(await hubContainer('hub-e').getBlockBlobClient('instances/after-loss.json').exists()).toBe(false);
  await app.stop(); // nothing left to write or release
  const next = await start('hub-e', 'test runtime 2'); // a broken lease is free
  await next.stop();
});

test("the CLI's local engine is refused while a serve holds the task hub, and runs once it has stopped", async () => {
  const disk = await env.makeDisk('lease-cli.vhd', 2 * MiB, [{ offset: MiB, length: 64 * KiB, kind: 'text', seed: 62 }]);
  const keyFile = path.join(env.tmp, 'lease.key');
  await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
  const server = await startLocalServer({ taskHub: hub(), appSettings: env.appSettings(), keysDir: path.join(env.tmp, 'serve-keys'), timers: false, log: () => undefined });
  const args = ['backup', disk.source.url, '--vault', env.vault.url, '--key-file', keyFile, '--page-size', '64KiB', '--cache', '256KiB', '--backup-id', 'lease-local', '--engine', 'local', '--json'];
  const cliEnv = { PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints, PAGEWISE_TASKHUB_CONNECTION_STRING: env.az.accounts.vault.connectionString };
  let io = captureIO(cliEnv);
  try {
    expect(await run(args, io)).toBe(1);
  } finally {
    await server.close();
  }
  const stderr = io.stderrText();
  expect(stderr).toContain(`pagewise: task hub vault/${DEFAULT_TASK_HUB_CONTAINER} is in use by pagewise serve at ${server.url}, pid ${process.pid} on host ${os.hostname()}`);
  expect(stderr.split('\n')).toHaveLength(2); // one line
  expectNoSecret(stderr);
  expect(await hubContainer(DEFAULT_TASK_HUB_CONTAINER).getBlockBlobClient('instances/backup-lease-local.json').exists()).toBe(false);

  io = captureIO(cliEnv);
  expect(await run(args, io)).toBe(0);
  expect(io.stderrText()).toBe('');
  expect(JSON.parse(io.stdoutText())).toMatchObject({ backupId: 'lease-local', engine: 'local', bytesRead: disk.allocatedBytes });
});
