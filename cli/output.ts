/** Output shared by the commands: one JSON object, short human summaries, the progress bar. */
import { SingleBar } from 'cli-progress';
import { formatBytes, OperationProgress, printable, redact } from '../core';
import { CliIO } from './io';

/** `--json`: exactly one JSON object on stdout. */
export function printJson(io: CliIO, value: object): void {
  io.stdout(`${jsonForTerminal(redact(JSON.stringify(value, null, 2)))}\n`);
}

/**
 * JSON.stringify escapes C0 controls but leaves DEL, C1 (0x9B is CSI) and the bidirectional overrides
 * raw; as \uXXXX escapes (they occur only inside strings) the JSON is the same and the terminal safe.
 */
function jsonForTerminal(json: string): string {
  return json.replace(/[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Human output: lines on stdout, secrets removed, control characters shown escaped (see printable). */
export function printLines(io: CliIO, lines: string[]): void {
  io.stdout(lines.map((l) => `${printable(redact(l))}\n`).join(''));
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function rate(bytes: number, ms: number): string {
  return ms > 0 ? `${(bytes / (1024 * 1024) / (ms / 1000)).toFixed(1)} MiB/s` : '—';
}

export { formatBytes };

/** Key/value rows aligned in two columns. */
export function table(rows: Array<[string, string]>, indent = '  '): string[] {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${indent}${k.padEnd(width)}  ${v}`);
}

export interface Progress {
  update(done: number, total: number, detail?: string): void;
  /** A backup's, restore's or verification's progress: its pages, and its bytes as the detail. */
  show(progress: OperationProgress): void;
  stop(): void;
}

const NO_PROGRESS: Progress = { update() {}, show() {}, stop() {} };

const HANDLED: Record<OperationProgress['phase'], string> = { copying: 'read', restoring: 'restored', verifying: 'checked' };

/** The bar's detail for an operation's progress, e.g. "12.0 MiB of 40.0 MiB read". */
export function progressDetail(progress: OperationProgress): string {
  return `${formatBytes(progress.bytesDone)} of ${formatBytes(progress.bytesTotal)} ${HANDLED[progress.phase]}`;
}

/** A progress bar on stderr, only when stderr is a terminal and the output is not JSON. */
export function progressBar(io: CliIO, json: boolean, task: string, unit = 'pages'): Progress {
  if (json || !io.progressStream) return NO_PROGRESS;
  const bar = new SingleBar({
    stream: io.progressStream,
    format: `${task} [{bar}] {percentage}% | {value}/{total} ${unit}{detail}`,
    barsize: 30,
    hideCursor: true,
    clearOnComplete: true,
    fps: 5,
  });
  let started = false;
  return {
    show(progress) {
      this.update(progress.pagesDone, progress.pagesTotal, progressDetail(progress));
    },
    update(done, total, detail) {
      const payload = { detail: detail ? ` | ${detail}` : '' };
      if (!started) {
        bar.start(total, done, payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(done, payload);
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
