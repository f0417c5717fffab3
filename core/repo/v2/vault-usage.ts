/**
 * What the vault's bytes are (issue #15, "cost visible"): per backup and per disk the stored bytes it names,
 * those only it names (unique) and those it shares; the vault's totals by kind of blob. Tables are read once
 * each, their chunks spilled through ShardSpill and counted one shard of content IDs at a time: memory is
 * bounded by the spill, not by the vault's chunk count (docs/SCALE.md "What a TiB costs").
 */
import { forEachLimited } from '../../concurrency';
import { isPagewiseError, isTransient, throwIfAborted } from '../../errors';
import type { StorageLocation } from '../../types';
import { BACKUP_ID_RE } from '../backup-id';
import { UNKNOWN_DISK, v1Disk } from '../catalog';
import { readManifestUnverified } from '../manifest';
import type { CallOptions } from '../store/blob-store';
import { Vault } from '../vault';
import { readTombstones, TombstoneRead } from '../../retention/tombstones';
import { diskOf, keyringIfAny } from './catalog2';
import type { Keyring } from './keyring';
import { readManifest2 } from './manifest';
import { MANIFEST_NAME_RE } from './names';
import { isZeroChunk, readTable } from './page-table';
import type { TableRef } from './records';
import { ShardSpill } from './shard-spill';

export interface BackupUsage {
  backupId: string;
  /** The disk as the catalog groups by it (its ARM ID where there is one, else its identity, §21.1) */
  disk: string;
  /** Stored bytes of the distinct chunks its tables name (each chunk once, at its block's stored length) */
  referencedBytes: number;
  /** Of those, the chunks no other backup names: what forgetting it frees once prune has run */
  uniqueBytes: number;
  /** referencedBytes − uniqueBytes: chunks another backup (of any disk) names too */
  sharedBytes: number;
  formatVersion: 1 | 2;
  /** Forgotten (a tombstone that authenticates): still counted, as prune keeps it through its grace */
  deleted?: true;
  /** Why its figures are incomplete (a table that could not be read) */
  problem?: string;
}

export interface DiskUsage {
  disk: string;
  backups: number;
  referencedBytes: number;
  /** named by this disk's backups only */
  uniqueBytes: number;
  /** named by backups of other disks too */
  sharedBytes: number;
}

export interface VaultUsage {
  backups: BackupUsage[];
  disks: DiskUsage[];
  vault: {
    /** every blob of the container */
    totalBytes: number;
    /** packs/ */
    packBytes: number;
    /** stored bytes of the distinct chunks any version-2 backup read names */
    referencedBytes: number;
    /** packBytes − referencedBytes (not below 0): forgotten backups' chunks prune has yet to delete, duplicate copies, in-flight backups' blocks, pack trailers */
    unreferencedBytes: number;
    /** index/ (deltas and compacted generations) */
    indexBytes: number;
    /** tables/ */
    tableBytes: number;
    /** everything else: manifests, staging, tombstones, key slots, markers, prune marks */
    otherBytes: number;
    /** backups/ (version-1 backups of an upgraded vault) */
    v1Bytes: number;
    /** of referencedBytes, the chunks only forgotten backups name: prune frees them when their grace ends */
    forgottenOnlyBytes: number;
  };
  /** distinct page tables read */
  tablesRead: number;
  /** version-2 manifests not read (no key, a key without a slot for their epoch, damaged): their backups are not in `backups` */
  manifestsUnread: number;
  /** what could not be read, at most MAX_PROBLEMS_SHOWN (then one line saying how many more) */
  problems: string[];
  /** when these figures were computed (a cached answer keeps its time) */
  computedAt: string;
}

export interface VaultUsageOptions {
  /** parent of the spill's private directory (default: the OS temp dir) */
  scratchDir?: string;
  abortSignal?: AbortSignal;
}

/** Manifests and tables read at once (each one GET). */
const READS_AT_ONCE = 8;
const MAX_PROBLEMS_SHOWN = 50;
/** A spilled record: content ID (32) | distinct-table number (u32 BE) | stored length (u32 BE). */
const RECORD_BYTES = 40;
const V1_SEGMENT_RE = /^backups\/([^/]+)\/segments\//;
const V1_MANIFEST_RE = /^backups\/([^/]+)\/manifest\.json$/;

/**
 * Reads every manifest present (forgotten ones included, flagged) and each distinct table they name once,
 * spills (content ID, table, stored length), then per shard of content IDs finds the backups and disks
 * naming each chunk: bytes = stored lengths from the hints, each chunk once per backup (a chunk stored
 * twice under different codecs counts at its larger stored length). A version-1 backup's segment bytes
 * are its own (unique). The vault's totals come from one detailed listing of the container.
 * Without a keyring only the totals and version-1 backups are known.
 */
export async function vaultUsage(vault: Vault, keyring: Keyring | null, options: VaultUsageOptions = {}): Promise<VaultUsage> {
  const call: CallOptions = { abortSignal: options.abortSignal };
  const step = () => throwIfAborted(options.abortSignal, 'the usage count was cancelled');
  const problems = new Problems();
  const listed = await listVault(vault, call);
  step();

  const backups: BackupUsage[] = [];
  const diskNames: string[] = [];
  const diskIndex = new Map<string, number>();
  const diskOfBackup: number[] = [];
  const add = (b: BackupUsage): number => {
    if (!diskIndex.has(b.disk)) diskIndex.set(b.disk, diskNames.push(b.disk) - 1);
    diskOfBackup.push(diskIndex.get(b.disk)!);
    return backups.push(b) - 1;
  };
  const tombstones: Map<string, TombstoneRead> = keyring ? await readTombstones(vault, keyring) : new Map();
  const deleted = (backupId: string, formatVersion: 1 | 2): { deleted?: true } => {
    const t = keyring ? tombstones.get(keyring.nameTag(backupId))?.tombstone : undefined;
    return t && t.formatVersion === formatVersion ? { deleted: true } : {};
  };

  // Version 1 (an upgraded vault): each backup with a manifest.json has its segments as its own (its MAC is
  // not checked: it needs the user key that wrote it, and the bytes are there either way).
  await forEachLimited(listed.v1, READS_AT_ONCE, async ([backupId, segmentBytes]) => {
    let disk = UNKNOWN_DISK;
    try {
      disk = v1Disk((await readManifestUnverified(vault, backupId, call)).body.source);
    } catch (err) {
      problems.add(findingOf(err));
    }
    add({ backupId, disk, referencedBytes: segmentBytes, uniqueBytes: segmentBytes, sharedBytes: 0, formatVersion: 1, ...deleted(backupId, 1) });
  });
  step();

  // Version 2: each manifest read, its table refs folded into the distinct tables.
  const tables = new DistinctTables();
  let manifestsUnread = 0;
  if (keyring) {
    await forEachLimited(listed.manifests, READS_AT_ONCE, async (name) => {
      try {
        const m = await readManifest2(vault, keyring, name);
        const b = add({ backupId: m.backupId, disk: diskOf(m.disk), referencedBytes: 0, uniqueBytes: 0, sharedBytes: 0, formatVersion: 2, ...deleted(m.backupId, 2) });
        for (const ref of m.tables) tables.name(ref, m.pagesPerTable, b);
      } catch (err) {
        if (isPagewiseError(err, 'BackupNotFound')) return; // deleted since the listing: gone, not unread
        problems.add(findingOf(err));
        manifestsUnread++;
      }
    });
  } else manifestsUnread = listed.manifests.length;
  step();

  const spill = await ShardSpill.create(RECORD_BYTES, options.scratchDir);
  try {
    const record = Buffer.alloc(RECORD_BYTES);
    let tablesFailed = 0;
    await forEachLimited(tables.all(), READS_AT_ONCE, async (t) => {
      let records;
      try {
        records = await readTable(vault, keyring!, t.ref, t.pagesPerTable, call);
      } catch (err) {
        const why = findingOf(err);
        problems.add(why);
        tablesFailed++;
        for (const b of t.backups) backups[b].problem ??= `its page table ${t.ref.index} could not be read, its figures leave it out: ${why}`;
        return;
      }
      for (const r of records) {
        for (const c of r.chunks) {
          if (isZeroChunk(c)) continue;
          c.contentId.copy(record, 0);
          record.writeUInt32BE(t.number, 32);
          record.writeUInt32BE(c.storedLength, 36);
          await spill.add(record); // copies the record before it returns
        }
      }
    });
    step();
    const counted = await countShards(spill, tables, backups, diskOfBackup, diskNames.length, step);
    const disks = diskNames.map((disk, d) => ({ disk, backups: 0, referencedBytes: counted.diskReferenced[d], uniqueBytes: counted.diskUnique[d], sharedBytes: counted.diskReferenced[d] - counted.diskUnique[d] }));
    backups.forEach((b, k) => {
      if (b.formatVersion === 2) {
        b.referencedBytes = counted.referenced[k];
        b.uniqueBytes = counted.unique[k];
        b.sharedBytes = b.referencedBytes - b.uniqueBytes;
      }
      const d = disks[diskOfBackup[k]];
      d.backups++;
      if (b.formatVersion === 1) {
        d.referencedBytes += b.referencedBytes;
        d.uniqueBytes += b.uniqueBytes;
      }
    });
    const order = (a: BackupUsage, b: BackupUsage) => a.disk.localeCompare(b.disk) || a.backupId.localeCompare(b.backupId);
    return {
      backups: backups.sort(order),
      disks: disks.sort((a, b) => a.disk.localeCompare(b.disk)),
      vault: { ...listed.totals, referencedBytes: counted.vaultReferenced, unreferencedBytes: Math.max(0, listed.totals.packBytes - counted.vaultReferenced), forgottenOnlyBytes: counted.forgottenOnly },
      tablesRead: tables.count - tablesFailed,
      manifestsUnread,
      problems: problems.list(),
      computedAt: new Date().toISOString(),
    };
  } finally {
    await spill.dispose();
  }
}

/** vaultUsage of the vault at `location`, opened with `userKey` when it has a slot there (else the totals and version-1 backups only). */
export async function vaultUsageAt(location: StorageLocation, userKey: Buffer | undefined, options: VaultUsageOptions = {}): Promise<VaultUsage> {
  const vault = Vault.open(location);
  const keyring = userKey ? await keyringIfAny(vault, userKey) : undefined;
  return vaultUsage(vault, keyring ?? null, options);
}

interface Listed {
  totals: Pick<VaultUsage['vault'], 'totalBytes' | 'packBytes' | 'indexBytes' | 'tableBytes' | 'otherBytes' | 'v1Bytes'>;
  manifests: string[];
  /** complete version-1 backups (a manifest.json) and their segment bytes */
  v1: Map<string, number>;
}

/** One flat detailed listing of the container: sizes by kind, the manifest names, version-1 backups. Memory: one name per backup. */
async function listVault(vault: Vault, call: CallOptions): Promise<Listed> {
  const totals = { totalBytes: 0, packBytes: 0, indexBytes: 0, tableBytes: 0, otherBytes: 0, v1Bytes: 0 };
  const manifests: string[] = [];
  const segments = new Map<string, number>();
  const complete = new Set<string>();
  for await (const b of vault.listDetailed('', call)) {
    const n = b.contentLength;
    totals.totalBytes += n;
    if (b.name.startsWith('packs/')) totals.packBytes += n;
    else if (b.name.startsWith('index/')) totals.indexBytes += n;
    else if (b.name.startsWith('tables/')) totals.tableBytes += n;
    else if (b.name.startsWith('backups/')) {
      totals.v1Bytes += n;
      const seg = V1_SEGMENT_RE.exec(b.name);
      if (seg && BACKUP_ID_RE.test(seg[1])) segments.set(seg[1], (segments.get(seg[1]) ?? 0) + n);
      const manifest = V1_MANIFEST_RE.exec(b.name);
      if (manifest && BACKUP_ID_RE.test(manifest[1])) complete.add(manifest[1]);
    } else {
      totals.otherBytes += n;
      if (MANIFEST_NAME_RE.test(b.name)) manifests.push(b.name);
    }
  }
  return { totals, manifests, v1: new Map([...complete].map((id) => [id, segments.get(id) ?? 0])) };
}

interface TableUse {
  number: number;
  ref: TableRef;
  pagesPerTable: number;
  /** the backups naming it */
  backups: number[];
}

/** The distinct tables the manifests name (by every field of the ref: two refs that differ are read apart), with who names each. */
class DistinctTables {
  private readonly byKey = new Map<string, TableUse>();
  private readonly list: TableUse[] = [];

  name(ref: TableRef, pagesPerTable: number, backup: number): void {
    const key = `${ref.tableId}|${ref.sha256}|${ref.bytes}|${ref.pages}|${ref.index}|${pagesPerTable}`;
    let t = this.byKey.get(key);
    if (!t) {
      t = { number: this.list.length, ref, pagesPerTable, backups: [] };
      this.byKey.set(key, t);
      this.list.push(t);
    }
    t.backups.push(backup);
  }

  get count(): number {
    return this.list.length;
  }

  all(): TableUse[] {
    return this.list;
  }

  at(number: number): TableUse {
    return this.list[number];
  }
}

interface Counted {
  referenced: Float64Array;
  unique: Float64Array;
  diskReferenced: Float64Array;
  diskUnique: Float64Array;
  vaultReferenced: number;
  forgottenOnly: number;
}

/**
 * The spill one shard at a time: for each content ID, the backups naming it (through its tables) and their
 * disks, each counted once (a per-ID stamp instead of a set per ID), at the larger stored length named.
 */
async function countShards(spill: ShardSpill, tables: DistinctTables, backups: BackupUsage[], diskOfBackup: number[], diskCount: number, step: () => void): Promise<Counted> {
  const out: Counted = { referenced: new Float64Array(backups.length), unique: new Float64Array(backups.length), diskReferenced: new Float64Array(diskCount), diskUnique: new Float64Array(diskCount), vaultReferenced: 0, forgottenOnly: 0 };
  const backupStamp = new Float64Array(backups.length).fill(-1);
  const backupLen = new Float64Array(backups.length);
  const diskStamp = new Float64Array(diskCount).fill(-1);
  const diskLen = new Float64Array(diskCount);
  let stamp = 0;
  const touched: number[] = [];
  const touchedDisks: number[] = [];
  const finish = () => {
    let longest = 0;
    let allDeleted = true;
    for (const b of touched) {
      const len = backupLen[b];
      out.referenced[b] += len;
      if (touched.length === 1) out.unique[b] += len;
      if (!backups[b].deleted) allDeleted = false;
      const d = diskOfBackup[b];
      if (diskStamp[d] !== stamp) {
        diskStamp[d] = stamp;
        diskLen[d] = len;
        touchedDisks.push(d);
      } else diskLen[d] = Math.max(diskLen[d], len);
      longest = Math.max(longest, len);
    }
    for (const d of touchedDisks) {
      out.diskReferenced[d] += diskLen[d];
      if (touchedDisks.length === 1) out.diskUnique[d] += diskLen[d];
    }
    out.vaultReferenced += longest;
    if (allDeleted && touched.length > 0) out.forgottenOnly += longest;
    touched.length = 0;
    touchedDisks.length = 0;
    stamp++;
  };
  for await (const { records, count } of spill.shards()) {
    step();
    for (let k = 0; k < count; k++) {
      const at = k * RECORD_BYTES;
      if (k > 0 && records.compare(records, at - RECORD_BYTES, at - RECORD_BYTES + 32, at, at + 32) !== 0) finish();
      const len = records.readUInt32BE(at + 36);
      for (const b of tables.at(records.readUInt32BE(at + 32)).backups) {
        if (backupStamp[b] !== stamp) {
          backupStamp[b] = stamp;
          backupLen[b] = len;
          touched.push(b);
        } else backupLen[b] = Math.max(backupLen[b], len);
      }
    }
    finish(); // a content ID never spans shards (the shard is its first byte)
  }
  return out;
}

/** A failure that is a finding about the vault (damaged, missing, not ours) as text; anything else (transient, cancelled, a bug) is rethrown. */
function findingOf(err: unknown): string {
  if (isTransient(err) || !isPagewiseError(err)) throw err;
  return err.message;
}

/** Problems said once each, bounded (a hostile vault can hold a million bad objects). */
class Problems {
  private readonly shown: string[] = [];
  private more = 0;
  add(why: string): void {
    if (this.shown.includes(why)) return;
    if (this.shown.length < MAX_PROBLEMS_SHOWN) this.shown.push(why);
    else this.more++;
  }
  list(): string[] {
    return this.more > 0 ? [...this.shown, `… and ${this.more} more`] : [...this.shown];
  }
}
