/**
 * The HTTP functions, invoked as the Functions host would: real `HttpRequest` and `InvocationContext`
 * objects with the durable client binding, backed by the local durable runtime and the real engine on
 * Azurite. Then the same API through `pagewise serve` over loopback HTTP.
 */
import { HttpResponse } from '@azure/functions';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { startLocalServer } from '../runtime/serve';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { jsonRequest } from './harness/http-request';

let env: TestEnv;
let app: LocalApp;
let sourceUrl: string;
let diskSha: string;
const ORIGIN = 'http://127.0.0.1:7071';
let appSettings: Record<string, string>;

beforeAll(async () => {
  env = await startEnv();
  const disk = await env.makeDisk('http.vhd', 16 * MiB, [
    { offset: 0, length: 256 * KiB, kind: 'text', seed: 4 },
    { offset: 8 * MiB, length: 128 * KiB, kind: 'random', seed: 5 },
  ]);
  sourceUrl = disk.source.url;
  diskSha = disk.sha256;
  appSettings = {
    ...env.appSettings(),
    PAGEWISE_CACHE_BYTES: String(512 * KiB),
  };
  app = await startLocalApp({ taskHub: { connectionString: env.az.accounts.vault.connectionString }, appSettings });
});
afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

const request = jsonRequest;

async function json(response: HttpResponse): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

async function expectProblem(response: HttpResponse, status: number, title: string): Promise<Record<string, unknown>> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  const problem = await json(response);
  expect(problem).toMatchObject({ status, title, type: expect.stringMatching(/^https:\/\/pagewise\.dev\/problems\//) });
  expect(typeof problem.detail).toBe('string');
  return problem;
}

test('POST /api/backups starts a backup (202 + status links); a duplicate start finds the same one', async () => {
  const first = await app.host.invokeHttp('startBackup', request('POST', '/api/backups', { source: { url: sourceUrl } }));
  expect(first.status).toBe(202);
  const body = await json(first);
  const id = body.id as string;
  expect(id).toMatch(/^pw-[0-9a-f]{24}$/);
  expect(first.headers.get('location')).toBe(`${ORIGIN}/api/backups/${id}`);
  expect(body).toMatchObject({ instanceId: `backup-${id}`, duplicate: false, statusUri: `${ORIGIN}/api/backups/${id}` });
  expect((body.management as { statusQueryGetUri: string }).statusQueryGetUri).toMatch(new RegExp(`^${ORIGIN}/runtime/webhooks/durabletask/instances/backup-${id}\\?`));

  const again = await app.host.invokeHttp('startBackup', request('POST', '/api/backups', { source: { url: sourceUrl } }));
  expect([200, 202]).toContain(again.status);
  expect(await json(again)).toMatchObject({ id, duplicate: true });

  await app.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 30_000 });
  const status = await app.host.invokeHttp('getBackup', request('GET', `/api/backups/${id}`, undefined, { id }));
  expect(status.status).toBe(200);
  const view = await json(status);
  expect(view).toMatchObject({ id, runtimeStatus: 'Completed' });
  // Core's progress shape (pages and source bytes read of the allocated ones: 4 + 2 pages of 64 KiB) and the batches.
  // Once planned it also says the kind: the disk's first backup is full, having no base.
  expect(view.customStatus).toEqual({ phase: 'done', backupId: id, batchesTotal: 1, batchesDone: 1, pagesDone: 6, pagesTotal: 6, bytesDone: 384 * KiB, bytesTotal: 384 * KiB, kind: 'full', base: null, reason: 'no-base' });
  expect((view.output as { result: { pageSize: number } }).result.pageSize).toBe(64 * KiB); // PAGEWISE_PAGE_SIZE applied
  expect(view.source).toBe(`${env.az.accounts.src.endpoint}/disks/http.vhd`);
  expect(JSON.stringify(view)).not.toMatch(/sig=(?!REDACTED)/);

  // After completion a start changes nothing: 200 with the finished backup.
  const late = await app.host.invokeHttp('startBackup', request('POST', '/api/backups', { source: { url: sourceUrl } }));
  expect(late.status).toBe(200);
  expect(await json(late)).toMatchObject({ id, duplicate: true, runtimeStatus: 'Completed' });
  expect((await app.runtime.listInstances({ prefix: `backup-${id}` })).filter((s) => !s.instanceId.includes(':'))).toHaveLength(1);

  const listed = await json(await app.host.invokeHttp('listBackups', request('GET', `/api/backups?disk=${encodeURIComponent(sourceUrl)}`)));
  expect((listed.backups as Array<{ id: string }>).map((b) => b.id)).toEqual([id]);
  const otherDisk = `${env.az.accounts.src.endpoint}/disks/other.vhd`;
  const none = await json(await app.host.invokeHttp('listBackups', request('GET', `/api/backups?disk=${encodeURIComponent(otherDisk)}`)));
  expect(none.backups).toEqual([]);
});

test('full: true forces a full backup; the result says kind and reason; ?groupBy=disk lists the vault by disk, newest first', async () => {
  const disk = await env.makeDisk('http-full.vhd', 8 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 6 }]);
  const run = async (body: Record<string, unknown>) => {
    const started = await app.host.invokeHttp('startBackup', request('POST', '/api/backups', { source: { url: disk.source.url }, ...body }));
    expect(started.status).toBe(202);
    const { id } = (await json(started)) as { id: string };
    expect((await app.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
    const view = await json(await app.host.invokeHttp('getBackup', request('GET', `/api/backups/${id}`, undefined, { id })));
    return { id, result: (view.output as { result: Record<string, unknown> }).result, customStatus: view.customStatus };
  };
  const first = await run({});
  expect(first.result).toMatchObject({ kind: 'full', base: null, formatVersion: 2, bytesRead: 128 * KiB, bytesChanged: 128 * KiB });
  // A new state of the disk, backed up with full: true: read whole again, and the reason says why.
  await env.sourceClient('http-full.vhd').uploadPages(Buffer.alloc(4 * KiB, 1), 4 * MiB, 4 * KiB);
  const forced = await run({ full: true });
  expect(forced.result).toMatchObject({ kind: 'full', base: null, reason: 'forced', bytesRead: 132 * KiB, bytesChanged: 132 * KiB });
  expect(forced.customStatus).toMatchObject({ phase: 'done', kind: 'full', reason: 'forced' });

  const grouped = await json(await app.host.invokeHttp('listBackups', request('GET', `/api/backups?groupBy=disk&disk=${encodeURIComponent(disk.source.url)}`)));
  const disks = grouped.disks as Array<{ disk: string; backups: Array<{ id: string; catalog: Record<string, unknown> }> }>;
  expect(disks).toHaveLength(1);
  expect(disks[0].backups.map((b) => b.id)).toEqual([forced.id, first.id]);
  expect(disks[0].backups[0].catalog).toMatchObject({ status: 'complete', formatVersion: 2, kind: 'full', base: null, diskBytes: 8 * MiB, bytesRead: 132 * KiB });
  expect((grouped.backups as Array<{ id: string }>).map((b) => b.id).sort()).toEqual([first.id, forced.id].sort());
  await expectProblem(await app.host.invokeHttp('listBackups', request('GET', '/api/backups?groupBy=size')), 400, 'BadQuery');
  await expectProblem(await app.host.invokeHttp('startBackup', request('POST', '/api/backups', { source: { url: disk.source.url }, full: 'yes' })), 400, 'BadRequestBody');
});

test('bad requests get 400/403/404 problem bodies', async () => {
  const start = (body: unknown) => app.host.invokeHttp('startBackup', request('POST', '/api/backups', body));
  await expectProblem(await start('{not json'), 400, 'BadInput');
  const missing = await expectProblem(await start({}), 400, 'BadRequestBody');
  expect(missing.errors).toEqual(['(body) is missing the required field "source"']);
  await expectProblem(await start({ source: { url: sourceUrl }, extra: 1 }), 400, 'BadRequestBody');
  await expectProblem(await start({ source: { url: sourceUrl }, pageSize: 'big' }), 400, 'BadRequestBody');
  await expectProblem(await start({ source: { url: 'ftp://x/y/z' } }), 400, 'BadRequestBody');
  // SSRF guard: an account not on PAGEWISE_ALLOWED_ACCOUNTS is refused before anything is read.
  const denied = await expectProblem(await start({ source: { url: 'https://elsewhere.blob.core.windows.net/vhds/disk.vhd?sv=1&sig=TOPSECRET' } }), 403, 'AccessDenied');
  expect(JSON.stringify(denied)).not.toContain('TOPSECRET');
  await expectProblem(await start({ source: { url: env.sourceUrl("missing.vhd") } }), 404, 'SourceNotFound');

  await expectProblem(await app.host.invokeHttp('getBackup', request('GET', '/api/backups/x', undefined, { id: 'NOT_AN_ID' })), 400, 'BadInput');
  await expectProblem(await app.host.invokeHttp('getBackup', request('GET', '/api/backups/x', undefined, { id: 'pw-000000000000000000000000' })), 404, 'BackupNotFound');
  await expectProblem(await app.host.invokeHttp('startRestore', request('POST', '/api/restores', { backupId: 'PW_BAD', target: { url: env.targetUrl('x.vhd') } })), 400, 'BadRequestBody');
  await expectProblem(await app.host.invokeHttp('getRestore', request('GET', '/api/restores/x', undefined, { id: 'restore-nothing' })), 404, 'OperationNotFound');
});

test('POST /api/restores and /api/verifications run the operations; status is readable', async () => {
  const listed = await json(await app.host.invokeHttp('listBackups', request('GET', '/api/backups')));
  const backupId = (listed.backups as Array<{ id: string }>)[0].id;
  const target = env.targetUrl('http-restored.vhd');

  const restore = await app.host.invokeHttp('startRestore', request('POST', '/api/restores', { backupId, target: { url: target } }));
  expect(restore.status).toBe(202);
  const restoreId = (await json(restore)).id as string;
  const verify = await app.host.invokeHttp('startVerification', request('POST', '/api/verifications', { backupId, source: { url: sourceUrl } }));
  expect(verify.status).toBe(202);
  const verifyId = (await json(verify)).id as string;

  expect((await app.runtime.waitForCompletion(restoreId, { timeoutInMs: 30_000 })).runtimeStatus).toBe('Completed');
  expect((await app.runtime.waitForCompletion(verifyId, { timeoutInMs: 30_000 })).runtimeStatus).toBe('Completed');
  expect(await env.blobSha256(target)).toBe(diskSha);
  const restoreView = await json(await app.host.invokeHttp('getRestore', request('GET', `/api/restores/${restoreId}`, undefined, { id: restoreId })));
  expect(restoreView).toMatchObject({ runtimeStatus: 'Completed', target: `${env.az.accounts.vault.endpoint}/restores/http-restored.vhd` });
  // The same progress shape as a backup's: the 6 pages of the backup, restored and checked.
  const counts = { pagesDone: 6, pagesTotal: 6, bytesDone: 384 * KiB, bytesTotal: 384 * KiB };
  // A restore and a verification add their windows (#17: one window of the default 1 GiB here).
  const windows = { windowsTotal: 1, windowsDone: 1 };
  expect(restoreView.customStatus).toEqual({ phase: 'done', backupId, ...counts, ...windows });
  expect(restoreView.output).not.toHaveProperty('progress'); // the counts are status, the output stays core's result
  const verifyView = await json(await app.host.invokeHttp('getVerification', request('GET', `/api/verifications/${verifyId}`, undefined, { id: verifyId })));
  expect(verifyView).toMatchObject({ runtimeStatus: 'Completed', output: { ok: true } });
  expect(verifyView.customStatus).toEqual({ phase: 'done', backupId, ...counts, ...windows, ok: true });
});

test('pagewise serve answers the same API over loopback HTTP, with working status links', async () => {
  await app.stop(); // one runtime per task hub at a time
  const server = await startLocalServer({ taskHub: { connectionString: env.az.accounts.vault.connectionString }, appSettings, keysDir: `${env.tmp}/serve-keys` });
  try {
    const keyed = { 'x-functions-key': server.keys.functionKeys.default, 'Content-Type': 'application/json' };
    const started = await fetch(`${server.url}/api/backups`, { method: 'POST', headers: keyed, body: JSON.stringify({ source: { url: sourceUrl } }) });
    expect(started.status).toBe(200); // already backed up in the first test
    const view = (await started.json()) as { id: string; links: { self: string } };
    const status = await fetch(`${server.url}${view.links.self}`, { headers: keyed });
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ id: view.id, runtimeStatus: 'Completed', customStatus: { phase: 'done', pagesDone: 6, pagesTotal: 6, bytesDone: 384 * KiB, bytesTotal: 384 * KiB } });
    const webhook = await fetch(`${server.url}/runtime/webhooks/durabletask/instances/backup-${view.id}?code=${server.keys.systemKeys.durabletask_extension}`);
    expect(webhook.status).toBe(200);
    expect(await webhook.json()).toMatchObject({ runtimeStatus: 'Completed', name: 'backupDiskOrchestrator' });
    const bad = await fetch(`${server.url}/api/backups`, { method: 'POST', headers: keyed, body: '[]' });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toBe('application/problem+json');
    expect((await fetch(`${server.url}/api/nothing-here`, { headers: keyed })).status).toBe(404);
  } finally {
    await server.close();
  }
  app = await startLocalApp({ taskHub: { connectionString: env.az.accounts.vault.connectionString }, appSettings });
});

test('pagewise serve fires the backup timer on its schedule, and names a schedule it cannot use', async () => {
  await app.stop(); // one runtime per task hub at a time
  const timed = await env.makeDisk('timed.vhd', 4 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 8 }]);
  const settings = {
    ...appSettings,
    PAGEWISE_BACKUP_SCHEDULE: '*/1 * * * * *', // every second (NCRONTAB: seconds first)
    PAGEWISE_BACKUP_POLICY: JSON.stringify({ disks: [{ url: timed.source.url }] }),
  };
  const logged: string[] = [];
  const taskHub = { connectionString: env.az.accounts.vault.connectionString };
  const server = await startLocalServer({ taskHub, appSettings: settings, keysDir: `${env.tmp}/serve-keys`, log: (_level, message) => logged.push(message) });
  try {
    // The snapshot sweeper (#17) has no PAGEWISE_SWEEP_SCHEDULE here: not scheduled, the backup timer runs all the same.
    expect(server.timers).toEqual([
      expect.objectContaining({ name: 'scheduledBackups', schedule: '*/1 * * * * *', next: expect.any(Date) }),
      expect.objectContaining({ name: 'sweepSnapshots', problem: expect.stringMatching(/not scheduled: app setting PAGEWISE_SWEEP_SCHEDULE is not set/) }),
    ]);
    const before = new Set((await server.app.runtime.listInstances({ prefix: 'backup-' })).map((i) => i.instanceId));
    let started: string | undefined;
    const deadline = Date.now() + 30_000;
    while (!started && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      started = (await server.app.runtime.listInstances({ prefix: 'backup-' })).map((i) => i.instanceId).find((id) => !id.includes(':') && !before.has(id));
    }
    expect(started).toBeDefined();
    const done = await server.app.runtime.waitForCompletion(started!, { timeoutInMs: 60_000 });
    expect(done.runtimeStatus).toBe('Completed');
    // Later firings find the same disk state backed up and start nothing new.
    await new Promise((r) => setTimeout(r, 1500));
    const after = (await server.app.runtime.listInstances({ prefix: 'backup-' })).filter((i) => !i.instanceId.includes(':') && !before.has(i.instanceId));
    expect(after.map((i) => i.instanceId)).toEqual([started]);
  } finally {
    await server.close();
  }

  for (const [schedule, problem] of [
    [undefined, /not scheduled: app setting PAGEWISE_BACKUP_SCHEDULE is not set/],
    ['every night', /not scheduled: /],
  ] as const) {
    const { PAGEWISE_BACKUP_SCHEDULE: _unset, ...rest } = settings;
    const lines: string[] = [];
    const other = await startLocalServer({ taskHub, appSettings: schedule ? { ...rest, PAGEWISE_BACKUP_SCHEDULE: schedule } : rest, keysDir: `${env.tmp}/serve-keys`, log: (_l, m) => lines.push(m) });
    try {
      expect(other.timers).toEqual([expect.objectContaining({ name: 'scheduledBackups', problem: expect.stringMatching(problem) }), expect.objectContaining({ name: 'sweepSnapshots' })]);
      expect(lines.join('\n')).toMatch(problem);
    } finally {
      await other.close();
    }
  }
  app = await startLocalApp({ taskHub, appSettings });
});

test('GET /api/backups carries the vault usage (skipped with ?usage=false), counted at most once per 60 s for the same manifests', async () => {
  const list = async (query = '') => json(await app.host.invokeHttp('listBackups', request('GET', `/api/backups${query}`)));
  type Usage = { computedAt: string; backups: Array<{ backupId: string; referencedBytes: number; uniqueBytes: number; sharedBytes: number; formatVersion: number }>; disks: Array<{ disk: string; backups: number }>; vault: { packBytes: number; referencedBytes: number; totalBytes: number } };
  const first = (await list()).usage as Usage;
  const ids = ((await list('?usage=false')).backups as Array<{ id: string }>).map((b) => b.id); // every one complete by now
  expect(first.backups.map((b) => b.backupId).sort()).toEqual(ids.sort());
  for (const b of first.backups) expect(b.referencedBytes).toBe(b.uniqueBytes + b.sharedBytes);
  expect(first.vault.packBytes).toBeGreaterThanOrEqual(first.vault.referencedBytes);
  expect(first.vault.referencedBytes).toBeGreaterThan(0);
  expect(await list('?usage=false')).not.toHaveProperty('usage');
  await expectProblem(await app.host.invokeHttp('listBackups', request('GET', '/api/backups?usage=maybe')), 400, 'BadQuery');
  // The same manifests within 60 s: the same count (its time says so), not another read of every table.
  expect(((await list()).usage as Usage).computedAt).toBe(first.computedAt);
  // For one disk: its backups and disk only, the vault's totals as they are.
  const ofDisk = (await list(`?disk=${encodeURIComponent(sourceUrl)}`)).usage as Usage;
  expect(ofDisk.disks.map((d) => d.disk)).toEqual(['blob:src/disks/http.vhd']);
  expect(ofDisk.vault).toEqual(first.vault);
  // A new backup changes the manifest set: counted again at once, and it is there.
  const disk = await env.makeDisk('http-usage.vhd', 1 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 9 }]);
  const started = await app.host.invokeHttp('startBackup', request('POST', '/api/backups', { source: { url: disk.source.url } }));
  const { id } = (await json(started)) as { id: string };
  expect((await app.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  const second = (await list()).usage as Usage;
  expect(second.computedAt).not.toBe(first.computedAt);
  expect(second.backups.find((b) => b.backupId === id)).toEqual({ backupId: id, disk: 'blob:src/disks/http-usage.vhd', formatVersion: 2, referencedBytes: 2 * (64 * KiB + 60), uniqueBytes: 2 * (64 * KiB + 60), sharedBytes: 0 });
  // The same set 61 s later: counted again.
  const now = Date.now();
  const clock = jest.spyOn(Date, 'now').mockReturnValue(now + 61_000);
  try {
    expect(((await list()).usage as Usage).computedAt).not.toBe(second.computedAt);
  } finally {
    clock.mockRestore();
  }
});
