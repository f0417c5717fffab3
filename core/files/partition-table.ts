/**
 * A disk's partitions as Linux sees them: MBR (primaries, and logicals through the extended partition's EBR
 * chain), GPT (512- or 4096-byte sectors, CRC-checked, the backup header when the primary is damaged), or none
 * (a bare file system). Every number comes from the VM owner's disk: bounded, and never a read outside it.
 */
import * as zlib from 'node:zlib';
import type { DiskReader } from './disk-reader';

export interface Partition {
  /** 'p1'… as Linux numbers them: MBR primaries 1–4 by slot, logicals from 5; GPT by entry number. */
  name: string;
  number: number;
  /** Bytes from the start of the disk. */
  offset: number;
  /** Bytes. */
  size: number;
  scheme: 'mbr' | 'gpt';
  /** GPT type GUID in lowercase, or the MBR type as '0x83'. */
  typeId: string;
  /** 'Linux filesystem', 'EFI System', 'Microsoft basic data', 'Linux LVM', 'Linux swap', … or 'unknown'. */
  typeName: string;
  /** GPT partition name. */
  label?: string;
  /** MBR boot flag (0x80). */
  bootable?: boolean;
}

export interface PartitionLayout {
  scheme: 'mbr' | 'gpt' | 'none';
  sectorSize: 512 | 4096;
  /** GPT disk GUID (lowercase), or the MBR disk signature as '0x58834183'. */
  diskId?: string;
  partitions: Partition[];
  /** What was odd and skipped or worked around (a damaged primary GPT header, an entry past the disk's end…). */
  warnings: string[];
}

/** Bounds on what a hostile table can make us read or list. */
export const MAX_LOGICAL_PARTITIONS = 128;
export const MAX_GPT_ENTRIES = 1024;
const MIN_GPT_ENTRY_SIZE = 128;
const MAX_GPT_ENTRY_SIZE = 4096;

const MBR_SECTOR = 512;
const MBR_ENTRIES_AT = 446;
const GPT_SIGNATURE = 'EFI PART';
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
const GPT_PROTECTIVE = 0xee;

/** Reads a disk's partition table; a disk without one (or with a table too broken to trust) is scheme 'none'. */
export async function readPartitionTable(disk: DiskReader): Promise<PartitionLayout> {
  const none: PartitionLayout = { scheme: 'none', sectorSize: 512, partitions: [], warnings: [] };
  if (disk.size < MBR_SECTOR) return none;
  const mbr = await disk.read(0, MBR_SECTOR);
  const signed = mbr.readUInt16LE(510) === 0xaa55;
  const entries = signed ? mbrEntries(mbr) : [];
  const protective = entries.some((e) => e.type === GPT_PROTECTIVE);
  if (protective || !signed) {
    const gpt = await readGpt(disk, protective);
    if (!Array.isArray(gpt)) return gpt;
    if (protective) {
      const why = gpt.length ? ` (${gpt.join('; ')})` : '';
      return { ...none, scheme: 'gpt', warnings: [`the protective MBR announces a GPT, but no valid GPT header was found${why}: no partitions listed`] };
    }
  }
  if (!signed || looksLikeBootSector(mbr, entries)) return none;
  if (entries.every((e) => e.type === 0 || e.count === 0)) {
    // Nothing in it: a file system may still start at sector 0 (one that leaves the boot sector alone).
    return { ...none, warnings: ['sector 0 ends in the MBR signature but lists no partitions: the disk is read as one volume'] };
  }
  return readMbr(disk, mbr, entries);
}

// ---------------------------------------------------------------------------------------------- MBR

interface MbrEntry { slot: number; status: number; type: number; start: number; count: number }

function mbrEntries(sector: Buffer): MbrEntry[] {
  const out: MbrEntry[] = [];
  for (let slot = 0; slot < 4; slot++) {
    const at = MBR_ENTRIES_AT + 16 * slot;
    out.push({ slot, status: sector[at], type: sector[at + 4], start: sector.readUInt32LE(at + 8), count: sector.readUInt32LE(at + 12) });
  }
  return out;
}

/**
 * A FAT/NTFS/exFAT boot sector also ends in 0x55AA; what sits where an MBR keeps its entries is boot code
 * there. It is a boot sector when it names a file system, or when the "entries" are not entries at all.
 */
function looksLikeBootSector(sector: Buffer, entries: MbrEntry[]): boolean {
  const oem = sector.toString('latin1', 3, 11);
  if (oem === 'NTFS    ' || oem === 'EXFAT   ' || oem === '-FVE-FS-' || oem.startsWith('ReFS')) return true;
  const statusesSane = entries.every((e) => e.status === 0 || e.status === 0x80);
  const used = entries.filter((e) => e.type !== 0);
  const entriesSane = statusesSane && used.every((e) => e.start > 0 && e.count > 0);
  const fatBpb = sector.toString('latin1', 54, 59) === 'FAT12' || sector.toString('latin1', 54, 59) === 'FAT16' || sector.toString('latin1', 82, 87) === 'FAT32';
  if (fatBpb && (!entriesSane || used.length === 0)) return true;
  return !statusesSane;
}

async function readMbr(disk: DiskReader, mbr: Buffer, entries: MbrEntry[]): Promise<PartitionLayout> {
  const sectors = Math.floor(disk.size / MBR_SECTOR);
  const warnings: string[] = [];
  const partitions: Partition[] = [];
  const taken: Array<[number, number]> = [[0, 1]]; // the MBR's own sector
  let extended: MbrEntry | undefined;
  for (const e of entries) {
    if (e.type === 0 || e.count === 0) continue;
    const number = e.slot + 1;
    const where = checkExtent(e.start, e.count, sectors, taken, `MBR entry ${number}`, warnings);
    if (!where) continue;
    if (EXTENDED_TYPES.has(e.type)) {
      if (extended) { warnings.push(`MBR entry ${number} is a second extended partition: skipped`); continue; }
      extended = e;
      continue;
    }
    partitions.push(mbrPartition(number, e, e.start));
  }
  if (extended) partitions.push(...(await readLogicals(disk, extended, sectors, warnings)));
  partitions.sort((a, b) => a.number - b.number);
  return { scheme: 'mbr', sectorSize: 512, diskId: `0x${mbr.readUInt32LE(440).toString(16).padStart(8, '0')}`, partitions, warnings };
}

/**
 * The extended partition's chain of EBRs: each holds one logical (relative to itself) and a link to the next
 * EBR (relative to the extended partition's start). Bounded and loop-safe: a visited EBR ends the chain.
 */
async function readLogicals(disk: DiskReader, extended: MbrEntry, sectors: number, warnings: string[]): Promise<Partition[]> {
  const base = extended.start;
  const end = extended.start + extended.count;
  const out: Partition[] = [];
  const taken: Array<[number, number]> = [];
  const visited = new Set<number>();
  let ebr = base;
  let number = 5;
  for (let hops = 0; ; hops++) {
    if (visited.has(ebr)) { warnings.push(`the EBR chain loops back to sector ${ebr}: the chain ends there`); break; }
    if (hops >= MAX_LOGICAL_PARTITIONS) { warnings.push(`the EBR chain goes on past ${MAX_LOGICAL_PARTITIONS} links: the rest is ignored`); break; }
    visited.add(ebr);
    const sector = await disk.read(ebr * MBR_SECTOR, MBR_SECTOR);
    if (sector.readUInt16LE(510) !== 0xaa55) { warnings.push(`the EBR at sector ${ebr} has no 0x55AA signature: the chain ends there`); break; }
    const [logical, link] = mbrEntries(sector);
    if (logical.type !== 0 && logical.count !== 0 && !EXTENDED_TYPES.has(logical.type)) {
      const start = ebr + logical.start;
      if (logical.start === 0 || start + logical.count > end) {
        warnings.push(`the logical partition in the EBR at sector ${ebr} (sectors ${start}–${start + logical.count - 1}) lies outside the extended partition: skipped`);
      } else if (checkExtent(start, logical.count, sectors, taken, `the logical partition in the EBR at sector ${ebr}`, warnings)) {
        out.push(mbrPartition(number++, logical, start));
      }
    }
    if (link.count === 0 || link.start === 0 || !EXTENDED_TYPES.has(link.type)) break;
    const next = base + link.start;
    if (next >= end) { warnings.push(`the EBR at sector ${ebr} links to sector ${next}, outside the extended partition: the chain ends there`); break; }
    ebr = next;
  }
  return out;
}

function mbrPartition(number: number, e: MbrEntry, start: number): Partition {
  const typeId = `0x${e.type.toString(16).padStart(2, '0')}`;
  return {
    name: `p${number}`, number, offset: start * MBR_SECTOR, size: e.count * MBR_SECTOR, scheme: 'mbr',
    typeId, typeName: MBR_TYPE_NAMES[e.type] ?? 'unknown', bootable: e.status === 0x80,
  };
}

/** Whether [start, start+count) lies inside the disk and overlaps nothing taken; a warning says why not. Takes it when it fits. */
function checkExtent(start: number, count: number, sectors: number, taken: Array<[number, number]>, what: string, warnings: string[]): boolean {
  const last = start + count - 1;
  if (count <= 0 || start + count > sectors) {
    warnings.push(`${what} (sectors ${start}–${last}) lies past the disk's end (${sectors} sectors): skipped`);
    return false;
  }
  const clash = taken.find(([s, n]) => start < s + n && s < start + count);
  if (clash) {
    warnings.push(`${what} (sectors ${start}–${last}) overlaps sectors ${clash[0]}–${clash[0] + clash[1] - 1}, already taken: skipped`);
    return false;
  }
  taken.push([start, count]);
  return true;
}

// ---------------------------------------------------------------------------------------------- GPT

interface GptHeader { lba: number; firstUsable: number; lastUsable: number; diskGuid: string; entriesLba: number; entryCount: number; entrySize: number; entriesCrc: number; array: Buffer }

/**
 * The GPT, trying 512- then 4096-byte sectors: the primary header at LBA 1, else (only when a protective MBR
 * announces a GPT: a stale backup header under a reformatted disk is no table) the backup at the last LBA, with
 * a warning. When no valid header is found: what was wrong with the headers that were there.
 */
async function readGpt(disk: DiskReader, protective: boolean): Promise<PartitionLayout | string[]> {
  const problems: string[] = [];
  for (const sectorSize of [512, 4096] as const) {
    const sectors = Math.floor(disk.size / sectorSize);
    if (sectors < 3) continue;
    const primary = await gptHeaderAt(disk, sectorSize, 1, sectors);
    let header: GptHeader | undefined;
    const warnings: string[] = [];
    if (typeof primary !== 'string') header = primary;
    else if (protective) {
      const backup = await gptHeaderAt(disk, sectorSize, sectors - 1, sectors);
      if (typeof backup !== 'string') {
        header = backup;
        warnings.push(`the primary GPT header is damaged (${primary}): the backup header at LBA ${sectors - 1} was used`);
      } else if (primary !== 'no GPT signature' || backup !== 'no GPT signature') {
        problems.push(`${sectorSize}-byte sectors: primary ${primary}, backup ${backup}`);
      }
    }
    if (!header) continue;
    if (!protective) warnings.push('the disk has a GPT but no protective MBR');
    return { scheme: 'gpt', sectorSize, diskId: header.diskGuid, partitions: await gptPartitions(disk, sectorSize, sectors, header, warnings), warnings };
  }
  return problems;
}

/** The header at `lba`, CRC-checked with its entry array; a string says what is wrong with it. */
async function gptHeaderAt(disk: DiskReader, sectorSize: number, lba: number, sectors: number): Promise<GptHeader | string> {
  const sector = await disk.read(lba * sectorSize, sectorSize);
  if (sector.toString('latin1', 0, 8) !== GPT_SIGNATURE) return 'no GPT signature';
  const headerSize = sector.readUInt32LE(12);
  if (headerSize < 92 || headerSize > sectorSize) return `header size ${headerSize} is out of range`;
  const copy = Buffer.from(sector.subarray(0, headerSize));
  const stored = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== stored) return 'header CRC32 mismatch';
  const u64 = (at: number) => {
    const v = sector.readBigUInt64LE(at);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  };
  const myLba = u64(24);
  if (myLba !== lba) return `it says it sits at LBA ${myLba}, not ${lba}`;
  const header: GptHeader = {
    lba, firstUsable: u64(40), lastUsable: u64(48), diskGuid: guidAt(sector, 56), entriesLba: u64(72),
    entryCount: sector.readUInt32LE(80), entrySize: sector.readUInt32LE(84), entriesCrc: sector.readUInt32LE(88), array: Buffer.alloc(0),
  };
  if (header.entryCount > MAX_GPT_ENTRIES) return `${header.entryCount} entries (at most ${MAX_GPT_ENTRIES} are read)`;
  if (header.entrySize < MIN_GPT_ENTRY_SIZE || header.entrySize > MAX_GPT_ENTRY_SIZE || header.entrySize % MIN_GPT_ENTRY_SIZE !== 0) {
    return `entry size ${header.entrySize} is out of range (${MIN_GPT_ENTRY_SIZE}…${MAX_GPT_ENTRY_SIZE}, a multiple of ${MIN_GPT_ENTRY_SIZE})`;
  }
  const arrayBytes = header.entryCount * header.entrySize;
  if (header.entriesLba < 1 || header.entriesLba * sectorSize + arrayBytes > sectors * sectorSize) {
    return `its entry array (LBA ${header.entriesLba}, ${arrayBytes} bytes) lies outside the disk`;
  }
  header.array = await disk.read(header.entriesLba * sectorSize, arrayBytes);
  if (crc32(header.array) !== header.entriesCrc) return 'entry array CRC32 mismatch';
  return header;
}

async function gptPartitions(disk: DiskReader, sectorSize: number, sectors: number, h: GptHeader, warnings: string[]): Promise<Partition[]> {
  const array = h.array;
  const out: Partition[] = [];
  const taken: Array<[number, number]> = [];
  for (let i = 0; i < h.entryCount; i++) {
    const entry = array.subarray(i * h.entrySize, (i + 1) * h.entrySize);
    const typeId = guidAt(entry, 0);
    if (typeId === ZERO_GUID) continue;
    const number = i + 1;
    const first = entry.readBigUInt64LE(32);
    const last = entry.readBigUInt64LE(40);
    if (last < first || last >= BigInt(sectors)) {
      warnings.push(`GPT entry ${number} (LBA ${first}–${last}) lies past the disk's end (${sectors} sectors) or is reversed: skipped`);
      continue;
    }
    const start = Number(first);
    const count = Number(last - first) + 1;
    if (!checkExtent(start, count, sectors, taken, `GPT entry ${number}`, warnings)) continue;
    if (start < h.firstUsable || start + count - 1 > h.lastUsable) {
      warnings.push(`GPT entry ${number} (LBA ${start}–${start + count - 1}) lies outside the usable LBAs ${h.firstUsable}–${h.lastUsable}`);
    }
    const label = utf16z(entry.subarray(56, Math.min(h.entrySize, 128)));
    out.push({
      name: `p${number}`, number, offset: start * sectorSize, size: count * sectorSize, scheme: 'gpt',
      typeId, typeName: GPT_TYPE_NAMES[typeId] ?? 'unknown', ...(label ? { label } : {}),
    });
  }
  return out;
}

const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

/** A GUID as GPT stores it (first three fields little-endian), written the usual way in lowercase. */
function guidAt(b: Buffer, at: number): string {
  const hex = (from: number, to: number) => b.subarray(at + from, at + to).toString('hex');
  const le = (from: number, to: number) => Buffer.from(b.subarray(at + from, at + to)).reverse().toString('hex');
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${hex(8, 10)}-${hex(10, 16)}`;
}

/** A NUL-terminated UTF-16LE name; control characters become '?' so a name cannot shape a terminal. */
function utf16z(b: Buffer): string {
  let end = 0;
  while (end + 1 < b.length && (b[end] !== 0 || b[end + 1] !== 0)) end += 2;
  return b.subarray(0, end).toString('utf16le').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

// ---------------------------------------------------------------------------------------------- CRC32

/**
 * CRC-32 (IEEE, as GPT uses it). zlib.crc32 exists from Node 20.15; before that, a table-driven fallback
 * (package.json allows any Node 20).
 */
export function crc32(data: Buffer): number {
  const native = (zlib as { crc32?: (d: Buffer) => number }).crc32;
  return native ? native(data) : tableCrc32(data);
}

/** The fallback, exported for its test against zlib. */
export function tableCrc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

// ---------------------------------------------------------------------------------------------- names

/** fdisk's names for the MBR types a VM disk is likely to hold. */
const MBR_TYPE_NAMES: Record<number, string> = {
  0x01: 'FAT12', 0x04: 'FAT16 <32M', 0x05: 'Extended', 0x06: 'FAT16', 0x07: 'HPFS/NTFS/exFAT', 0x0b: 'W95 FAT32',
  0x0c: 'W95 FAT32 (LBA)', 0x0e: 'W95 FAT16 (LBA)', 0x0f: "W95 Ext'd (LBA)", 0x11: 'Hidden FAT12', 0x17: 'Hidden HPFS/NTFS',
  0x1b: 'Hidden W95 FAT32', 0x1c: 'Hidden W95 FAT32 (LBA)', 0x27: 'Hidden NTFS WinRE', 0x42: 'SFS', 0x82: 'Linux swap / Solaris',
  0x83: 'Linux', 0x85: 'Linux extended', 0x8e: 'Linux LVM', 0xa5: 'FreeBSD', 0xa6: 'OpenBSD', 0xa8: 'Darwin UFS',
  0xa9: 'NetBSD', 0xaf: 'HFS / HFS+', 0xbf: 'Solaris', 0xda: 'Non-FS data', 0xe8: 'LUKS', 0xee: 'GPT', 0xef: 'EFI (FAT-12/16/32)',
  0xfd: 'Linux raid autodetect',
};

/** fdisk's names for the GPT type GUIDs a VM disk is likely to hold. */
const GPT_TYPE_NAMES: Record<string, string> = {
  'c12a7328-f81f-11d2-ba4b-00a0c93ec93b': 'EFI System',
  '21686148-6449-6e6f-744e-656564454649': 'BIOS boot',
  '0fc63daf-8483-4772-8e79-3d69d8477de4': 'Linux filesystem',
  '0657fd6d-a4ab-43c4-84e5-0933c84b4f4f': 'Linux swap',
  'e6d6d379-f507-44c2-a23c-238f2a3df928': 'Linux LVM',
  'a19d880f-05fc-4d3b-a006-743f0f84911e': 'Linux RAID',
  'ca7d7ccb-63ed-4c53-861c-1742536059cc': 'Linux LUKS',
  '933ac7e1-2eb4-4f13-b844-0e14e2aef915': 'Linux home',
  '3b8f8425-20e0-4f3b-907f-1a25a76f98e8': 'Linux server data',
  'bc13c2ff-59e6-4262-a352-b275fd6f7172': 'Linux extended boot',
  '8da63339-0007-60c0-c436-083ac8230908': 'Linux reserved',
  '4f68bce3-e8cd-4db1-96e7-fbcaf984b709': 'Linux root (x86-64)',
  '44479540-f297-41b2-9af7-d131d5f0458a': 'Linux root (x86)',
  'b921b045-1df0-41c3-af44-4c6f280d3fae': 'Linux root (ARM-64)',
  '69dad710-2ce4-4e3c-b16c-21a1d49abed3': 'Linux root (ARM)',
  '8484680c-9521-48c6-9c11-b0720656f69e': 'Linux /usr (x86-64)',
  'ebd0a0a2-b9e5-4433-87c0-68b6b72699c7': 'Microsoft basic data',
  'e3c9e316-0b5c-4db8-817d-f92df00215ae': 'Microsoft reserved',
  'de94bba4-06d1-4d40-a16a-bfd50179d6ac': 'Windows recovery environment',
  '5808c8aa-7e8f-42e0-85d2-e1e90434cfb3': 'Microsoft LDM metadata',
  'af9b60a0-1431-4f62-bc68-3311714a69ad': 'Microsoft LDM data',
  'e75caf8f-f680-4cee-afa3-b001e56efc2d': 'Microsoft Storage Spaces',
  '6a898cc3-1dd2-11b2-99a6-080020736631': 'Solaris /usr & Apple ZFS',
  '516e7cba-6ecf-11d6-8ff8-00022d09712b': 'FreeBSD ZFS',
  '48465300-0000-11aa-aa11-00306543ecac': 'Apple HFS/HFS+',
  '7c3457ef-0000-11aa-aa11-00306543ecac': 'Apple APFS',
};
