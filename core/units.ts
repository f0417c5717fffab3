import { PagewiseError } from './errors';

/** Echoes user input in an error without letting a huge value flood the message. */
const shown = (text: string) => (text.length > 64 ? `${text.slice(0, 61)}...` : text);

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1000, kib: 1024,
  m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

/** Parses "4MiB", "512", "64 KiB", "1g" into bytes; throws a BadInput error naming the setting. */
export function parseBytes(text: string | number, setting: string): number {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text <= 0) throw new PagewiseError('BadInput', `${setting} must be a positive whole number of bytes, got ${text}`);
    return text;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const factor = match ? UNITS[match[2].toLowerCase()] : undefined;
  if (!match || factor === undefined) {
    throw new PagewiseError('BadInput', `${setting} "${shown(text)}" is not a size (examples: 512, 64KiB, 4MiB, 1GiB)`);
  }
  const bytes = Number(match[1]) * factor;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new PagewiseError('BadInput', `${setting} "${shown(text)}" is not a positive whole number of bytes`);
  return bytes;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)} ${units[unit]}`;
}

/** One day in milliseconds: grace periods and retention are given in days (issue #13). */
export const DAY_MS = 24 * 60 * 60 * 1000;
