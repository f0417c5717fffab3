/** Real disk images for the file-restore tests: a generated tree, ext2/3/4 from mkfs -d, sfdisk tables, debugfs edits. */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureTools } from './debian-tools';
import { prng } from './prng';

const KiB = 1024;
const MiB = 1024 * KiB;

/** One entry of a generated tree; `path` is relative to the tree's root ('/'-separated). */
export type TreeNode =
  | { type: 'dir'; path: string; mode?: number; mtime?: Date }
  | {
      type: 'file';
      path: string;
      /** The content; or `size` bytes of seeded pseudo-random data (`seed`), or of text when `text` is set. */
      content?: Buffer | string;
      size?: number;
      seed?: number;
      text?: boolean;
      mode?: number;
      mtime?: Date;
    }
  | { type: 'symlink'; path: string; target: string; mtime?: Date }
  | { type: 'hardlink'; path: string; to: string };

/** What a tree holds, as a check expects to find it back in an image. */
export interface TreeEntry {
  path: string; // '/'-prefixed, as in the volume
  type: 'file' | 'directory' | 'symlink';
  mode: number; // permission bits
  mtimeMs: number;
  size: number;
  sha256?: string;
  target?: string;
}

const DEFAULT_MTIME = new Date('2021-03-04T05:06:07Z');

/**
 * An OS-like tree: nested directories, modes 0600/0755/1777, fixed past mtimes, relative and absolute symlinks,
 * an empty file, names with a space and UTF-8, a hard link, and (`bigFileBytes`, default 10 MiB) a random file.
 */
export function osLikeTree(options: { bigFileBytes?: number; seed?: number } = {}): TreeNode[] {
  const seed = options.seed ?? 14;
  const at = (day: number): Date => new Date(Date.UTC(2020, 0, 1 + day, 12, 0, 0));
  return [
    { type: 'dir', path: 'etc', mode: 0o755, mtime: at(1) },
    { type: 'file', path: 'etc/hostname', content: 'vm-14\n', mode: 0o644, mtime: at(2) },
    { type: 'file', path: 'etc/fstab', content: 'UUID=0 / ext4 defaults 0 1\n', mode: 0o644, mtime: at(3) },
    { type: 'file', path: 'etc/shadow', content: 'root:*:19000:0:99999:7:::\n', mode: 0o600, mtime: at(4) },
    { type: 'dir', path: 'etc/ssh', mode: 0o755, mtime: at(5) },
    { type: 'file', path: 'etc/ssh/sshd_config', size: 3300, text: true, seed: seed + 1, mode: 0o644, mtime: at(6) },
    { type: 'symlink', path: 'etc/localtime', target: '/usr/share/zoneinfo/UTC', mtime: at(7) },
    { type: 'dir', path: 'usr/share/zoneinfo', mode: 0o755, mtime: at(8) },
    { type: 'file', path: 'usr/share/zoneinfo/UTC', size: 114, seed: seed + 2, mode: 0o644, mtime: at(9) },
    { type: 'dir', path: 'usr/bin', mode: 0o755, mtime: at(10) },
    { type: 'file', path: 'usr/bin/tool', size: 70 * KiB + 13, seed: seed + 3, mode: 0o755, mtime: at(11) },
    { type: 'symlink', path: 'usr/bin/tool-link', target: 'tool', mtime: at(12) },
    { type: 'dir', path: 'tmp', mode: 0o1777, mtime: at(13) },
    { type: 'dir', path: 'var/log', mode: 0o755, mtime: at(14) },
    { type: 'file', path: 'var/log/syslog', size: 300 * KiB + 1, text: true, seed: seed + 4, mode: 0o640, mtime: at(15) },
    { type: 'file', path: 'var/log/empty.log', content: '', mode: 0o644, mtime: at(16) },
    { type: 'dir', path: 'home/user/docs', mode: 0o700, mtime: at(17) },
    { type: 'file', path: 'home/user/docs/my notes.txt', content: 'a name with a space\n', mode: 0o600, mtime: at(18) },
    { type: 'file', path: 'home/user/docs/résumé ✓.txt', content: 'UTF-8 name\n', mode: 0o644, mtime: at(19) },
    { type: 'file', path: 'home/user/big.bin', size: options.bigFileBytes ?? 10 * MiB, seed: seed + 5, mode: 0o644, mtime: at(20) },
    { type: 'hardlink', path: 'home/user/big-again.bin', to: 'home/user/big.bin' },
    { type: 'symlink', path: 'home/user/up', target: '../../etc', mtime: at(21) },
    { type: 'dir', path: 'home/user', mode: 0o755, mtime: at(22) },
    { type: 'dir', path: 'home', mode: 0o755, mtime: at(23) },
  ];
}

/** Seeded pseudo-random bytes (fast enough for tens of MiB), or printable text lines when `text`. */
export function seededBytes(size: number, seed: number, text = false): Buffer {
  const next = prng(seed);
  const out = Buffer.allocUnsafe(size);
  if (text) {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz      ';
    for (let i = 0; i < size; i++) out[i] = i % 64 === 63 ? 0x0a : alphabet.charCodeAt(Math.floor(next() * alphabet.length));
    return out;
  }
  let i = 0;
  for (; i + 4 <= size; i += 4) out.writeUInt32LE(Math.floor(next() * 0x1_0000_0000), i);
  for (; i < size; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/**
 * Writes the tree under `dir` (created) and returns what it holds, sorted by path: contents, modes (applied with
 * chmod, so the umask does not matter), and mtimes set last (directories after their contents, deepest first).
 */
export async function makeTree(dir: string, spec: TreeNode[] = osLikeTree()): Promise<TreeEntry[]> {
  await fs.mkdir(dir, { recursive: true });
  const full = (rel: string): string => path.join(dir, ...rel.split('/'));
  const dirTimes: Array<{ rel: string; mode: number; mtime: Date }> = [];
  for (const node of spec) {
    if (node.type === 'dir') {
      await fs.mkdir(full(node.path), { recursive: true });
      dirTimes.push({ rel: node.path, mode: node.mode ?? 0o755, mtime: node.mtime ?? DEFAULT_MTIME });
      continue;
    }
    await fs.mkdir(path.dirname(full(node.path)), { recursive: true });
    if (node.type === 'file') {
      const content =
        node.content !== undefined ? Buffer.from(node.content) : seededBytes(node.size ?? 0, node.seed ?? 1, node.text ?? false);
      await fs.writeFile(full(node.path), content);
      await fs.chmod(full(node.path), node.mode ?? 0o644);
      const mtime = node.mtime ?? DEFAULT_MTIME;
      await fs.utimes(full(node.path), mtime, mtime);
    } else if (node.type === 'symlink') {
      await fs.symlink(node.target, full(node.path));
      const mtime = node.mtime ?? DEFAULT_MTIME;
      await fs.lutimes(full(node.path), mtime, mtime);
    } else {
      await fs.link(full(node.to), full(node.path));
    }
  }
  // Every directory made implicitly gets the default time too, so the whole tree is reproducible.
  const all = await walk(dir);
  const explicit = new Set(dirTimes.map((d) => d.rel));
  for (const entry of all) {
    if (entry.type === 'directory' && !explicit.has(entry.rel)) dirTimes.push({ rel: entry.rel, mode: 0o755, mtime: DEFAULT_MTIME });
  }
  dirTimes.sort((a, b) => b.rel.split('/').length - a.rel.split('/').length);
  for (const d of dirTimes) {
    await fs.chmod(full(d.rel), d.mode);
    await fs.utimes(full(d.rel), d.mtime, d.mtime);
  }
  return describeTree(dir);
}

/** What a folder holds now (files hashed), sorted by path; the root itself is left out. */
export async function describeTree(dir: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  for (const entry of await walk(dir)) {
    const at = path.join(dir, ...entry.rel.split('/'));
    const st = await fs.lstat(at);
    const item: TreeEntry = { path: '/' + entry.rel, type: entry.type, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, size: st.size };
    if (entry.type === 'file') item.sha256 = createHash('sha256').update(await fs.readFile(at)).digest('hex');
    if (entry.type === 'symlink') item.target = await fs.readlink(at);
    out.push(item);
  }
  return out.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

async function walk(dir: string, rel = ''): Promise<Array<{ rel: string; type: TreeEntry['type'] }>> {
  const out: Array<{ rel: string; type: TreeEntry['type'] }> = [];
  for (const dirent of await fs.readdir(path.join(dir, ...rel.split('/').filter(Boolean)), { withFileTypes: true })) {
    const childRel = rel ? `${rel}/${dirent.name}` : dirent.name;
    if (dirent.isDirectory()) {
      out.push({ rel: childRel, type: 'directory' });
      out.push(...(await walk(dir, childRel)));
    } else if (dirent.isSymbolicLink()) out.push({ rel: childRel, type: 'symlink' });
    else if (dirent.isFile()) out.push({ rel: childRel, type: 'file' });
  }
  return out;
}

export interface ExtImageOptions {
  kind: 'ext2' | 'ext3' | 'ext4';
  sizeBytes: number;
  blockSize?: 1024 | 2048 | 4096;
  label?: string;
  /** More extended options (-E), e.g. ['lazy_itable_init=1', 'nodiscard'] (mke2fs keeps only its last -E, so they join root_owner's). */
  extended?: string[];
  /** More mke2fs arguments (before the image name). */
  extraArgs?: string[];
}

/**
 * An ext2/3/4 image of `sizeBytes` (a sparse file) holding the folder `tree` (mkfs -d), root owned by 0:0.
 * mke2fs keeps the tree's modes, owners and times.
 */
export async function makeExtImage(image: string, tree: string, options: ExtImageOptions): Promise<void> {
  const { 'mkfs.ext4': mkfs } = ensureTools(['mkfs.ext4']);
  await fs.rm(image, { force: true });
  await fs.writeFile(image, '');
  await fs.truncate(image, options.sizeBytes);
  const args = ['-q', '-F', '-t', options.kind, '-b', String(options.blockSize ?? 4096), '-E', ['root_owner=0:0', ...(options.extended ?? [])].join(',')];
  if (options.label) args.push('-L', options.label);
  args.push(...(options.extraArgs ?? []), '-d', tree, image);
  execFileSync(mkfs, args, { stdio: 'pipe' });
}

export interface PartitionSpec {
  sizeBytes: number;
  /** An sfdisk type: '83', '82', 'ef', '5' (extended), 'L', 'S', 'U', or a GPT type GUID. */
  type: string;
  /** GPT partition name. */
  name?: string;
  /** MBR: a logical partition inside the extended one (numbered from 5). */
  logical?: boolean;
  bootable?: boolean;
  /** A file-system image copied into the partition (at most the partition's size). */
  image?: string;
}

export interface MadePartition {
  number: number;
  offset: number;
  size: number;
  type: string;
  name?: string;
}

/**
 * A partitioned disk image (sparse) made by sfdisk, each given file-system image copied into its partition
 * (zero chunks skipped, so the disk stays sparse). Returns the partitions as sfdisk placed them.
 */
export async function makePartitionedImage(
  image: string,
  layout: { scheme: 'mbr' | 'gpt'; sizeBytes: number; partitions: PartitionSpec[] },
): Promise<MadePartition[]> {
  const { sfdisk } = ensureTools(['sfdisk']);
  await fs.rm(image, { force: true });
  await fs.writeFile(image, '');
  await fs.truncate(image, layout.sizeBytes);
  // Lines named by device so that MBR logicals number from 5 whatever the count of primaries.
  const lines = [`label: ${layout.scheme === 'mbr' ? 'dos' : 'gpt'}`];
  const numbers: number[] = [];
  let primary = 0;
  let logical = 4;
  for (const p of layout.partitions) {
    const number = p.logical ? ++logical : ++primary;
    numbers.push(number);
    const fields = [`size=${Math.floor(p.sizeBytes / 512)}`, `type=${p.type}`];
    if (p.name !== undefined) fields.push(`name="${p.name}"`);
    if (p.bootable) fields.push('bootable');
    lines.push(`${image}${number} : ${fields.join(', ')}`);
  }
  execFileSync(sfdisk, ['-q', '--no-reread', '--no-tell-kernel', image], { input: lines.join('\n') + '\n', stdio: ['pipe', 'pipe', 'pipe'] });
  const table = JSON.parse(execFileSync(sfdisk, ['--json', image], { stdio: 'pipe' }).toString()) as {
    partitiontable: { sectorsize?: number; partitions: Array<{ node: string; start: number; size: number; type: string; name?: string }> };
  };
  const sector = table.partitiontable.sectorsize ?? 512;
  const made: MadePartition[] = table.partitiontable.partitions.map((p) => ({
    number: Number(/(\d+)$/.exec(p.node)![1]),
    offset: p.start * sector,
    size: p.size * sector,
    type: p.type,
    ...(p.name !== undefined ? { name: p.name } : {}),
  }));
  for (let i = 0; i < layout.partitions.length; i++) {
    const source = layout.partitions[i].image;
    if (!source) continue;
    const part = made.find((p) => p.number === numbers[i])!;
    await copyInto(source, image, part.offset, part.size);
  }
  return made.sort((a, b) => a.number - b.number);
}

/** Copies `source` into `target` at `offset`, refusing one larger than `room`; all-zero chunks are skipped. */
export async function copyInto(source: string, target: string, offset: number, room: number): Promise<void> {
  const from = await fs.open(source, 'r');
  const to = await fs.open(target, 'r+');
  try {
    const { size } = await from.stat();
    if (size > room) throw new Error(`${source} (${size} bytes) does not fit in ${room} bytes`);
    const chunk = Buffer.alloc(MiB);
    for (let at = 0; at < size; at += chunk.length) {
      const { bytesRead } = await from.read(chunk, 0, Math.min(chunk.length, size - at), at);
      const piece = chunk.subarray(0, bytesRead);
      if (piece.some((b) => b !== 0)) await to.write(piece, 0, bytesRead, offset + at);
    }
  } finally {
    await from.close();
    await to.close();
  }
}

/** Runs debugfs commands on an image (writable when `write`); returns its stdout. Fails when debugfs reports an error. */
export function debugfs(image: string, commands: string[], write = false): string {
  const { debugfs: bin } = ensureTools(['debugfs']);
  const args = write ? ['-w'] : [];
  const run = spawnSync(bin, [...args, '-f', '-', image], { input: commands.join('\n') + '\n', encoding: 'utf8', maxBuffer: 256 * MiB });
  // debugfs exits 0 even when a command fails; anything on stderr but its banner is a failure.
  const complaints = (run.stderr ?? '').split('\n').filter((line) => line.trim() && !/^debugfs \d/.test(line));
  if (run.status !== 0 || complaints.length > 0) {
    throw new Error(`debugfs ${commands.join('; ')} on ${image} failed: ${complaints.join(' ') || `exit ${run.status}`}`);
  }
  return run.stdout;
}

/** The physical blocks of a file, in logical order (debugfs "blocks"). */
export function fileBlocks(image: string, filePath: string): number[] {
  const out = execFileSync(ensureTools(['debugfs']).debugfs, ['-R', `blocks "${filePath}"`, image], { stdio: 'pipe', maxBuffer: 256 * MiB }).toString(); // a 1 GiB file: 262,144 numbers
  const blocks = out.trim().split(/\s+/).filter(Boolean).map(Number);
  if (blocks.length === 0 || blocks.some((b) => !Number.isInteger(b))) throw new Error(`debugfs found no blocks for ${filePath} in ${image}`);
  return blocks;
}

export interface JournalWriteOptions {
  /** jo -c: a checksum v3 journal. */
  checksum?: boolean;
  /** Blocks to revoke in the transaction (jw -r). */
  revoke?: number[];
  /** false leaves the transaction without its commit block (a torn transaction). Default true. */
  commit?: boolean;
}

/**
 * Writes one journal transaction (debugfs jo/jw/jc) logging `blocks` with the given contents (each padded to
 * the block size), without replaying it: the file system is left needing recovery, as a VM's crash leaves it.
 */
export async function journalWrite(image: string, blocks: Array<{ block: number; data: Buffer }>, options: JournalWriteOptions = {}): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-journal-'));
  try {
    const commands = [options.checksum ? 'jo -c' : 'jo'];
    for (let i = 0; i < blocks.length; i++) {
      const file = path.join(dir, `block-${i}`);
      await fs.writeFile(file, blocks[i].data);
      commands.push(`jw -b ${blocks[i].block} ${file}`);
    }
    if (options.revoke && options.revoke.length > 0) commands.push(`jw -r ${options.revoke.join(',')}`);
    commands.push('jc'); // debugfs always writes a commit block: a torn transaction is made by zeroing it after
    debugfs(image, commands, true);
    if (options.commit === false) await zeroLastCommitBlock(image);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Zeroes the last commit block in the journal (as a crash before the commit reached the disk would). */
async function zeroLastCommitBlock(image: string): Promise<void> {
  const dump = debugfs(image, ['logdump']);
  const commits = [...dump.matchAll(/type 2 \(commit block\) at block (\d+)/g)].map((m) => Number(m[1]));
  if (commits.length === 0) throw new Error(`no commit block in the journal of ${image}`);
  const journalBlock = commits[commits.length - 1];
  const physical = fileBlocks(image, '<8>')[journalBlock];
  const blockSize = Number(/Block size:\s+(\d+)/.exec(debugfs(image, ['stats']))![1]);
  const handle = await fs.open(image, 'r+');
  try {
    await handle.write(Buffer.alloc(blockSize), 0, blockSize, physical * blockSize);
  } finally {
    await handle.close();
  }
}

/** Deletes a file from the image (debugfs rm): its blocks are freed, its bytes stay on the disk. */
export function deleteFile(image: string, filePath: string): void {
  debugfs(image, [`rm "${filePath}"`], true);
}
