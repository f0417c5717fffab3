/**
 * #18 auth: THE route table against the registered functions, each role's allowed and refused calls over
 * real HTTP (`pagewise serve` sessions on 127.0.0.1, Azurite, the local durable runtime), and the audit
 * log — restore, forget and prune recorded in the vault with who and when, listed by GET /api/audit.
 */
import { Answer, sendRaw } from './harness/raw-http';
import type { LocalServer } from '../runtime/serve';
import { registeredFunctions } from '../runtime/functionsCore';
import { ROUTE_ROLES, UNROLED_FUNCTIONS } from '../functions/auth/routeRoles';
import { grants, Role, ROLES } from '../functions/auth/roles';
import { Vault } from '../core';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { serveTestApp } from './harness/serve-app';
import * as telemetry from '../functions/telemetry';

let env: TestEnv;
let server: LocalServer;
const cookies = {} as Record<Role, string>;
const logLines: string[] = [];

beforeAll(async () => {
  env = await startEnv();
  server = await serveTestApp(env, { log: (_level, line) => void logLines.push(line) });
  for (const role of ROLES) {
    const login = await sendRaw(server.port, 'POST', '/.auth/login', { 'content-type': 'application/json', origin: server.url }, JSON.stringify({ token: server.loginTokens[role] }));
    expect(login.status).toBe(204);
    cookies[role] = (login.headers['set-cookie']?.[0] ?? '').split(';')[0];
  }
});
afterAll(async () => {
  await server?.close();
  await env?.stop();
});

/** A request as the portal's page sends it: the role's cookie, this origin, JSON. */
function asRole(role: Role, method: string, target: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = { cookie: cookies[role], origin: server.url, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
  return sendRaw(server.port, method, target, headers, body === undefined ? undefined : JSON.stringify(body));
}

const httpFunctions = () => [...registeredFunctions().values()].filter((f) => f.trigger.type === 'httpTrigger');

test('every registered HTTP function has a role in the table (but the portal files and /api/me), and is keyed in keys mode', () => {
  const names = httpFunctions().map((f) => f.metadata.name);
  expect(names.length).toBeGreaterThanOrEqual(19);
  const missing = names.filter((n) => !(n in ROUTE_ROLES) && !UNROLED_FUNCTIONS.includes(n));
  expect(missing).toEqual([]);
  for (const fn of httpFunctions()) expect([fn.metadata.name, fn.trigger.authLevel]).toEqual([fn.metadata.name, fn.metadata.name === 'portal' ? 'anonymous' : 'function']);
});

/** A URL for a route template: IDs of the right form that name nothing, so an allowed call changes nothing. */
function sampleUrl(route: string): string {
  const ids: Record<string, string> = { backups: 'pw-000000000000000000000000', 'vm-backups': 'vm-20260101t000000000z-000000000000', restores: 'restore-0', verifications: 'verify-0', prunes: 'prune-0000000000000000' };
  const parts = route.split('/');
  return `/api/${parts.map((p, i) => (p.startsWith('{') ? (ids[parts[i - 1]] ?? 'x') : p)).join('/')}`;
}

test('each role gets exactly what the table grants: 403 naming the role needed otherwise, and a refused call starts nothing', async () => {
  const before = (await server.app.runtime.listInstances()).length;
  const table = ROUTE_ROLES as Record<string, Role>;
  const routed = httpFunctions().filter((f) => f.metadata.name in table);
  const refusedTo: Record<Role, string[]> = { reader: [], operator: [], restorer: [], admin: [] };
  for (const fn of routed) {
    const needed = table[fn.metadata.name];
    const method = ((fn.trigger.methods as string[] | undefined) ?? ['GET'])[0];
    const url = sampleUrl(String(fn.trigger.route));
    for (const role of ROLES) {
      // A body no schema accepts: an allowed POST is a 400 and starts nothing.
      const answer = await asRole(role, method, url, method === 'POST' ? 'not an object' : undefined);
      const body = JSON.parse(answer.text || '{}') as { title?: string; neededRole?: string; detail?: string };
      if (grants([role], needed)) {
        expect([fn.metadata.name, role, answer.status === 401 || answer.status === 403]).toEqual([fn.metadata.name, role, false]);
      } else {
        refusedTo[role].push(fn.metadata.name);
        expect([fn.metadata.name, role, answer.status, body.title, body.neededRole]).toEqual([fn.metadata.name, role, 403, 'Forbidden', needed]);
        expect(body.detail).toContain(`this needs the ${needed} role`);
      }
    }
  }
  expect(Object.fromEntries(ROLES.map((r) => [r, refusedTo[r].sort()]))).toEqual({
    reader: ['downloadBackupFile', 'forgetBackup', 'listAudit', 'startBackup', 'startPrune', 'startRestore', 'startVerification', 'startVmBackup', 'undeleteBackup'],
    operator: ['downloadBackupFile', 'forgetBackup', 'listAudit', 'startPrune', 'startRestore', 'undeleteBackup'],
    restorer: ['forgetBackup', 'listAudit', 'startBackup', 'startPrune', 'startVerification', 'startVmBackup', 'undeleteBackup'],
    admin: [],
  });
  expect((await server.app.runtime.listInstances()).length).toBe(before);
});

interface AuditEntryView {
  at: string;
  who: { id: string; via: string };
  action: string;
  target: string;
  outcome: string;
  status: number;
  instanceId?: string;
}

test('restore, forget and prune are audited in the vault with who and when; GET /api/audit lists them for an admin only', async () => {
  const disk = await env.makeDisk('audited.vhd', 2 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 41 }]);
  const t0 = new Date().toISOString();
  const started = await asRole('operator', 'POST', '/api/backups', { source: { url: disk.source.url } });
  expect(started.status).toBe(202);
  const backup = JSON.parse(started.text) as { id: string; instanceId: string };
  expect((await server.app.runtime.waitForCompletion(backup.instanceId, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');

  const target = env.targetUrl('audited-restore.vhd');
  const restore = await asRole('restorer', 'POST', '/api/restores', { backupId: backup.id, target: { url: target } });
  expect(restore.status).toBe(202);
  const restoreId = (JSON.parse(restore.text) as { instanceId: string }).instanceId;
  expect((await server.app.runtime.waitForCompletion(restoreId, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  expect((await asRole('admin', 'DELETE', `/api/backups/${backup.id}`)).status).toBe(202);
  const prune = await asRole('admin', 'POST', '/api/prunes', { dryRun: true });
  expect(prune.status).toBe(202);
  const pruneId = (JSON.parse(prune.text) as { instanceId: string }).instanceId;
  const t1 = new Date().toISOString();

  // In the vault: one blob per entry under audit/v1/<day>/<time>-<random>.json.
  const vault = Vault.open(env.vault);
  const names: string[] = [];
  for await (const name of vault.list('audit/v1/')) names.push(name);
  for (const name of names) expect(name).toMatch(/^audit\/v1\/\d{4}-\d{2}-\d{2}\/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z-[0-9a-f]{16}\.json$/);
  const stored = await Promise.all(names.map((n) => vault.getJson<AuditEntryView & { format: string; version: number }>(n)));
  const mine = stored.filter((e) => e.at >= t0 && e.at <= t1);
  expect(mine.map((e) => [e.action, e.who.id, e.who.via, e.outcome, e.status]).sort()).toEqual([
    ['backup', 'serve:operator', 'session', 'accepted', 202],
    ['forget', 'serve:admin', 'session', 'accepted', 202],
    ['prune', 'serve:admin', 'session', 'accepted', 202],
    ['restore', 'serve:restorer', 'session', 'accepted', 202],
  ]);
  const restored = mine.find((e) => e.action === 'restore')!;
  expect(restored).toMatchObject({ format: 'pagewise-audit', version: 1, instanceId: restoreId, target: `${backup.id} -> ${target.split('?')[0]}` });
  expect(mine.find((e) => e.action === 'prune')).toMatchObject({ instanceId: pruneId, target: 'the vault (dry run)' });
  expect(mine.find((e) => e.action === 'forget')).toMatchObject({ target: backup.id });
  const raw = JSON.stringify(stored);
  expect(raw).not.toMatch(/sig=/);
  for (const secret of [...Object.values(server.loginTokens), ...Object.values(cookies).map((c) => c.split('=')[1]), server.keys.functionKeys.default]) expect(raw.includes(secret)).toBe(false);

  // Listed for an admin (oldest first), refused to anyone else.
  const listed = await asRole('admin', 'GET', `/api/audit?since=${encodeURIComponent(t0)}`);
  expect(listed.status).toBe(200);
  const listing = JSON.parse(listed.text) as { entries: AuditEntryView[]; truncated: boolean; skipped: number };
  expect(listing.entries.map((e) => e.action)).toEqual(mine.sort((a, b) => a.at.localeCompare(b.at)).map((e) => e.action));
  expect(listing).toMatchObject({ truncated: false, skipped: 0 });
  const denied = await asRole('operator', 'GET', '/api/audit');
  expect(denied.status).toBe(403);
  expect(JSON.parse(denied.text)).toMatchObject({ neededRole: 'admin' });
  expect((await asRole('admin', 'GET', '/api/audit?since=yesterday')).status).toBe(400);
  expect((await asRole('admin', 'GET', '/api/audit?since=2026-01-01&until=2025-01-01')).status).toBe(400);
  await server.app.runtime.waitForCompletion(pruneId, { timeoutInMs: 60_000 });
});

test('a refused restore changed nothing and writes nothing to the vault: its audit line is in the log only', async () => {
  const t0 = new Date().toISOString();
  const answer = await asRole('restorer', 'POST', '/api/restores', { backupId: 'pw-000000000000000000000000', target: { url: env.targetUrl('never.vhd') } });
  expect(answer.status).toBe(404);
  const listing = JSON.parse((await asRole('admin', 'GET', `/api/audit?since=${encodeURIComponent(t0)}`)).text) as { entries: AuditEntryView[] };
  expect(listing.entries).toEqual([]);
  expect(logLines.filter((l) => l.startsWith('audit: restore pw-000000000000000000000000 -> '))).toEqual([
    expect.stringMatching(/^audit: restore pw-0{24} -> http:\/\/127\.0\.0\.1:\d+\/vault\/restores\/never\.vhd by restorer \(pagewise serve sign-in\) refused: 404 BackupNotFound \(nothing done; not recorded\)$/),
  ]);
});

test("a reader's refused restore is logged once as an access denial — function, invocation, who, role needed, no secret — and sent as PagewiseAccessDenied", async () => {
  const sent = jest.spyOn(telemetry, 'trackEvent');
  const from = logLines.length;
  try {
    const answer = await asRole('reader', 'POST', '/api/restores', { backupId: 'pw-000000000000000000000000', target: { url: env.targetUrl('denied.vhd') } });
    expect(answer.status).toBe(403);
    const lines = logLines.slice(from).filter((l) => l.startsWith('access denied: '));
    expect(lines).toEqual([
      expect.stringMatching(/^access denied: startRestore \(invocation [0-9a-f-]{36}\) refused "reader \(pagewise serve sign-in\)" \(id serve:reader, via session\): 403 Forbidden, needs restorer$/),
    ]);
    const invocationId = /invocation ([0-9a-f-]{36})/.exec(lines[0])![1];
    const events = sent.mock.calls.map(([e]) => e).filter((e) => e.name === 'PagewiseAccessDenied');
    expect(events).toEqual([
      {
        name: 'PagewiseAccessDenied',
        properties: { functionName: 'startRestore', invocationId, status: '403', reason: 'Forbidden', neededRole: 'restorer', whoId: 'serve:reader', whoName: 'reader (pagewise serve sign-in)', via: 'session' },
        measurements: {},
      },
    ]);
    const written = JSON.stringify([logLines.slice(from), events]);
    expect(written).not.toMatch(/sig=/);
    for (const secret of [...Object.values(server.loginTokens), ...Object.values(cookies).map((c) => c.split('=')[1]), server.keys.functionKeys.default]) expect(written.includes(secret)).toBe(false);
  } finally {
    sent.mockRestore();
  }
});
