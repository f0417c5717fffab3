/**
 * Retention through the function app (issue #13): DELETE /api/backups/{id} (forget), undelete, POST and
 * GET /api/prunes through the local durable runtime (the real replay) on Azurite; the policy's retention
 * rules and their validation; PAGEWISE_APP_ROLE (a `backup` app's routes: test/functions.roles.test.ts).
 */
import * as df from 'durable-functions';
import { HttpResponse } from '@azure/functions';
import { listBackups } from '../core';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { findFunction } from '../runtime/registry';
import { appRole, pruneMinGraceDays } from '../functions/settings';
import { parsePolicy, policyDiskIdentity, retentionOf } from '../functions/policy';
import { runScheduledBackups } from '../functions/scheduledBackups';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { jsonRequest as request } from './harness/http-request';

let env: TestEnv;
let app: LocalApp;
let diskName: string;
const backups: string[] = [];

async function json(response: HttpResponse): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

async function expectProblem(response: HttpResponse, status: number, title: string): Promise<Record<string, unknown>> {
  expect(response.status).toBe(status);
  const problem = await json(response);
  expect(problem).toMatchObject({ status, title });
  return problem;
}

/** One backup of the disk's current state through the API, waited for. */
async function backUp(url: string): Promise<string> {
  const started = await app.host.invokeHttp('startBackup', request('POST', '/api/backups', { source: { url } }));
  expect(started.status).toBe(202);
  const { id } = (await json(started)) as { id: string };
  expect((await app.runtime.waitForCompletion(`backup-${id}`, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  return id;
}

const DISK_POLICY_NAME = 'retained.vhd';

beforeAll(async () => {
  env = await startEnv();
  diskName = DISK_POLICY_NAME;
  const disk = await env.makeDisk(diskName, 4 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 31 }]);
  const appSettings = {
    ...env.appSettings(),
    // Keep the newest backup only, no grace: the scheduled run's forget and prune delete the others at once.
    // The timer starts each due backup itself (#17 start mode direct; the queue-fed starts are test/fleet.test.ts's).
    PAGEWISE_START_MODE: 'direct',
    PAGEWISE_BACKUP_POLICY: JSON.stringify({ disks: [{ url: disk.source.url }], retention: { keepLast: 1, graceDays: 0 } }),
    // No minimum grace, so the scheduled prune deletes what the policy forgot at once (the floor itself:
    // test/prune.soft-delete.test.ts; its setting below).
    PAGEWISE_PRUNE_MIN_GRACE_DAYS: '0',
  };
  app = await startLocalApp({ taskHub: { connectionString: env.az.accounts.vault.connectionString }, appSettings });
  backups.push(await backUp(disk.source.url));
  await env.sourceClient(diskName).uploadPages(Buffer.alloc(4 * KiB, 7), 1 * MiB, 4 * KiB);
  backups.push(await backUp(disk.source.url));
  await env.sourceClient(diskName).uploadPages(Buffer.alloc(4 * KiB, 8), 2 * MiB, 4 * KiB);
  backups.push(await backUp(disk.source.url));
}, 180_000);

afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

test('DELETE /api/backups/{id} forgets (202 with the end of its grace); the listing says deleted; again it keeps the first grace', async () => {
  const [oldest] = backups;
  const before = Date.now();
  const forgotten = await app.host.invokeHttp('forgetBackup', request('DELETE', `/api/backups/${oldest}?graceDays=3`, undefined, { id: oldest }));
  expect(forgotten.status).toBe(202);
  const body = await json(forgotten);
  expect(body).toMatchObject({ backupId: oldest, alreadyForgotten: false, links: { undelete: `/api/backups/${oldest}/undelete` } });
  const graceEnds = Date.parse(body.graceEndsAt as string);
  expect(graceEnds).toBeGreaterThanOrEqual(before + 3 * 86_400_000);
  expect(graceEnds).toBeLessThanOrEqual(Date.now() + 3 * 86_400_000);

  const listed = (await listBackups(env.vault, { userKey: env.userKey })).find((b) => b.backupId === oldest);
  expect(listed).toMatchObject({ status: 'complete', deleted: { graceEndsAt: body.graceEndsAt } });
  const view = await json(await app.host.invokeHttp('getBackup', request('GET', `/api/backups/${oldest}`, undefined, { id: oldest })));
  expect(view).toMatchObject({ id: oldest, runtimeStatus: 'Completed' });

  // Forgotten again (another grace asked): the older tombstone stands.
  const again = await json(await app.host.invokeHttp('forgetBackup', request('DELETE', `/api/backups/${oldest}`, undefined, { id: oldest })));
  expect(again).toMatchObject({ backupId: oldest, alreadyForgotten: true, graceEndsAt: body.graceEndsAt });
});

test('POST /api/backups/{id}/undelete brings it back; a live backup is left as it is', async () => {
  const [oldest] = backups;
  const undone = await app.host.invokeHttp('undeleteBackup', request('POST', `/api/backups/${oldest}/undelete`, undefined, { id: oldest }));
  expect(undone.status).toBe(200);
  expect(await json(undone)).toEqual({ backupId: oldest, restored: true });
  expect((await listBackups(env.vault, { userKey: env.userKey })).find((b) => b.backupId === oldest)).not.toHaveProperty('deleted');
  const live = await json(await app.host.invokeHttp('undeleteBackup', request('POST', `/api/backups/${oldest}/undelete`, undefined, { id: oldest })));
  expect(live).toEqual({ backupId: oldest, restored: false, notForgotten: true });
});

test('unknown backups are 404, malformed IDs and grace 400', async () => {
  const unknown = 'pw-000000000000000000000000';
  await expectProblem(await app.host.invokeHttp('forgetBackup', request('DELETE', `/api/backups/${unknown}`, undefined, { id: unknown })), 404, 'BackupNotFound');
  await expectProblem(await app.host.invokeHttp('undeleteBackup', request('POST', `/api/backups/${unknown}/undelete`, undefined, { id: unknown })), 404, 'BackupNotFound');
  await expectProblem(await app.host.invokeHttp('forgetBackup', request('DELETE', '/api/backups/x', undefined, { id: 'NOT_AN_ID' })), 400, 'BadInput');
  const [oldest] = backups;
  for (const grace of ['-1', '1.5', '99999', 'soon']) {
    await expectProblem(await app.host.invokeHttp('forgetBackup', request('DELETE', `/api/backups/${oldest}?graceDays=${grace}`, undefined, { id: oldest })), 400, 'BadQuery');
  }
  await expectProblem(await app.host.invokeHttp('forgetBackup', request('DELETE', `/api/backups/${oldest}?force=1`, undefined, { id: oldest })), 400, 'BadQuery');
  // None of these forgot anything.
  expect((await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete' && b.deleted)).toEqual([]);
});

test('POST /api/prunes runs the prune orchestration (202 + status link); GET /api/prunes/{id} shows its report', async () => {
  const before = await vaultBlobNames();
  const started = await app.host.invokeHttp('startPrune', request('POST', '/api/prunes', { dryRun: true, maxUnused: 0.25 }));
  expect(started.status).toBe(202);
  const body = await json(started);
  const id = body.id as string;
  expect(id).toMatch(/^prune-[0-9a-f]{16}$/);
  expect(started.headers.get('location')).toBe(`http://127.0.0.1:7071/api/prunes/${id}`);
  expect((await app.runtime.waitForCompletion(id, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');

  const status = await app.host.invokeHttp('getPrune', request('GET', `/api/prunes/${id}`, undefined, { id }));
  expect(status.status).toBe(200);
  const view = await json(status);
  const report = view.output as { dryRun: boolean; deleted: { manifests: string[] }; kept: { manifests: number }; wouldDelete?: unknown };
  expect(view).toMatchObject({ id, runtimeStatus: 'Completed', customStatus: { phase: 'done', dryRun: true } });
  expect(report).toMatchObject({ dryRun: true, deleted: { manifests: [] }, kept: { manifests: 3 } });
  // A dry run writes nothing, not even its mark — but the audit log's entry for the request (#18).
  const after = await vaultBlobNames();
  expect(after.filter((n) => !n.startsWith('audit/'))).toEqual(before.filter((n) => !n.startsWith('audit/')));
  expect(after.filter((n) => !before.includes(n))).toEqual([expect.stringMatching(/^audit\/v1\/\d{4}-\d{2}-\d{2}\/[^/]+\.json$/)]);
});

test('POST /api/prunes refuses bodies off the schema (400); unknown prunes are 404', async () => {
  for (const body of [{ dryRun: 'yes' }, { maxUnused: 1.5 }, { maxUnused: -0.1 }, { dryRun: true, force: true }, [1], '{"dryRun":']) {
    const response = await app.host.invokeHttp('startPrune', request('POST', '/api/prunes', body));
    expect(response.status).toBe(400);
  }
  const refused = await expectProblem(await app.host.invokeHttp('startPrune', request('POST', '/api/prunes', { dryRun: true, repack: 'no' })), 400, 'BadRequestBody');
  expect(refused.errors).toEqual([expect.stringMatching(/repack/)]);
  await expectProblem(await app.host.invokeHttp('getPrune', request('GET', '/api/prunes/x', undefined, { id: 'prune-0000000000000000' })), 404, 'OperationNotFound');
  await expectProblem(await app.host.invokeHttp('getPrune', request('GET', '/api/prunes/x', undefined, { id: 'backup-nothing' })), 404, 'OperationNotFound');
  // Through routing, as the host dispatches: the routes exist in an `all` app.
  const routed = await app.host.dispatchHttp({ method: 'GET', url: 'http://127.0.0.1:7071/api/prunes/prune-0000000000000000' });
  expect(routed.status).toBe(404);
  expect(await json(routed)).toMatchObject({ title: 'OperationNotFound' });
});

test("the scheduled run forgets by the policy's retention rules, then prunes (role all)", async () => {
  const timer = findFunction('scheduledBackups', 'timerTrigger');
  const context = app.host.contextFor(timer);
  const client = df.getClient(context);
  // The disk's state is backed up already: the run starts nothing new, and its retention does not wait.
  const run = await runScheduledBackups(client, context, new Date('2026-12-01T01:00:00Z'));
  expect(run).toMatchObject({ due: 1, started: [], skipped: [backups[2]], retention: 'retain-20261201T0100Z' });
  const done = await app.runtime.waitForCompletion('retain-20261201T0100Z', { timeoutInMs: 60_000 });
  expect(done.runtimeStatus).toBe('Completed');
  const output = done.output as { waitedRounds: number; forget: { forgotten: Array<{ backupId: string }>; kept: Array<{ backupId: string; reasons: string[] }> }; prune: { deleted: { manifests: string[] } } };
  expect(output.waitedRounds).toBe(0);
  expect(output.forget.forgotten.map((f) => f.backupId).sort()).toEqual([backups[0], backups[1]].sort());
  expect(output.forget.kept).toEqual([expect.objectContaining({ backupId: backups[2], reasons: [expect.stringMatching(/^last #1$/)] })]);
  // Grace 0: the prune after it deleted both manifests at once.
  expect(output.prune.deleted.manifests).toHaveLength(2);
  const left = (await listBackups(env.vault, { userKey: env.userKey })).filter((b) => b.status === 'complete');
  expect(left.map((b) => b.backupId)).toEqual([backups[2]]);
  // The policy names the disk by URL; forget found its backups under its identity.
  expect(left[0]).toMatchObject({ disk: policyDiskIdentity(env.sourceUrl(diskName)) });
});

test('the policy retention is validated when the policy is read', () => {
  const disks = [{ url: 'https://acct.blob.core.windows.net/vhds/vm1.vhd' }];
  const ok = parsePolicy(JSON.stringify({ disks, retention: { keepDaily: 7, keepWeekly: -1, keepWithin: '30d', graceDays: 0 } }));
  expect(retentionOf(ok)).toEqual({ keep: expect.objectContaining({ daily: 7, weekly: -1, within: '30d' }), graceMs: 0 });
  // No graceDays: core's default grace (14 days) applies.
  expect(retentionOf(parsePolicy(JSON.stringify({ disks, retention: { keepLast: 2 } })))).toEqual({ keep: expect.objectContaining({ last: 2 }) });
  expect(retentionOf(parsePolicy(JSON.stringify({ disks })))).toBeUndefined();
  const refused: Array<[unknown, RegExp]> = [
    [{ keepDaily: 'seven' }, /keepDaily/],
    [{ keepDaily: 1.5 }, /keepDaily/],
    [{ keepDaily: -2 }, /keepDaily/],
    [{ keepForever: true }, /keepForever/],
    [{ graceDays: -1 }, /graceDays/],
    [{ graceDays: 5000 }, /graceDays/],
    [{}, /retention is invalid/],
    [{ graceDays: 3 }, /retention is invalid/],
    [{ keepWithin: 'a while' }, /retention is invalid/],
  ];
  for (const [retention, message] of refused) {
    expect(() => parsePolicy(JSON.stringify({ disks, retention }))).toThrow(message);
  }
  expect(policyDiskIdentity('https://Acct.blob.core.windows.net/vhds/VM1.vhd?sv=1&sig=x')).toBe('blob:acct/vhds/VM1.vhd');
});

test('PAGEWISE_APP_ROLE: all by default, backup or prune; anything else refused naming the setting', () => {
  expect(appRole({})).toBe('all');
  expect(appRole({ PAGEWISE_APP_ROLE: ' Backup ' })).toBe('backup');
  expect(appRole({ PAGEWISE_APP_ROLE: 'prune' })).toBe('prune');
  expect(() => appRole({ PAGEWISE_APP_ROLE: 'admin' })).toThrow(/PAGEWISE_APP_ROLE must be one of all, backup, prune/);
  expect(pruneMinGraceDays({})).toBe(7);
  expect(pruneMinGraceDays({ PAGEWISE_PRUNE_MIN_GRACE_DAYS: '0' })).toBe(0);
  for (const bad of ['-1', '1.5', '3651', '7d', '99999']) expect(() => pruneMinGraceDays({ PAGEWISE_PRUNE_MIN_GRACE_DAYS: bad })).toThrow(/PAGEWISE_PRUNE_MIN_GRACE_DAYS must be a whole number of days/);
});

async function vaultBlobNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const b of env.az.accounts.vault.service.getContainerClient('vault').listBlobsFlat()) names.push(b.name);
  return names.sort();
}
