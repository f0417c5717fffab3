/**
 * Figures the reliability suites hand to `npm run test:faults`: each suite writes one JSON file into
 * the directory named by PAGEWISE_FAULT_SUMMARY_DIR (set by the npm script); test/print-fault-summary.ts
 * prints them after jest. Without the variable nothing is written.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

export const SUMMARY_DIR_ENV = 'PAGEWISE_FAULT_SUMMARY_DIR';

export function recordSummary(name: string, figures: unknown): void {
  const dir = process.env[SUMMARY_DIR_ENV];
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(figures, null, 2));
}
