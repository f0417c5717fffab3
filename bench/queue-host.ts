/**
 * `npm run bench:queue` — the local queue trigger host's delivery rate on Azurite (docs/DURABLE.md "Queue
 * triggers (local)"): N messages through a registered queue function (receive, decode, invoke, delete),
 * against the same run's plain SDK consumer of the same queue service (receive 16, delete them in parallel).
 *
 * Options: --messages=300 --rounds=3. Results: bench/results/queue-host-<date>.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { installFunctionsCore } from '../runtime/installFunctionsCore';
import { startAzurite } from '../testkit/azurite';
import { machine, revision } from './lib/run-facts';

installFunctionsCore(); // before @azure/functions loads: registrations reach the local host
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { app } = require('@azure/functions') as typeof import('@azure/functions');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { LocalFunctionHost } = require('../runtime/localHost') as typeof import('../runtime/localHost');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { DurableRuntime } = require('../runtime/durable/durableRuntime') as typeof import('../runtime/durable/durableRuntime');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { BlobInstanceStore } = require('../runtime/durable/instanceStore') as typeof import('../runtime/durable/instanceStore');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startQueueTriggers } = require('../runtime/queueTriggers') as typeof import('../runtime/queueTriggers');

const argv = process.argv.slice(2);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const MESSAGES = Number(option('messages') ?? 300);
const ROUNDS = Number(option('rounds') ?? 3);
const log = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

let delivered = 0;
app.storageQueue('benchQueue', { queueName: 'bench-host', connection: 'AzureWebJobsStorage', handler: async () => void delivered++ });

async function main(): Promise<void> {
  const az = await startAzurite({ accounts: ['hub'] });
  const hub = az.accounts.hub;
  const runtime = new DurableRuntime({ store: new BlobInstanceStore(hub.service.getContainerClient('pagewise-taskhub')) });
  const host = new LocalFunctionHost({ runtime });
  await host.start();
  const fill = async (name: string) => {
    const q = hub.queueService.getQueueClient(name);
    await q.createIfNotExists();
    const body = Buffer.from(JSON.stringify({ version: 1, startId: 'x'.repeat(40) })).toString('base64');
    for (let i = 0; i < MESSAGES; i += 16) await Promise.all(Array.from({ length: Math.min(16, MESSAGES - i) }, () => q.sendMessage(body)));
    return q;
  };
  const rows: Array<{ round: number; raw: number; hosted: number }> = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const raw = await fill('bench-raw');
      let t = Date.now();
      for (let done = 0; done < MESSAGES; ) {
        const batch = (await raw.receiveMessages({ numberOfMessages: 16, visibilityTimeout: 60 })).receivedMessageItems;
        await Promise.all(batch.map((m) => raw.deleteMessage(m.messageId, m.popReceipt)));
        done += batch.length;
      }
      const rawMs = Date.now() - t;
      await fill('bench-host');
      delivered = 0;
      t = Date.now();
      const triggers = startQueueTriggers(host, { AzureWebJobsStorage: hub.connectionString });
      while (delivered < MESSAGES || triggers.running > 0) await new Promise((r) => setTimeout(r, 5));
      const hostedMs = Date.now() - t;
      await triggers.stop();
      rows.push({ round, raw: rawMs, hosted: hostedMs });
      log(`round ${round}: plain consumer ${rawMs} ms, queue host ${hostedMs} ms for ${MESSAGES} messages`);
    }
  } finally {
    await runtime.stop();
    await host.stop();
    await az.stop();
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return (s[Math.floor((s.length - 1) / 2)] + s[Math.ceil((s.length - 1) / 2)]) / 2;
  };
  const raw = median(rows.map((r) => r.raw));
  const hosted = median(rows.map((r) => r.hosted));
  const rate = (ms: number) => ((MESSAGES * 1000) / ms).toFixed(0);
  const summary = [
    `# Local queue host delivery rate (${new Date().toISOString().slice(0, 10)})`,
    '',
    `Revision ${revision()}; ${machine()}. ${MESSAGES} messages per round, ${ROUNDS} rounds, Azurite on loopback;`,
    "host.json's queue settings (batch 16, new batch at 8 running). Plain consumer: receive 16, delete them in parallel, repeat.",
    '',
    '| round | plain consumer ms | queue host ms |',
    '|---|---|---|',
    ...rows.map((r) => `| ${r.round} | ${r.raw} | ${r.hosted} |`),
    '',
    `Median: plain ${rate(raw)} msg/s, queue host ${rate(hosted)} msg/s — ratio ${(raw / hosted).toFixed(2)} (host rate / plain rate).`,
    '',
    `Rerun: \`npm run bench:queue -- --messages=${MESSAGES} --rounds=${ROUNDS}\`.`,
  ].join('\n');
  log(summary);
  const dir = path.join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `queue-host-${new Date().toISOString().slice(0, 10)}.md`), `${summary}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
