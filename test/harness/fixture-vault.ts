/** Committed fixture vaults (test/fixtures/vault-v1, vault-v2-pre15): what their suites read back and what their makers write. */
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { captureIO, run } from '../../cli/main';
import { decodeUserKey, encodeKeyFile, StorageLocation } from '../../core';
import type { TestEnv } from './env';

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

// The makers' side (test/fixtures/make-v*-vault.ts).

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

/** A maker's entry point: its error's stack on stderr and exit code 1. */
export function runMaker(main: () => Promise<void>): void {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
