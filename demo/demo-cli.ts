/** What the demo's steps share: printing (redacted), timing a step, and running the real `pagewise` command. */
import { printable, redact } from '../core';
import type { AzuriteInstance } from '../testkit/azurite';
import { startPagewise } from '../testkit/pagewise-process';

export const MiB = 1024 * 1024;

/** What a demo step runs against: the emulator, its temporary folder, the vault and key, and how to run pagewise. */
export interface DemoContext {
  az: AzuriteInstance;
  tmp: string;
  vaultUrl: string;
  keyFile: string;
  /** The environment the other pagewise commands run with (storage endpoints, vault connection string). */
  env: Record<string, string>;
  engine: string;
  scratch: string;
}

/** 4 MiB pages and a cache of 1/16 of the disk; a small image gets smaller pages so 1/16 holds one. */
export function shapeFor(diskBytes: number): { pageSize: number; cacheBytes: number } {
  let pageSize = 4 * MiB;
  while (pageSize > 512 && pageSize > diskBytes / 16) pageSize /= 2;
  return { pageSize, cacheBytes: Math.max(pageSize, Math.floor(diskBytes / 16 / pageSize) * pageSize) };
}

export interface Check {
  what: string;
  ok: boolean;
  detail: string;
}

export const mibps = (bytes: number, ms: number) => (ms > 0 ? `${(bytes / MiB / (ms / 1000)).toFixed(1)} MiB/s` : '—');
export const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export function say(text: string): void {
  process.stdout.write(`${printable(redact(text))}\n`);
}

/** Runs `node bin/pagewise.js args` with the given environment; resolves to its stdout bytes and stderr. */
export async function pagewiseRaw(args: string[], env: Record<string, string>): Promise<{ stdout: Buffer; stderr: string }> {
  const { child, done } = startPagewise(args, { env });
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (d: Buffer) => chunks.push(d)); // bytes as written (pagewise cat), not decoded text
  const { code, stderr } = await done;
  if (code !== 0) throw new Error(`pagewise ${args[0]} exited with ${code}: ${redact(stderr.trim()) || '(no message)'}`);
  return { stdout: Buffer.concat(chunks), stderr };
}

/** Runs `node bin/pagewise.js args` with the given environment; resolves to its parsed --json output. */
export async function pagewise<T>(args: string[], env: Record<string, string>): Promise<T> {
  const { stdout } = await pagewiseRaw(args, env);
  try {
    return JSON.parse(stdout.toString('utf8')) as T;
  } catch {
    throw new Error(`pagewise ${args[0]} did not print one JSON object`);
  }
}

export async function timed<T>(label: string, work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  process.stdout.write(`  ${printable(label)} ... `);
  const started = Date.now();
  const value = await work();
  const ms = Date.now() - started;
  process.stdout.write(`done (${secs(ms)})\n`);
  return { value, ms };
}
