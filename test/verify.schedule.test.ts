/**
 * #18 scheduled verification on Azurite through the local durable runtime: the nightly sample keeps to its
 * byte budget and rotates (never verified first, then least recently; nights simulated by the firing time),
 * each verification leaves its record (docs/FORMAT.md §28) that `pagewise list` and GET /api/backups show, a
 * timer fired again the same night starts nothing twice, and a damaged backup leaves a failed record naming
 * its page, the PagewiseVerifyFailed event (trigger timer) and an error line.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as df from 'durable-functions';
import type { InvocationContext } from '@azure/functions';
import { captureIO, run } from '../cli/main';
import { backupDisk, encodeKeyFile, listBackups, pickVerifications, readLastVerified, verificationBytes, withLastVerified } from '../core';
import type { BackupListing, CompleteBackupListing } from '../core';
import { openBackupSource } from '../core/repo/backup-source';
import type { PageRecord2 } from '../core/repo/v2/records';
import { v2names } from '../core/repo/v2/names';
import { openVaultKeyring } from '../core/repo/v2/marker';
import { Vault } from '../core/repo/vault';
import * as telemetry from '../functions/telemetry';
import { runScheduledVerifications } from '../functions/scheduledVerifications';
import { verifyMaxStartsPerNight } from '../functions/settings';
import { findFunction } from '../runtime/registry';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { jsonRequest } from './harness/http-request';

const PAGE = 64 * KiB;
let env: TestEnv;
let app: LocalApp;
let keyFile: string;
/** One backup's verification bytes (all four are alike), and the nightly budget: two of them and a half. */
let each: number;
let budget: number;
const ids: Record<'a1' | 'a2' | 'b' | 'c', string> = { a1: '', a2: '', b: '', c: '' };

/** A 1 MiB disk with the same allocated ranges each time (so every backup reads as many bytes), content by seed. */
async function backup(name: string, seed: number): Promise<string> {
  const disk = await env.makeDisk(name, MiB, [
    { offset: 0, length: 128 * KiB, kind: 'random', seed },
    { offset: 512 * KiB, length: 64 * KiB, kind: 'text', seed: seed + 1 },
  ]);
  return (await backupDisk({ source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 8 * PAGE })).backupId;
}

beforeAll(async () => {
  env = await startEnv();
  ids.a1 = await backup('a.vhd', 10);
  ids.a2 = await backup('a.vhd', 20); // disk A again, changed: its newest
  ids.b = await backup('b.vhd', 30);
  ids.c = await backup('c.vhd', 40);
  const listed = (await listBackups(env.vault, { userKey: env.userKey })) as CompleteBackupListing[];
  const bytes = new Set(listed.map(verificationBytes));
  expect(bytes.size).toBe(1);
  each = [...bytes][0];
  budget = 2 * each + Math.floor(each / 2);
  keyFile = path.join(env.tmp, 'sched.key');
  await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
  app = await startLocalApp({
    taskHub: { connectionString: env.az.accounts.vault.connectionString },
    appSettings: env.appSettings({ PAGEWISE_VERIFY_SCHEDULE: '0 0 2 * * *', PAGEWISE_VERIFY_BYTES_PER_NIGHT: String(budget) }),
  });
});
afterAll(async () => {
  await app?.stop();
  await env?.stop();
});

function timerContext(): { client: df.DurableClient; context: InvocationContext } {
  const context = app.host.contextFor(findFunction('scheduledVerifications', 'timerTrigger'));
  return { client: df.getClient(context), context };
}

/** One night's firing, then every verification it started run to its end. */
async function night(at: string) {
  const { client, context } = timerContext();
  const result = await runScheduledVerifications(client, context, new Date(at));
  const ended = await Promise.all([...result.started, ...result.skipped].map((id) => app.runtime.waitForCompletion(id, { timeoutInMs: 60_000 })));
  return { ...result, picked: result.sample.picked.map((p) => p.backupId), ended };
}

async function list(): Promise<string[]> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints });
  const code = await run(['list', '--vault', env.vault.url, '--key-file', keyFile, '--no-usage'], io);
  expect({ code, stderr: io.stderrText() }).toEqual({ code: 0, stderr: '' });
  return io.stdoutText().split('\n');
}
const rowOf = (lines: string[], id: string) => lines.find((l) => l.includes(id) && !l.startsWith(id))!.trim().split(/ {2,}/);

describe('the nightly sample (pure)', () => {
  const listing = (backupId: string, disk: string, completedAt: string, bytes: number, extra: Partial<CompleteBackupListing> = {}): BackupListing => ({
    backupId, status: 'complete', formatVersion: 2, completedAt, source: disk, disk, diskBytes: bytes, allocatedBytes: bytes, ...extra,
  });
  const verified = (at: string) => ({ lastVerified: { at, ok: true, by: 'schedule' as const, readData: true } });

  test('keeps to the budget, never verified first, each disk newest first on a tie; too large, forgotten and locked ones are left out', () => {
    const listings = [
      listing('old-a', 'disk-a', '2026-11-01T00:00:00.000Z', 40, verified('2026-11-20T02:00:00.000Z')),
      listing('new-a', 'disk-a', '2026-11-02T00:00:00.000Z', 40),
      listing('mid-a', 'disk-a', '2026-11-01T12:00:00.000Z', 40),
      listing('only-b', 'disk-b', '2026-10-01T00:00:00.000Z', 30),
      listing('huge-c', 'disk-c', '2026-11-03T00:00:00.000Z', 500),
      listing('gone-d', 'disk-d', '2026-11-03T00:00:00.000Z', 1, { deleted: { forgottenAt: '2026-11-04T00:00:00.000Z', graceEndsAt: '2026-11-11T00:00:00.000Z' } }),
      listing('lock-e', 'disk-e', '2026-11-03T00:00:00.000Z', 1, { locked: true }),
      { backupId: 'half-f', status: 'incomplete', problem: 'no manifest' } as BackupListing,
    ];
    const sample = pickVerifications(listings, 100);
    // new-a and only-b (newest of their disks, never verified) = 70; mid-a (40) no longer fits; old-a verified.
    expect(sample.picked.map((p) => p.backupId)).toEqual(['new-a', 'only-b']);
    expect([sample.bytes, sample.candidates, sample.tooLarge.map((t) => t.backupId)]).toEqual([70, 5, ['huge-c']]);
    // With 110 the next in order, mid-a (40), fits too.
    expect(pickVerifications(listings, 110).picked.map((p) => p.backupId)).toEqual(['new-a', 'only-b', 'mid-a']);
    expect(pickVerifications(listings, 69).picked.map((p) => p.backupId)).toEqual(['new-a']); // only-b (30) no longer fits after 40
    // Tonight's started ones are kept first whatever their rank: a timer fired again picks what it picked.
    expect(pickVerifications(listings, 100, new Set(['old-a'])).picked.map((p) => p.backupId)).toEqual(['old-a', 'new-a']);
  });

  test('over nights every backup is reached, the least recently verified first', () => {
    let listings = ['p', 'q', 'r', 's', 't'].map((id, k) => listing(`bk-${id}`, `disk-${id}`, `2026-11-0${k + 1}T00:00:00.000Z`, 10));
    const seen: string[][] = [];
    for (let n = 1; n <= 5; n++) {
      const picked = pickVerifications(listings, 25).picked.map((p) => p.backupId);
      seen.push(picked);
      const at = `2026-12-0${n}T02:00:00.000Z`;
      listings = listings.map((b) => (picked.includes(b.backupId) ? { ...b, ...verified(at) } : b));
    }
    // Never verified first (newest first), then the least recently verified (newest first on a tie).
    expect(seen).toEqual([['bk-t', 'bk-s'], ['bk-r', 'bk-q'], ['bk-p', 'bk-t'], ['bk-s', 'bk-r'], ['bk-q', 'bk-t']]);
    expect(new Set(seen.slice(0, 3).flat()).size).toBe(5); // every backup within three nights
  });

  test('at most PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT picked however many fit the bytes; tonight’s count against it', () => {
    const listings = ['p', 'q', 'r', 's', 't'].map((id, k) => listing(`bk-${id}`, `disk-${id}`, `2026-11-0${k + 1}T00:00:00.000Z`, 10));
    const capped = pickVerifications(listings, 1000, new Set(), 2);
    expect(capped.picked.map((p) => p.backupId)).toEqual(['bk-t', 'bk-s']);
    expect([capped.bytes, capped.maxStarts, capped.leftByStarts]).toEqual([20, 2, 3]);
    // A firing delivered again picks tonight's two and nothing new.
    expect(pickVerifications(listings, 1000, new Set(['bk-p', 'bk-q']), 2).picked.map((p) => p.backupId)).toEqual(['bk-q', 'bk-p']);
    // Without a cap (the core default), as before: every one that fits, and no start-budget fields.
    const all = pickVerifications(listings, 1000);
    expect([all.picked.length, 'maxStarts' in all, 'leftByStarts' in all]).toEqual([5, false, false]);
  });

  test('the setting: default 32, a whole number from 1 to 1000, anything else refused by name', () => {
    expect(verifyMaxStartsPerNight({})).toBe(32);
    expect(verifyMaxStartsPerNight({ PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT: ' 5 ' })).toBe(5);
    for (const bad of ['0', '1001', '2.5', '-1', 'many']) {
      expect(() => verifyMaxStartsPerNight({ PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT: bad })).toThrow(/PAGEWISE_VERIFY_MAX_STARTS_PER_NIGHT must be a whole number from 1 to 1000/);
    }
  });
});

describe('on Azurite with the local runtime', () => {
  test('the timer is registered on PAGEWISE_VERIFY_SCHEDULE', () => {
    expect(findFunction('scheduledVerifications', 'timerTrigger').trigger.schedule).toBe('%PAGEWISE_VERIFY_SCHEDULE%');
  });

  test('night 1 verifies the two newest never-verified backups within the budget; records show in list and GET /api/backups; a second firing starts nothing', async () => {
    const first = await night('2026-12-01T02:00:00.000Z');
    expect(first.picked).toEqual([ids.c, ids.b]);
    expect(first.sample).toMatchObject({ bytes: 2 * each, budgetBytes: budget, candidates: 4, tooLarge: [] });
    expect(first.started).toEqual([`verify-n20261201-${ids.c}`, `verify-n20261201-${ids.b}`]);
    expect(first.ended.map((s) => s.runtimeStatus)).toEqual(['Completed', 'Completed']);

    // Fired again the same night (a host restart, a duplicate delivery): the same two, none started.
    const again = await night('2026-12-01T02:07:00.000Z');
    expect([again.picked, again.started, again.skipped]).toEqual([[ids.c, ids.b], [], first.started]);
    expect((await app.runtime.listInstances({ prefix: 'verify-n20261201-' })).filter((s) => !s.instanceId.includes(':')).map((s) => s.instanceId).sort()).toEqual([...first.started].sort());

    const read = await readLastVerified(env.vault, env.userKey, Object.values(ids));
    expect(read.problems).toEqual([]);
    expect([...read.byBackup.keys()].sort()).toEqual([ids.b, ids.c].sort());
    expect(read.byBackup.get(ids.c)).toEqual({ at: expect.stringMatching(/Z$/), ok: true, by: 'schedule', instanceId: `verify-n20261201-${ids.c}`, readData: true });

    const lines = await list();
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}COMPLETED +KIND +BASE +LOGICAL +READ +NEW +STORED +BACKUP ID +VERIFIED +STATUS$/));
    expect(rowOf(lines, ids.c).slice(-3)).toEqual([ids.c, `${read.byBackup.get(ids.c)!.at.slice(0, 16)}Z ok`, 'complete']);
    expect(rowOf(lines, ids.a1).slice(-3)).toEqual([ids.a1, 'never', 'complete']);

    const response = await app.host.invokeHttp('listBackups', jsonRequest('GET', '/api/backups?groupBy=disk&usage=false'));
    expect(response.status).toBe(200);
    const body = (await response.json()) as { backups: { id: string; lastVerified?: unknown }[]; disks: { disk: string; backups: { id: string; lastVerified?: unknown }[] }[] };
    const byId = new Map(body.backups.map((b) => [b.id, b]));
    expect(byId.get(ids.c)?.lastVerified).toEqual(read.byBackup.get(ids.c));
    expect(byId.get(ids.b)?.lastVerified).toMatchObject({ ok: true, by: 'schedule' });
    expect(byId.get(ids.a1)).not.toHaveProperty('lastVerified');
    const grouped = body.disks.flatMap((d) => d.backups).find((b) => b.id === ids.b);
    expect(grouped?.lastVerified).toEqual(read.byBackup.get(ids.b));
    // The scheduled instance is readable through the verifications API as any other.
    const one = await app.host.invokeHttp('getVerification', jsonRequest('GET', `/api/verifications/${first.started[0]}`, undefined, { id: first.started[0] }));
    expect(one.status).toBe(200);
  });

  test('nights 2 and 3 reach the other backups, then the least recently verified; the CLI records too', async () => {
    const second = await night('2026-12-02T02:00:00.000Z');
    expect(second.picked).toEqual([ids.a2, ids.a1]);
    expect(second.ended.map((s) => s.runtimeStatus)).toEqual(['Completed', 'Completed']);
    const third = await night('2026-12-03T02:00:00.000Z');
    expect([...third.picked].sort()).toEqual([ids.b, ids.c].sort());
    expect(third.sample.bytes).toBeLessThanOrEqual(budget);

    const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints });
    expect(await run(['verify', ids.a1, '--vault', env.vault.url, '--key-file', keyFile, '--read-data'], io)).toBe(0);
    const lastOfA1 = (await readLastVerified(env.vault, env.userKey, [ids.a1])).byBackup.get(ids.a1);
    expect(lastOfA1).toEqual({ at: expect.any(String), ok: true, by: 'cli', readData: true });
    // One record per backup is kept: the older ones were deleted after the newest was written.
    const names: string[] = [];
    for await (const b of env.az.accounts.vault.service.getContainerClient('vault').listBlobsFlat({ prefix: 'verified/' })) names.push(b.name);
    expect(names).toHaveLength(4);
  });

  test('a damaged backup: a failed record naming its page, PagewiseVerifyFailed (trigger timer) and an error line', async () => {
    const damaged = await backup('d.vhd', 50);
    const reader = await openBackupSource(env.vault, damaged, env.userKey);
    const record = (await reader.groupEntries(0)).find((e) => e.page === 1) as PageRecord2;
    const chunk = record.chunks.find((c) => c.storedLength > 0)!;
    const pack = env.az.accounts.vault.service.getContainerClient('vault').getBlockBlobClient(v2names.pack(chunk.pack));
    const bytes = await pack.downloadToBuffer();
    bytes[chunk.offset + Math.floor(chunk.storedLength / 2)] ^= 0xff;
    await pack.uploadData(bytes);

    const events = jest.spyOn(telemetry, 'trackOperationEvent');
    // The local runtime writes an activity's warnings and errors to the console (as the worker to its log stream).
    const warn = jest.spyOn(global.console, 'warn').mockImplementation(() => undefined);
    const fourth = await night('2026-12-04T02:00:00.000Z');
    // Never verified first; then the least recently verified that fits (a2, verified on night 2).
    expect(fourth.picked).toEqual([damaged, ids.a2]);
    const failedId = `verify-n20261204-${damaged}`;
    expect(fourth.ended.map((s) => [s.instanceId, s.runtimeStatus])).toEqual([[failedId, 'Failed'], [`verify-n20261204-${ids.a2}`, 'Completed']]);

    const last = (await readLastVerified(env.vault, env.userKey, [damaged])).byBackup.get(damaged)!;
    expect(last).toMatchObject({ ok: false, by: 'schedule', instanceId: failedId, readData: true });
    expect(last.problems).toHaveLength(1);
    expect(last.problems![0]).toMatch(new RegExp(`^page 1 \\(offset ${PAGE}\\), chunk \\d+ \\(pack ${chunk.pack}\\): the block fails authentication`));

    // Telemetry (functions/telemetry.ts): Started by the timer's start, Completed/Failed as each ends — all with trigger timer.
    const calls = events.mock.calls.map(([kind, phase, props]) => [kind, phase, props.trigger, props.backupId, props.instanceId]);
    expect(calls.sort()).toEqual([
      ['verify', 'Completed', 'timer', ids.a2, `verify-n20261204-${ids.a2}`],
      ['verify', 'Failed', 'timer', damaged, failedId],
      ['verify', 'Started', 'timer', ids.a2, `verify-n20261204-${ids.a2}`],
      ['verify', 'Started', 'timer', damaged, failedId],
    ].sort());
    expect(events.mock.calls.find(([, phase]) => phase === 'Failed')![2]).toMatchObject({ errorCode: 'VerificationFailed', reason: expect.stringContaining(last.problems![0]) });
    events.mockRestore();
    const logged = warn.mock.calls.map((c) => String(c[0]));
    warn.mockRestore();
    expect(logged).toContainEqual(expect.stringContaining(`scheduled verification ${failedId} of backup ${damaged} FAILED: page 1 (offset ${PAGE})`));

    const lines = await list();
    expect(rowOf(lines, damaged).slice(-3)).toEqual([damaged, `${last.at.slice(0, 16)}Z FAILED`, 'complete']);
    expect(lines).toContain(`${damaged}: verification FAILED at ${last.at} (schedule): ${last.problems![0]}`);
    const catalog = (await withLastVerified(env.vault, env.userKey, await listBackups(env.vault, { userKey: env.userKey }))).backups.find((b) => b.backupId === damaged);
    expect(catalog).toMatchObject({ lastVerified: { ok: false } });
  });

  test("a record moved under another backup's name is not trusted", async () => {
    const container = env.az.accounts.vault.service.getContainerClient('vault');
    const keyring = await openVaultKeyring(Vault.open(env.vault), env.userKey);
    const ofB: string[] = [];
    for await (const b of container.listBlobsFlat({ prefix: `verified/${keyring.nameTag(ids.b)}/` })) ofB.push(b.name);
    expect(ofB).toHaveLength(1);
    // A newer-looking name (smaller <inv>) under C's tag, holding B's sealed record: its name is in the AAD.
    const forged = `verified/${keyring.nameTag(ids.c)}/0000000000001-deadbeef.pwe`;
    await container.getBlockBlobClient(forged).uploadData(await container.getBlockBlobClient(ofB[0]).downloadToBuffer());
    const read = await readLastVerified(env.vault, env.userKey, Object.values(ids));
    expect(read.problems).toEqual([expect.stringContaining(`${forged} fails authentication`)]);
    expect(read.byBackup.has(ids.c)).toBe(false); // the newest name is the forged one: C shows as not verified, never as B's OK
    await container.getBlockBlobClient(forged).delete();
  });
});
