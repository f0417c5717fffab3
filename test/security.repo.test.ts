/**
 * A hostile vault against the catalog (`pagewise list`, GET /api/backups): names no Pagewise writes
 * (C1 escape sequences, a bidi override, capitals, 1000 characters), a manifest too large to buffer, one nested past any
 * real document, manifests and plans with fields of the wrong type. Each is listed damaged with its
 * reason, the listing goes on, no raw control character reaches the terminal, nothing unbounded is read;
 * and the retry wrapper tries a 404 once. The entries are version-1 objects (`backups/<id>/…`), so the vault is
 * a version-1 vault (makeVaultV1); the version-2 counterparts are in security.vault-v2.test.ts.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { HttpRequest } from '@azure/functions';
import { captureIO, run } from '../cli/main';
import { backupDisk, encodeKeyFile, planBackup } from '../core';
import { MAX_VAULT_JSON_BYTES, MAX_VAULT_JSON_DEPTH } from '../core/limits';
import { layout } from '../core/repo/layout';
import { Vault } from '../core/repo/vault';
import { readBatchRecord } from '../core/repo/batch-record';
import { AzureBlobStore } from '../core/repo/store/azure-blob-store';
import { mappingErrors, retrying, wrapStore } from '../core/repo/store/wrappers';
import { vaultContainerClient } from '../core/storage/clients';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { KiB, makeVaultV1, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let keyFile: string;
let vault: Vault;
const PAGE = 64 * KiB;

// C0 controls cannot be listed from Azurite (invalid in XML; Azure encodes them): C1 CSI and a bidi override can.
const ESCAPED = 'evil\u009b2J\u009b31m\u202eexe.txt';
const LONG = `l${'o'.repeat(999)}ng`;
const notAnId = (shown: string) => `backups/${shown}/ was not written by Pagewise: its name is not a backup ID (pw- and 24 hex digits, or 3–63 lowercase letters, digits and dashes)`;

const EXPECTED: Record<string, { status: string; problem: string }> = {
  [ESCAPED]: { status: 'damaged', problem: notAnId(ESCAPED) },
  [LONG]: { status: 'damaged', problem: notAnId(`${LONG.slice(0, 80)}…`) },
  'UPPER-case': { status: 'damaged', problem: notAnId('UPPER-case') },
  'sec-huge': { status: 'damaged', problem: `backups/sec-huge/manifest.json in the vault is larger than the ${MAX_VAULT_JSON_BYTES} bytes Pagewise reads of it` },
  'sec-deep': { status: 'damaged', problem: `backups/sec-deep/manifest.json in the vault is nested deeper than the ${MAX_VAULT_JSON_DEPTH} levels a Pagewise document has` },
  'sec-types': { status: 'damaged', problem: 'the manifest of backup sec-types is not a Pagewise manifest: its completedAt has the wrong type' },
  'sec-nostats': { status: 'damaged', problem: 'the manifest of backup sec-nostats is not a Pagewise manifest: its stats has the wrong type' },
  'sec-version': { status: 'damaged', problem: `the manifest of backup sec-version has format version "${'9'.repeat(19)}; this Pagewise reads version 1` },
  'sec-plan': { status: 'damaged', problem: 'the plan of backup sec-plan is not a version 1 Pagewise plan' },
  'sec-nullplan': { status: 'damaged', problem: 'the plan of backup sec-nullplan is not a version 1 Pagewise plan' },
};

beforeAll(async () => {
  env = await startEnv();
  await makeVaultV1(env.vault);
  keyFile = path.join(env.tmp, 'sec.key');
  await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
  const disk = await env.makeDisk('sec.vhd', 1 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 7 }]);
  const req = { source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: 256 * KiB };
  await backupDisk({ ...req, backupId: 'sec-good' });
  await planBackup({ ...req, backupId: 'sec-plan' });
  await planBackup({ ...req, backupId: 'sec-nullplan' });
  vault = Vault.open(env.vault);
  const good = await vault.getJson<{ body: Record<string, unknown> }>(layout.manifest('sec-good'));
  const put = (name: string, value: unknown) => vault.putBytes(name, Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), 'application/json');
  const manifest = (id: string, body: Record<string, unknown>) => put(layout.manifest(id), { ...good, body: { ...good.body, backupId: id, ...body } });
  await put(layout.manifest(ESCAPED), good);
  await put(layout.manifest(LONG), good);
  await put(`backups/UPPER-case/plan.json`, good);
  await vault.putBytes(layout.manifest('sec-huge'), Buffer.alloc(MAX_VAULT_JSON_BYTES + 1, 0x20), 'application/json');
  // Well-typed but for one field nested 100 000 deep: deeper than any stack a recursive walk has.
  const deep = JSON.stringify({ ...good, body: { ...good.body, backupId: 'sec-deep' } }).replace(/}$/, `,"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
  await put(layout.manifest('sec-deep'), deep);
  await manifest('sec-types', { completedAt: 5 });
  await manifest('sec-nostats', { stats: null });
  await put(layout.manifest('sec-version'), { ...good, version: '9'.repeat(100_000), body: { ...good.body, backupId: 'sec-version' } });
  const plan = await vault.getJson<Record<string, unknown>>(layout.plan('sec-plan'));
  await put(layout.plan('sec-plan'), { ...plan, source: 'not an object' });
  await put(layout.plan('sec-nullplan'), 'null');
}, 180_000);
afterAll(async () => {
  await env?.stop();
});

async function cli(args: string[]) {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints });
  const code = await run(args, io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

describe('pagewise list of a hostile vault', () => {
  test.each([
    ['with --key-file', true],
    ['without a key', false],
  ])('%s: every hostile entry is damaged with its reason, the good backup still complete', async (_label, withKey) => {
    const out = await cli(['list', '--vault', env.vault.url, ...(withKey ? ['--key-file', keyFile] : []), '--json']);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const { backups } = JSON.parse(out.stdout) as { backups: Array<{ backupId: string; status: string; problem?: string }> };
    expect(backups[0]).toMatchObject({ backupId: 'sec-good', status: 'complete' });
    expect(Object.fromEntries(backups.slice(1).map((b) => [b.backupId, { status: b.status, problem: b.problem }]))).toEqual(EXPECTED);
    // C1 CSI (0x9B) comes out \u-escaped in the JSON text too.
    expect(out.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
  }, 60_000);

  test('the table shows the escape sequences escaped, never raw', async () => {
    const out = await cli(['list', '--vault', env.vault.url, '--key-file', keyFile]);
    expect(out.code).toBe(0);
    expect(out.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(out.stdout).toContain('evil\\x9B2J\\x9B31m\\u202Eexe.txt');
    expect(out.stdout.split('\n').filter((l) => l.includes('damaged'))).toHaveLength(Object.keys(EXPECTED).length);
  }, 60_000);
});

describe('GET /api/backups of a hostile vault', () => {
  let app: LocalApp;
  afterAll(async () => {
    await app?.stop();
  });

  test('answers 200 with each hostile entry damaged (never a 500)', async () => {
    app = await startLocalApp({
      taskHub: { connectionString: env.az.accounts.vault.connectionString, container: 'sec-repo-hub' },
      appSettings: env.appSettings(),
    });
    const response = await app.host.invokeHttp('listBackups', new HttpRequest({ method: 'GET', url: 'http://127.0.0.1:7071/api/backups', query: {}, params: {} }));
    expect(response.status).toBe(200);
    const { backups } = (await response.json()) as { backups: Array<{ id: string; status: string; problem?: string }> };
    expect(Object.fromEntries(backups.filter((b) => b.id !== 'sec-good').map((b) => [b.id, { status: b.status, problem: b.problem }]))).toEqual(EXPECTED);
  }, 60_000);
});

test('a batch record that is JSON null or the wrong shape is damaged, not a TypeError', async () => {
  for (const text of ['null', '[]', '"x"', '{"format":"pagewise-batch","version":1,"batchIndex":0}']) {
    await vault.putBytes(layout.batch('sec-good', 0), Buffer.from(text), 'application/json');
    await expect(readBatchRecord(vault, 'sec-good', 0)).rejects.toMatchObject({ code: 'Corrupt', message: 'the record of batch 0 of backup sec-good is damaged' });
  }
});

describe('the retry wrapper', () => {
  test('a read of a missing blob or container is tried once (a 404 is an answer), a JSON read over its bound once', async () => {
    const tries = (location: { url: string }) => {
      let n = 0;
      const counted = wrapStore(mappingErrors(new AzureBlobStore(vaultContainerClient(location).client, 'the test vault'), 'the vault'), (_op, _name, work) => {
        n++;
        return work();
      });
      return { store: retrying(counted, { maxRetries: 3, retryDelayInMs: 1, maxRetryDelayInMs: 1 }), count: () => n };
    };
    const missing = tries(env.vault);
    await expect(missing.store.getBytes('nothing/here.json')).rejects.toMatchObject({ code: 'BackupNotFound' });
    await expect(missing.store.getBytes(layout.manifest('no-such-backup'), 0, 16)).rejects.toMatchObject({ code: 'BackupNotFound' });
    expect(missing.count()).toBe(2);
    const noContainer = tries({ url: env.az.sasUrl('vault', 'no-such-container') });
    await expect(noContainer.store.getBytes('x.json')).rejects.toMatchObject({ code: 'VaultNotFound' });
    expect(noContainer.count()).toBe(1);
    // The bound on a JSON document is a verdict on the vault, not a failure to reach it: not tried again.
    const huge = tries(env.vault);
    await expect(huge.store.getBytes(layout.manifest('sec-huge'), 0, undefined, { maxBytes: 1024 })).rejects.toMatchObject({ code: 'Corrupt' });
    expect(huge.count()).toBe(1);
  });
});

