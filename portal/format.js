// @ts-check
/** How the portal shows sizes, ages and progress (binary units, as the CLI and docs use). */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** @param {number | undefined | null} bytes */
export function formatBytes(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '—';
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

/** @param {number} mibPerSecond */
export function formatThroughput(mibPerSecond) {
  return `${mibPerSecond.toFixed(mibPerSecond < 10 ? 2 : 1)} MiB/s`;
}

/**
 * How long ago `iso` was, coarsely (“5 min ago”).
 * @param {string | undefined} iso
 * @param {number} now
 */
export function formatAge(iso, now = Date.now()) {
  if (!iso) return '—';
  const ms = now - new Date(iso).getTime();
  if (!Number.isFinite(ms)) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/**
 * A whole percentage of done over total (0 when the total is not known yet), never above 100.
 * @param {number} done
 * @param {number} total
 */
export function percent(done, total) {
  if (!(total > 0)) return 0;
  return Math.min(100, Math.floor((done / total) * 100));
}
