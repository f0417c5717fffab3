/**
 * serve's streaming of a download body (writeResponse) over a real socket on 127.0.0.1: a client that has
 * already gone when the handler answers must still get the stream cancelled (that is what releases the
 * backup the handler holds), never a stream left open waiting for a 'close' that came before.
 */
import { HttpResponse } from '@azure/functions';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeResponse } from '../runtime/serve';

test('a client gone before the answer is written: the stream body is cancelled, not left holding its source', async () => {
  let cancelled: (reason: unknown) => void = () => undefined;
  const cancel = new Promise<unknown>((resolve) => (cancelled = resolve));
  let pulls = 0;
  const logged: string[] = [];
  let written: Promise<void> | undefined;
  const server = http.createServer((req, res) => {
    // The handler is still working (as while it reads a file's first chunk) when the client leaves.
    res.on('close', () => {
      const body = new ReadableStream<Uint8Array>(
        {
          pull(controller) {
            pulls++;
            controller.enqueue(new Uint8Array(1024));
          },
          cancel: (reason) => cancelled(reason),
        },
        { highWaterMark: 0 },
      );
      const response = new HttpResponse({ status: 200, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': '1048576' }, body });
      written = writeResponse(res, response, (line) => logged.push(line));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const request = http.get({ host: '127.0.0.1', port, path: '/api/backups/x/files/content' });
    request.on('error', () => undefined);
    // Gone as soon as the request is sent, before any answer.
    request.on('finish', () => request.destroy());
    const reason = await cancel;
    await written;
    expect(String(reason)).toContain('the client closed the connection');
    expect(pulls).toBeLessThanOrEqual(1);
    expect(logged).toEqual([]);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
