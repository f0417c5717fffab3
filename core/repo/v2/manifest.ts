/** Version-2 manifests (docs/FORMAT.md §20.3): written last and once, found by disk (newest first) or by backup. */
import { isPagewiseError, isTransient, PagewiseError } from '../../errors';
import { MAX_PAGE_SIZE } from '../../limits';
import { BlobAlreadyExistsError, BlobNotFoundError } from '../store/blob-store';
import type { Vault } from '../vault';
import { MAX_ENVELOPE_BYTES, openJson, sealJson } from './envelope';
import type { Keyring } from './keyring';
import { invertedTime, MANIFEST_NAME_RE, v2names } from './names';
import type { ManifestV2 } from './records';
import { plainCounts, tableRefsProblem } from './staging';

/** The chunking schemes a reader knows (§15.2). */
export const KNOWN_CHUNKING = ['page', 'fastcdc-2016'];

/** Writes the manifest at manifests/<diskTag>/<inv>-<nameTag>.pwm (If-None-Match) and returns that name. A retried write finding its own manifest there returns the name. */
export async function writeManifest2(vault: Vault, keyring: Keyring, body: ManifestV2): Promise<string> {
  checkManifest(body, 'the manifest to write', (why) => new RangeError(why));
  const name = v2names.manifest(keyring.diskTag(body.disk.identity), body.completedAt, keyring.nameTag(body.backupId));
  try {
    await vault.putNew(name, sealJson(keyring, 3, name, body));
  } catch (err) {
    if (!(err instanceof BlobAlreadyExistsError)) throw err;
    const there = await readManifest2(vault, keyring, name);
    if (there.backupId !== body.backupId) throw err;
  }
  return name;
}

/** A manifest read from `blobName`: authenticated, its fields checked, and its disk, backup and completion time equal to what its name says. */
export async function readManifest2(vault: Vault, keyring: Keyring, blobName: string): Promise<ManifestV2> {
  const m = MANIFEST_NAME_RE.exec(blobName);
  if (!m) throw new PagewiseError('BadInput', `${JSON.stringify(blobName).slice(0, 120)} is not the name of a version-2 manifest`);
  let stored: Buffer;
  try {
    stored = await vault.getBytes(blobName, 0, undefined, { maxBytes: MAX_ENVELOPE_BYTES });
  } catch (err) {
    if (err instanceof BlobNotFoundError) throw new PagewiseError('BackupNotFound', `the manifest ${blobName} is not in the vault ${vault.display}`, { cause: err });
    throw err;
  }
  const body = openJson<ManifestV2>(keyring, 3, blobName, stored);
  const bad = (why: string) => new PagewiseError('Corrupt', `the manifest ${blobName} ${why}`);
  checkManifest(body, `the manifest ${blobName}`, bad);
  if (keyring.diskTag(body.disk.identity) !== m[1]) throw bad('names another disk than its place in the vault (moved?)');
  if (keyring.nameTag(body.backupId) !== m[3]) throw bad('names another backup than its blob name (moved?)');
  if (invertedTime(body.completedAt) !== m[2]) throw bad('has another completion time than its blob name');
  return body;
}

/** The manifests of one disk, newest first (one listing, §21.2); one that cannot be read comes with the problem instead. */
export async function* manifestsOfDisk(vault: Vault, keyring: Keyring, identity: string): AsyncGenerator<{ name: string; manifest?: ManifestV2; problem?: string }> {
  for await (const name of vault.list(v2names.manifestPrefix(keyring.diskTag(identity)))) {
    if (!MANIFEST_NAME_RE.test(name)) {
      yield { name, problem: 'not a manifest name' };
      continue;
    }
    try {
      yield { name, manifest: await readManifest2(vault, keyring, name) };
    } catch (err) {
      if (isTransient(err) || !isPagewiseError(err)) throw err;
      yield { name, problem: err.message };
    }
  }
}

/** The manifest of `backupId` (by its `-<nameTag>.pwm` suffix), or undefined when it has none. */
export async function findManifest2(vault: Vault, keyring: Keyring, backupId: string): Promise<{ name: string; manifest: ManifestV2 } | undefined> {
  const suffix = `-${keyring.nameTag(backupId)}.pwm`;
  // A copy of the manifest under another name (another disk's prefix) fails its name checks: it must not
  // hide the real one, wherever the listing puts it. None sound: the first problem is the answer.
  let problem: PagewiseError | undefined;
  for await (const name of allManifestNames(vault)) {
    if (name.endsWith(suffix)) {
      try {
        const manifest = await readManifest2(vault, keyring, name);
        if (manifest.backupId !== backupId) throw new PagewiseError('Corrupt', `the manifest ${name} names backup ${manifest.backupId}, not ${backupId}`);
        return { name, manifest };
      } catch (err) {
        if (!isPagewiseError(err, 'Corrupt')) throw err;
        problem ??= err;
      }
    }
  }
  if (problem) throw problem;
  return undefined;
}

/** Every version-2 manifest name of the vault (needs no key). */
export async function* allManifestNames(vault: Vault): AsyncGenerator<string> {
  for await (const name of vault.list(v2names.manifestPrefix())) {
    if (MANIFEST_NAME_RE.test(name)) yield name;
  }
}

/** The fields every reader relies on have their types and ranges (a hostile vault cannot crash a listing or a restore). */
function checkManifest(b: ManifestV2, what: string, bad: (why: string) => Error): void {
  if (b?.format !== 'pagewise-manifest' || b.version !== 2) throw bad(`${what} is not a version-2 Pagewise manifest`);
  if (typeof b.backupId !== 'string' || typeof b.createdAt !== 'string' || typeof b.completedAt !== 'string' || !Number.isFinite(Date.parse(b.completedAt))) throw bad(`${what} lacks its backup ID or times`);
  if (typeof b.disk !== 'object' || b.disk === null || typeof b.disk.identity !== 'string' || (b.disk.kind !== 'page-blob' && b.disk.kind !== 'managed-disk')) throw bad(`${what} lacks its disk identity`);
  if (typeof b.source !== 'object' || b.source === null || typeof b.source.url !== 'string') throw bad(`${what} lacks its source`);
  if (!plainCounts(b, ['diskBytes', 'pageSize', 'pageCount', 'pagesPerTable', 'generation', 'keyEpoch'])) throw bad(`${what} has a size or count that is not a whole number`);
  if (b.pageSize < 512 || b.pageSize > MAX_PAGE_SIZE || b.pageSize % 512 !== 0 || b.pagesPerTable < 1) throw bad(`${what} has page size ${b.pageSize} or ${b.pagesPerTable} pages per table`);
  if (b.pageCount !== Math.ceil(b.diskBytes / b.pageSize)) throw bad(`${what} has ${b.pageCount} pages for ${b.diskBytes} bytes of ${b.pageSize}`);
  if (typeof b.chunking !== 'object' || b.chunking === null || !KNOWN_CHUNKING.includes(b.chunking.scheme)) throw bad(`${what} uses the chunking scheme ${JSON.stringify(b.chunking?.scheme)?.slice(0, 40)}, which this Pagewise does not know`);
  if (typeof b.codec !== 'string' || (b.kind !== 'full' && b.kind !== 'incremental')) throw bad(`${what} lacks its codec or kind`);
  if (!Array.isArray(b.tables) || typeof b.stats !== 'object' || b.stats === null) throw bad(`${what} lacks its tables or stats`);
  const problem = tableRefsProblem(b.tables, Math.ceil(b.pageCount / b.pagesPerTable), b.pagesPerTable);
  if (problem) throw bad(`${what} has a malformed or out-of-order table entry (${problem})`);
}
