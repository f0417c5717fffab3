/**
 * Bench disk "fs": a real ext4 image (mkfs.ext4 -d) of files from this machine — package trees
 * (node_modules, /usr/lib, /usr/share), the same package tree twice, syslog-style logs written over "days"
 * (older days gzipped, as logrotate leaves them) and a tar.gz archive — and its clones: copies of the
 * image each changed a little through debugfs (the fleet of VMs made from one OS image).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, promises as fs, readSync, realpathSync } from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { PageBlobClient } from '@azure/storage-blob';
import { forEachLimited } from '../../core/concurrency';
import { MiB } from '../../core';
import { debugfs, makeExtImage } from '../../testkit/fs-images';
import { prng } from '../../testkit/prng';
import { regionBytes } from '../../testkit/sample-disk';
import type { DiskSpec, WrittenDisk } from './disks';

const KiB = 1024;

/** Where the package trees come from, in order, with their share of the image; absent sources are skipped. */
const PACKAGE_SOURCES: Array<{ from: string; to: string; share: number }> = [
  { from: path.resolve(__dirname, '..', '..', 'node_modules'), to: 'opt/app/node_modules', share: 0.12 },
  { from: '/usr/lib', to: 'usr/lib', share: 0.16 },
  { from: '/usr/share', to: 'usr/share', share: 0.05 },
];
/** The first package tree again (a second app with the same dependencies): duplicated files. */
const DUPLICATE_TO = 'srv/app2/node_modules';
const LOG_SHARE = 0.06;
const LOG_DAYS = 30;
/** Days older than this are gzipped (logrotate's `delaycompress` after a week). */
const LOG_PLAIN_DAYS = 7;

export interface FsTreeFacts {
  files: number;
  bytes: number;
  packageBytes: number;
  duplicateBytes: number;
  logBytes: number;
  archiveBytes: number;
}

/**
 * Copies regular files of `from` into `to` in path order until `budget` bytes (files over 64 MiB skipped):
 * `find` lists them with their sizes, `tar` copies the chosen ones (per-file work in Node was minutes).
 */
function copyBudget(from: string, to: string, budget: number): { files: number; bytes: number } {
  if (!existsSync(from)) return { files: 0, bytes: 0 };
  from = realpathSync(from); // node_modules may be a symlink; find does not follow it
  const listing = execFileSync('find', [from, '-type', 'f', '-readable', '-printf', '%s\\t%P\\0'], { maxBuffer: 1024 * MiB, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const entries = listing
    .split('\0')
    .filter(Boolean)
    .map((line) => {
      const tab = line.indexOf('\t');
      return { size: Number(line.slice(0, tab)), rel: line.slice(tab + 1) };
    })
    .sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  const chosen: string[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (bytes >= budget) break;
    if (e.size > 64 * MiB || e.size > budget - bytes) continue;
    chosen.push(e.rel);
    bytes += e.size;
  }
  mkdirSync(to, { recursive: true });
  execFileSync('sh', ['-c', 'tar -C "$1" --null -T - -cf - | tar -C "$2" -xf -', 'copy', from, to], { input: chosen.join('\0'), stdio: ['pipe', 'ignore', 'ignore'], maxBuffer: 64 * MiB });
  return { files: chosen.length, bytes };
}

const HOSTS = ['web-01', 'web-02', 'db-01'];
const UNITS = ['sshd', 'systemd', 'kernel', 'cron', 'nginx', 'dockerd', 'containerd', 'kubelet', 'postfix/smtpd', 'CRON'];
const MESSAGES = [
  (r: () => number) => `Accepted publickey for deploy from 10.0.${Math.floor(r() * 255)}.${Math.floor(r() * 255)} port ${1024 + Math.floor(r() * 60000)} ssh2: ED25519 SHA256:${createHash('sha256').update(String(r())).digest('base64').slice(0, 43)}`,
  (r: () => number) => `Started Session ${Math.floor(r() * 100000)} of user deploy.`,
  (r: () => number) => `[${(r() * 100000).toFixed(6)}] EXT4-fs (sda1): re-mounted. Opts: errors=remount-ro. Quota mode: none.`,
  (r: () => number) => `(root) CMD (   cd / && run-parts --report /etc/cron.hourly) [${Math.floor(r() * 99999)}]`,
  (r: () => number) => `10.1.${Math.floor(r() * 255)}.${Math.floor(r() * 255)} - - "GET /api/v1/items/${Math.floor(r() * 1e6)} HTTP/1.1" ${r() < 0.9 ? 200 : 404} ${Math.floor(r() * 20000)} "-" "Mozilla/5.0"`,
  (r: () => number) => `time="2026-11-${String(1 + Math.floor(r() * 28)).padStart(2, '0')}T00:00:00Z" level=info msg="container ${createHash('sha1').update(String(r())).digest('hex')} health_status: healthy"`,
  (r: () => number) => `I1201 ${Math.floor(r() * 86400)} kubelet.go:${Math.floor(r() * 3000)}] "SyncLoop (PLEG): event for pod" pod="default/app-${Math.floor(r() * 50)}" event=ContainerStarted`,
  (r: () => number) => `connect from unknown[192.0.2.${Math.floor(r() * 255)}]; disconnect ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4`,
];

/** One day of syslog-style lines (about `bytes`), deterministic from the seed. */
export function logDay(day: number, bytes: number, seed: number): Buffer {
  const r = prng(seed * 1000 + day);
  const lines: string[] = [];
  let n = 0;
  let second = 0;
  while (n < bytes) {
    second += Math.floor(r() * 4);
    const t = `Nov ${String(1 + (day % 30)).padStart(2, ' ')} ${String(Math.floor(second / 3600) % 24).padStart(2, '0')}:${String(Math.floor(second / 60) % 60).padStart(2, '0')}:${String(second % 60).padStart(2, '0')}`;
    const line = `${t} ${HOSTS[Math.floor(r() * HOSTS.length)]} ${UNITS[Math.floor(r() * UNITS.length)]}[${100 + Math.floor(r() * 30000)}]: ${MESSAGES[Math.floor(r() * MESSAGES.length)](r)}\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join(''));
}

/** Builds the file tree for an image of `imageBytes` under `tree` (replaced). */
export async function makeFsTree(tree: string, imageBytes: number): Promise<FsTreeFacts> {
  await fs.rm(tree, { recursive: true, force: true });
  await fs.mkdir(tree, { recursive: true });
  let files = 0;
  let packageBytes = 0;
  for (const s of PACKAGE_SOURCES) {
    const copied = copyBudget(s.from, path.join(tree, s.to), Math.floor(imageBytes * s.share));
    files += copied.files;
    packageBytes += copied.bytes;
  }
  const first = path.join(tree, PACKAGE_SOURCES[0].to);
  const dup = copyBudget(first, path.join(tree, DUPLICATE_TO), Infinity);
  files += dup.files;
  const logs = path.join(tree, 'var', 'log');
  await fs.mkdir(logs, { recursive: true });
  let logBytes = 0;
  const perDay = Math.floor((imageBytes * LOG_SHARE) / LOG_DAYS);
  for (let day = 0; day < LOG_DAYS; day++) {
    const text = logDay(day, perDay, 1);
    const name = day === 0 ? 'syslog' : `syslog.${day}`;
    const bytes = day > LOG_PLAIN_DAYS ? gzipSync(text) : text;
    await fs.writeFile(path.join(logs, day > LOG_PLAIN_DAYS ? `${name}.gz` : name), bytes);
    logBytes += bytes.length;
    files++;
  }
  // A compressed archive of part of the tree (a backup tarball someone left on the disk).
  const backups = path.join(tree, 'var', 'backups');
  await fs.mkdir(backups, { recursive: true });
  const archive = path.join(backups, 'usr-share.tar.gz');
  execFileSync('tar', ['czf', archive, '-C', tree, PACKAGE_SOURCES[2].to], { stdio: 'ignore' });
  const archiveBytes = (await fs.stat(archive)).size;
  files++;
  return { files, bytes: packageBytes + dup.bytes + logBytes + archiveBytes, packageBytes, duplicateBytes: dup.bytes, logBytes, archiveBytes };
}

/** The ext4 image of the tree (4 KiB blocks, a fixed UUID and hash seed so two runs lay out alike). */
export async function makeFsImage(tree: string, image: string, imageBytes: number): Promise<void> {
  await makeExtImage(image, tree, {
    kind: 'ext4',
    sizeBytes: imageBytes,
    label: 'bench-fs',
    extended: ['hash_seed=6f1c7e52-4d0b-4bb8-9a41-0c1f4b1e2a10', 'nodiscard'],
    extraArgs: ['-U', '2d3f7c1e-8f4b-4c36-b0d1-5f6a7e8b9c0d', '-m', '1'],
  });
}

export interface CloneChange {
  /** Bytes of the files written into the clone. */
  writtenBytes: number;
  files: string[];
}

/**
 * A clone of the image: a copy changed through debugfs as a VM changes its disk in its first days — new
 * log files, a state file of random bytes, one package file replaced. `k` makes each clone's changes its own.
 */
export async function makeClone(base: string, clone: string, k: number, scratch: string, scale = 1): Promise<CloneChange> {
  execFileSync('cp', ['--sparse=always', base, clone]);
  await fs.mkdir(scratch, { recursive: true });
  const writes: Array<{ local: string; dest: string; bytes: Buffer }> = [
    { local: `clone${k}-log`, dest: `/var/log/app-${k}.log`, bytes: logDay(100 + k, Math.round(4 * MiB * scale), 50 + k) },
    { local: `clone${k}-state`, dest: `/var/lib-state-${k}.bin`, bytes: regionBytes({ offset: 0, length: Math.round(MiB * scale / 4096) * 4096 || 4096, kind: 'random', seed: 700 + k }, 0, Math.round(MiB * scale / 4096) * 4096 || 4096) },
    { local: `clone${k}-hostname`, dest: `/hostname-${k}`, bytes: Buffer.from(`vm-${k}.example.internal\n`) },
  ];
  const commands: string[] = [];
  for (const w of writes) {
    const local = path.join(scratch, w.local);
    await fs.writeFile(local, w.bytes);
    commands.push(`write ${local} ${w.dest}`);
  }
  debugfs(clone, commands, true);
  return { writtenBytes: writes.reduce((s, w) => s + w.bytes.length, 0), files: writes.map((w) => w.dest) };
}

/** The image's data ranges: 64 KiB blocks not all zero, coalesced (a real disk's unwritten space reads as zeros too). */
export async function dataRanges(image: string): Promise<Array<{ offset: number; length: number }>> {
  const fh = await fs.open(image, 'r');
  const block = 64 * KiB;
  const buf = Buffer.alloc(4 * MiB);
  const ranges: Array<{ offset: number; length: number }> = [];
  try {
    const size = (await fh.stat()).size;
    for (let at = 0; at < size; at += buf.length) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - at), at);
      for (let b = 0; b < bytesRead; b += block) {
        const piece = buf.subarray(b, Math.min(bytesRead, b + block));
        if (piece.every((x) => x === 0)) continue;
        const offset = at + b;
        const last = ranges[ranges.length - 1];
        if (last && last.offset + last.length === offset && last.length < 4 * MiB) last.length += piece.length;
        else ranges.push({ offset, length: piece.length });
      }
    }
  } finally {
    await fh.close();
  }
  return ranges;
}

/** Uploads the image's data ranges into a new page blob of the image's size (≤ 4 MiB Put Page requests, `parallel` in flight). */
export async function writeImageDisk(client: PageBlobClient, key: string, label: string, image: string, parallel = 6): Promise<WrittenDisk> {
  const started = Date.now();
  const diskBytes = (await fs.stat(image)).size;
  const ranges = await dataRanges(image);
  await client.create(diskBytes);
  const fd = openSync(image, 'r');
  const hash = createHash('sha256');
  try {
    await forEachLimited(ranges.values(), parallel, async (r) => {
      // Read and hashed synchronously, so in range order (the callbacks start in order).
      const bytes = Buffer.alloc(r.length);
      readSync(fd, bytes, 0, r.length, r.offset);
      hash.update(bytes);
      await client.uploadPages(bytes, r.offset, r.length);
    });
  } finally {
    closeSync(fd);
  }
  // The ranges as the spec's regions: restore is checked over exactly them (their `kind` is not used).
  const spec: DiskSpec = { key, label, diskBytes, regions: ranges.map((r) => ({ ...r, kind: 'random' as const })) };
  return { spec, allocatedBytes: ranges.reduce((s, r) => s + r.length, 0), allocatedDigest: hash.digest('hex'), imagePath: image, writeMs: Date.now() - started };
}
