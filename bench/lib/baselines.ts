/**
 * Reference measurements on the same blob:
 * - raw read: list the allocated ranges, download them (cut into `rangeBytes` GETs, `concurrency` in
 *   flight) and throw the bytes away — the ceiling for any tool reading this blob from this client;
 * - naive: download the whole blob (holes included) to a local file with one streaming GET, then hash
 *   (SHA-256), compress (lz4-napi, per 4 MiB chunk like Pagewise) and encrypt (AES-256-GCM) the file.
 *   Its output is discarded: the naive baseline does not upload anything, which favours it;
 * - naive, stored: the same, with the encrypted output uploaded to the vault as a block blob (4 MiB
 *   blocks, 4 in flight, overlapping the processing) — what the user's copy actually costs.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { ContainerClient, PageBlobClient } from '@azure/storage-blob';
import { compress } from 'lz4-napi';
// An internal the benchmark needs: the engine's lazy bounded fan-out (p-limit would queue every range up front).
import { forEachLimited } from '../../core/concurrency';
import { MiB, type ByteRange } from '../../core';

export async function listAllocated(client: PageBlobClient, diskBytes: number): Promise<{ ranges: ByteRange[]; ms: number }> {
  const started = performance.now();
  const ranges: ByteRange[] = [];
  const window = 64 * 1024 * MiB;
  for (let start = 0; start < diskBytes; start += window) {
    for await (const page of client.listPageRanges(start, Math.min(window, diskBytes - start)).byPage({ maxPageSize: 5000 })) {
      for (const r of page.pageRange ?? []) ranges.push({ offset: r.start, length: r.end - r.start + 1 });
    }
  }
  ranges.sort((a, b) => a.offset - b.offset);
  const merged: ByteRange[] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && last.offset + last.length >= r.offset) last.length = Math.max(last.length, r.offset + r.length - last.offset);
    else merged.push({ ...r });
  }
  return { ranges: merged, ms: performance.now() - started };
}

function* cut(ranges: ByteRange[], size: number): Generator<ByteRange> {
  for (const r of ranges) for (let at = 0; at < r.length; at += size) yield { offset: r.offset + at, length: Math.min(size, r.length - at) };
}

async function drain(client: PageBlobClient, range: ByteRange): Promise<number> {
  const response = await client.download(range.offset, range.length, { maxRetryRequests: 5 });
  let n = 0;
  for await (const chunk of response.readableStreamBody as AsyncIterable<Buffer>) n += chunk.length;
  if (n !== range.length) throw new Error(`short read at ${range.offset}: ${n} of ${range.length}`);
  return n;
}

export interface RawTrial {
  concurrency: number;
  rangeBytes: number;
  ms: number;
  bytes: number;
  requests: number;
  mibPerSec: number;
}

export async function rawRead(client: PageBlobClient, ranges: ByteRange[], concurrency: number, rangeBytes: number): Promise<RawTrial> {
  const started = performance.now();
  let bytes = 0;
  let requests = 0;
  await forEachLimited(cut(ranges, rangeBytes), concurrency, async (r) => {
    const n = await drain(client, r);
    bytes += n;
    requests++;
  });
  const ms = performance.now() - started;
  return { concurrency, rangeBytes, ms, bytes, requests, mibPerSec: bytes / MiB / (ms / 1000) };
}

export interface NaiveResult {
  /** bytes of the blob covered (may be a prefix of a very large disk; see extrapolatedMs) */
  coveredBytes: number;
  diskBytes: number;
  downloadMs: number;
  processMs: number;
  totalMs: number;
  /** totalMs scaled to the whole disk when only a prefix was measured */
  extrapolatedMs: number;
  compressedBytes: number;
  sha256: string;
  /** time inside each step of the processing pass (the steps run one after another) */
  steps: { readMs: number; sha256Ms: number; lz4Ms: number; aesMs: number };
  /** the naive backup with its output stored: download + a second processing pass that uploads */
  stored?: { passMs: number; totalMs: number; extrapolatedMs: number; storedBytes: number; blob: string };
}

/**
 * Naive backup: one streaming download of [0, coveredBytes) into `file`, then one pass over the file:
 * sha256 of everything, lz4 per 4 MiB, AES-256-GCM over the compressed stream; output to nowhere.
 */
export async function naiveBackup(client: PageBlobClient, diskBytes: number, file: string, maxBytes = diskBytes, storeTo?: ContainerClient): Promise<NaiveResult> {
  const coveredBytes = Math.min(diskBytes, maxBytes);
  const t0 = performance.now();
  if (coveredBytes === diskBytes) await client.downloadToFile(file, 0, undefined, { maxRetryRequests: 5 });
  else await client.downloadToFile(file, 0, coveredBytes, { maxRetryRequests: 5 });
  const t1 = performance.now();
  const hash = createHash('sha256');
  const cipher = createCipheriv('aes-256-gcm', randomBytes(32), randomBytes(12));
  let compressedBytes = 0;
  const steps = { readMs: 0, sha256Ms: 0, lz4Ms: 0, aesMs: 0 };
  const fh = await fs.open(file, 'r');
  const buf = Buffer.allocUnsafe(4 * MiB);
  try {
    for (;;) {
      let t = performance.now();
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      steps.readMs += performance.now() - t;
      if (bytesRead === 0) break;
      const plain = buf.subarray(0, bytesRead);
      t = performance.now();
      hash.update(plain);
      steps.sha256Ms += performance.now() - t;
      t = performance.now();
      const packed = await compress(plain);
      steps.lz4Ms += performance.now() - t;
      t = performance.now();
      compressedBytes += cipher.update(packed).length;
      steps.aesMs += performance.now() - t;
    }
    cipher.final();
  } finally {
    await fh.close();
  }
  const t2 = performance.now();
  const totalMs = t2 - t0;
  let stored: NaiveResult['stored'];
  try {
    if (storeTo) {
      const s = await processAndStore(file, storeTo);
      const storedTotal = t1 - t0 + s.passMs;
      stored = { ...s, totalMs: storedTotal, extrapolatedMs: (storedTotal * diskBytes) / coveredBytes };
    }
  } finally {
    await fs.rm(file, { force: true });
  }
  return {
    stored,
    coveredBytes,
    diskBytes,
    downloadMs: t1 - t0,
    processMs: t2 - t1,
    totalMs,
    extrapolatedMs: (totalMs * diskBytes) / coveredBytes,
    compressedBytes,
    sha256: hash.digest('hex'),
    steps,
  };
}

/** The naive processing pass over the downloaded file, its encrypted output staged as 4 MiB blocks (the caller deletes the blob). */
async function processAndStore(file: string, container: ContainerClient): Promise<{ passMs: number; storedBytes: number; blob: string }> {
  const blob = container.getBlockBlobClient(`bench-naive/${Date.now()}.bin`);
  const started = performance.now();
  const hash = createHash('sha256');
  const cipher = createCipheriv('aes-256-gcm', randomBytes(32), randomBytes(12));
  const ids: string[] = [];
  const inFlight = new Set<Promise<void>>();
  let out: Buffer[] = [];
  let outBytes = 0;
  let storedBytes = 0;
  const stage = async (final: boolean) => {
    if (outBytes === 0 || (!final && outBytes < 4 * MiB)) return;
    const data = Buffer.concat(out, outBytes);
    out = [];
    outBytes = 0;
    const id = Buffer.from(String(ids.length).padStart(12, '0')).toString('base64');
    ids.push(id);
    storedBytes += data.length;
    const put: Promise<void> = blob.stageBlock(id, data, data.length).then(() => undefined);
    inFlight.add(put);
    void put.finally(() => inFlight.delete(put)).catch(() => undefined);
    if (inFlight.size >= 4) await Promise.race(inFlight);
  };
  const fh = await fs.open(file, 'r');
  const buf = Buffer.allocUnsafe(4 * MiB);
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      const plain = buf.subarray(0, bytesRead);
      hash.update(plain);
      const sealed = cipher.update(await compress(plain));
      out.push(sealed);
      outBytes += sealed.length;
      await stage(false);
    }
    const tail = cipher.final();
    out.push(tail, cipher.getAuthTag());
    outBytes += tail.length + 16;
    await stage(true);
    await Promise.all(inFlight);
    await blob.commitBlockList(ids);
  } finally {
    await fh.close();
  }
  const passMs = performance.now() - started;
  return { passMs, storedBytes, blob: blob.name };
}

/**
 * Raw copy: the same allocated bytes downloaded in `rangeBytes` GETs and each staged as one block of a
 * block blob in the vault (no scratch file, no hashing, compression or encryption), `concurrency`
 * pipelines in flight — the ceiling for a read-then-stage design on this client and these accounts.
 */
export async function rawCopy(client: PageBlobClient, ranges: ByteRange[], vault: ContainerClient, concurrency: number, rangeBytes: number, maxBytes = Infinity): Promise<RawTrial> {
  // a prefix of the allocated ranges is enough to measure an ingest rate
  const prefix: ByteRange[] = [];
  let budget = maxBytes;
  for (const r of ranges) {
    if (budget <= 0) break;
    prefix.push({ offset: r.offset, length: Math.min(r.length, budget) });
    budget -= r.length;
  }
  const blob = vault.getBlockBlobClient(`bench-raw-copy/${Date.now()}-${concurrency}x${rangeBytes}`);
  const started = performance.now();
  let bytes = 0;
  let requests = 0;
  let k = 0;
  await forEachLimited(cut(prefix, rangeBytes), concurrency, async (r) => {
    const id = Buffer.from(String(k++).padStart(12, '0')).toString('base64');
    const data = await client.downloadToBuffer(r.offset, r.length, { maxRetryRequestsPerBlock: 5, concurrency: 1, blockSize: rangeBytes });
    await blob.stageBlock(id, data, data.length);
    bytes += data.length;
    requests += 2;
  });
  const ms = performance.now() - started;
  await blob.delete().catch(() => undefined); // uncommitted blocks are garbage-collected by the service
  return { concurrency, rangeBytes, ms, bytes, requests, mibPerSec: bytes / MiB / (ms / 1000) };
}
