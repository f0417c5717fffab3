/**
 * The 512-byte footer of a fixed VHD (Microsoft "Virtual Hard Disk Image Format Specification" v1.0,
 * "Hard Disk Footer Format"): what an Upload managed disk must end with. Written by a restore to a new
 * managed disk (docs/VM.md §Restore) and parsed, with every field checked, to verify one.
 */
import { randomUUID } from 'node:crypto';
import { PagewiseError } from '../errors';
import { SECTOR } from '../limits';

export const VHD_FOOTER_BYTES = 512;
const COOKIE = 'conectix';
/** Features: bit 1 ("reserved") must always be set. */
const FEATURES = 0x00000002;
const FORMAT_VERSION = 0x00010000;
/** A fixed disk has no dynamic header: the data offset is all ones. */
const FIXED_DATA_OFFSET = 0xffffffffffffffffn;
/** Pagewise as the creator application (4 ASCII bytes) and version 1.0. */
export const VHD_CREATOR = 'pgws';
const CREATOR_VERSION = 0x00010000;
/** "Wi2k": what most VHD writers (Hyper-V, qemu) record as the creator host OS. */
const CREATOR_HOST_OS = 0x5769326b;
const DISK_TYPE_FIXED = 2;
/** VHD timestamps count seconds from 2000-01-01T00:00:00Z. */
const VHD_EPOCH_MS = Date.UTC(2000, 0, 1);
/** The largest geometry the spec's algorithm gives (65535 cylinders × 16 heads × 255 sectors). */
const MAX_CHS_SECTORS = 65535 * 16 * 255;

/** Field offsets of the footer. */
const AT = { cookie: 0, features: 8, version: 12, dataOffset: 16, timestamp: 24, creatorApp: 28, creatorVersion: 32, creatorHostOs: 36, originalSize: 40, currentSize: 48, cylinders: 56, heads: 58, sectorsPerTrack: 59, diskType: 60, checksum: 64, uniqueId: 68, savedState: 84 } as const;

export interface VhdGeometry {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
}

export interface VhdFooter {
  features: number;
  version: number;
  timestamp: Date;
  creatorApplication: string;
  originalSize: number;
  currentSize: number;
  geometry: VhdGeometry;
  diskType: 'fixed' | 'dynamic' | 'differencing';
  uniqueId: string;
  savedState: boolean;
}

/** CHS geometry of a disk of `totalSectors` sectors, exactly as the VHD specification's appendix computes it. */
export function vhdGeometry(totalSectors: number): VhdGeometry {
  const total = Math.min(totalSectors, MAX_CHS_SECTORS);
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (total >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024));
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack };
}

/** One's complement of the sum of the footer's bytes, the checksum field itself counted as zeros. */
function checksumOf(footer: Buffer): number {
  let sum = 0;
  for (let i = 0; i < VHD_FOOTER_BYTES; i++) if (i < AT.checksum || i >= AT.checksum + 4) sum += footer[i];
  return ~sum >>> 0;
}

function uuidBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new PagewiseError('BadInput', `the VHD unique ID ${JSON.stringify(uuid.slice(0, 64))} is not a GUID`);
  return Buffer.from(hex, 'hex');
}

function uuidText(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The footer of a fixed VHD whose data part is `sizeBytes` (a positive multiple of 512); a new unique ID unless given. */
export function vhdFooter(sizeBytes: number, uniqueId: string = randomUUID(), now: Date = new Date()): Buffer {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % SECTOR !== 0) {
    throw new PagewiseError('BadInput', `a fixed VHD of ${sizeBytes} bytes cannot be written: its size must be a positive multiple of 512`);
  }
  const footer = Buffer.alloc(VHD_FOOTER_BYTES);
  footer.write(COOKIE, AT.cookie, 'ascii');
  footer.writeUInt32BE(FEATURES, AT.features);
  footer.writeUInt32BE(FORMAT_VERSION, AT.version);
  footer.writeBigUInt64BE(FIXED_DATA_OFFSET, AT.dataOffset);
  footer.writeUInt32BE(Math.max(0, Math.floor((now.getTime() - VHD_EPOCH_MS) / 1000)) >>> 0, AT.timestamp);
  footer.write(VHD_CREATOR, AT.creatorApp, 'ascii');
  footer.writeUInt32BE(CREATOR_VERSION, AT.creatorVersion);
  footer.writeUInt32BE(CREATOR_HOST_OS, AT.creatorHostOs);
  footer.writeBigUInt64BE(BigInt(sizeBytes), AT.originalSize);
  footer.writeBigUInt64BE(BigInt(sizeBytes), AT.currentSize);
  const geometry = vhdGeometry(sizeBytes / SECTOR);
  footer.writeUInt16BE(geometry.cylinders, AT.cylinders);
  footer.writeUInt8(geometry.heads, AT.heads);
  footer.writeUInt8(geometry.sectorsPerTrack, AT.sectorsPerTrack);
  footer.writeUInt32BE(DISK_TYPE_FIXED, AT.diskType);
  uuidBytes(uniqueId).copy(footer, AT.uniqueId);
  footer.writeUInt8(0, AT.savedState);
  footer.writeUInt32BE(checksumOf(footer), AT.checksum);
  return footer;
}

const DISK_TYPES: Record<number, VhdFooter['diskType']> = { 2: 'fixed', 3: 'dynamic', 4: 'differencing' };

function corrupt(what: string, problem: string): PagewiseError {
  return new PagewiseError('Corrupt', `${what} is not a valid VHD footer: ${problem}`);
}

/** Parses and checks a VHD footer (cookie, version, checksum, disk type, sizes, geometry); `what` names it in errors. */
export function parseVhdFooter(buf: Buffer, what = 'the footer'): VhdFooter {
  if (buf.length !== VHD_FOOTER_BYTES) throw corrupt(what, `it is ${buf.length} bytes, not 512`);
  if (buf.toString('latin1', AT.cookie, AT.cookie + 8) !== COOKIE) throw corrupt(what, 'no "conectix" cookie');
  const stored = buf.readUInt32BE(AT.checksum);
  const computed = checksumOf(buf);
  if (stored !== computed) throw corrupt(what, `checksum ${stored.toString(16)} does not match its content (${computed.toString(16)})`);
  const features = buf.readUInt32BE(AT.features);
  if ((features & FEATURES) === 0) throw corrupt(what, 'the reserved feature bit is not set');
  const version = buf.readUInt32BE(AT.version);
  if (version >>> 16 !== 1) throw corrupt(what, `format version ${version.toString(16)} is not 1.x`);
  const diskType = DISK_TYPES[buf.readUInt32BE(AT.diskType)];
  if (!diskType) throw corrupt(what, `disk type ${buf.readUInt32BE(AT.diskType)} is not fixed, dynamic or differencing`);
  const dataOffset = buf.readBigUInt64BE(AT.dataOffset);
  if (diskType === 'fixed' && dataOffset !== FIXED_DATA_OFFSET) throw corrupt(what, 'a fixed disk with a data offset');
  const size = (at: number, name: string): number => {
    const value = buf.readBigUInt64BE(at);
    if (value === 0n || value > BigInt(Number.MAX_SAFE_INTEGER) || value % BigInt(SECTOR) !== 0n) throw corrupt(what, `${name} ${value} is not a positive multiple of 512`);
    return Number(value);
  };
  const originalSize = size(AT.originalSize, 'the original size');
  const currentSize = size(AT.currentSize, 'the current size');
  const geometry = { cylinders: buf.readUInt16BE(AT.cylinders), heads: buf.readUInt8(AT.heads), sectorsPerTrack: buf.readUInt8(AT.sectorsPerTrack) };
  if (geometry.cylinders === 0 || geometry.heads === 0 || geometry.sectorsPerTrack === 0) throw corrupt(what, 'a zero CHS geometry');
  return {
    features,
    version,
    timestamp: new Date(VHD_EPOCH_MS + buf.readUInt32BE(AT.timestamp) * 1000),
    creatorApplication: buf.toString('latin1', AT.creatorApp, AT.creatorApp + 4),
    originalSize,
    currentSize,
    geometry,
    diskType,
    uniqueId: uuidText(buf.subarray(AT.uniqueId, AT.uniqueId + 16)),
    savedState: buf.readUInt8(AT.savedState) !== 0,
  };
}
