/**
 * The vault's catalog (core/repo/catalog.ts) through `pagewise list` and `GET /api/backups`: a complete
 * backup, an incomplete one (plan, no manifest), one whose manifest fails its MAC and one whose manifest
 * is not JSON are each listed with their status; an unreachable vault fails the listing. The damage is done to
 * version-1 manifests, so the vault is a version-1 vault (makeVaultV1); version 2: security.vault-v2.test.ts.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { HttpRequest } from '@azure/functions';
import { captureIO, run } from '../cli/main';
import { backupDisk, encodeKeyFile, planBackup } from '../core';
import { layout } from '../core/repo/layout';
import { Vault } from '../core/repo/vault';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { closedPort } from './harness/listeners';
import { KiB, makeVaultV1, MiB, startEnv, TestEnv } from './harness/env';

let env: TestEnv;
let keyFile: string;
let closed: number;
let completedAt: string;
const PAGE = 64 * KiB;
const CACHE = 256 * KiB;

const INCOMPLETE = 'backup cat-incomplete is incomplete (it has no manifest) and cannot be restored; run the backup again to resume it';
const TAMPERED = 'the manifest of backup cat-tampered fails authentication: it was modified';
const MALFORMED = 'backups/cat-malformed/manifest.json in the vault is not valid JSON';

beforeAll(async () => {
  env = await startEnv();
  await makeVaultV1(env.vault);
  closed = await closedPort();
  keyFile = path.join(env.tmp, 'catalog.key');
  await fs.writeFile(keyFile, encodeKeyFile(env.userKey), { mode: 0o600 });
  const disk = await env.makeDisk('catalog.vhd', 1 * MiB, [{ offset: 0, length: 128 * KiB, kind: 'random', seed: 31 }]);
  const req = { source: disk.source, vault: env.vault, userKey: env.userKey, pageSize: PAGE, cacheBytes: CACHE };
  completedAt = (await backupDisk({ ...req, backupId: 'cat-complete' })).completedAt;
  await planBackup({ ...req, backupId: 'cat-incomplete' });
  await backupDisk({ ...req, backupId: 'cat-tampered' });
  await backupDisk({ ...req, backupId: 'cat-malformed' });
  const vault = Vault.open(env.vault);
  const envelope = await vault.getJson<{ mac: string }>(layout.manifest('cat-tampered'));
  envelope.mac = `${envelope.mac[0] === '0' ? '1' : '0'}${envelope.mac.slice(1)}`;
  await vault.putJson(layout.manifest('cat-tampered'), envelope);
  await vault.putBytes(layout.manifest('cat-malformed'), Buffer.from('{"format":"pagewise-manifest",'), 'application/json');
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const unreachableVault = () => `http://127.0.0.1:${closed}/vault/vault?sv=2024-01-01&sr=c&sp=rl&sig=c2VjcmV0`;
const unreachableMessage = () => `backups/ in the vault http://127.0.0.1:${closed}/vault/vault could not be reached (ECONNREFUSED)`;

async function cli(args: string[]) {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: `${env.az.storageEndpoints},http://127.0.0.1:${closed}/vault` });
  const code = await run(args, io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

describe('pagewise list', () => {
  test('--json with a key: complete first, then incomplete and damaged, each with its status and reason', async () => {
    const out = await cli(['list', '--vault', env.vault.url, '--key-file', keyFile, '--json']);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const { backups } = JSON.parse(out.stdout);
    expect(backups).toEqual([
      expect.objectContaining({ backupId: 'cat-complete', status: 'complete', completedAt, diskBytes: MiB, pageSize: PAGE }),
      { backupId: 'cat-incomplete', status: 'incomplete', problem: INCOMPLETE, formatVersion: 1, disk: 'blob:src/disks/catalog.vhd', createdAt: expect.any(String), source: `${env.az.accounts.src.endpoint}/disks/catalog.vhd`, diskBytes: MiB, pageSize: PAGE },
      { backupId: 'cat-malformed', status: 'damaged', problem: MALFORMED },
      { backupId: 'cat-tampered', status: 'damaged', problem: TAMPERED },
    ]);
  });

  test('without a key a MAC cannot be checked: the tampered manifest is listed complete, the malformed one damaged', async () => {
    const { backups } = JSON.parse((await cli(['list', '--vault', env.vault.url, '--json'])).stdout) as { backups: Array<{ backupId: string; status: string }> };
    expect(backups.map((b) => [b.backupId, b.status])).toEqual([
      ['cat-complete', 'complete'],
      ['cat-tampered', 'complete'],
      ['cat-incomplete', 'incomplete'],
      ['cat-malformed', 'damaged'],
    ]);
  });

  test('the table groups by disk, has a status column and says under it why each other backup cannot be restored', async () => {
    const out = await cli(['list', '--vault', env.vault.url, '--key-file', keyFile, '--no-usage']);
    expect(out.code).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    // A version-1 backup's disk is its §21.1 identity; the damaged ones name no disk.
    expect(lines[0]).toBe('disk blob:src/disks/catalog.vhd (2 backups)');
    expect(lines[1]).toMatch(/^ {2}COMPLETED\s+KIND\s+BASE\s+LOGICAL\s+READ\s+NEW\s+STORED\s+BACKUP ID\s+STATUS$/);
    expect(lines[2]).toMatch(/^ {2}\S+\s+-\s+-\s+1\.00 MiB\s+-\s+-\s+-\s+cat-incomplete\s+incomplete$/);
    expect(lines[3]).toMatch(new RegExp(`^ {2}${completedAt.replace(/\./g, '\\.')}\\s+full \\(v1\\)\\s+-\\s+1\\.00 MiB\\s+-\\s+-\\s+128 KiB\\s+cat-complete\\s+complete$`));
    expect(lines[5]).toBe('disk (unknown disk) (2 backups)');
    expect(lines[7]).toMatch(/^ {2}-\s+-\s+-\s+-\s+-\s+-\s+-\s+cat-malformed\s+damaged$/);
    expect(lines[8]).toMatch(/^ {2}-\s+-\s+-\s+-\s+-\s+-\s+-\s+cat-tampered\s+damaged$/);
    expect(lines.slice(9)).toEqual(['', `cat-incomplete: ${INCOMPLETE}`, `cat-malformed: ${MALFORMED}`, `cat-tampered: ${TAMPERED}`]);
  });

  test('an unreachable vault fails the listing (never an empty list)', async () => {
    const out = await cli(['list', '--vault', unreachableVault(), '--json']);
    expect(out).toEqual({ code: 1, stdout: '', stderr: `pagewise: ${unreachableMessage()}\n` });
  }, 60_000);
});

describe('GET /api/backups', () => {
  let app: LocalApp | undefined;
  const start = async (vaultUrl: string, hub: string) => {
    await app?.stop();
    app = await startLocalApp({
      taskHub: { connectionString: env.az.accounts.vault.connectionString, container: hub },
      appSettings: env.appSettings({ PAGEWISE_VAULT_URL: vaultUrl, PAGEWISE_ALLOWED_ACCOUNTS: `${env.az.storageEndpoints},http://127.0.0.1:${closed}/vault` }),
    });
    return app;
  };
  const get = (path: string) => app!.host.invokeHttp('listBackups', new HttpRequest({ method: 'GET', url: `http://127.0.0.1:7071${path}`, query: {}, params: {} }));
  afterAll(async () => {
    await app?.stop();
  });

  test('lists every backup with a status; the app checks MACs with its key', async () => {
    await start(env.vault.url, 'catalog-hub');
    const response = await get('/api/backups');
    expect(response.status).toBe(200);
    const { backups } = (await response.json()) as { backups: Array<Record<string, unknown>> };
    expect(backups.map((b) => [b.id, b.status, b.runtimeStatus ?? b.problem])).toEqual([
      ['cat-complete', 'complete', 'Completed'],
      ['cat-incomplete', 'incomplete', INCOMPLETE],
      ['cat-malformed', 'damaged', MALFORMED],
      ['cat-tampered', 'damaged', TAMPERED],
    ]);
    expect(backups[0].catalog).toMatchObject({ backupId: 'cat-complete', status: 'complete', completedAt });
  });

  test('an unreachable vault answers 502 VaultUnreachable (never an empty list)', async () => {
    await start(unreachableVault(), 'catalog-hub-2');
    const response = await get('/api/backups');
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ title: 'VaultUnreachable', status: 502, detail: unreachableMessage() });
  }, 60_000);
});
