/**
 * Restore to Azure (#16): the fixed VHD footer (checked against qemu-img, an independent VHD reader), a
 * disk backup to a new managed disk and a VM backup to new disks and a new VM — through the real
 * ArmVmCompute (@azure/arm-compute) over the loopback Compute stand-in and a real Azurite.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseVhdFooter, vhdFooter, vhdGeometry } from '../core';
import { ensureTools } from '../testkit/debian-tools';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('the fixed VHD footer', () => {
  let tmp: string;
  let qemuImg: string;
  beforeAll(async () => {
    qemuImg = ensureTools(['qemu-img'])['qemu-img'];
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-vhd-'));
  });
  afterAll(() => fs.rm(tmp, { recursive: true, force: true }));

  const qemuInfo = (args: string[]) => JSON.parse(execFileSync(qemuImg, ['info', '--output=json', ...args], { stdio: 'pipe' }).toString()) as Record<string, unknown>;

  test('what vhdFooter writes, parseVhdFooter reads back, and qemu-img opens it as a fixed VHD of that size', async () => {
    const size = 21 * MiB;
    const at = new Date('2026-12-01T10:00:00Z');
    const footer = vhdFooter(size, '12345678-9abc-def0-1234-56789abcdef0', at);
    expect(footer.length).toBe(512);
    expect(footer.toString('latin1', 0, 8)).toBe('conectix');
    expect(footer.readBigUInt64BE(16)).toBe(0xffffffffffffffffn); // no dynamic header
    expect(footer.readUInt32BE(60)).toBe(2); // fixed
    expect(parseVhdFooter(footer)).toEqual({
      features: 2,
      version: 0x00010000,
      timestamp: at,
      creatorApplication: 'pgws',
      originalSize: size,
      currentSize: size,
      geometry: { cylinders: 632, heads: 4, sectorsPerTrack: 17 },
      diskType: 'fixed',
      uniqueId: '12345678-9abc-def0-1234-56789abcdef0',
      savedState: false,
    });
    const file = path.join(tmp, 'ours.vhd');
    const handle = await fs.open(file, 'w');
    await handle.write(footer, 0, 512, size);
    await handle.close();
    // qemu checks the checksum on open; sized by its geometry (CHS) unless told to trust current_size.
    expect(qemuInfo(['-f', 'vpc', file])).toMatchObject({ format: 'vpc', 'virtual-size': 632 * 4 * 17 * 512 });
    expect(qemuInfo(['--image-opts', `driver=vpc,force_size_calc=current_size,file.filename=${file}`])).toMatchObject({ 'virtual-size': size });
    // A new footer gets a new unique ID.
    expect(parseVhdFooter(vhdFooter(size)).uniqueId).not.toBe(parseVhdFooter(vhdFooter(size)).uniqueId);
  });

  test("the CHS geometry is the VHD specification's, as qemu-img computes it, from 21 MiB to past the CHS limit", async () => {
    const checked: string[] = [];
    for (const size of ['21M', '1G', '40G', '127G', '1T']) {
      const file = path.join(tmp, `qemu-${size}.vhd`);
      execFileSync(qemuImg, ['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', file, size], { stdio: 'pipe' }); // sparse
      const { size: fileBytes } = await fs.stat(file);
      const handle = await fs.open(file, 'r');
      const tail = Buffer.alloc(512);
      await handle.read(tail, 0, 512, fileBytes - 512);
      await handle.close();
      await fs.rm(file);
      const theirs = parseVhdFooter(tail, `qemu's ${size} footer`); // a third party's footer passes our checks
      expect(theirs).toMatchObject({ diskType: 'fixed', currentSize: fileBytes - 512 });
      expect(vhdGeometry(theirs.currentSize / 512)).toEqual(theirs.geometry);
      checked.push(`${size}:${theirs.geometry.cylinders}/${theirs.geometry.heads}/${theirs.geometry.sectorsPerTrack}`);
    }
    expect(checked).toEqual(['21M:633/4/17', '1G:2081/16/63', '40G:20561/16/255', '127G:65279/16/255', '1T:65535/16/255']);
  });

  test('a damaged or foreign footer is refused with what is wrong; a size that is no VHD is refused', () => {
    const good = vhdFooter(32 * MiB);
    const damaged = (at: number, value: number) => {
      const copy = Buffer.from(good);
      copy[at] = value;
      return copy;
    };
    const reject = (buf: Buffer, message: RegExp) => expect(() => parseVhdFooter(buf, 'the footer of disk d1')).toThrow(expect.objectContaining({ code: 'Corrupt', message: expect.stringMatching(message) }));
    reject(good.subarray(0, 511), /the footer of disk d1 is not a valid VHD footer: it is 511 bytes/);
    reject(damaged(0, 0x43), /no "conectix" cookie/);
    reject(damaged(100, 1), /checksum [0-9a-f]+ does not match/);
    const withChecksum = (mutate: (b: Buffer) => void) => {
      const copy = Buffer.from(good);
      mutate(copy);
      copy.writeUInt32BE(0, 64);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += copy[i];
      copy.writeUInt32BE(~sum >>> 0, 64);
      return copy;
    };
    reject(withChecksum((b) => b.writeUInt32BE(5, 60)), /disk type 5/);
    reject(withChecksum((b) => b.writeBigUInt64BE(512n, 16)), /a fixed disk with a data offset/);
    reject(withChecksum((b) => b.writeBigUInt64BE(1000n, 48)), /the current size 1000 is not a positive multiple of 512/);
    reject(withChecksum((b) => b.writeUInt32BE(0x00020000, 12)), /format version 20000 is not 1\.x/);
    expect(parseVhdFooter(withChecksum((b) => b.writeUInt32BE(3, 60))).diskType).toBe('dynamic');
    for (const size of [0, 1000, -512, 2 ** 53]) expect(() => vhdFooter(size)).toThrow(expect.objectContaining({ code: 'BadInput' }));
    expect(() => vhdFooter(GiB, 'not-a-guid')).toThrow(/is not a GUID/);
  });
});
