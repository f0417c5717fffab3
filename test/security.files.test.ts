/**
 * File-level restore attacked from both sides. From the caller: hostile path parameters (`..`, NUL, a 10 KB
 * path, percent-encoded slashes, a relative path) refused with 400 and nothing read. From the disk: a file
 * name with quotes, CR/LF, a header of its own, non-ASCII — the Content-Disposition stays one valid header
 * (unit-tested hard, then end to end through `pagewise serve`). And no SAS signature in any answer.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { contentDisposition, safeBaseName } from '../functions/http/contentDisposition';
import type { LocalServer } from '../runtime/serve';
import { Answer, sendRaw } from './harness/raw-http';
import { startEnv, TestEnv } from './harness/env';
import { backupExtTree, FilesBackup } from './harness/files-backup';
import { serveTestApp } from './harness/serve-app';

/** What a client would take from the header: the quoted fallback and the decoded filename*. */
function parseDisposition(header: string): { fallback: string; utf8: string } {
  const m = /^attachment; filename="([^"\\]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]*)$/.exec(header);
  if (!m) throw new Error(`not a well-formed Content-Disposition: ${JSON.stringify(header)}`);
  return { fallback: m[1], utf8: decodeURIComponent(m[2]) };
}

/** A header value Node's HTTP layer (and any client) takes as one line. */
function isSafeHeaderValue(value: string): boolean {
  return /^[\x20-\x7e]*$/.test(value);
}

describe('Content-Disposition of a hostile name', () => {
  const cases: Array<[string, string, string]> = [
    // name on the disk, ASCII fallback, what filename* decodes to
    ['report.pdf', 'report.pdf', 'report.pdf'],
    ['a "quoted" name.txt', 'a _quoted_ name.txt', 'a "quoted" name.txt'],
    ['evil.txt\r\nSet-Cookie: session=1', 'evil.txt__Set-Cookie: session=1', 'evil.txt__Set-Cookie: session=1'],
    ['x"; filename="evil.sh', 'x_; filename=_evil.sh', 'x"; filename="evil.sh'],
    ['back\\slash\\..\\..\\win.ini', 'back_slash_.._.._win.ini', 'back_slash_.._.._win.ini'],
    ['/etc/passwd', 'passwd', 'passwd'],
    ['..', 'download', 'download'],
    ['.', 'download', 'download'],
    ['', 'download', 'download'],
    ['nul\u0000byte', 'nul_byte', 'nul_byte'],
    ['tab\there\u007f\u009b', 'tab_here__', 'tab_here__'],
    ['100%25.txt', '100_25.txt', '100%25.txt'],
    ['Grüße ☃.txt', 'Gr__e _.txt', 'Grüße ☃.txt'],
    ['日本語.txt', '___.txt', '日本語.txt'],
    ['emoji 😀.bin', 'emoji _.bin', 'emoji 😀.bin'],
    ['lone \ud800 surrogate', 'lone _ surrogate', 'lone _ surrogate'],
    ['bidi \u202etxt.exe', 'bidi _txt.exe', 'bidi _txt.exe'],
    ['line\u2028sep', 'line_sep', 'line_sep'],
  ];
  test.each(cases)('%j → fallback %j', (name, fallback, utf8) => {
    const header = contentDisposition(name);
    expect(isSafeHeaderValue(header)).toBe(true);
    expect(parseDisposition(header)).toEqual({ fallback, utf8 });
  });

  test('a very long name is cut at 255 bytes on a character boundary; the fallback at 150 characters', () => {
    const long = 'é'.repeat(300); // 600 bytes
    const header = contentDisposition(long);
    const { fallback, utf8 } = parseDisposition(header);
    expect(utf8).toBe('é'.repeat(127)); // 254 bytes: a 128th would pass 255
    expect(fallback).toBe('_'.repeat(127));
    expect(parseDisposition(contentDisposition('a'.repeat(10_000))).fallback).toBe('a'.repeat(150));
    expect(safeBaseName('a'.repeat(10_000))).toHaveLength(255);
  });
});

describe('through pagewise serve', () => {
  let env: TestEnv;
  let server: LocalServer;
  let backup: FilesBackup;
  const HOSTILE = 'evil"; filename="x.sh\r\nSet-Cookie: a=b.txt';
  const OTHER = 'also bad\\..\\name "ü".txt';

  beforeAll(async () => {
    env = await startEnv();
    backup = await backupExtTree(env, 'attacked', async (dir) => {
      await fs.mkdir(path.join(dir, 'etc'));
      await fs.writeFile(path.join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
      await fs.writeFile(path.join(dir, 'etc', HOSTILE), 'payload\n');
      await fs.writeFile(path.join(dir, 'etc', OTHER), 'other\n');
    });
    server = await serveTestApp(env);
  });
  afterAll(async () => {
    await server?.close();
    await env?.stop();
  });

  const key = () => ({ 'x-functions-key': server.keys.functionKeys.default });
  const get = (target: string) => sendRaw(server.port, 'GET', target, key());
  const list = (query: string) => get(`/api/backups/${backup.backupId}/files?${query}`);
  const download = (query: string) => get(`/api/backups/${backup.backupId}/files/content?${query}`);

  function expectRefused(answer: Answer, status: number, title: string, detail?: RegExp): void {
    expect(answer.status).toBe(status);
    expect(answer.headers['content-type']).toBe('application/problem+json');
    const body = JSON.parse(answer.text) as { title: string; detail: string };
    expect(body.title).toBe(title);
    if (detail) expect(body.detail).toMatch(detail);
    expectNoSecret(answer);
  }

  function expectNoSecret(answer: Answer): void {
    const all = `${answer.text}\n${JSON.stringify(answer.headers)}`;
    expect(all).not.toMatch(/sig=(?!REDACTED)[A-Za-z0-9%+/=]{8,}/i);
    expect(all).not.toContain(env.userKey.toString('base64'));
    expect(all).not.toMatch(/\bat .+\.(ts|js):\d+/);
  }

  test('a download of a file whose name is hostile: the header stays one line and names the file safely', async () => {
    const answer = await download(`path=${encodeURIComponent(`/etc/${HOSTILE}`)}`);
    expect(answer.status).toBe(200);
    expect(answer.text).toBe('payload\n');
    expect(answer.headers['set-cookie']).toBeUndefined();
    expect(parseDisposition(answer.headers['content-disposition'] as string)).toEqual({ fallback: 'evil_; filename=_x.sh__Set-Cookie: a=b.txt', utf8: 'evil"; filename="x.sh__Set-Cookie: a=b.txt' });
    const other = await download(`path=${encodeURIComponent(`/etc/${OTHER}`)}`);
    expect(other.text).toBe('other\n');
    expect(parseDisposition(other.headers['content-disposition'] as string)).toEqual({ fallback: 'also bad_.._name ___.txt', utf8: 'also bad_.._name "ü".txt' });
    // The listing shows the names as they are (JSON-escaped), never interpreted.
    const names = (JSON.parse((await list('path=%2Fetc')).text) as { entries: Array<{ name: string }> }).entries.map((e) => e.name);
    expect(names).toEqual([OTHER, HOSTILE, 'hosts'].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
  });

  test('hostile path parameters: refused with 400 naming what is wrong', async () => {
    expectRefused(await download(`path=${encodeURIComponent('/etc/../etc/hosts')}`), 400, 'BadInput', /\.\./);
    expectRefused(await download(`path=${encodeURIComponent('/../../etc/passwd')}`), 400, 'BadInput', /\.\./);
    expectRefused(await download('path=%2Fetc%2F..%2F..%2Fhosts'), 400, 'BadInput', /\.\./);
    expectRefused(await list(`path=${encodeURIComponent('/etc/./hosts')}`), 400, 'BadInput');
    expectRefused(await download('path=%2Fetc%2Fhosts%00.txt'), 400, 'BadInput', /NUL/);
    expectRefused(await download(`path=${encodeURIComponent('etc/hosts')}`), 400, 'BadInput', /relative|absolute/);
    expectRefused(await download(`path=${encodeURIComponent(`/${'a'.repeat(10_000)}`)}`), 400, 'BadQuery', /at most 4112/);
    expectRefused(await download(`path=${encodeURIComponent('p9:/etc/hosts')}`), 400, 'BadInput', /p9/);
    expectRefused(await list(`path=%2Fetc&after=${'x'.repeat(2000)}`), 400, 'BadQuery');
  });

  test('percent-encoded slashes in the route are not a way around it', async () => {
    // %2F in the backup id segment: no route has that shape, or the id is refused.
    const encoded = await get(`/api/backups/${backup.backupId}%2F..%2Fx/files?path=%2F`);
    expect([400, 404]).toContain(encoded.status);
    expectNoSecret(encoded);
    const dots = await get(`/api/backups/%2E%2E/files?path=%2F`);
    expect([400, 404]).toContain(dots.status);
    expectNoSecret(dots);
  });

  test('without the function key: 401, nothing listed', async () => {
    const answer = await sendRaw(server.port, 'GET', `/api/backups/${backup.backupId}/files?path=%2Fetc`);
    expect(answer.status).toBe(401);
    expect(answer.text).not.toContain('hosts');
  });
});
