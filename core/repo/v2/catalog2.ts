/**
 * The version-2 part of the catalog (docs/FORMAT.md §13, §20): every manifest under manifests/ and every
 * unfinished backup under staging/. With a key whose slot opens the keyring, each is read and listed with
 * its fields; without one, a manifest is listed `locked` with what its name tells (disk tag, completion
 * time), an unfinished backup by its nameTag.
 */
import { isPagewiseError } from '../../errors';
import { readTombstones, TombstoneRead } from '../../retention/tombstones';
import { BackupListing, CompleteBackupListing } from '../../types';
import type { Vault } from '../vault';
import { openJson } from './envelope';
import { Keyring, openKeyring } from './keyring';
import { readManifest2 } from './manifest';
import { readVaultMarkerIfAny } from './marker';
import { HEX32_RE, MANIFEST_NAME_RE, v2names } from './names';
import type { ManifestV2, PlanV2 } from './records';
import { getIfAny, plainCounts } from './staging';

const INV_BASE = 9_999_999_999_999;

/** The disk a plan or manifest names, as the listing shows it: the URL (never a SAS) and its snapshot. */
export function sourceName(source: { url: string; snapshot?: string | null }): string {
  return `${source.url}${source.snapshot ? `?snapshot=${source.snapshot}` : ''}`;
}

/**
 * What a listing learns once per vault, when first needed: the keyring (if the key has a slot) and the
 * tombstones it authenticates (docs/FORMAT.md §26.2), shared by the version-1 and version-2 parts.
 */
export class CatalogKeys {
  private keyring?: Promise<Keyring | undefined>;
  private tombstones?: Promise<Map<string, TombstoneRead>>;

  constructor(private readonly vault: Vault, private readonly userKey: Buffer | undefined) {}

  open(): Promise<Keyring | undefined> {
    this.keyring ??= this.userKey ? keyringIfAny(this.vault, this.userKey) : Promise.resolve(undefined);
    return this.keyring;
  }

  /** A complete backup's soft-delete state: `deleted` from an authenticated tombstone, else why its tombstone is not trusted. */
  async deletedOf(backupId: string, formatVersion: 1 | 2): Promise<Pick<CompleteBackupListing, 'deleted' | 'tombstoneProblem'>> {
    const keyring = await this.open();
    if (!keyring) return {};
    const vault = this.vault;
    this.tombstones ??= readTombstones(vault, keyring);
    const read = (await this.tombstones).get(keyring.nameTag(backupId));
    if (!read) return {};
    if (read.problem !== undefined || !read.tombstone) return { tombstoneProblem: read.problem ?? 'unreadable' };
    if (read.tombstone.formatVersion !== formatVersion) return {}; // another format's backup of the same ID
    return { deleted: { forgottenAt: read.tombstone.forgottenAt, graceEndsAt: read.tombstone.graceEndsAt } };
  }
}

/** The version-2 backups of a vault one by one: manifests in name order, then unfinished backups. */
export async function* catalogEntries2(vault: Vault, userKey: Buffer | undefined, keys = new CatalogKeys(vault, userKey)): AsyncGenerator<BackupListing> {
  const open = () => keys.open();
  const finished = new Set<string>(); // nameTags with a manifest: their staging is no unfinished backup
  // Every name under manifests/, not only well-formed ones: a catalog drops nothing silently.
  for await (const name of vault.list(v2names.manifestPrefix())) {
    const parts = MANIFEST_NAME_RE.exec(name);
    if (!parts) {
      yield { backupId: shown(name), status: 'damaged', formatVersion: 2, problem: `${shown(name)} was not written by Pagewise: its name is no manifest name (manifests/<diskTag>/<inv>-<nameTag>.pwm)` };
      continue;
    }
    const [, diskTag, inv, nameTag] = parts;
    finished.add(nameTag);
    const entry = await manifestEntry(vault, await open(), name, diskTag, inv, nameTag);
    yield entry.status === 'complete' && !entry.locked ? { ...entry, ...(await keys.deletedOf(entry.backupId, 2)) } : entry;
  }
  for await (const prefix of vault.listPrefixes('staging/')) {
    const nameTag = prefix.slice('staging/'.length).replace(/\/$/, '');
    if (finished.has(nameTag)) continue;
    if (!HEX32_RE.test(nameTag)) {
      yield { backupId: shown(nameTag), status: 'damaged', formatVersion: 2, problem: `staging/${shown(nameTag)}/ was not written by Pagewise: its name is no nameTag (32 hex digits)` };
      continue;
    }
    yield await unfinishedEntry(vault, await open(), nameTag);
  }
}

/** A name from the vault shown bounded (a hostile vault's names can be long). */
function shown(name: string): string {
  return name.length > 80 ? `${name.slice(0, 80)}…` : name;
}

/** The keyring when the key has a slot in this version-2 vault; undefined otherwise (the listing is locked, not failed). */
export async function keyringIfAny(vault: Vault, userKey: Buffer): Promise<Keyring | undefined> {
  const marker = await readVaultMarkerIfAny(vault);
  if (marker?.version !== 2) return undefined;
  try {
    return await openKeyring(vault, marker, userKey);
  } catch (err) {
    if (isPagewiseError(err, 'WrongKey')) return undefined;
    throw err;
  }
}

async function manifestEntry(vault: Vault, keyring: Keyring | undefined, name: string, diskTag: string, inv: string, nameTag: string): Promise<BackupListing> {
  const completedAt = new Date(INV_BASE - Number(inv)).toISOString();
  const locked: BackupListing = { backupId: nameTag, status: 'complete', formatVersion: 2, completedAt, source: `disk ${diskTag} (locked: a key with a slot in this vault opens it)`, disk: diskTag, locked: true };
  if (!keyring) return locked;
  let m: ManifestV2;
  try {
    m = await readManifest2(vault, keyring, name);
  } catch (err) {
    if (isPagewiseError(err, 'WrongKey')) return locked; // written under a newer epoch than this key's slot holds
    if (isPagewiseError(err, 'Corrupt')) return { backupId: nameTag, status: 'damaged', formatVersion: 2, disk: diskTag, problem: err.message };
    throw err;
  }
  const wrong = wrongManifestField(m);
  if (wrong) return { backupId: nameTag, status: 'damaged', formatVersion: 2, disk: diskTag, problem: `the manifest ${name} is not a version-2 Pagewise manifest: its ${wrong} has the wrong type` };
  return {
    backupId: m.backupId,
    status: 'complete',
    formatVersion: 2,
    createdAt: m.createdAt,
    completedAt: m.completedAt,
    source: sourceName(m.source),
    diskBytes: m.diskBytes,
    pageSize: m.pageSize,
    bytesStored: m.stats.bytesStored,
    disk: diskOf(m.disk),
    kind: m.kind,
    base: m.base?.backupId ?? null,
    generation: m.generation,
    bytesRead: m.stats.bytesRead,
    bytesNew: m.stats.bytesNew,
    allocatedBytes: m.stats.allocatedBytes,
  };
}

/** The disk as the listing groups by it: its ARM ID where there is one (the user's name for it), else its identity (§21.1). */
export function diskOf(disk: { identity: string; armDiskId?: string }): string {
  return disk.armDiskId ?? disk.identity;
}

/** The first field the listing shows, beyond those readManifest2 checks, that has the wrong type, if any. */
function wrongManifestField(m: ManifestV2): string | undefined {
  const o = (typeof m === 'object' && m !== null ? m : {}) as unknown as Record<string, unknown>;
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const checks: Array<[string, boolean]> = [
    ['source', isObject(o.source) && (o.source.snapshot === null || ['string', 'undefined'].includes(typeof o.source.snapshot))],
    ['disk', isObject(o.disk) && ['string', 'undefined'].includes(typeof o.disk.armDiskId)],
    ['base', o.base === null || (isObject(o.base) && typeof o.base.backupId === 'string')],
    ['stats', isObject(o.stats) && plainCounts(o.stats, ['bytesStored', 'bytesRead', 'bytesNew', 'allocatedBytes'])],
  ];
  return checks.find(([, ok]) => !ok)?.[0];
}

/** staging/<nameTag>/ without a manifest: what its plan says, with a key that opens it. */
async function unfinishedEntry(vault: Vault, keyring: Keyring | undefined, nameTag: string): Promise<BackupListing> {
  const problem = (id: string) => `backup ${id} is incomplete (it has no manifest) and cannot be restored; run the backup again to resume it`;
  const bare: BackupListing = { backupId: nameTag, status: 'incomplete', formatVersion: 2, problem: problem(nameTag) };
  if (!keyring) return bare;
  const name = v2names.plan(nameTag);
  let plan: PlanV2;
  try {
    const stored = await getIfAny(vault, name);
    if (!stored) return bare; // the plan is written first: without one the backup is only starting
    plan = openJson<PlanV2>(keyring, 1, name, stored);
  } catch (err) {
    if (isPagewiseError(err, 'WrongKey')) return bare;
    if (isPagewiseError(err, 'Corrupt')) return { backupId: nameTag, status: 'damaged', formatVersion: 2, problem: err.message };
    throw err;
  }
  const o = (typeof plan === 'object' && plan !== null ? plan : {}) as unknown as Record<string, unknown>;
  const source = o.source as { url?: unknown; snapshot?: unknown } | undefined;
  const disk = o.disk as { identity?: unknown; armDiskId?: unknown } | undefined;
  const sound =
    o.format === 'pagewise-plan' && o.version === 2 && typeof o.backupId === 'string' && keyring.nameTag(o.backupId) === nameTag && typeof o.createdAt === 'string'
    && typeof source?.url === 'string' && ['string', 'undefined'].includes(typeof source.snapshot) && typeof disk?.identity === 'string' && ['string', 'undefined'].includes(typeof disk.armDiskId)
    && plainCounts(o, ['diskBytes', 'pageSize']);
  if (!sound) return { backupId: nameTag, status: 'damaged', formatVersion: 2, problem: `the plan ${name} is not a version-2 Pagewise plan of this backup` };
  return {
    backupId: plan.backupId,
    status: 'incomplete',
    formatVersion: 2,
    problem: problem(plan.backupId),
    createdAt: plan.createdAt,
    source: sourceName(plan.source),
    disk: diskOf(plan.disk),
    diskBytes: plan.diskBytes,
    pageSize: plan.pageSize,
  };
}
