// @ts-check
/** The throughput chart: an inline SVG line of MiB/s over time, drawn with DOM calls (no library, no inline style). */
import { formatThroughput } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 640;
const HEIGHT = 200;
const PAD = { left: 76, right: 12, top: 12, bottom: 28 };

/** @typedef {{ at: number, mibps: number }} Sample */

/**
 * @param {string} name
 * @param {Record<string, string | number>} attrs
 * @param {string} [text]
 */
function node(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * Redraws `svg` with `samples` (oldest first); its <title> and <desc> stay, the desc says what the line shows.
 * @param {SVGSVGElement} svg
 * @param {Sample[]} samples
 * @param {string} label what the samples are of (an operation)
 */
export function drawThroughput(svg, samples, label) {
  for (const child of [...svg.children]) if (child.tagName !== 'title' && child.tagName !== 'desc') child.remove();
  const desc = svg.querySelector('desc');
  if (samples.length < 2) {
    if (desc) desc.textContent = 'No running backup sampled yet.';
    svg.append(node('text', { x: WIDTH / 2, y: HEIGHT / 2, 'text-anchor': 'middle' }, 'No running backup sampled yet'));
    return;
  }
  const t0 = samples[0].at;
  const span = Math.max(1, samples[samples.length - 1].at - t0);
  const peak = Math.max(...samples.map((s) => s.mibps));
  const top = niceCeiling(peak);
  const x = (/** @type {number} */ at) => PAD.left + ((at - t0) / span) * (WIDTH - PAD.left - PAD.right);
  const y = (/** @type {number} */ v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
  for (const v of [0, top / 2, top]) {
    svg.append(node('line', { class: v === 0 ? 'axis' : 'grid', x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }));
    svg.append(node('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, formatThroughput(v)));
  }
  svg.append(node('line', { class: 'axis', x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: HEIGHT - PAD.bottom }));
  svg.append(node('text', { x: PAD.left, y: HEIGHT - 8 }, '0 s'));
  svg.append(node('text', { x: WIDTH - PAD.right, y: HEIGHT - 8, 'text-anchor': 'end' }, `${Math.round(span / 1000)} s`));
  const points = samples.map((s) => `${x(s.at).toFixed(1)},${y(s.mibps).toFixed(1)}`).join(' ');
  svg.append(node('polyline', { class: 'line', points }));
  const last = samples[samples.length - 1].mibps;
  if (desc) desc.textContent = `${label}: ${samples.length} samples over ${Math.round(span / 1000)} s, latest ${formatThroughput(last)}, peak ${formatThroughput(peak)}.`;
}

/** A round axis maximum at or above `v` (1, 2 or 5 times a power of ten). @param {number} v */
function niceCeiling(v) {
  if (!(v > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * power >= v) return m * power;
  return 10 * power;
}
