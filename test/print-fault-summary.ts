/**
 * Prints what the reliability suites recorded (see test/harness/fault-summary.ts) after
 * `npm run test:faults` has run jest: the fault-injection figures, crash/resume, corruption and the
 * bad-input table (case → status/exit → message).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { SUMMARY_DIR_ENV } from './harness/fault-summary';

const dir = process.env[SUMMARY_DIR_ENV];
const read = <T>(name: string): T | undefined => {
  const file = dir ? path.join(dir, `${name}.json`) : '';
  return file && existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined;
};
const out: string[] = [];
const line = (s = '') => out.push(s);

interface Faults { requests: number; injected: number; retries: number; faults: Record<string, number>; backups: number; restoresIdentical: number; pagesLost: number }
const faults = read<Faults>('faults');
line('== Fault injection (test/faults.test.ts) ==');
if (!faults) line('  (no figures: the suite did not finish)');
else {
  line(`  requests made          ${faults.requests}`);
  line(`  faults injected        ${faults.injected} (${((100 * faults.injected) / faults.requests).toFixed(1)}% of requests)`);
  for (const [kind, n] of Object.entries(faults.faults)) line(`    ${kind.padEnd(20)} ${n}`);
  line(`  retries (SDK re-sends) ${faults.retries}`);
  line(`  backups completed      ${faults.backups}`);
  line(`  pages lost             ${faults.pagesLost}`);
  line(`  restores byte-identical ${faults.restoresIdentical}`);
}

interface Crash { killedAfterBatches: number; batchesTotal: number; batchesRedone: number; backupsCompleted: number; pagesLost: number; restoresIdentical: number }
const crash = read<Crash>('crash-resume');
line();
line('== Crash and resume (test/crash-resume.test.ts) ==');
if (!crash) line('  (no figures: the suite did not finish)');
else {
  line(`  killed (SIGKILL) after ${crash.killedAfterBatches} of ${crash.batchesTotal} batches; resumed, ${crash.batchesRedone} recorded batches redone`);
  line(`  backups completed ${crash.backupsCompleted}, pages lost ${crash.pagesLost}, restores byte-identical ${crash.restoresIdentical}`);
}

interface ServeRestart { batchesTotal: number; recordedBeforeKill: number; resumedBatches: number; bytesReadAfterRestart: number; bytesOfRecordedBatchesReadAgain: number; restoresIdentical: number }
const restart = read<ServeRestart>('serve-restart');
line();
line('== pagewise serve killed and restarted (test/serve.restart.test.ts) ==');
if (!restart) line('  (no figures: the suite did not finish)');
else {
  line(`  killed (SIGKILL) after ${restart.recordedBeforeKill} of ${restart.batchesTotal} batches recorded; the restarted serve took the task hub over and resumed`);
  line(`  source bytes read after the restart ${restart.bytesReadAfterRestart}, of them in recorded batches ${restart.bytesOfRecordedBatchesReadAgain}; batches found recorded on re-run ${restart.resumedBatches}; restores byte-identical ${restart.restoresIdentical}`);
}

interface Corruption { case: string; verifyProblems: string[]; restoreToFile: string; restoreToBlob: string }
const corruption = read<Corruption>('corruption');
line();
line('== Corruption (test/corruption.test.ts) ==');
if (!corruption) line('  (no figures: the suite did not finish)');
else {
  line(`  ${corruption.case}:`);
  for (const p of corruption.verifyProblems) line(`    verify: ${p}`);
  line(`    restore to file: ${corruption.restoreToFile}; to page blob: ${corruption.restoreToBlob}`);
}

interface Row { surface: string; case: string; expected: string; got: string; message: string }
const rows = read<Row[]>('bad-inputs');
line();
line('== Bad inputs (test/bad-inputs.test.ts) ==');
if (!rows) line('  (no table: the suite did not finish)');
else {
  const w = Math.max(...rows.map((r) => r.case.length));
  line(`  ${'surface'.padEnd(9)} ${'case'.padEnd(w)}  ${'result'.padEnd(8)}  message`);
  for (const r of rows) {
    const msg = r.message.length > 150 ? `${r.message.slice(0, 147)}...` : r.message;
    line(`  ${r.surface.padEnd(9)} ${r.case.padEnd(w)}  ${(r.got === r.expected ? r.got : `${r.got}≠${r.expected}`).padEnd(8)}  ${msg}`);
  }
  line(`  ${rows.length} cases: ${rows.filter((r) => r.surface === 'cli').length} CLI, ${rows.filter((r) => r.surface === 'http').length} HTTP, ${rows.filter((r) => r.surface === 'eventgrid').length} Event Grid; nothing half-written after any of them`);
}
process.stdout.write(`${out.join('\n')}\n`);
