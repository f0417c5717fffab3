/**
 * extractFiles on image files: a tree comes back byte-identical with modes, mtimes and link targets; and a
 * hostile image (names like "../../x" or "a/b", devices, links to /etc and "../../..", setuid bits) never
 * gets a byte written outside `to`, never has a link followed, leaves no temporary after an abort.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { extractFiles, MAX_SKIPPED_KEPT, PagewiseError, type DiskReader } from '../core';
import { ensureTools } from '../testkit/debian-tools';
import { debugfs, describeTree, fileBlocks, makeExtImage, makeTree, osLikeTree, type TreeEntry } from '../testkit/fs-images';
import { Opened, rejection } from './harness/file-images';
import { OpenDirectories } from '../core/files/extract';

const MiB = 1024 * 1024;
let dir: string;
let image: string;
let hostile: string;
let tree: TreeEntry[];
const opened = new Opened();

/** Every path under `root` (recursive, links not followed), to see what an extraction created. */
async function everything(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (at: string, rel: string) => {
    for (const d of await fs.readdir(at, { withFileTypes: true })) {
      out.push(`${rel}${d.name}`);
      if (d.isDirectory()) await visit(path.join(at, d.name), `${rel}${d.name}/`);
    }
  };
  await visit(root, '');
  return out.sort();
}

const seconds = (ms: number) => Math.floor(ms / 1000) * 1000;

beforeAll(async () => {
  ensureTools(['mkfs.ext4', 'debugfs']);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-extract-'));
  tree = await makeTree(path.join(dir, 'tree'), osLikeTree({ bigFileBytes: 3 * MiB + 5 }));
  image = path.join(dir, 'disk.img');
  await makeExtImage(image, path.join(dir, 'tree'), { kind: 'ext4', sizeBytes: 32 * MiB });
  // The hostile image: entries a VM owner could plant, written with debugfs.
  hostile = path.join(dir, 'hostile.img');
  await fs.copyFile(image, hostile);
  await fs.writeFile(path.join(dir, 'long-content'), 'a name of 255 bytes\n');
  const sparse = await fs.open(path.join(dir, 'sparse'), 'w');
  await sparse.write(Buffer.from('holes'), 0, 5, 6 * MiB);
  await sparse.truncate(8 * MiB);
  await sparse.close();
  debugfs(
    hostile,
    [
      'cd /etc',
      'mknod ../../x p', // a name that climbs out
      'mknod /etc/shadow-copy p', // a name holding slashes
      'mknod null c 1 3', // a character device
      'mknod disk b 8 0', // a block device
      'mknod pipe p',
      'symlink evil /etc', // a link to this machine's /etc
      'symlink climb ../../..',
      'sif hostname mode 0104755', // setuid
      `write ${path.join(dir, 'long-content')} ${'é'.repeat(127)}L`, // the longest name: a temporary name must still fit
      `write ${path.join(dir, 'sparse')} sparse`, // 8 MiB, all hole but 5 bytes at 6 MiB
    ],
    true,
  );
  // A second ".." entry, made a regular file: libext2fs's readdir leaves every ".." out, so it is never met.
  const dotdot = Number(/Allocated inode: (\d+)/.exec(debugfs(hostile, ['cd /etc', 'mknod .. p'], true))![1]);
  debugfs(hostile, [`sif <${dotdot}> mode 0100644`], true);
  const ls = debugfs(hostile, ['ls -l /etc']);
  expect(ls).toMatch(new RegExp(`^\\s*${dotdot}\\s+100644 .*\\s\\.\\.\\s*$`, 'm'));
  const inodeOf = (name: string) => Number(new RegExp(`^\\s*(\\d+)\\s+\\d+ \\(\\d+\\).*\\s${name.replace(/[./]/g, '\\$&')}\\s*$`, 'm').exec(ls)![1]);
  debugfs(hostile, [`sif <${inodeOf('../../x')}> mode 0100644`, `sif <${inodeOf('/etc/shadow-copy')}> mode 0100644`], true);
});

afterAll(async () => {
  await opened.closeAll();
  await fs.rm(dir, { recursive: true, force: true });
});

test('a whole volume comes back byte-identical: types, modes, mtimes, link targets; hard links as separate files', async () => {
  const files = await opened.image(image);
  const to = path.join(dir, 'out-all');
  const progress: string[] = [];
  const result = await extractFiles({ files, paths: ['/'], to, onProgress: (p) => progress.push(p.path) });
  const got = await describeTree(path.join(to, 'disk'));
  const expected = tree.map((e) => ({ ...e, mtimeMs: seconds(e.mtimeMs) }));
  expect(got.filter((e) => !e.path.startsWith('/lost+found')).map((e) => ({ ...e, mtimeMs: seconds(e.mtimeMs), size: e.type === 'directory' ? 0 : e.size }))).toEqual(
    expected.map((e) => ({ ...e, size: e.type === 'directory' ? 0 : e.size })),
  );
  // Exact times (1-second resolution in the image, so whole seconds here).
  for (const e of got.filter((g) => !g.path.startsWith('/lost+found'))) expect(e.mtimeMs).toBe(seconds(tree.find((t) => t.path === e.path)!.mtimeMs));
  expect((await fs.stat(path.join(to, 'disk/tmp'))).mode & 0o7777).toBe(0o1777);
  expect((await fs.stat(path.join(to, 'disk/home/user/big-again.bin'))).nlink).toBe(1);
  const fileCount = tree.filter((e) => e.type === 'file').length;
  expect(result).toMatchObject({
    to: await fs.realpath(to),
    files: fileCount,
    symlinks: tree.filter((e) => e.type === 'symlink').length,
    directories: tree.filter((e) => e.type === 'directory').length + 2, // the root and lost+found
    bytes: tree.filter((e) => e.type === 'file').reduce((sum, e) => sum + e.size, 0),
    skipped: [],
    journalReplayed: [],
  });
  expect(result.stats).toMatchObject({ volumesOpened: 1 });
  expect(progress).toHaveLength(fileCount);
  expect((await everything(to)).filter((p) => p.includes('.pagewise-'))).toEqual([]);
});

test('each path lands by its last component; an existing target is TargetExists unless overwrite', async () => {
  const files = await opened.image(image);
  const to = path.join(dir, 'out-some');
  const result = await extractFiles({ files, paths: ['/etc/hostname', 'disk:/usr/bin', '/home/user/up'], to });
  expect(await everything(to)).toEqual(['bin', 'bin/tool', 'bin/tool-link', 'hostname', 'up']);
  expect(await fs.readFile(path.join(to, 'hostname'), 'utf8')).toBe('vm-14\n');
  expect(await fs.readlink(path.join(to, 'up'))).toBe('../../etc');
  expect(result).toMatchObject({ files: 2, directories: 1, symlinks: 2 });

  await fs.writeFile(path.join(to, 'hostname'), 'local edit\n');
  const exists = await rejection(extractFiles({ files, paths: ['/etc/hostname'], to }));
  expect([exists.code, exists.message]).toEqual(['TargetExists', `${await fs.realpath(to)}/hostname already exists (use --force to overwrite)`]);
  expect(await fs.readFile(path.join(to, 'hostname'), 'utf8')).toBe('local edit\n');
  expect((await rejection(extractFiles({ files, paths: ['/usr/bin'], to }))).code).toBe('TargetExists');
  await extractFiles({ files, paths: ['/etc/hostname', '/usr/bin'], to, overwrite: true });
  expect(await fs.readFile(path.join(to, 'hostname'), 'utf8')).toBe('vm-14\n');
  expect(await everything(to)).toEqual(['bin', 'bin/tool', 'bin/tool-link', 'hostname', 'up']);

  expect((await rejection(extractFiles({ files, paths: ['/etc/hostname', '/usr/share/zoneinfo/../../etc/hostname'], to: path.join(dir, 'x') }))).code).toBe('BadInput');
  expect((await rejection(extractFiles({ files, paths: ['/etc/hostname', '/usr/../etc/hostname'], to: path.join(dir, 'x') }))).message).toMatch(/component/);
  expect((await rejection(extractFiles({ files, paths: ['/etc/hostname', '/var/hostname'], to: path.join(dir, 'x') }))).message).toBe(
    `two of the paths asked for would land at the same name "hostname" under ${path.join(dir, 'x')}`,
  );
  expect((await rejection(extractFiles({ files, paths: [], to: path.join(dir, 'x') }))).message).toBe('no path to extract was given');
  await expect(fs.lstat(path.join(dir, 'x'))).rejects.toMatchObject({ code: 'ENOENT' }); // refused requests made nothing
  const noParent = await rejection(extractFiles({ files, paths: ['/etc/hostname'], to: path.join(dir, 'missing', 'out') }));
  expect(noParent.code).toBe('TargetNotFound');
});

test('a hostile image: odd names, devices and links are skipped or made verbatim, and nothing lands outside `to`', async () => {
  const files = await opened.image(hostile);
  const before = await everything(dir);
  const to = path.join(dir, 'out-hostile');
  const result = await extractFiles({ files, paths: ['/etc'], to });
  expect(await everything(dir)).toEqual([...before, ...(await everything(to)).map((p) => `out-hostile/${p}`), 'out-hostile'].sort());
  const long = `${'é'.repeat(127)}L`;
  expect(Buffer.byteLength(long)).toBe(255);
  expect(await everything(to)).toEqual(['etc', 'etc/climb', 'etc/evil', 'etc/fstab', 'etc/hostname', 'etc/localtime', 'etc/shadow', 'etc/sparse', 'etc/ssh', 'etc/ssh/sshd_config', `etc/${long}`]);
  // A sparse file comes back byte-identical, and sparse.
  expect((await fs.readFile(path.join(to, 'etc/sparse'))).equals(await fs.readFile(path.join(dir, 'sparse')))).toBe(true);
  expect((await fs.stat(path.join(to, 'etc/sparse'))).blocks * 512).toBeLessThanOrEqual(MiB);
  expect(await fs.readFile(path.join(to, 'etc', long), 'utf8')).toBe('a name of 255 bytes\n');
  expect(result.skipped).toEqual([
    { path: 'disk:/etc/../../x', reason: 'the name holds a "/"; it is never used as a local name' },
    { path: 'disk:/etc//etc/shadow-copy', reason: 'the name holds a "/"; it is never used as a local name' },
    { path: 'disk:/etc/disk', reason: 'a block device is not extracted' },
    { path: 'disk:/etc/null', reason: 'a character device is not extracted' },
    { path: 'disk:/etc/pipe', reason: 'a FIFO (named pipe) is not extracted' },
  ]);
  // Links are made with their targets verbatim, never followed.
  expect(await fs.readlink(path.join(to, 'etc/evil'))).toBe('/etc');
  expect(await fs.readlink(path.join(to, 'etc/climb'))).toBe('../../..');
  // setuid dropped unless asked for.
  expect((await fs.stat(path.join(to, 'etc/hostname'))).mode & 0o7777).toBe(0o755);
  const kept = path.join(dir, 'out-setid');
  await extractFiles({ files, paths: ['/etc/hostname'], to: kept, keepSetid: true });
  expect((await fs.stat(path.join(kept, 'hostname'))).mode & 0o7777).toBe(0o4755);
});

test('a tree deeper than a path can be: what lies past 4095 bytes locally (or 4096 in the volume) is skipped and said', async () => {
  const deep = path.join(dir, 'deep.img');
  await fs.copyFile(image, deep);
  const name = 'd'.repeat(250);
  const commands = ['mkdir /deep', 'cd /deep'];
  for (let i = 0; i < 17; i++) commands.push(`mkdir ${name}`, `cd ${name}`);
  commands.push(`write ${path.join(dir, 'long-content')} leaf`);
  debugfs(deep, commands, true);
  const files = await opened.image(deep);
  const to = path.join(dir, 'out-deep');
  const result = await extractFiles({ files, paths: ['/deep'], to });
  const localLimit = Math.floor((4095 - Buffer.byteLength(`${await fs.realpath(dir)}/out-deep/deep`)) / 251); // levels that fit
  expect(result.directories).toBe(1 + localLimit);
  expect(result.files).toBe(0);
  // Here both bounds fall at the same level; the volume path's is met first.
  expect(result.skipped).toEqual([{ path: `disk:/deep/${Array(localLimit + 1).fill(name).join('/')}`, reason: expect.stringMatching(/^its (local )?path (would be )?(is )?longer than 409[56] bytes$/) }]);
  expect(await fs.readdir(path.join(to, 'deep', ...Array(localLimit - 1).fill(name)))).toEqual([name]);
});

test('a file asked for through a link to /etc is read inside the image; a link in `to` is never written through', async () => {
  const files = await opened.image(hostile);
  const to = path.join(dir, 'out-through');
  const result = await extractFiles({ files, paths: ['/etc/evil/fstab', '/etc/climb/etc/ssh'], to });
  expect(await fs.readFile(path.join(to, 'fstab'), 'utf8')).toBe('UUID=0 / ext4 defaults 0 1\n');
  expect(await everything(to)).toEqual(['fstab', 'ssh', 'ssh/sshd_config']);
  expect(result.files).toBe(2);

  // A symlink already in `to` where a directory is to go: refused, or replaced (never followed) with overwrite.
  const outside = path.join(dir, 'outside');
  await fs.mkdir(outside);
  const trap = path.join(dir, 'out-trap');
  await fs.mkdir(trap);
  await fs.symlink(outside, path.join(trap, 'ssh'));
  expect((await rejection(extractFiles({ files, paths: ['/etc/ssh'], to: trap }))).code).toBe('TargetExists');
  await extractFiles({ files, paths: ['/etc/ssh'], to: trap, overwrite: true });
  expect((await fs.lstat(path.join(trap, 'ssh'))).isDirectory()).toBe(true);
  expect(await fs.readdir(outside)).toEqual([]);
  // A symlink where a file is to go is replaced, not written through.
  await fs.writeFile(path.join(outside, 'victim'), 'keep me');
  await fs.symlink(path.join(outside, 'victim'), path.join(trap, 'fstab'));
  await extractFiles({ files, paths: ['/etc/fstab'], to: trap, overwrite: true });
  expect(await fs.readFile(path.join(outside, 'victim'), 'utf8')).toBe('keep me');
  expect((await fs.lstat(path.join(trap, 'fstab'))).isFile()).toBe(true);
});

test('an abort or a Corrupt read midway leaves no temporary and no half-file under the real name', async () => {
  const blocks = new Set(fileBlocks(image, '/home/user/big.bin'));
  const controller = new AbortController();
  let broken = false;
  let temporaries: string[] = [];
  const watch = (disk: DiskReader): DiskReader => ({
    size: disk.size,
    async read(position, length) {
      if (blocks.has(Math.floor(position / 4096))) {
        if (broken) throw new PagewiseError('Corrupt', `disk bytes ${position}–${position + length} (page 0): bad`);
        if (!controller.signal.aborted) temporaries = (await fs.readdir(path.join(dir, 'out-abort/user'))).filter((n) => n.includes('.pagewise-'));
        controller.abort();
      }
      return disk.read(position, length);
    },
  });
  const files = await opened.image(image, watch);
  const to = path.join(dir, 'out-abort');
  const aborted = await rejection(extractFiles({ files, paths: ['/home/user'], to, abortSignal: controller.signal }));
  expect(aborted.code).toBe('Aborted');
  expect(temporaries).toEqual([expect.stringMatching(/^\.big-again\.bin\.pagewise-[0-9a-f]{12}$/)]);
  expect((await everything(to)).filter((p) => p.includes('big') || p.includes('.pagewise-'))).toEqual([]);

  broken = true;
  const to2 = path.join(dir, 'out-corrupt');
  const corrupt = await rejection(extractFiles({ files, paths: ['/home/user/big.bin'], to: to2 }));
  expect(corrupt.code).toBe('Corrupt');
  expect(corrupt.message).toMatch(/^file disk:\/home\/user\/big\.bin cannot be read: disk bytes \d+–\d+ \(page 0\): bad$/);
  expect(await everything(to2)).toEqual([]);
});

describe('what extraction holds while it walks', () => {
  /** A walk's shape as extractFiles drives the bookkeeping: pre-order, each entry claimed in its parent. */
  async function walkTree(open: OpenDirectories<{ relative: string[] }>, dirs: number, filesPerDir: number, peaks: number[]) {
    const closed: string[] = [];
    const close = async (d: { relative: string[] }) => {
      closed.push(d.relative.join('/'));
    };
    await open.leaveUntilInside(['top'], close);
    open.enter({ relative: ['top'] });
    for (let d = 0; d < dirs; d++) {
      const dir = ['top', `d${d}`];
      await open.leaveUntilInside(dir, close);
      expect(open.claim(`d${d}`)).toBe(true);
      open.enter({ relative: dir });
      for (let f = 0; f < filesPerDir; f++) {
        await open.leaveUntilInside([...dir, `f${f}`], close);
        expect(open.claim(`f${f}`)).toBe(true);
        peaks.push(open.held().names);
      }
      // A hostile directory holding one name twice: the second is refused.
      expect(open.claim('f0')).toBe(false);
    }
    await open.leaveUntilInside([], close);
    return closed;
  }

  test('names and directories are held for the open path only (O(depth × one directory)), never for the whole tree', async () => {
    const open = new OpenDirectories<{ relative: string[] }>();
    const peaks: number[] = [];
    const closed = await walkTree(open, 200, 50, peaks);
    // 200 directories of 50 files: at most the top's names met so far plus one directory's 50, never 10,000.
    expect(Math.max(...peaks)).toBe(200 + 50);
    expect(open.held()).toEqual({ directories: 0, names: 0 });
    expect(closed).toHaveLength(201);
    expect(closed[0]).toBe('top/d0');
    expect(closed[200]).toBe('top');
  });
});

test('an image of more skipped entries than are kept: the first MAX_SKIPPED_KEPT kept, all counted', async () => {
  const many = path.join(dir, 'many-fifos.img');
  await fs.copyFile(image, many);
  const count = MAX_SKIPPED_KEPT + 7;
  debugfs(many, ['mkdir /pipes', 'cd /pipes', ...Array.from({ length: count }, (_, i) => `mknod f${String(i).padStart(5, '0')} p`)], true);
  const files = await opened.image(many);
  const to = path.join(dir, 'out-many');
  const result = await extractFiles({ files, paths: ['/pipes'], to });
  expect(result.skippedCount).toBe(count);
  expect(result.skipped).toHaveLength(MAX_SKIPPED_KEPT);
  expect(result.skipped[0]).toEqual({ path: 'disk:/pipes/f00000', reason: 'a FIFO (named pipe) is not extracted' });
  expect(result.skipped[MAX_SKIPPED_KEPT - 1].path).toBe(`disk:/pipes/f${String(MAX_SKIPPED_KEPT - 1).padStart(5, '0')}`);
  expect(result).toMatchObject({ files: 0, directories: 1 });
  expect(await everything(to)).toEqual(['pipes']);
});
