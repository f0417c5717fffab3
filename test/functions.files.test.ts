/**
 * The file-level restore HTTP API (functions/http/files.ts) through `pagewise serve` over loopback HTTP,
 * on a real ext4 disk backed up to Azurite: listing volumes and directories, a download byte-identical
 * with its headers, 404/422/400 answers; and serve's streaming of stream bodies (backpressure, a failure
 * midway, a client that goes away) with a probe function.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { app, HttpResponse } from '@azure/functions';
import type { LocalServer } from '../runtime/serve';
import { seededBytes } from '../testkit/fs-images';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { backupExtTree, backupRandomDisk, FilesBackup } from './harness/files-backup';
import { serveTestApp } from './harness/serve-app';

let env: TestEnv;
let server: LocalServer;
let backup: FilesBackup;
let randomBackupId: string;
const logged: string[] = [];

const BIG = seededBytes(3 * MiB + 12_345, 31);

beforeAll(async () => {
  env = await startEnv();
  backup = await backupExtTree(env, 'api', async (dir) => {
    await fs.mkdir(path.join(dir, 'etc'));
    await fs.writeFile(path.join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
    await fs.mkdir(path.join(dir, 'data'));
    await fs.writeFile(path.join(dir, 'data/big.bin'), BIG);
    await fs.writeFile(path.join(dir, 'data/Grüße ☃.txt'), 'hello\n');
    await fs.symlink('/etc/hosts', path.join(dir, 'data/hosts-link'));
    // Larger than what socket buffers take: a paused download keeps its backup open.
    await fs.writeFile(path.join(dir, 'huge.txt'), seededBytes(16 * MiB, 32, true));
  }, { sizeBytes: 32 * MiB });
  randomBackupId = await backupRandomDisk(env, 'api-random');
  server = await serveTestApp(env, { log: (_level, line) => void logged.push(line) });
});
afterAll(async () => {
  await server?.close();
  await env?.stop();
});

interface Download {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The response ended normally (not cut short). */
  complete: boolean;
}

/** GET with the function key; the body as bytes, and whether it ended or was cut. */
function get(target: string, onResponse?: (res: http.IncomingMessage, req: http.ClientRequest) => void): Promise<Download> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method: 'GET', path: target, headers: { 'x-functions-key': server.keys.functionKeys.default }, agent: false });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let complete = false;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (complete = true));
      res.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: complete && res.complete }));
      res.on('error', () => undefined); // "aborted": seen as complete === false
      onResponse?.(res, req);
    });
    req.on('error', reject);
    req.end();
  });
}

const files = (id: string, query = '') => `/api/backups/${id}/files${query}`;
const content = (id: string, p: string) => `/api/backups/${id}/files/content?path=${encodeURIComponent(p)}`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const jsonOf = (d: Download) => JSON.parse(d.body.toString('utf8')) as Record<string, unknown>;

function expectProblem(d: Download, status: number, title: string): Record<string, unknown> {
  expect(d.status).toBe(status);
  expect(d.headers['content-type']).toBe('application/problem+json');
  const body = jsonOf(d);
  expect(body).toMatchObject({ status, title });
  expect(JSON.stringify(body)).not.toMatch(/sig=(?!REDACTED)/);
  return body;
}

describe('file API', () => {
  test('without path: the volumes of the backup (a bare ext4 file system), and the stats of what was read', async () => {
    const answer = await get(files(backup.backupId));
    expect(answer.status).toBe(200);
    const body = jsonOf(answer);
    expect(body).toMatchObject({ backupId: backup.backupId, journalReplayed: [] });
    expect(body.volumes).toEqual([expect.objectContaining({ name: 'disk', offset: 0, size: 32 * MiB, kind: 'ext4', openable: true })]);
    expect((body.stats as { requests: number }).requests).toBeGreaterThan(0);
  });

  test('a directory: its entries sorted by name with type, size, mode and link target; paged with limit/after', async () => {
    const answer = await get(files(backup.backupId, `?path=${encodeURIComponent('/data')}`));
    expect(answer.status).toBe(200);
    const body = jsonOf(answer);
    expect(body).toMatchObject({ volume: 'disk', path: '/data' });
    const entries = body.entries as Array<Record<string, unknown>>;
    expect(entries.map((e) => e.name)).toEqual(['Grüße ☃.txt', 'big.bin', 'hosts-link']);
    expect(entries[1]).toMatchObject({ type: 'file', size: BIG.length, path: '/data/big.bin' });
    expect(entries[2]).toMatchObject({ type: 'symlink', target: '/etc/hosts' });

    const first = jsonOf(await get(files(backup.backupId, `?path=${encodeURIComponent('disk:/data')}&limit=2`)));
    expect((first.entries as Array<{ name: string }>).map((e) => e.name)).toEqual(['Grüße ☃.txt', 'big.bin']);
    expect(first.next).toBe('big.bin');
    const rest = jsonOf(await get(files(backup.backupId, `?path=${encodeURIComponent('disk:/data')}&limit=2&after=big.bin`)));
    expect((rest.entries as Array<{ name: string }>).map((e) => e.name)).toEqual(['hosts-link']);
    expect(rest.next).toBeUndefined();
  });

  test('a download: byte-identical, with length, attachment name (ASCII fallback + UTF-8) and nosniff', async () => {
    const big = await get(content(backup.backupId, '/data/big.bin'));
    expect(big.status).toBe(200);
    expect(big.complete).toBe(true);
    expect(sha(big.body)).toBe(sha(BIG));
    expect(big.headers).toMatchObject({
      'content-type': 'application/octet-stream',
      'content-length': String(BIG.length),
      'content-disposition': `attachment; filename="big.bin"; filename*=UTF-8''big.bin`,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
    });
    const utf8 = await get(content(backup.backupId, 'disk:/data/Grüße ☃.txt'));
    expect(utf8.body.toString()).toBe('hello\n');
    expect(utf8.headers['content-disposition']).toBe(`attachment; filename="Gr__e _.txt"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%E2%98%83.txt`);
  });

  test('a download while another request runs: both answered in full', async () => {
    let listing: Promise<Download> | undefined;
    const download = get(content(backup.backupId, '/data/big.bin'), (res) => {
      // The download has started (headers in); a listing is asked for before its body is read.
      res.pause();
      listing = get(files(backup.backupId, '?path=%2Fetc')).finally(() => res.resume());
    });
    const big = await download;
    const list = await listing!;
    expect(sha(big.body)).toBe(sha(BIG));
    expect(big.complete).toBe(true);
    expect((jsonOf(list).entries as Array<{ name: string }>).map((e) => e.name)).toEqual(['hosts']);
  });

  test('at most 8 backups open at once: a 9th request gets 503; a client going away frees its place', async () => {
    const paused: http.ClientRequest[] = [];
    let opened: () => void = () => undefined;
    const allOpen = new Promise<void>((resolve) => (opened = resolve));
    const downloads = Array.from({ length: 8 }, () =>
      get(content(backup.backupId, '/huge.txt'), (res, req) => {
        res.pause();
        paused.push(req);
        if (paused.length === 8) opened();
      }),
    );
    await allOpen;
    expectProblem(await get(files(backup.backupId)), 503, 'TooManyFileSessions');
    for (const req of paused) req.destroy();
    for (const d of await Promise.all(downloads)) expect(d.complete).toBe(false);
    // Every place is free again once the cancelled streams have closed their backups.
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await get(files(backup.backupId))).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(200);
  });

  test('missing path → 404 PathNotFound; a directory → 400 NotAFile; a volume Pagewise cannot read → 422', async () => {
    expectProblem(await get(content(backup.backupId, '/data/nope')), 404, 'PathNotFound');
    expectProblem(await get(files(backup.backupId, '?path=%2Fnope')), 404, 'PathNotFound');
    expectProblem(await get(content(backup.backupId, '/data')), 400, 'NotAFile');
    expectProblem(await get(content(backup.backupId, '/data/hosts-link')), 400, 'NotAFile');
    const volumes = jsonOf(await get(files(randomBackupId)));
    expect(volumes.volumes).toEqual([expect.objectContaining({ name: 'disk', kind: 'unknown', openable: false })]);
    const refused = expectProblem(await get(files(randomBackupId, '?path=disk%3A%2F')), 422, 'UnsupportedFileSystem');
    expect(refused.detail).toMatch(/no partition table and no file system Pagewise knows/);
    expectProblem(await get(content(randomBackupId, 'disk:/etc/hosts')), 422, 'UnsupportedFileSystem');
  });

  test('bad queries → 400 BadQuery before the vault is read; an unknown backup → 404', async () => {
    expectProblem(await get(files(backup.backupId, '?path=%2F&limit=0')), 400, 'BadQuery');
    expectProblem(await get(files(backup.backupId, '?path=%2F&limit=10001')), 400, 'BadQuery');
    expectProblem(await get(files(backup.backupId, '?path=%2F&limit=1e3')), 400, 'BadQuery');
    expectProblem(await get(files(backup.backupId, '?limit=5')), 400, 'BadQuery');
    expectProblem(await get(files(backup.backupId, '?paht=%2F')), 400, 'BadQuery');
    expectProblem(await get(`/api/backups/${backup.backupId}/files/content`), 400, 'BadQuery');
    expectProblem(await get(`/api/backups/${backup.backupId}/files/content?path=%2Fetc%2Fhosts&overwrite=1`), 400, 'BadQuery');
    expectProblem(await get(files('pw-000000000000000000000000', '?path=%2F')), 404, 'BackupNotFound');
    expectProblem(await get(files('Not_A_Backup', '?path=%2F')), 400, 'BadInput');
  });
});

// A probe function answering with a stream body, to drive serve's streaming directly.
const probe = { pulls: 0, cancelled: false };
const CHUNK = 256 * KiB;
app.http('streamProbe', {
  route: 'probe/{kind}',
  methods: ['GET'],
  authLevel: 'function',
  handler: async (request) => {
    const kind = request.params.kind;
    probe.pulls = 0;
    probe.cancelled = false;
    const total = kind === 'endless' ? Infinity : 8;
    return new HttpResponse({
      status: 200,
      headers: { 'Content-Type': 'application/octet-stream', ...(kind === 'endless' ? {} : { 'Content-Length': String(total * CHUNK) }) },
      body: new ReadableStream<Uint8Array>(
        {
          pull(controller) {
            probe.pulls++;
            if (kind === 'fail' && probe.pulls === 3) return controller.error(new Error('the vault went away (probe)'));
            if (probe.pulls > total) return controller.close();
            controller.enqueue(seededBytes(CHUNK, probe.pulls));
          },
          cancel() {
            probe.cancelled = true;
          },
        },
        { highWaterMark: 0 },
      ),
    });
  },
});

describe('serve streams a stream body', () => {
  test('in full, with the length the function gave', async () => {
    const answer = await get('/api/probe/ok');
    expect(answer.complete).toBe(true);
    expect(answer.headers['content-length']).toBe(String(8 * CHUNK));
    expect(sha(answer.body)).toBe(sha(Buffer.concat(Array.from({ length: 8 }, (_, i) => seededBytes(CHUNK, i + 1)))));
  });

  test('a failure midway cuts the connection short of Content-Length, and is logged', async () => {
    const answer = await get('/api/probe/fail');
    expect(answer.status).toBe(200);
    expect(answer.complete).toBe(false);
    expect(answer.body.length).toBe(2 * CHUNK);
    expect(logged.some((l) => /response stream failed after the headers were sent; connection closed: the vault went away \(probe\)/.test(l))).toBe(true);
  });

  test('a client that stops reading holds the producer back; one that goes away cancels the stream', async () => {
    let settled: () => void = () => undefined;
    const stalled = new Promise<void>((resolve) => (settled = resolve));
    const answer = get('/api/probe/endless', (res, req) => {
      res.pause();
      // Wait until no more chunks are pulled (socket buffers full), then go away.
      let last = -1;
      const timer = setInterval(() => {
        if (probe.pulls === last) {
          clearInterval(timer);
          settled();
          req.destroy();
        }
        last = probe.pulls;
      }, 300);
    });
    await stalled;
    // Socket buffers hold a few MiB at most: far from the endless body, and the producer waited.
    expect(probe.pulls * CHUNK).toBeLessThan(32 * MiB);
    await answer;
    for (let i = 0; i < 50 && !probe.cancelled; i++) await new Promise((r) => setTimeout(r, 20));
    expect(probe.cancelled).toBe(true);
  });
});
