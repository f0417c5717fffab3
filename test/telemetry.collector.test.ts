/**
 * #18 telemetry end to end: the real `applicationinsights` v3 SDK pointed at a loopback collector (an
 * HTTPS server on 127.0.0.1 taking the Azure Monitor exporter's POSTs to /v2.1/track: JSON arrays of
 * envelopes, gzip-compressed when sent to Azure's own domains), the local runtime and Azurite. A small backup, a verification and a prune run; the items that arrive
 * are the operation events (operation id = instance ID), the custom metrics, sampled dependencies and the
 * aggregated count of storage calls; no secret in any item; no connection to anything but loopback.
 */
import * as https from 'node:https';
import * as net from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { HttpResponse } from '@azure/functions';
import { LocalApp, startLocalApp } from '../runtime/localApp';
import { KiB, MiB, startEnv, TestEnv } from './harness/env';
import { jsonRequest } from './harness/http-request';
import { Orchestrators } from '../orchestrations/contracts';
import { standInCert, trustInThisProcess } from './harness/compute-standin/tls';

interface Envelope {
  name: string;
  iKey?: string;
  tags?: Record<string, string>;
  data: { baseType: string; baseData: Record<string, unknown> & { properties?: Record<string, string>; measurements?: Record<string, number> } };
}

const IKEY = '11111111-2222-4333-8444-555555555555';
const SAMPLING_PERCENT = 10;

let env: TestEnv;
let app: LocalApp | undefined;
let collector: https.Server;
let untrust: () => void;
const posts: Array<{ path: string; encoding: string | undefined; items: Envelope[] }> = [];
const connections: string[] = [];
let restoreConnect: () => void;
let connectionString: string;

/** Every socket this process opens, by host (the SDK must reach nothing but loopback). */
function recordConnections(): () => void {
  const original = net.Socket.prototype.connect as (...args: unknown[]) => net.Socket;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    const first = args[0] as { host?: string; path?: string } | number | string | unknown[];
    const options = Array.isArray(first) ? (first[0] as { host?: string; path?: string }) : first;
    if (typeof options === 'object' && options !== null) connections.push(options.path ? `unix:${options.path}` : String(options.host ?? 'localhost'));
    else if (typeof options === 'number') connections.push(typeof args[1] === 'string' ? args[1] : 'localhost');
    return original.apply(this, args);
  } as typeof net.Socket.prototype.connect;
  return () => {
    net.Socket.prototype.connect = original as typeof net.Socket.prototype.connect;
  };
}

beforeAll(async () => {
  restoreConnect = recordConnections();
  const cert = standInCert();
  collector = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const encoding = req.headers['content-encoding'];
      const text = (encoding === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
      const items = (text.trim().startsWith('[') ? JSON.parse(text) : text.split('\n').filter(Boolean).map((l) => JSON.parse(l))) as Envelope[];
      posts.push({ path: req.url ?? '', encoding, items });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ itemsReceived: items.length, itemsAccepted: items.length, errors: [] }));
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const port = (collector.address() as AddressInfo).port;
  untrust = trustInThisProcess(port, cert.cert);
  // As an operator writes it; the SDK upgrades the scheme to https (its connection-string parser), hence TLS here.
  connectionString = `InstrumentationKey=${IKEY};IngestionEndpoint=http://127.0.0.1:${port}/`;
  env = await startEnv();
});

afterAll(async () => {
  await app?.stop();
  const { stopTelemetry } = require('../functions/telemetry') as typeof import('../functions/telemetry');
  await stopTelemetry();
  untrust?.();
  restoreConnect?.();
  await new Promise((resolve) => collector?.close(resolve));
  await env?.stop();
});

async function json(response: HttpResponse): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

const items = () => posts.flatMap((p) => p.items);
const events = () => items().filter((i) => i.data.baseType === 'EventData');
const dependencies = () => items().filter((i) => i.data.baseType === 'RemoteDependencyData');
/** Metric points by name: the exporter sends each series' aggregate (value = sum, count) per export. */
const metricPoints = (name: string) =>
  items()
    .filter((i) => i.data.baseType === 'MetricData')
    .flatMap((i) => (i.data.baseData.metrics as Array<{ name: string; value: number; count?: number }>).filter((m) => m.name === name).map((m) => ({ ...m, properties: i.data.baseData.properties ?? {} })));

test('a backup and a verification arrive as correlated events, metrics, sampled dependencies and a call count; nothing secret, nothing but loopback', async () => {
  const disk = await env.makeDisk('telemetry.vhd', 8 * MiB, [
    { offset: 0, length: 256 * KiB, kind: 'random', seed: 18 },
    { offset: 4 * MiB, length: 128 * KiB, kind: 'text', seed: 19 },
  ]);
  const appSettings = { ...env.appSettings(), APPLICATIONINSIGHTS_CONNECTION_STRING: connectionString, PAGEWISE_TELEMETRY_DEPENDENCY_SAMPLING: String(SAMPLING_PERCENT) };
  app = await startLocalApp({ taskHub: { connectionString: env.az.accounts.vault.connectionString }, appSettings });

  const started = await json(await app.host.invokeHttp('startBackup', jsonRequest('POST', '/api/backups', { source: { url: disk.source.url } })));
  const backupId = started.id as string;
  const backupInstance = `backup-${backupId}`;
  expect((await app.runtime.waitForCompletion(backupInstance, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  const verify = await json(await app.host.invokeHttp('startVerification', jsonRequest('POST', '/api/verifications', { backupId, source: { url: disk.source.url } })));
  const verifyInstance = verify.instanceId as string;
  expect((await app.runtime.waitForCompletion(verifyInstance, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  // A prune (dry run) is an operation like the others: Started from its starter, Completed from its orchestration.
  const prune = await json(await app.host.invokeHttp('startPrune', jsonRequest('POST', '/api/prunes', { dryRun: true })));
  const pruneInstance = prune.instanceId as string;
  expect((await app.runtime.waitForCompletion(pruneInstance, { timeoutInMs: 60_000 })).runtimeStatus).toBe('Completed');
  const pruneOutput = (await app.runtime.getStatus(pruneInstance))?.output as { bytesTotal: number; bytesUnused: number; kept: { packs: number } };
  const backupOutput = (await app.runtime.getStatus(backupInstance))?.output as { result: { bytesRead: number; bytesStored: number; pages: number } };
  // A scheduled verification of a backup the vault does not hold (as the nightly timer starts one): it fails.
  const missing = 'pw-000000000000000000000018';
  await app.runtime.startNew(Orchestrators.verifyBackup, { instanceId: 'verify-nightly-18', input: { backupId: missing, readData: true, trigger: 'timer' } });
  expect((await app.runtime.waitForCompletion('verify-nightly-18', { timeoutInMs: 60_000 })).runtimeStatus).toBe('Failed');

  // No more calls once the app has stopped: every sampled call's span has ended, the count is final.
  await app.stop();
  app = undefined;
  const { flushTelemetry } = require('../functions/telemetry') as typeof import('../functions/telemetry');
  await flushTelemetry();

  // The exporter's wire format: POST /v2.1/track, a JSON array of envelopes carrying the instrumentation key
  // (gzip only to Azure Monitor's own domains — the exporter's gzipHttpClient — so plain JSON to loopback).
  expect(posts.length).toBeGreaterThan(0);
  expect(new Set(posts.map((p) => p.path))).toEqual(new Set(['/v2.1/track']));
  expect(new Set(posts.map((p) => p.encoding))).toEqual(new Set([undefined]));
  expect(new Set(items().map((i) => i.iKey))).toEqual(new Set([IKEY]));

  // Events: one of each, operation id = the orchestration instance ID, the SPEC's properties.
  const byName = (name: string) => events().filter((e) => e.data.baseData.name === name);
  const displayDisk = `${env.az.accounts.src.endpoint}/disks/telemetry.vhd`;
  for (const [name, instanceId, operation] of [
    ['PagewiseBackupStarted', backupInstance, 'backup'],
    ['PagewiseBackupCompleted', backupInstance, 'backup'],
    ['PagewiseVerifyStarted', verifyInstance, 'verify'],
    ['PagewiseVerifyCompleted', verifyInstance, 'verify'],
  ] as const) {
    const found = byName(name);
    expect(found).toHaveLength(1);
    expect(found[0].tags?.['ai.operation.id']).toBe(instanceId);
    expect(found[0].data.baseData.properties).toMatchObject({ operation, instanceId, trigger: 'http', disk: displayDisk, backupId });
  }
  for (const name of ['PagewisePruneStarted', 'PagewisePruneCompleted']) {
    const found = byName(name);
    expect(found).toHaveLength(1);
    expect(found[0].tags?.['ai.operation.id']).toBe(pruneInstance);
    expect(found[0].data.baseData.properties).toMatchObject({ operation: 'prune', instanceId: pruneInstance, trigger: 'http' });
  }
  expect(pruneOutput.bytesTotal).toBeGreaterThan(0);
  expect(byName('PagewisePruneCompleted')[0].data.baseData.measurements).toMatchObject({ dryRun: 1, blocked: 0, bytesReclaimed: 0, bytesTotal: pruneOutput.bytesTotal, bytesUnused: pruneOutput.bytesUnused, packsDeleted: 0, problems: 0 });
  // The failed scheduled verification: the alert's event (trigger timer), its reason and error code.
  const failed = events().filter((e) => /Failed$/.test(String(e.data.baseData.name)));
  expect(failed).toHaveLength(1);
  expect(failed[0].data.baseData.name).toBe('PagewiseVerifyFailed');
  expect(failed[0].tags?.['ai.operation.id']).toBe('verify-nightly-18');
  expect(failed[0].data.baseData.properties).toMatchObject({ operation: 'verify', instanceId: 'verify-nightly-18', trigger: 'timer', backupId: missing, errorCode: 'BackupNotFound', reason: expect.stringContaining(missing) });
  expect(byName('PagewiseBackupCompleted')[0].data.baseData.measurements).toMatchObject({ bytesRead: backupOutput.result.bytesRead, bytesStored: backupOutput.result.bytesStored, pages: 6 });
  expect(byName('PagewiseVerifyCompleted')[0].data.baseData.measurements).toMatchObject({ pagesChecked: 6, bytesChecked: 384 * KiB });

  // Metrics: one point per operation, with its dimensions.
  const backupDims = { operation: 'backup', instanceId: backupInstance, disk: displayDisk };
  const point = (name: string, instanceId: string) => metricPoints(name).filter((m) => m.properties.instanceId === instanceId);
  expect(point('Pagewise.BytesRead', backupInstance)).toEqual([expect.objectContaining({ value: 384 * KiB, count: 1, properties: expect.objectContaining(backupDims) })]);
  expect(point('Pagewise.BytesStored', backupInstance)).toEqual([expect.objectContaining({ value: backupOutput.result.bytesStored })]);
  expect(point('Pagewise.Pages', backupInstance)).toEqual([expect.objectContaining({ value: 6 })]);
  for (const name of ['Pagewise.BytesNew', 'Pagewise.DurationMs', 'Pagewise.ThroughputMiBps', 'Pagewise.CacheHighWaterBytes']) expect(point(name, backupInstance)).toHaveLength(1);
  expect(point('Pagewise.DurationMs', pruneInstance)).toEqual([expect.objectContaining({ count: 1, properties: expect.objectContaining({ operation: 'prune', instanceId: pruneInstance }) })]);
  expect(point('Pagewise.Pages', verifyInstance)).toEqual([expect.objectContaining({ value: 6, properties: expect.objectContaining({ operation: 'verify' }) })]);

  // Dependencies: every outgoing call counted in Pagewise.StorageRequests; only every 10th sent as an item.
  const calls = metricPoints('Pagewise.StorageRequests').reduce((sum, m) => sum + m.value, 0);
  const kept = dependencies().length;
  const sizes = Object.entries(countBy(items().map((i) => i.data.baseType))).map(([type, n]) => `${type} ${Math.round(items().filter((i) => i.data.baseType === type).reduce((s, i) => s + JSON.stringify(i).length, 0) / n)} B`);
  console.info(`average envelope JSON: ${sizes.join(', ')}`);
  console.info(`telemetry items: ${items().length} in all; ${calls} outgoing calls counted, ${kept} sent as dependencies (${SAMPLING_PERCENT} %); ${events().length} events; by type ${JSON.stringify(countBy(items().map((i) => i.data.baseType)))}`);
  expect(calls).toBeGreaterThan(50);
  expect(kept).toBe(Math.floor((calls * SAMPLING_PERCENT) / 100));
  expect(dependencies().every((d) => /^https?:\/\/127\.0\.0\.1:\d+\//.test(String(d.data.baseData.data)))).toBe(true);

  // Nothing secret in any item: no SAS signature, no account key, no connection string.
  const wire = JSON.stringify(items());
  expect(wire).not.toMatch(/sig=(?!REDACTED)/i);
  expect(wire).not.toMatch(/AccountKey=(?!REDACTED)/i);
  expect(wire).not.toContain(env.az.accounts.vault.connectionString);
  expect(wire).not.toContain(connectionString);
  for (const account of Object.values(env.az.accounts)) expect(wire).not.toContain(account.key);

  // Only loopback: Azurite, the collector (no live metrics, statsbeat, OneSettings or metadata endpoint).
  expect([...new Set(connections)].filter((h) => !/^(127\.0\.0\.1|localhost|::1|unix:.*)$/.test(h))).toEqual([]);
});

test('an unexpected error answers 500 naming the invocation, and is logged with the invocation and instance IDs, redacted', async () => {
  const { answering } = require('../functions/http/responses') as typeof import('../functions/http/responses');
  const { withInstanceId } = require('../functions/problems') as typeof import('../functions/problems');
  const { InvocationContext } = require('@azure/functions') as typeof import('@azure/functions');
  const logged: Array<{ level: string; text: string }> = [];
  const context = new InvocationContext({ invocationId: 'inv-18-500', functionName: 'getBackup', logHandler: (level, ...args) => logged.push({ level, text: args.map(String).join(' ') }) });
  const handler = answering(async () => {
    throw withInstanceId(new Error('socket closed on https://acct.blob.core.windows.net/vault/x?sv=2024&sig=SECRETSIG'), 'backup-pw-18');
  });
  const response = await handler(jsonRequest('GET', '/api/backups/pw-18'), undefined as never, context);
  expect(response.status).toBe(500);
  const body = (await response.json()) as { title: string; detail: string };
  expect(body).toMatchObject({ title: 'InternalError', detail: expect.stringContaining('invocation inv-18-500') });
  expect(logged).toHaveLength(1);
  expect(logged[0]).toMatchObject({ level: 'error', text: expect.stringMatching(/^getBackup failed \(invocation inv-18-500, instance backup-pw-18\): Error: socket closed on https:\/\/acct\.blob\.core\.windows\.net\/vault\/x\?sv=2024&sig=REDACTED/) });
  expect(JSON.stringify([body, logged])).not.toContain('SECRETSIG');

  // A caller's mistake is no 500: nothing logged, nothing about invocations in the answer.
  const bad = await answering(async () => {
    throw new (require('../core') as typeof import('../core')).PagewiseError('BadInput', 'no such thing');
  })(jsonRequest('GET', '/api/backups/x'), undefined as never, context);
  expect(bad.status).toBe(400);
  expect(logged).toHaveLength(1);
});

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
