/**
 * Plain TCP listeners on 127.0.0.1 that count the connections they receive: the proof that a refused
 * URL sent nothing (not even a TCP handshake). And a closed port: one that was free a moment ago.
 */
import * as net from 'node:net';
import * as http from 'node:http';

export interface CountingListener {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  stop(): Promise<void>;
}

export async function startCountingListener(): Promise<CountingListener> {
  const sockets = new Set<net.Socket>();
  const listener: CountingListener = { port: 0, connections: 0, stop: async () => undefined };
  const server = net.createServer((socket) => {
    listener.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.end(); // an open port that says nothing
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  listener.port = (server.address() as net.AddressInfo).port;
  listener.stop = () => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return listener;
}

/** A loopback port nothing listens on (it was bound and released). */
export async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

/** An HTTP server that answers every request with a redirect to `location(path)` and records the paths asked. */
export async function startRedirector(location: (path: string) => string): Promise<{ port: number; paths: string[]; stop(): Promise<void> }> {
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    res.writeHead(307, { Location: location(req.url ?? '/'), 'Content-Length': '0' });
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    paths,
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
