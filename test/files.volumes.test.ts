/**
 * Partition tables and volume identification on real images (sfdisk, mkfs.ext4/ext3, mkswap, mkntfs, mkfs.xfs,
 * cryptsetup) and on hostile tables crafted here (entries past the end, EBR loops, huge counts, bad CRCs),
 * all read through fileDiskReader.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { fileDiskReader, identifyVolume, readPartitionTable, sliceReader } from '../core';
import type { DiskReader, PartitionLayout } from '../core';
import { tableCrc32 } from '../core/files/partition-table';
import { ensureTools, findTool } from '../testkit/debian-tools';
import { makeExtImage, makePartitionedImage, seededBytes } from '../testkit/fs-images';

const KiB = 1024;
const MiB = 1024 * KiB;

let tmp: string;
let tools: ReturnType<typeof ensureTools<'mkfs.ext4' | 'sfdisk' | 'mkntfs' | 'mkfs.xfs' | 'cryptsetup' | 'mkswap'>>;
beforeAll(async () => {
  tools = ensureTools(['mkfs.ext4', 'sfdisk', 'mkntfs', 'mkfs.xfs', 'cryptsetup', 'mkswap']);
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-volumes-'));
  await fs.mkdir(path.join(tmp, 'tree'));
  await fs.writeFile(path.join(tmp, 'tree', 'hello.txt'), 'hello\n');
});
afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

const at = (name: string) => path.join(tmp, name);

/** The layout and the identity of each partition (or of the whole disk), read through fileDiskReader. */
async function inspect(image: string): Promise<{ layout: PartitionLayout; ids: Record<string, Awaited<ReturnType<typeof identifyVolume>>>; bytesRead: number }> {
  const file = await fileDiskReader(image);
  let bytesRead = 0;
  const disk: DiskReader = { size: file.size, read: async (p, n) => { bytesRead += n; return file.read(p, n); } };
  try {
    const layout = await readPartitionTable(disk);
    const ids: Record<string, Awaited<ReturnType<typeof identifyVolume>>> = {};
    if (layout.scheme === 'none') ids.disk = await identifyVolume(disk, 'the disk');
    for (const p of layout.partitions) ids[p.name] = await identifyVolume(sliceReader(disk, p.offset, p.size, p.name), p.name);
    return { layout, ids, bytesRead };
  } finally {
    await file.close();
  }
}

async function sparseFile(name: string, size: number): Promise<string> {
  const file = at(name);
  await fs.rm(file, { force: true });
  await fs.writeFile(file, '');
  await fs.truncate(file, size);
  return file;
}

async function extImage(name: string, kind: 'ext2' | 'ext3' | 'ext4', size: number, uuid: string, label?: string, extra: string[] = []): Promise<string> {
  const image = at(name);
  await makeExtImage(image, at('tree'), { kind, sizeBytes: size, blockSize: 1024, ...(label ? { label } : {}), extraArgs: ['-U', uuid, ...extra] });
  return image;
}

async function swapImage(name: string, size: number, uuid: string, label: string): Promise<string> {
  const image = await sparseFile(name, size);
  execFileSync(tools.mkswap, ['-U', uuid, '-L', label, image], { stdio: 'pipe' });
  return image;
}

/** A hand-made LVM2 physical-volume label in sector 1, as pvcreate writes it (label_header + pv_header's UUID). */
async function lvmImage(name: string, size: number): Promise<string> {
  const image = await sparseFile(name, size);
  const sector = Buffer.alloc(512);
  sector.write('LABELONE', 0, 'latin1');
  sector.writeBigUInt64LE(1n, 8); // sector_xl
  sector.writeUInt32LE(32, 20); // offset_xl: where the pv_header starts
  sector.write('LVM2 001', 24, 'latin1');
  sector.write('AbCdEf1234567890GhIjKlMnOpQrStUv', 32, 'latin1');
  sector.writeUInt32LE(zlib.crc32(sector.subarray(20)), 16);
  const h = await fs.open(image, 'r+');
  await h.write(sector, 0, 512, 512);
  await h.close();
  return image;
}

/** A FAT16 boot sector (what mkfs.vfat writes first) when dosfstools is not installed. */
function fat16BootSector(label: string, serial: number): Buffer {
  const b = Buffer.alloc(512);
  b.set([0xeb, 0x58, 0x90], 0);
  b.write('mkfs.fat', 3, 'latin1');
  b.writeUInt16LE(512, 11); // bytes per sector
  b[13] = 1; // sectors per cluster
  b.writeUInt16LE(1, 14); // reserved sectors
  b[16] = 2; // FATs
  b.writeUInt16LE(512, 17); // root directory entries
  b[38] = 0x29; // extended boot signature
  b.writeUInt32LE(serial, 39);
  b.write(label.padEnd(11), 43, 'latin1');
  b.write('FAT16   ', 54, 'latin1');
  b.write('This is not a bootable disk.  Please insert a bootable floppy and', 0x3e + 30, 'latin1');
  b.writeUInt16LE(0xaa55, 510);
  return b;
}

async function vfatImage(name: string, size: number): Promise<{ image: string; label: string; uuid: string }> {
  const image = await sparseFile(name, size);
  const mkfsVfat = findTool('mkfs.vfat');
  if (mkfsVfat) {
    execFileSync(mkfsVfat, ['-F', '16', '-s', '1', '-n', 'EFI', '-i', 'ABCD1234', image], { stdio: 'pipe' });
  } else {
    const h = await fs.open(image, 'r+');
    await h.write(fat16BootSector('EFI', 0xabcd1234), 0, 512, 0);
    await h.close();
  }
  return { image, label: 'EFI', uuid: 'ABCD-1234' };
}

// ------------------------------------------------------------------------------------ crafted GPT

interface CraftEntry { type: string; first: number; last: number; name?: string; slot?: number }

function guidBytes(guid: string): Buffer {
  const h = guid.replace(/-/g, '');
  const b = Buffer.from(h, 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

const LINUX_FS = '0fc63daf-8483-4772-8e79-3d69d8477de4';
const DISK_GUID = '01234567-89ab-cdef-0123-456789abcdef';

/**
 * A GPT written by hand into `disk` (a buffer the size of the disk): protective MBR, primary header + array
 * at LBA 1/2, backup array + header at the end. `entryCount`, `entrySize` and the header fields can be hostile.
 */
function craftGpt(disk: Buffer, sectorSize: number, entries: CraftEntry[], options: { entryCount?: number; entrySize?: number; arrayLbaOverride?: number } = {}): void {
  const sectors = disk.length / sectorSize;
  const entryCount = options.entryCount ?? 128;
  const entrySize = options.entrySize ?? 128;
  const arrayBytes = Math.min(entryCount * entrySize, 64 * KiB);
  const arraySectors = Math.ceil(arrayBytes / sectorSize);
  const array = Buffer.alloc(arrayBytes);
  entries.forEach((e, i) => {
    const o = (e.slot ?? i) * entrySize;
    guidBytes(e.type).copy(array, o);
    guidBytes(`00000000-0000-0000-0000-${String(i + 1).padStart(12, '0')}`).copy(array, o + 16);
    array.writeBigUInt64LE(BigInt(e.first), o + 32);
    array.writeBigUInt64LE(BigInt(e.last), o + 40);
    if (e.name) array.write(e.name, o + 56, 'utf16le');
  });
  const mbr = Buffer.alloc(512);
  mbr[446 + 4] = 0xee;
  mbr.writeUInt32LE(1, 446 + 8);
  mbr.writeUInt32LE(Math.min(sectors - 1, 0xffffffff), 446 + 12);
  mbr.writeUInt16LE(0xaa55, 510);
  mbr.copy(disk, 0);
  const header = (myLba: number, altLba: number, arrayLba: number) => {
    const h = Buffer.alloc(sectorSize);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(myLba), 24);
    h.writeBigUInt64LE(BigInt(altLba), 32);
    h.writeBigUInt64LE(BigInt(2 + arraySectors), 40);
    h.writeBigUInt64LE(BigInt(sectors - 2 - arraySectors), 48);
    guidBytes(DISK_GUID).copy(h, 56);
    h.writeBigUInt64LE(BigInt(options.arrayLbaOverride ?? arrayLba), 72);
    h.writeUInt32LE(entryCount, 80);
    h.writeUInt32LE(entrySize, 84);
    h.writeUInt32LE(zlib.crc32(array), 88);
    h.writeUInt32LE(zlib.crc32(h.subarray(0, 92)), 16);
    return h;
  };
  header(1, sectors - 1, 2).copy(disk, sectorSize);
  array.copy(disk, 2 * sectorSize);
  array.copy(disk, (sectors - 1 - arraySectors) * sectorSize);
  header(sectors - 1, 1, sectors - 1 - arraySectors).copy(disk, (sectors - 1) * sectorSize);
}

async function writeImage(name: string, bytes: Buffer): Promise<string> {
  await fs.writeFile(at(name), bytes);
  return at(name);
}

async function patch(image: string, offset: number, bytes: Buffer): Promise<void> {
  const h = await fs.open(image, 'r+');
  await h.write(bytes, 0, bytes.length, offset);
  await h.close();
}

// ------------------------------------------------------------------------------------ real tables

test('an MBR disk: primaries by slot, logicals from 5 through the EBR chain, each volume identified', async () => {
  const root = await extImage('mbr-root.img', 'ext4', 6 * MiB, '11111111-2222-3333-4444-555555555555', 'rootfs');
  const data = await extImage('mbr-data.img', 'ext3', 4 * MiB, '22222222-3333-4444-5555-666666666666', 'data');
  const swap = await swapImage('mbr-swap.img', 2 * MiB, '33333333-4444-5555-6666-777777777777', 'swap0');
  const image = at('mbr.img');
  const made = await makePartitionedImage(image, {
    scheme: 'mbr', sizeBytes: 24 * MiB, partitions: [
      { sizeBytes: 7 * MiB, type: '83', bootable: true, image: root },
      { sizeBytes: 14 * MiB, type: '5' },
      { sizeBytes: 3 * MiB, type: '82', logical: true, image: swap },
      { sizeBytes: 5 * MiB, type: '83', logical: true, image: data },
      { sizeBytes: 2 * MiB, type: '8e', logical: true },
    ],
  });
  const { layout, ids } = await inspect(image);
  expect(layout.scheme).toBe('mbr');
  expect(layout.sectorSize).toBe(512);
  expect(layout.warnings).toEqual([]);
  expect(layout.diskId).toMatch(/^0x[0-9a-f]{8}$/);
  // The extended container itself is not a volume; the rest as sfdisk placed them.
  const expected = made.filter((p) => p.number !== 2);
  expect(layout.partitions.map((p) => [p.name, p.number, p.offset, p.size, p.typeId])).toEqual(
    expected.map((p) => [`p${p.number}`, p.number, p.offset, p.size, `0x${p.type.padStart(2, '0')}`]),
  );
  expect(layout.partitions.map((p) => p.typeName)).toEqual(['Linux', 'Linux swap / Solaris', 'Linux', 'Linux LVM']);
  expect(layout.partitions.map((p) => p.bootable)).toEqual([true, false, false, false]);

  expect(ids.p1).toEqual({ kind: 'ext4', openable: true, label: 'rootfs', uuid: '11111111-2222-3333-4444-555555555555', description: 'ext4 file system "rootfs" (UUID 11111111-2222-3333-4444-555555555555)' });
  expect(ids.p5).toMatchObject({ kind: 'swap', openable: false, label: 'swap0', uuid: '33333333-4444-5555-6666-777777777777', why: 'p5 is a Linux swap area: it holds no files' });
  expect(ids.p6).toMatchObject({ kind: 'ext3', openable: true, label: 'data', uuid: '22222222-3333-4444-5555-666666666666' });
  expect(ids.p7).toMatchObject({ kind: 'empty', openable: false, why: 'p7 holds no file system: its first 64 KiB are zeros' });
});

test('a GPT disk: entries by number, names, type names, disk GUID; FAT, ext4, swap and an LVM label identified', async () => {
  const efi = await vfatImage('gpt-efi.img', 3 * MiB);
  const root = await extImage('gpt-root.img', 'ext4', 5 * MiB, '44444444-5555-6666-7777-888888888888');
  const swap = await swapImage('gpt-swap.img', 2 * MiB, '55555555-6666-7777-8888-999999999999', 'sw');
  const lvm = await lvmImage('gpt-lvm.img', 2 * MiB);
  const image = at('gpt.img');
  const made = await makePartitionedImage(image, {
    scheme: 'gpt', sizeBytes: 16 * MiB, partitions: [
      { sizeBytes: 3 * MiB, type: 'U', name: 'EFI System Partition', image: efi.image },
      { sizeBytes: 5 * MiB, type: 'L', name: 'root fs ✓', image: root },
      { sizeBytes: 2 * MiB, type: 'S', name: 'swap', image: swap },
      { sizeBytes: 2 * MiB, type: 'E6D6D379-F507-44C2-A23C-238F2A3DF928', image: lvm },
    ],
  });
  const labelId = /label-id: (\S+)/.exec(execFileSync(tools.sfdisk, ['-d', image]).toString())![1].toLowerCase();
  const { layout, ids } = await inspect(image);
  expect(layout).toMatchObject({ scheme: 'gpt', sectorSize: 512, diskId: labelId, warnings: [] });
  expect(layout.partitions.map((p) => ({ name: p.name, offset: p.offset, size: p.size, typeId: p.typeId }))).toEqual(
    made.map((p) => ({ name: `p${p.number}`, offset: p.offset, size: p.size, typeId: p.type.toLowerCase() })),
  );
  expect(layout.partitions.map((p) => [p.typeName, p.label])).toEqual([
    ['EFI System', 'EFI System Partition'], ['Linux filesystem', 'root fs ✓'], ['Linux swap', 'swap'], ['Linux LVM', undefined],
  ]);
  expect(ids.p1).toMatchObject({ kind: 'vfat', openable: false, label: efi.label, uuid: efi.uuid, description: `FAT16 file system "EFI" (ID ${efi.uuid})` });
  expect(ids.p1.why).toBe('p1 holds a FAT16 file system; Pagewise reads ext2/3/4 only: restore the disk (pagewise restore) and mount it');
  expect(ids.p2).toMatchObject({ kind: 'ext4', openable: true, uuid: '44444444-5555-6666-7777-888888888888', description: 'ext4 file system (UUID 44444444-5555-6666-7777-888888888888)' });
  expect(ids.p2.label).toBeUndefined();
  expect(ids.p3).toMatchObject({ kind: 'swap', label: 'sw' });
  expect(ids.p4).toMatchObject({ kind: 'lvm2', openable: false, uuid: 'AbCdEf-1234-5678-90Gh-IjKl-MnOp-QrStUv' });
  expect(ids.p4.why).toMatch(/^p4 is an LVM2 physical volume: .*vgchange -ay/);
});

test('a damaged primary GPT header or entry array: the backup header is used, with a warning', async () => {
  const image = at('gpt-backup.img');
  const made = await makePartitionedImage(image, {
    scheme: 'gpt', sizeBytes: 8 * MiB, partitions: [{ sizeBytes: 2 * MiB, type: 'L', name: 'one' }, { sizeBytes: 2 * MiB, type: 'L', name: 'two' }],
  });
  const pristine = await fs.readFile(image);
  await patch(image, 512 + 100, Buffer.from([0x5a])); // past the header's 92 bytes: not covered by its CRC
  expect((await inspect(image)).layout.warnings).toEqual([]);

  await patch(image, 512 + 60, Buffer.from([0x5a])); // the disk GUID: the header CRC no longer matches
  let { layout } = await inspect(image);
  expect(layout.warnings).toEqual([`the primary GPT header is damaged (header CRC32 mismatch): the backup header at LBA ${8 * 2048 - 1} was used`]);
  expect(layout.partitions.map((p) => [p.name, p.offset, p.label])).toEqual(made.map((p) => [`p${p.number}`, p.offset, p.name]));

  await patch(image, 512, pristine.subarray(512, 1024));
  await patch(image, 2 * 512 + 56, Buffer.from('XX', 'utf16le')); // the first entry's name: the array CRC fails
  ({ layout } = await inspect(image));
  expect(layout.warnings).toEqual([`the primary GPT header is damaged (entry array CRC32 mismatch): the backup header at LBA ${8 * 2048 - 1} was used`]);
  expect(layout.partitions.map((p) => p.label)).toEqual(['one', 'two']);

  await patch(image, (8 * 2048 - 1) * 512 + 60, Buffer.from([0x5a])); // and the backup header too
  ({ layout } = await inspect(image));
  expect(layout.scheme).toBe('gpt');
  expect(layout.partitions).toEqual([]);
  expect(layout.warnings).toEqual(['the protective MBR announces a GPT, but no valid GPT header was found (512-byte sectors: primary entry array CRC32 mismatch, backup header CRC32 mismatch): no partitions listed']);
});

test('a GPT on 4096-byte sectors', async () => {
  const ext = await extImage('gpt4k-ext.img', 'ext4', 2 * MiB, '66666666-7777-8888-9999-aaaaaaaaaaaa', 'big');
  const disk = Buffer.alloc(4 * MiB); // 1024 sectors of 4 KiB
  craftGpt(disk, 4096, [{ type: LINUX_FS, first: 256, last: 767, name: 'data' }]);
  (await fs.readFile(ext)).copy(disk, 256 * 4096);
  const { layout, ids } = await inspect(await writeImage('gpt4k.img', disk));
  expect(layout).toMatchObject({ scheme: 'gpt', sectorSize: 4096, diskId: DISK_GUID, warnings: [] });
  expect(layout.partitions).toEqual([{ name: 'p1', number: 1, offset: MiB, size: 2 * MiB, scheme: 'gpt', typeId: LINUX_FS, typeName: 'Linux filesystem', label: 'data' }]);
  expect(ids.p1).toMatchObject({ kind: 'ext4', openable: true, label: 'big' });
});

// ------------------------------------------------------------------------------------ hostile tables

test('hostile GPT entries: past the end, reversed, overlapping → skipped with a warning; reads stay inside the disk', async () => {
  const disk = Buffer.alloc(2 * MiB); // 4096 sectors of 512
  craftGpt(disk, 512, [
    { type: LINUX_FS, first: 100, last: 199, name: 'ok' },
    { type: LINUX_FS, first: 1000, last: 5000, name: 'past the end' },
    { type: LINUX_FS, first: 300, last: 299 },
    { type: LINUX_FS, first: 150, last: 400, name: 'overlap' },
    { type: LINUX_FS, first: 9007199254740000, last: 9007199254740991 },
    { type: '11111111-2222-3333-4444-555555555555', first: 500, last: 599, slot: 127 },
  ]);
  const { layout } = await inspect(await writeImage('gpt-hostile.img', disk));
  expect(layout.partitions.map((p) => [p.name, p.offset, p.size, p.typeName])).toEqual([['p1', 100 * 512, 100 * 512, 'Linux filesystem'], ['p128', 500 * 512, 100 * 512, 'unknown']]);
  expect(layout.warnings).toEqual([
    'GPT entry 2 (LBA 1000–5000) lies past the disk\'s end (4096 sectors) or is reversed: skipped',
    'GPT entry 3 (LBA 300–299) lies past the disk\'s end (4096 sectors) or is reversed: skipped',
    'GPT entry 4 (sectors 150–400) overlaps sectors 100–199, already taken: skipped',
    'GPT entry 5 (LBA 9007199254740000–9007199254740991) lies past the disk\'s end (4096 sectors) or is reversed: skipped',
  ]);
});

test('hostile GPT headers: a huge entry count, a bad entry size, an array outside the disk → refused, nothing huge read', async () => {
  const cases: Array<[string, { entryCount?: number; entrySize?: number; arrayLbaOverride?: number }, string]> = [
    ['count', { entryCount: 1_000_000 }, '1000000 entries (at most 1024 are read)'],
    ['size', { entrySize: 8 }, 'entry size 8 is out of range (128…4096, a multiple of 128)'],
    ['array', { arrayLbaOverride: 4090 }, 'its entry array (LBA 4090, 16384 bytes) lies outside the disk'],
  ];
  for (const [name, options, why] of cases) {
    const disk = Buffer.alloc(2 * MiB);
    craftGpt(disk, 512, [{ type: LINUX_FS, first: 100, last: 199 }], options);
    const { layout, bytesRead } = await inspect(await writeImage(`gpt-${name}.img`, disk));
    expect(layout.partitions).toEqual([]);
    expect(layout.warnings).toEqual([`the protective MBR announces a GPT, but no valid GPT header was found (512-byte sectors: primary ${why}, backup ${why}): no partitions listed`]);
    expect(bytesRead).toBeLessThan(64 * KiB);
  }
});

/** An MBR with an extended partition at `extStart` and EBRs written by `ebrs` (sector → [logical, link]). */
function craftMbr(sectors: number, primaries: Array<{ slot: number; type: number; start: number; count: number }>, ebrs: Array<{ at: number; logical?: [number, number]; link?: [number, number] }>): Buffer {
  const disk = Buffer.alloc(sectors * 512);
  const entry = (sector: number, slot: number, type: number, start: number, count: number) => {
    const o = sector * 512 + 446 + 16 * slot;
    disk[o + 4] = type;
    disk.writeUInt32LE(start, o + 8);
    disk.writeUInt32LE(count, o + 12);
  };
  for (const p of primaries) entry(0, p.slot, p.type, p.start, p.count);
  disk.writeUInt32LE(0x12345678, 440);
  disk.writeUInt16LE(0xaa55, 510);
  for (const e of ebrs) {
    if (e.logical) entry(e.at, 0, 0x83, e.logical[0], e.logical[1]);
    if (e.link) entry(e.at, 1, 0x05, e.link[0], e.link[1]);
    disk.writeUInt16LE(0xaa55, e.at * 512 + 510);
  }
  return disk;
}

test('a looping EBR chain ends at the loop; each logical listed once', async () => {
  // Extended at 100..999; EBRs at 100 → 300 → 300 again.
  const disk = craftMbr(1024, [{ slot: 0, type: 0x83, start: 10, count: 80 }, { slot: 1, type: 0x05, start: 100, count: 900 }], [
    { at: 100, logical: [10, 100], link: [200, 150] },
    { at: 300, logical: [10, 100], link: [200, 150] }, // links to itself (base 100 + 200)
  ]);
  const { layout } = await inspect(await writeImage('ebr-loop.img', disk));
  expect(layout.partitions.map((p) => [p.name, p.offset / 512, p.size / 512])).toEqual([['p1', 10, 80], ['p5', 110, 100], ['p6', 310, 100]]);
  expect(layout.warnings).toEqual(['the EBR chain loops back to sector 300: the chain ends there']);
});

test('a chain of 200 EBRs is cut at 128 logicals; logicals and links outside the extended partition are skipped', async () => {
  const ebrs = Array.from({ length: 200 }, (_, i) => ({ at: 10 + 2 * i, logical: [1, 1] as [number, number], link: [2 * (i + 1), 2] as [number, number] }));
  const disk = craftMbr(512, [{ slot: 0, type: 0x0f, start: 10, count: 500 }], ebrs);
  const { layout } = await inspect(await writeImage('ebr-long.img', disk));
  expect(layout.partitions).toHaveLength(128);
  expect(layout.partitions[127]).toMatchObject({ name: 'p132', offset: (10 + 2 * 127 + 1) * 512, size: 512 });
  expect(layout.warnings).toEqual(['the EBR chain goes on past 128 links: the rest is ignored']);

  const odd = craftMbr(1024, [{ slot: 0, type: 0x83, start: 300, count: 10 }, { slot: 1, type: 0x07, start: 305, count: 10 }, { slot: 2, type: 0x85, start: 100, count: 100 }, { slot: 3, type: 0x83, start: 900, count: 500 }], [
    { at: 100, logical: [10, 500], link: [50, 10] },
    { at: 150, logical: [10, 20], link: [400, 10] },
  ]);
  const { layout: l2 } = await inspect(await writeImage('ebr-odd.img', odd));
  expect(l2.partitions.map((p) => [p.name, p.offset / 512, p.typeName])).toEqual([['p1', 300, 'Linux'], ['p5', 160, 'Linux']]);
  expect(l2.warnings).toEqual([
    'MBR entry 2 (sectors 305–314) overlaps sectors 300–309, already taken: skipped',
    'MBR entry 4 (sectors 900–1399) lies past the disk\'s end (1024 sectors): skipped',
    'the logical partition in the EBR at sector 100 (sectors 110–609) lies outside the extended partition: skipped',
    'the EBR at sector 150 links to sector 500, outside the extended partition: the chain ends there',
  ]);
});

// ------------------------------------------------------------------------------------ bare volumes

test('bare file systems: ext4, NTFS, XFS, FAT on the whole disk → scheme none and identified', async () => {
  const ext = await extImage('bare-ext4.img', 'ext4', 4 * MiB, '77777777-8888-9999-aaaa-bbbbbbbbbbbb', 'whole', ['-O', 'encrypt']);
  let r = await inspect(ext);
  expect(r.layout).toEqual({ scheme: 'none', sectorSize: 512, partitions: [], warnings: [] });
  expect(r.ids.disk).toMatchObject({ kind: 'ext4', openable: true, description: 'ext4 file system "whole" (UUID 77777777-8888-9999-aaaa-bbbbbbbbbbbb); it uses ext4 encryption: encrypted directories cannot be read' });

  const ntfs = await sparseFile('bare-ntfs.img', 8 * MiB);
  execFileSync(tools.mkntfs, ['-F', '-Q', '-q', '-L', 'winvol', ntfs], { stdio: 'pipe' });
  r = await inspect(ntfs);
  expect(r.layout.scheme).toBe('none');
  expect(r.ids.disk).toMatchObject({ kind: 'ntfs', openable: false, description: 'NTFS file system (Windows)' });
  expect(r.ids.disk.uuid).toMatch(/^[0-9A-F]{16}$/);
  expect(r.ids.disk.why).toBe('the disk holds an NTFS file system (Windows); Pagewise reads ext2/3/4 only: restore the disk (pagewise restore) and mount it');

  const xfs = await sparseFile('bare-xfs.img', 32 * MiB);
  const xfsArgs = ['-q', '-f', '-L', 'xlab', '-m', 'uuid=11111111-2222-3333-4444-555555555555', xfs];
  try {
    // xfsprogs ≥ 5.19 refuses file systems under 300 MiB unless run by fstests (these variables say so).
    execFileSync(tools['mkfs.xfs'], xfsArgs, { stdio: 'pipe', env: { ...process.env, TEST_DIR: tmp, TEST_DEV: xfs, QA_CHECK_FS: '1' } });
  } catch {
    await fs.truncate(xfs, 300 * MiB); // sparse: mkfs.xfs writes little
    execFileSync(tools['mkfs.xfs'], xfsArgs, { stdio: 'pipe' });
  }
  r = await inspect(xfs);
  expect(r.layout.scheme).toBe('none');
  expect(r.ids.disk).toMatchObject({ kind: 'xfs', openable: false, label: 'xlab', uuid: '11111111-2222-3333-4444-555555555555', description: 'XFS file system "xlab" (UUID 11111111-2222-3333-4444-555555555555)' });

  const fat = await vfatImage('bare-fat.img', 8 * MiB);
  r = await inspect(fat.image);
  expect(r.layout.scheme).toBe('none'); // a FAT boot sector also ends in 0x55AA: not taken for an MBR
  expect(r.ids.disk).toMatchObject({ kind: 'vfat', label: 'EFI', uuid: 'ABCD-1234' });
});

test('an empty MBR over a file system, and a stale backup GPT under a reformatted disk: the disk is one volume', async () => {
  const ext = await extImage('mbr-empty.img', 'ext2', 2 * MiB, '99999999-aaaa-bbbb-cccc-dddddddddddd');
  await patch(ext, 510, Buffer.from([0x55, 0xaa]));
  let r = await inspect(ext);
  expect(r.layout).toEqual({ scheme: 'none', sectorSize: 512, partitions: [], warnings: ['sector 0 ends in the MBR signature but lists no partitions: the disk is read as one volume'] });
  expect(r.ids.disk).toMatchObject({ kind: 'ext2', openable: true });

  const image = at('stale-gpt.img');
  await makePartitionedImage(image, { scheme: 'gpt', sizeBytes: 4 * MiB, partitions: [{ sizeBytes: MiB, type: 'L' }] });
  await patch(image, 0, Buffer.alloc(1024)); // the protective MBR and the primary header gone; the backup left at the end
  r = await inspect(image);
  expect(r.layout).toEqual({ scheme: 'none', sectorSize: 512, partitions: [], warnings: [] });

  const [made] = await makePartitionedImage(image, { scheme: 'gpt', sizeBytes: 4 * MiB, partitions: [{ sizeBytes: MiB, type: 'L' }] });
  await patch(image, 0, Buffer.alloc(512)); // only the protective MBR gone: the primary header still stands
  r = await inspect(image);
  expect(r.layout).toMatchObject({ scheme: 'gpt', partitions: [{ name: 'p1', offset: made.offset, size: MiB }], warnings: ['the disk has a GPT but no protective MBR'] });
});

test('LUKS1 and LUKS2 volumes (cryptsetup luksFormat on a file) are named, not opened', async () => {
  const key = at('luks.key');
  await fs.writeFile(key, 'correct horse battery staple');
  for (const type of ['luks1', 'luks2'] as const) {
    const image = await sparseFile(`${type}.img`, 20 * MiB);
    execFileSync(tools.cryptsetup, ['luksFormat', '--batch-mode', '--type', type, '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000',
      '--uuid', '12345678-1234-1234-1234-123456789abc', ...(type === 'luks2' ? ['--label', 'secret'] : []), '--key-file', key, image], { stdio: 'pipe' });
    const { layout, ids } = await inspect(image);
    expect(layout.scheme).toBe('none');
    expect(ids.disk).toEqual({
      kind: 'luks', openable: false, uuid: '12345678-1234-1234-1234-123456789abc', ...(type === 'luks2' ? { label: 'secret' } : {}),
      description: `${type.toUpperCase()} encrypted volume${type === 'luks2' ? ' "secret"' : ''} (UUID 12345678-1234-1234-1234-123456789abc)`,
      why: 'the disk is encrypted with LUKS: Pagewise cannot read inside it; restore the disk (pagewise restore) and open it with cryptsetup open',
    });
  }
});

test('random bytes, zeros, and a random sector that happens to end in 0x55AA', async () => {
  const random = seededBytes(MiB, 14);
  random.writeUInt16LE(0x1234, 510);
  let r = await inspect(await writeImage('random.img', random));
  expect(r.layout.scheme).toBe('none');
  expect(r.ids.disk).toEqual({
    kind: 'unknown', openable: false, description: 'unknown contents',
    why: 'the disk holds no partition table and no file system Pagewise knows: the first bytes look like random data (encrypted, or never formatted)',
  });
  random.writeUInt16LE(0xaa55, 510);
  r = await inspect(await writeImage('random-55aa.img', random));
  expect(r.layout.scheme).toBe('none'); // entries whose status bytes are neither 0x00 nor 0x80 are no MBR
  expect(r.ids.disk.kind).toBe('unknown');

  r = await inspect(await sparseFile('zeros.img', 4 * MiB));
  expect(r.layout).toEqual({ scheme: 'none', sectorSize: 512, partitions: [], warnings: [] });
  expect(r.ids.disk).toEqual({ kind: 'empty', openable: false, description: 'no data (its first 64 KiB are zeros)', why: 'the disk holds no file system: its first 64 KiB are zeros' });

  r = await inspect(await writeImage('tiny.img', Buffer.alloc(100)));
  expect(r.layout.scheme).toBe('none');
  expect(r.ids.disk).toMatchObject({ kind: 'empty', why: 'the disk holds no file system: all 100 bytes are zeros' });
});

test('signatures of the other kinds, written where their formats keep them', async () => {
  const cases: Array<[string, (b: Buffer) => void, string, RegExp]> = [
    ['bitlocker', (b) => { b.write('-FVE-FS-', 3, 'latin1'); b.writeUInt16LE(0xaa55, 510); }, 'BitLocker encrypted volume (Windows)', /unlock it in Windows/],
    ['exfat', (b) => { b.write('EXFAT   ', 3, 'latin1'); b.writeUInt32LE(0x0badf00d, 100); b.writeUInt16LE(0xaa55, 510); }, 'exFAT file system (ID 0BAD-F00D)', /exFAT/],
    ['refs', (b) => { b.write('ReFS', 3, 'latin1'); b.write('FSRS', 16, 'latin1'); }, 'ReFS file system (Windows)', /Windows machine/],
    ['btrfs', (b) => { b.write('_BHRfS_M', 0x10040, 'latin1'); b.write('btr', 0x1012b, 'latin1'); Buffer.alloc(16, 0xab).copy(b, 0x10020); }, 'btrfs file system "btr" (UUID abababab-abab-abab-abab-abababababab)', /btrfs/],
    ['zfs', (b) => { b.writeBigUInt64LE(0x00bab10cn, 128 * KiB + 5 * KiB); }, 'ZFS pool member', /zpool import/],
    ['iso9660', (b) => { b[0x8000] = 1; b.write('CD001', 0x8001, 'latin1'); b.write('UBUNTU 24.04'.padEnd(32), 0x8028, 'latin1'); }, 'ISO 9660 file system "UBUNTU 24.04"', /ISO 9660/],
    ['swap', (b) => { b.write('SWAP-SPACE', 4086, 'latin1'); }, 'Linux swap area', /holds no files/],
    ['vfat', (b) => { fat16BootSector('EFI', 0xabcd1234).copy(b, 0); }, 'FAT16 file system "EFI" (ID ABCD-1234)', /FAT16 file system; Pagewise reads ext2\/3\/4 only/],
  ];
  for (const [kind, write, description, why] of cases) {
    const b = Buffer.alloc(512 * KiB);
    write(b);
    const { layout, ids } = await inspect(await writeImage(`sig-${kind}.img`, b));
    expect([kind, layout.scheme]).toEqual([kind, 'none']);
    expect(ids.disk).toMatchObject({ kind, openable: false, description });
    expect(ids.disk.why).toMatch(why);
  }
});

test('an ext journal device is no file system; an ext4 with an external journal opens with a note; a damaged superblock is named', async () => {
  const image = await extImage('extjournal.img', 'ext4', 4 * MiB, '88888888-9999-aaaa-bbbb-cccccccccccc');
  const sb = Buffer.alloc(4);
  sb.writeUInt32LE(0x0801, 0);
  await patch(image, 1024 + 228, sb); // s_journal_dev: the journal lives on device 8:1
  let r = await inspect(image);
  expect(r.ids.disk).toMatchObject({ kind: 'ext4', openable: true, description: 'ext4 file system (UUID 88888888-9999-aaaa-bbbb-cccccccccccc); its journal is on another device and is not replayed' });

  const dev = await sparseFile('journal-dev.img', 2 * MiB);
  execFileSync(tools['mkfs.ext4'], ['-q', '-F', '-O', 'journal_dev', '-b', '1024', dev], { stdio: 'pipe' });
  r = await inspect(dev);
  expect(r.ids.disk).toMatchObject({ kind: 'unknown', openable: false, why: 'the disk is the external journal of an ext file system on another volume: it holds no files' });

  const logBlock = Buffer.alloc(4);
  logBlock.writeUInt32LE(40, 0);
  await patch(image, 1024 + 24, logBlock); // s_log_block_size 40
  r = await inspect(image);
  expect(r.ids.disk).toMatchObject({ kind: 'unknown', openable: false, description: 'ext file system with a damaged superblock' });
  expect(r.ids.disk.why).toBe('the ext superblock of the disk is damaged: s_log_block_size 40 is out of range; Pagewise cannot open it: restore the disk (pagewise restore) and run e2fsck on it');
});

test('the table-driven CRC32 (for Node before 20.15) agrees with zlib', () => {
  for (const size of [0, 1, 92, 16384, 100_003]) {
    const bytes = seededBytes(size, size + 1);
    expect(tableCrc32(bytes)).toBe(zlib.crc32(bytes));
  }
  expect(tableCrc32(Buffer.from('123456789'))).toBe(0xcbf43926); // the CRC-32 check value
});
