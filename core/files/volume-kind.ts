/**
 * What a volume (a partition, or a whole disk without a table) holds, from the signatures blkid knows: only
 * ext2/3/4 can be opened; anything else gets one sentence saying what was found and what to do instead.
 */
import { PagewiseError } from '../errors';
import type { DiskReader } from './disk-reader';
import {
  EXT_INCOMPAT_ENCRYPT, EXT_INCOMPAT_JOURNAL_DEV, EXT_SUPERBLOCK_BYTES, EXT_SUPERBLOCK_OFFSET, extKind, hasExtMagic, parseExtSuperblock,
} from './ext-superblock';

export type VolumeKind = 'ext2' | 'ext3' | 'ext4' | 'ntfs' | 'xfs' | 'btrfs' | 'lvm2' | 'luks' | 'bitlocker' | 'swap' | 'vfat' | 'exfat' | 'zfs' | 'refs' | 'iso9660' | 'empty' | 'unknown';

export interface VolumeIdentity {
  kind: VolumeKind;
  /** ext2/3/4 only. */
  openable: boolean;
  /** 'ext4 file system "rootfs" (UUID …)', 'NTFS file system (Windows)'. */
  description: string;
  label?: string;
  uuid?: string;
  /** When !openable: one sentence saying what was found and what to do instead. */
  why?: string;
}

/** How far into a volume the signatures lie (ZFS's uberblock ring ends at 256 KiB). */
const PROBE_BYTES = 256 * 1024;
/** A volume whose first 64 KiB are zeros holds nothing (blkid finds nothing there either). */
const EMPTY_PROBE_BYTES = 64 * 1024;
const RESTORE_AND_MOUNT = 'Pagewise reads ext2/3/4 only: restore the disk (pagewise restore) and mount it';

/** Identifies the volume `disk` holds; `what` ('p2', 'the disk') names it in the sentences. */
export async function identifyVolume(disk: DiskReader, what: string): Promise<VolumeIdentity> {
  const head = await disk.read(0, Math.min(disk.size, PROBE_BYTES));
  return identifyHead(head, what);
}

function identifyHead(b: Buffer, what: string): VolumeIdentity {
  const text = (at: number, length: number) => (at + length <= b.length ? b.toString('latin1', at, at + length) : '');
  const other = (kind: VolumeKind, description: string, why: string, extra: { label?: string; uuid?: string } = {}): VolumeIdentity =>
    ({ kind, openable: false, description, ...definedOnly(extra), why });

  if (text(0, 6) === 'LUKS\xba\xbe' && b.length >= 8) {
    const version = b.readUInt16BE(6);
    const uuid = cString(b, 168, 40, 'latin1');
    const label = version === 2 ? cString(b, 24, 48, 'utf8') : undefined;
    return other('luks', `LUKS${version === 2 ? '2' : version === 1 ? '1' : ''} encrypted volume${named(label)}${uuidNote(uuid)}`,
      `${what} is encrypted with LUKS: Pagewise cannot read inside it; restore the disk (pagewise restore) and open it with cryptsetup open`, { label, uuid });
  }
  for (let sector = 0; sector < 4; sector++) {
    const at = sector * 512;
    if (text(at, 8) === 'LABELONE' && text(at + 24, 8) === 'LVM2 001') {
      const headerAt = at + b.readUInt32LE(at + 20); // pv_header: the PV UUID first (32 characters)
      const raw = headerAt + 32 <= at + 512 ? cString(b, headerAt, 32, 'latin1') : undefined;
      const uuid = raw?.length === 32 ? raw.replace(/^(.{6})(.{4})(.{4})(.{4})(.{4})(.{4})(.{6})$/, '$1-$2-$3-$4-$5-$6-$7') : raw;
      return other('lvm2', `LVM2 physical volume${uuidNote(uuid)}`,
        `${what} is an LVM2 physical volume: Pagewise does not read logical volumes; restore the disk (pagewise restore), activate the volume group (vgchange -ay) and mount the logical volume`, { uuid });
    }
  }
  const oem = text(3, 8);
  if (oem === '-FVE-FS-') {
    return other('bitlocker', 'BitLocker encrypted volume (Windows)',
      `${what} is encrypted with BitLocker: Pagewise cannot read inside it; restore the disk (pagewise restore) and unlock it in Windows (or with dislocker)`);
  }
  if (oem === 'NTFS    ') {
    const uuid = b.length >= 0x50 ? Buffer.from(b.subarray(0x48, 0x50)).reverse().toString('hex').toUpperCase() : undefined;
    return other('ntfs', 'NTFS file system (Windows)', `${what} holds an NTFS file system (Windows); ${RESTORE_AND_MOUNT}`, { uuid });
  }
  if (oem === 'EXFAT   ') {
    const uuid = b.length >= 104 ? fatSerial(b, 100) : undefined;
    return other('exfat', `exFAT file system${uuidNote(uuid, 'ID')}`, `${what} holds an exFAT file system; ${RESTORE_AND_MOUNT}`, { uuid });
  }
  if (text(3, 8) === 'ReFS\0\0\0\0' && text(16, 4) === 'FSRS') {
    return other('refs', 'ReFS file system (Windows)', `${what} holds a ReFS file system (Windows); Pagewise reads ext2/3/4 only: restore the disk (pagewise restore) and attach it to a Windows machine`);
  }
  if (text(0, 4) === 'XFSB') {
    const uuid = b.length >= 48 ? guid(b.subarray(32, 48)) : undefined;
    const label = cString(b, 108, 12, 'utf8');
    return other('xfs', `XFS file system${named(label)}${uuidNote(uuid)}`, `${what} holds an XFS file system; ${RESTORE_AND_MOUNT}`, { label, uuid });
  }
  const ext = identifyExt(b, what);
  if (ext) return ext;
  if (text(0x10040, 8) === '_BHRfS_M') {
    const uuid = guid(b.subarray(0x10020, 0x10030));
    const label = cString(b, 0x1012b, 256, 'utf8');
    return other('btrfs', `btrfs file system${named(label)}${uuidNote(uuid)}`, `${what} holds a btrfs file system; ${RESTORE_AND_MOUNT}`, { label, uuid });
  }
  for (const pageSize of [4096, 8192, 16384, 65536]) {
    const magic = text(pageSize - 10, 10);
    if (magic !== 'SWAPSPACE2' && magic !== 'SWAP-SPACE') continue;
    const v2 = magic === 'SWAPSPACE2';
    const uuid = v2 && b.length >= 1052 ? guid(b.subarray(1036, 1052)) : undefined;
    const label = v2 ? cString(b, 1052, 16, 'utf8') : undefined;
    return other('swap', `Linux swap area${named(label)}${uuidNote(uuid)}`, `${what} is a Linux swap area: it holds no files`, { label, uuid });
  }
  const fat = identifyFat(b);
  if (fat) {
    return other('vfat', `${fat.type} file system${named(fat.label)}${uuidNote(fat.uuid, 'ID')}`, `${what} holds a ${fat.type} file system; ${RESTORE_AND_MOUNT}`,
      { label: fat.label, uuid: fat.uuid });
  }
  if (hasZfsUberblock(b)) {
    return other('zfs', 'ZFS pool member', `${what} is a member of a ZFS pool: Pagewise cannot read it; restore the disk (pagewise restore) and import the pool (zpool import)`);
  }
  if (text(0x8001, 5) === 'CD001') {
    const label = cString(b, 0x8028, 32, 'latin1')?.trimEnd() || undefined;
    return other('iso9660', `ISO 9660 file system${named(label)}`, `${what} holds an ISO 9660 (CD/DVD) file system; ${RESTORE_AND_MOUNT}`, { label });
  }
  const probe = b.subarray(0, EMPTY_PROBE_BYTES);
  if (probe.every((byte) => byte === 0)) {
    const span = b.length < EMPTY_PROBE_BYTES ? `all ${b.length} bytes` : 'its first 64 KiB';
    return other('empty', `no data (${span} are zeros)`, `${what} holds no file system: ${span} are zeros`);
  }
  const looks = looksRandom(b) ? 'the first bytes look like random data (encrypted, or never formatted)' : 'the first bytes look like random data or an unknown format';
  const where = what === 'the disk' ? 'no partition table and no file system Pagewise knows' : 'no file system Pagewise knows';
  return other('unknown', 'unknown contents', `${what} holds ${where}: ${looks}`);
}

/** ext2/3/4, with what makes it special said in the description; a damaged superblock is 'unknown' with the reason. */
function identifyExt(b: Buffer, what: string): VolumeIdentity | undefined {
  if (b.length < EXT_SUPERBLOCK_OFFSET + EXT_SUPERBLOCK_BYTES) return undefined;
  const raw = b.subarray(EXT_SUPERBLOCK_OFFSET, EXT_SUPERBLOCK_OFFSET + EXT_SUPERBLOCK_BYTES);
  if (!hasExtMagic(raw)) return undefined;
  if (raw.readUInt32LE(96) & EXT_INCOMPAT_JOURNAL_DEV) {
    // A journal device's superblock leaves the file-system fields zero: name it before they are checked.
    const uuid = guid(raw.subarray(104, 120));
    return { kind: 'unknown', openable: false, description: `ext external journal device (UUID ${uuid})`, uuid,
      why: `${what} is the external journal of an ext file system on another volume: it holds no files` };
  }
  let sb;
  try {
    sb = parseExtSuperblock(raw, what);
  } catch (e) {
    if (!(e instanceof PagewiseError)) throw e;
    return { kind: 'unknown', openable: false, description: 'ext file system with a damaged superblock', why: `${e.message}; Pagewise cannot open it: restore the disk (pagewise restore) and run e2fsck on it` };
  }
  if (!sb) return undefined;
  const label = sb.label || undefined;
  const kind = extKind(sb);
  const notes: string[] = [];
  if (sb.journalDevice !== 0) notes.push('its journal is on another device and is not replayed');
  if (sb.featureIncompat & EXT_INCOMPAT_ENCRYPT) notes.push('it uses ext4 encryption: encrypted directories cannot be read');
  const note = notes.length ? `; ${notes.join('; ')}` : '';
  return { kind, openable: true, description: `${kind} file system${named(label)}${uuidNote(sb.uuid)}${note}`, uuid: sb.uuid, ...definedOnly({ label }) };
}

/** A FAT12/16/32 boot sector: the type string where the BPB keeps it, 0x55AA, and a sane BPB. */
function identifyFat(b: Buffer): { type: string; label?: string; uuid?: string } | undefined {
  if (b.length < 512 || b.readUInt16LE(510) !== 0xaa55) return undefined;
  const bytesPerSector = b.readUInt16LE(11);
  const perCluster = b[13];
  const powerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;
  if (!powerOfTwo(bytesPerSector) || bytesPerSector < 512 || bytesPerSector > 4096 || !powerOfTwo(perCluster) || b[16] === 0) return undefined;
  const type32 = b.toString('latin1', 82, 87);
  const type16 = b.toString('latin1', 54, 59);
  const at = type32 === 'FAT32' ? { type: 'FAT32', label: 71, serial: 67 } : type16 === 'FAT12' || type16 === 'FAT16' ? { type: type16, label: 43, serial: 39 } : undefined;
  if (!at) return undefined;
  const label = b.toString('latin1', at.label, at.label + 11).trimEnd();
  return { type: at.type, label: label && label !== 'NO NAME' ? label : undefined, uuid: fatSerial(b, at.serial) };
}

/** ZFS: an uberblock (magic 0x00bab10c, either byte order) in the first label's ring at 128 KiB. */
function hasZfsUberblock(b: Buffer): boolean {
  for (let at = 128 * 1024; at + 8 <= b.length && at < 256 * 1024; at += 1024) {
    const v = b.readBigUInt64LE(at);
    if (v === 0x00bab10cn || b.readBigUInt64BE(at) === 0x00bab10cn) return true;
  }
  return false;
}

/** Nearly every byte value present in the first 4 KiB: random or encrypted data, not a format's header. */
function looksRandom(b: Buffer): boolean {
  const sample = b.subarray(0, 4096);
  if (sample.length < 4096) return false;
  const seen = new Set(sample);
  return seen.size >= 240;
}

function cString(b: Buffer, at: number, length: number, encoding: 'latin1' | 'utf8'): string | undefined {
  if (at + length > b.length) return undefined;
  const raw = b.subarray(at, at + length);
  const end = raw.indexOf(0);
  const s = raw.subarray(0, end < 0 ? length : end).toString(encoding).replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return s || undefined;
}

/** 16 bytes in byte order as blkid prints a UUID (ext, XFS, btrfs, swap). */
function guid(bytes: Buffer): string {
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** A FAT/exFAT volume serial as blkid prints it: 'ABCD-1234'. */
function fatSerial(b: Buffer, at: number): string {
  const h = b.readUInt32LE(at).toString(16).toUpperCase().padStart(8, '0');
  return `${h.slice(0, 4)}-${h.slice(4)}`;
}

function named(label: string | undefined): string {
  return label ? ` ${JSON.stringify(label)}` : '';
}

function uuidNote(uuid: string | undefined, word = 'UUID'): string {
  return uuid ? ` (${word} ${uuid})` : '';
}

function definedOnly<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
