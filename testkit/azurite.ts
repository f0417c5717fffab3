/**
 * The embedded storage default: starts Azurite's blob and queue services (one child process, the
 * combined `azurite` entry) on free loopback ports, with named accounts (a "cloud" source account and a
 * "vault" account by default) known to both. Used by `npm run demo`, `pagewise serve`'s embedded
 * storage, the test suites and the benchmarks. Loopback only.
 */
import { spawn, ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BlobServiceClient,
  StorageSharedKeyCredential,
  ContainerSASPermissions,
  BlobSASPermissions,
  generateBlobSASQueryParameters,
  SASProtocol,
} from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';

export interface AzuriteAccount {
  name: string;
  key: string;
  /** e.g. http://127.0.0.1:10000/src */
  endpoint: string;
  /** BlobEndpoint and QueueEndpoint of this account, with its key. */
  connectionString: string;
  credential: StorageSharedKeyCredential;
  service: BlobServiceClient;
  /** e.g. http://127.0.0.1:10001/src */
  queueEndpoint: string;
  queueService: QueueServiceClient;
}

export interface AzuriteInstance {
  /** The emulator's process (benches read its CPU time and pin it to a core). */
  pid: number;
  /** The blob service's port. */
  port: number;
  /** The queue service's port. */
  queuePort: number;
  host: string;
  location: string;
  accounts: Record<string, AzuriteAccount>;
  /**
   * The accounts' endpoints, comma-separated: the value for PAGEWISE_STORAGE_ENDPOINTS (CLI) or
   * PAGEWISE_ALLOWED_ACCOUNTS (app). Pagewise sends requests to no other endpoint than Azure's own.
   */
  storageEndpoints: string;
  /** URL of a container (or a blob in it) carrying a SAS signed with the account key. */
  sasUrl(account: string, container: string, blob?: string, options?: SasOptions): string;
  stop(): Promise<void>;
}

export interface SasOptions {
  permissions?: string;
  expiresOn?: Date;
  startsOn?: Date;
}

const HOST = '127.0.0.1';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('no port'));
      server.close(() => resolve(address.port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutInMs: number): Promise<void> {
  const deadline = Date.now() + timeoutInMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Azurite exited early with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, HOST);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Azurite did not listen on ${HOST}:${port} within ${timeoutInMs} ms`);
}

// The combined entry (blob, queue and table in one process): the queue service costs no second Node
// start-up (measured: about 1.0 s CPU to listen for blob alone, 1.15 s combined, 0.6 s more for a separate
// queue process). Its table service listens too (on a free port of its own); nothing uses it.
function azuriteMain(): string {
  return require.resolve('azurite/dist/src/azurite.js');
}

/** Starts Azurite's blob and queue services with the named accounts; keys are random per instance. */
export async function startAzurite(
  options: { accounts?: string[]; location?: string } = {},
): Promise<AzuriteInstance> {
  const names = options.accounts ?? ['src', 'vault'];
  const keys = Object.fromEntries(names.map((n) => [n, randomBytes(64).toString('base64')]));
  const location = options.location ?? mkdtempSync(path.join(os.tmpdir(), 'pagewise-azurite-'));
  const ownsLocation = options.location === undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const queuePort = await freePort();
    const tablePort = await freePort();
    const child = spawn(
      process.execPath,
      [
        '--require', path.join(__dirname, 'azurite-preload.js'), // defers Azurite's telemetry SDK (off): a faster start
        azuriteMain(),
        '--blobHost', HOST,
        '--blobPort', String(port),
        '--queueHost', HOST,
        '--queuePort', String(queuePort),
        '--tableHost', HOST,
        '--tablePort', String(tablePort),
        '--location', location,
        '--skipApiVersionCheck',
        '--loose',
        '--disableTelemetry',
        '--silent',
      ],
      {
        env: { ...process.env, AZURITE_ACCOUNTS: names.map((n) => `${n}:${keys[n]}`).join(';') },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()).slice(-4000));
    try {
      await waitForPort(port, child, 20000);
      await waitForPort(queuePort, child, 20000);
    } catch (err) {
      child.kill('SIGKILL');
      lastError = new Error(`${(err as Error).message}${stderr ? `: ${stderr.trim()}` : ''}`);
      continue;
    }
    const accounts: Record<string, AzuriteAccount> = {};
    for (const name of names) {
      const endpoint = `http://${HOST}:${port}/${name}`;
      const queueEndpoint = `http://${HOST}:${queuePort}/${name}`;
      const credential = new StorageSharedKeyCredential(name, keys[name]);
      const connectionString =
        `DefaultEndpointsProtocol=http;AccountName=${name};AccountKey=${keys[name]};BlobEndpoint=${endpoint};QueueEndpoint=${queueEndpoint};`;
      accounts[name] = {
        name,
        key: keys[name],
        endpoint,
        connectionString,
        credential,
        service: new BlobServiceClient(endpoint, credential),
        queueEndpoint,
        queueService: new QueueServiceClient(queueEndpoint, credential),
      };
    }
    const instance: AzuriteInstance = {
      pid: child.pid!,
      port,
      queuePort,
      host: HOST,
      location,
      accounts,
      storageEndpoints: names.map((n) => accounts[n].endpoint).join(','),
      sasUrl(account, container, blob, sas = {}) {
        const acct = accounts[account];
        if (!acct) throw new Error(`unknown Azurite account ${account}`);
        const startsOn = sas.startsOn ?? new Date(Date.now() - 5 * 60 * 1000);
        const expiresOn = sas.expiresOn ?? new Date(Date.now() + 24 * 3600 * 1000);
        const permissions =
          blob === undefined
            ? ContainerSASPermissions.parse(sas.permissions ?? 'racwdl')
            : BlobSASPermissions.parse(sas.permissions ?? 'racwd');
        const query = generateBlobSASQueryParameters(
          { containerName: container, blobName: blob, permissions, startsOn, expiresOn, protocol: SASProtocol.HttpsAndHttp },
          acct.credential,
        ).toString();
        const base = `${acct.endpoint}/${container}${blob === undefined ? '' : `/${blob.split('/').map(encodeURIComponent).join('/')}`}`;
        return `${base}?${query}`;
      },
      async stop() {
        if (child.exitCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        }
        if (ownsLocation) rmSync(location, { recursive: true, force: true });
      },
    };
    return instance;
  }
  throw lastError instanceof Error ? lastError : new Error('could not start Azurite');
}
