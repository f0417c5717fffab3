/** Committed fixture vaults (test/fixtures/vault-v1, vault-v2-pre15): what their suites read back and what their makers write. */
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { captureIO, run } from '../../cli/main';
import { decodeUserKey, encodeKeyFile, restoreBackup, StorageLocation } from '../../core';
import type { DiskRegion } from '../../testkit/sample-disk';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './env';

/** A fixture's expected.json, as far as this helper reads it. */
export interface FixtureExpected {
  keyFile: string;
}

/** A committed fixture vault: its expected.json, its key (text and decoded), and its blobs. */
export interface FixtureVault<E extends FixtureExpected> {
  expected: E;
  keyText: string;
  userKey: Buffer;
  /** Blob names under blobs/: the relative file paths, `/`-separated, sorted. */
  blobNames(): Promise<string[]>;
  /** A new vault container holding the fixture's blobs, `alter` applied to each blob's bytes first. */
  upload(env: TestEnv, container: string, alter?: (name: string, bytes: Buffer) => Buffer): Promise<StorageLocation>;
}

export function openFixtureVault<E extends FixtureExpected>(dir: string): FixtureVault<E> {
  const expected = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as E;
  const keyText = readFileSync(path.join(dir, expected.keyFile), 'utf8');
  const blobs = path.join(dir, 'blobs');
  return {
    expected,
    keyText,
    userKey: decodeUserKey(keyText, 'the fixture key file'),
    blobNames: () => filesBelow(blobs),
    async upload(env, container, alter = (_n, b) => b) {
      const client = env.az.accounts.vault.service.getContainerClient(container);
      await client.create();
      for (const name of await filesBelow(blobs)) {
        const bytes = alter(name, await fs.readFile(path.join(blobs, ...name.split('/'))));
        await client.getBlockBlobClient(name).uploadData(bytes);
      }
      return { url: env.az.sasUrl('vault', container) };
    },
  };
}

/** Relative paths of the files below `dir`, `/`-separated, sorted. */
async function filesBelow(dir: string, prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) names.push(...(await filesBelow(path.join(dir, entry.name), `${prefix}${entry.name}/`)));
    else names.push(`${prefix}${entry.name}`);
  }
  return names.sort();
}

/** `alter` for upload: one byte of one blob flipped (the fixture's damage target). */
export function flipByte(damage: { blob: string; byteOffset: number }): (name: string, bytes: Buffer) => Buffer {
  return (name, bytes) => {
    if (name !== damage.blob) return bytes;
    const flipped = Buffer.from(bytes);
    flipped[damage.byteOffset] ^= 0x01;
    return flipped;
  };
}

/** A private copy of the fixture's key: git keeps no 0600 mode, and the CLI refuses a key file others may read. */
export async function privateKeyFile(env: TestEnv, keyText: string): Promise<string> {
  const keyFile = path.join(env.tmp, 'fixture.key');
  await fs.writeFile(keyFile, keyText, { mode: 0o600 });
  return keyFile;
}

/** The CLI run in-process against the harness's Azurite. */
export async function fixtureCli(env: TestEnv, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: env.az.storageEndpoints });
  const code = await run(args, io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

/** A fixture backup as its expected.json lists it, as far as the checks below read it. */
export interface FixtureBackup {
  backupId: string;
  diskBytes: number;
  sha256: string;
}

/** `b` restored through the API to a file and to a page blob, each byte-identical to the disk it was taken of; the file's path. */
export async function expectRestoresByteForByte(env: TestEnv, vault: StorageLocation, userKey: Buffer, b: FixtureBackup): Promise<string> {
  const file = path.join(env.tmp, `${b.backupId}.img`);
  const toFile = await restoreBackup({ backupId: b.backupId, vault, userKey, target: { url: file } });
  expect(toFile.diskBytes).toBe(b.diskBytes);
  expect(await fileSha256(file)).toBe(b.sha256);

  const target = env.targetUrl(`${b.backupId}.vhd`);
  await restoreBackup({ backupId: b.backupId, vault, userKey, target: { url: target } });
  expect(await env.blobSha256(target)).toBe(b.sha256);
  return file;
}

/** `pagewise list <args> --json` succeeds and lists exactly the backups `backupIds`. */
export async function expectCliLists(env: TestEnv, args: string[], backupIds: string[]): Promise<void> {
  const listed = await fixtureCli(env, ['list', ...args, '--json']);
  expect(listed.code).toBe(0);
  const ids = (JSON.parse(listed.stdout) as { backups: Array<{ backupId: string }> }).backups.map((b) => b.backupId);
  expect(ids.sort()).toEqual([...backupIds].sort());
}

/** `pagewise verify --read-data` passes for `b`, and `pagewise restore` writes its disk byte-identical. */
export async function expectCliVerifiesAndRestores(env: TestEnv, vaultUrl: string, keyFile: string, b: FixtureBackup): Promise<void> {
  const verified = await fixtureCli(env, ['verify', b.backupId, '--vault', vaultUrl, '--key-file', keyFile, '--read-data']);
  expect({ code: verified.code, stderr: verified.stderr }).toEqual({ code: 0, stderr: '' });
  expect(verified.stdout).toContain(`backup ${b.backupId} is OK`);

  const file = path.join(env.tmp, `${b.backupId}.cli.img`);
  const restored = await fixtureCli(env, ['restore', b.backupId, '--vault', vaultUrl, '--key-file', keyFile, '--to', file, '--json']);
  expect({ code: restored.code, stderr: restored.stderr }).toEqual({ code: 0, stderr: '' });
  expect(JSON.parse(restored.stdout)).toMatchObject({ backupId: b.backupId, diskBytes: b.diskBytes });
  expect(await fileSha256(file)).toBe(b.sha256);
}

/** A restore of the damaged backup to `fileName` fails Corrupt with a message matching `named`, and leaves no file. */
export async function expectRestoreFailsNaming(env: TestEnv, vault: StorageLocation, userKey: Buffer, backupId: string, fileName: string, named: RegExp): Promise<void> {
  const file = path.join(env.tmp, fileName);
  await expect(restoreBackup({ backupId, vault, userKey, target: { url: file } })).rejects.toMatchObject({ code: 'Corrupt', message: expect.stringMatching(named) });
  await expect(fs.stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
}

// The makers' side (test/fixtures/make-v*-vault.ts).

/** A source disk a maker backs up. */
export interface FixtureDiskSpec {
  name: string;
  diskBytes: number;
  pageSize: number;
  /** A fixed ID (`--backup-id`); absent: the derived one. */
  backupId?: string;
  regions: DiskRegion[];
}

/**
 * Both makers' disk B (given a backup ID by each): 512-byte pages, so 16,384 pages cover 8 MiB and this sparse
 * 8 MiB + 64 KiB disk spans two segments (v1) or two page tables (v2).
 */
export const SMALL_PAGE_DISK: Pick<FixtureDiskSpec, 'diskBytes' | 'pageSize' | 'regions'> = {
  diskBytes: 8 * MiB + 64 * KiB,
  pageSize: 512,
  regions: [
    { offset: 0, length: 8 * KiB, kind: 'text', seed: 11 },
    { offset: 64 * KiB, length: 4 * KiB, kind: 'random', seed: 12 },
    { offset: 128 * KiB, length: 2 * KiB, kind: 'zero' },
    { offset: 8 * MiB, length: 4 * KiB, kind: 'text', seed: 14 },
    { offset: 8 * MiB + 32 * KiB, length: 2 * KiB, kind: 'random', seed: 15 },
  ],
};

/** The revision writing a fixture, marked when core/ has uncommitted changes (git run from test/fixtures/, as the makers always did). */
export function fixtureRevision(): string {
  const cwd = path.join(__dirname, '..', 'fixtures');
  const revision = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--', 'core'], { cwd, encoding: 'utf8' }).trim() !== '';
  return `${revision}${dirty ? ' (core/ modified)' : ''}`;
}

/** OUT emptied of blobs and holding the fixture's key file `user.key`. */
export async function freshFixtureDir(out: string, key: Buffer): Promise<void> {
  await fs.rm(path.join(out, 'blobs'), { recursive: true, force: true });
  await fs.mkdir(out, { recursive: true });
  await fs.writeFile(path.join(out, 'user.key'), encodeKeyFile(key));
}

/** Every blob of the vault container to OUT/blobs/<blob name>; `/` in a name becomes a directory. */
export async function dumpVault(env: TestEnv, out: string): Promise<string[]> {
  const container = env.az.accounts.vault.service.getContainerClient('vault');
  const names: string[] = [];
  for await (const blob of container.listBlobsFlat()) {
    const parts = blob.name.split('/');
    if (parts.some((p) => p === '' || p === '.' || p === '..')) throw new Error(`blob name ${blob.name} does not map to a file path`);
    const file = path.join(out, 'blobs', ...parts);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, await container.getBlobClient(blob.name).downloadToBuffer());
    names.push(blob.name);
  }
  return names.sort();
}

/** expected.json written to OUT, and said on stdout. */
export async function writeExpected(out: string, expected: { blobs: string[] }): Promise<void> {
  await fs.writeFile(path.join(out, 'expected.json'), `${JSON.stringify(expected, null, 2)}\n`);
  process.stdout.write(`wrote ${expected.blobs.length} blobs and expected.json to ${out}\n`);
}

/**
 * A maker's entry point: OUT emptied and given the key file, an Azurite started, `make` run with it and the
 * writing revision, the Azurite stopped; an error's stack goes to stderr with exit code 1.
 */
export function runMaker(out: string, key: Buffer, make: (env: TestEnv, revision: string) => Promise<void>): void {
  const main = async (): Promise<void> => {
    const revision = fixtureRevision();
    await freshFixtureDir(out, key);
    const env = await startEnv();
    try {
      await make(env, revision);
    } finally {
      await env.stop();
    }
  };
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
