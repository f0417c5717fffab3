/**
 * `npm run bench:prune` — garbage collection of a vault that a year of nightly backups would leave: one disk
 * (256 MiB, 1 MiB pages) backed up on N simulated nights (a full, then incrementals: hot pages rewritten
 * every night, some other pages edited, holes filled, pages cleared), forgotten each night by a
 * 7 daily / 4 weekly / 12 monthly policy (clock injected, soft-delete grace as default), then pruned three
 * times in a child process — mark; ≥ D later sweep + repack; ≥ D later again (the repack's sources go) —
 * each measured: time per step, peak RSS, HTTP requests, bytes reclaimed and left unused, and the vault's
 * bytes against the kept backups' unique data. The floor of any GC is measured in the same run: list
 * every pack and read its trailer. With `--sim-runs=N` (default 20000; 0 skips) it also times the
 * protocol's property-based simulation at N runs (`PAGEWISE_SIM_RUNS`).
 *
 * Options: --nights=100 --disk-mib=256 --page-kib=1024 --sim-runs=20000 --no-restore-check.
 * Results: bench/results/prune-<date>.md (and .json).
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { backupDisk, configureStorageEndpointsFromEnv, formatBytes, MiB, restoreBackup, type BackupRequest } from '../core';
// Internals the bench reads the vault with (allowed in test/rules.public-api.test.ts): opening the
// keyring, and the forget step it drives night by night.
import { Vault } from '../core/repo/vault';
import { openVaultKeyring } from '../core/repo/v2/marker';
import type { KeepPolicy } from '../core/retention/keep-policy';
import { forgetBackups } from '../core/retention/forget';
import type { PruneReport } from '../core/prune/prune';
import { DEFAULT_DELETE_AFTER_MS, DEFAULT_GRACE_MS } from '../core/prune/protocol';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { NightlyDisk, type ChangePattern } from '../testkit/nightly-disk';
import { keptData, packAccount, vaultBytes, type VaultBytes } from '../testkit/vault-accounting';
import { buildWorker } from './lib/build';
import { machine, revision } from './lib/run-facts';
import { ChildRun, runWorker } from './lib/child';

const argv = process.argv.slice(2);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const flag = (name: string) => argv.includes(`--${name}`);
const NIGHTS = Number(option('nights') ?? 100);
const DISK_BYTES = Number(option('disk-mib') ?? 256) * MiB;
const PAGE_SIZE = Number(option('page-kib') ?? 1024) * 1024;
const SIM_RUNS = Number(option('sim-runs') ?? 20000);
const DAY = 24 * 3600 * 1000;
const HOUR = 3600 * 1000;
const POLICY: KeepPolicy = { daily: 7, weekly: 4, monthly: 12 };
/**
 * A night's change, in pages of 1 MiB on a 256 MiB disk (~70 % allocated): 4 hot pages (a database, logs),
 * 4 other pages edited, 2 holes filled, 1 page cleared — about 4 % of the allocated data rewritten a night.
 */
const PATTERN: ChangePattern = { hotPages: 4, rewrites: 4, added: 2, zeroed: 1 };
const RESULTS = path.resolve(__dirname, 'results');
const log = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

interface Night {
  n: number;
  backupId: string;
  time: string;
  sha256: string;
  kind: string;
  backupMs: number;
  bytesNew: number;
  forgottenAtMs?: number;
}

interface PruneRun {
  label: string;
  nowMs: number;
  run: ChildRun;
  report: PruneReport;
  before: VaultBytes;
  after: VaultBytes;
  kept: { manifests: number; uniqueStoredBytes: number; referencedPackBytes: number; unreferencedPackBytes: number; packs: number; missing: number };
}

async function main(): Promise<void> {
  const started = Date.now();
  mkdirSync(RESULTS, { recursive: true });
  const work = mkdtempSync(path.join(os.tmpdir(), 'pagewise-bench-prune-'));
  const buildDir = buildWorker();
  let azurite: AzuriteInstance | undefined;
  const loadAtStart = os.loadavg()[0];
  try {
    azurite = await startAzurite({ accounts: ['src', 'vault'] });
    process.env.PAGEWISE_STORAGE_ENDPOINTS = azurite.storageEndpoints; // the workers inherit it
    configureStorageEndpointsFromEnv(process.env);
    const disks = azurite.accounts.src.service.getContainerClient('disks');
    await disks.create();
    await azurite.accounts.vault.service.getContainerClient('vault').create();
    const vaultLocation = { url: azurite.sasUrl('vault', 'vault') };
    const userKey = randomBytes(32);
    const userKeyHex = userKey.toString('hex');
    const t = performance.now();
    const disk = await NightlyDisk.create(disks.getPageBlobClient('night.vhd'), DISK_BYTES, PAGE_SIZE, { allocatedFraction: 0.7, hotPages: PATTERN.hotPages, seed: 13 });
    log(`disk: ${formatBytes(DISK_BYTES)}, ${PAGE_SIZE / 1024} KiB pages, ${disk.allocatedPages} of ${disk.pageCount} allocated, written in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // The simulated nights start at the next 02:00 UTC, so the injected clock never runs behind the emulator's.
    const t0 = Math.ceil((Date.now() - 2 * HOUR) / DAY) * DAY + 2 * HOUR;
    const nights: Night[] = [];
    const req: BackupRequest = {
      source: { url: azurite.sasUrl('src', 'disks', 'night.vhd', { permissions: 'racwd' }) },
      vault: vaultLocation,
      userKey,
      pageSize: PAGE_SIZE,
      cacheBytes: 16 * MiB,
      scratchDir: work,
      takeSnapshot: true,
    };
    const buildStarted = performance.now();
    for (let n = 0; n < NIGHTS; n++) {
      const nowMs = t0 + n * DAY;
      const change = n > 0 ? await disk.night(n, PATTERN) : undefined;
      const backupId = `night-${String(n).padStart(3, '0')}`;
      const b0 = performance.now();
      const clock = () => nowMs;
      const result = await backupDisk({ ...req, backupId, clock });
      const night: Night = { n, backupId, time: new Date(nowMs).toISOString(), sha256: disk.sha256(), kind: result.kind, backupMs: performance.now() - b0, bytesNew: result.bytesNew };
      nights.push(night);
      // Forget by the policy (restic's rules over the backups not yet forgotten; their times are the simulated nights').
      const drop = (await forgetBackups({ vault: vaultLocation, userKey, policy: POLICY, clock })).forgotten.map((f) => f.backupId);
      for (const x of nights) if (drop.includes(x.backupId)) x.forgottenAtMs = nowMs;
      const active = nights.filter((x) => x.forgottenAtMs === undefined);
      if (n % 10 === 0 || n === NIGHTS - 1) {
        log(`night ${n}: ${result.kind}, ${(night.backupMs / 1000).toFixed(1)} s, new ${formatBytes(result.bytesNew)}${change ? `, changed ${change.rewritten}/${change.added}/${change.zeroed} pages (rewritten/added/zeroed)` : ''}; ${active.length} not forgotten`);
      }
    }
    const buildMs = performance.now() - buildStarted;

    const vault = Vault.open(vaultLocation);
    const keyring = await openVaultKeyring(vault, userKey);
    /** Kept at `nowMs`: never forgotten, or forgotten less than the grace ago (a soft-deleted backup stays restorable). */
    const keptAt = (nowMs: number) => new Set(nights.filter((x) => x.forgottenAtMs === undefined || x.forgottenAtMs + DEFAULT_GRACE_MS > nowMs).map((x) => x.backupId));
    const account = async (nowMs: number): Promise<PruneRun['kept']> => {
      const keep = keptAt(nowMs);
      const data = await keptData(vault, keyring, (m) => keep.has(m.backupId));
      const packs = await packAccount(vault, keyring, data.contentIds.keys());
      return { manifests: data.manifests.length, uniqueStoredBytes: data.uniqueStoredBytes, referencedPackBytes: packs.referencedBytes, unreferencedPackBytes: packs.unreferencedBytes, packs: packs.packs, missing: packs.missing.length };
    };

    const trailers = async (label: string) => {
      const run = await runWorker(buildDir, { op: 'trailers', vault: vaultLocation, userKeyHex, backupId: 'none' });
      log(`floor (${label}): list + read every pack trailer ${(run.output.wallMs / 1000).toFixed(2)} s, ${JSON.stringify(run.output.requests)}, peak RSS ${formatBytes(run.peakRssBytes)}`);
      return run;
    };
    const floorBefore = await trailers('before');
    const lastNight = t0 + (NIGHTS - 1) * DAY;
    const pruneTimes: [string, number][] = [
      ['1 mark', lastNight + 3 * HOUR],
      ['2 sweep + repack (≥ D later)', lastNight + 3 * HOUR + DEFAULT_DELETE_AFTER_MS + HOUR],
      ['3 sweep repacked sources (≥ D later)', lastNight + 3 * HOUR + 2 * (DEFAULT_DELETE_AFTER_MS + HOUR)],
    ];
    const prunes: PruneRun[] = [];
    for (const [label, nowMs] of pruneTimes) {
      const before = await vaultBytes(vault);
      const run = await runWorker(buildDir, { op: 'prune', vault: vaultLocation, userKeyHex, backupId: 'none', nowMs });
      const report = run.output.result as PruneReport;
      const after = await vaultBytes(vault);
      const kept = await account(nowMs);
      prunes.push({ label, nowMs, run, report, before, after, kept });
      log(`prune ${label}: ${(run.output.wallMs / 1000).toFixed(2)} s, peak RSS ${formatBytes(run.peakRssBytes)}, requests ${JSON.stringify(run.output.requests)}, reclaimed ${formatBytes(report.bytesReclaimed)}, unused ${formatBytes(report.bytesUnused)} of ${formatBytes(report.bytesTotal)}${report.blocked ? `, BLOCKED: ${report.blocked}` : ''}`);
    }
    const floorAfter = await trailers('after');

    // Two kept backups restored (the oldest kept and the newest), byte for byte against the disk on their night.
    const restores: string[] = [];
    if (!flag('no-restore-check')) {
      const keep = keptAt(pruneTimes[pruneTimes.length - 1][1]);
      const keptNights = nights.filter((x) => keep.has(x.backupId));
      for (const x of [keptNights[0], keptNights[keptNights.length - 1]]) {
        const target = path.join(work, `${x.backupId}.img`);
        await restoreBackup({ backupId: x.backupId, vault: vaultLocation, userKey, target: { url: target }, overwrite: true });
        const same = createHash('sha256').update(readFileSync(target)).digest('hex') === x.sha256;
        rmSync(target, { force: true });
        restores.push(`${x.backupId} (${x.time.slice(0, 10)}): ${same ? 'byte-identical' : 'DIFFERS'}`);
        log(`restore ${x.backupId}: ${same ? 'byte-identical' : 'RESTORED BYTES DIFFER'}`);
        if (!same) process.exitCode = 1;
      }
    }
    const sim = SIM_RUNS > 0 ? simulation(SIM_RUNS) : undefined;
    const notes = [
      `load average (1 min): ${loadAtStart.toFixed(1)} at the start, ${os.loadavg()[0].toFixed(1)} at the end, on ${os.cpus().length} cores (shared with other work: absolute times vary)`,
      `building the vault: ${NIGHTS} backups in ${(buildMs / 1000).toFixed(0)} s`,
    ];
    const out = { revision: revision(), machine: machine(), date: new Date().toISOString(), command: `npm run bench:prune -- ${argv.join(' ')}`.trim(), nights, prunes: prunes.map(({ run, ...p }) => ({ ...p, child: summary(run) })), floorBefore: summary(floorBefore), floorAfter: summary(floorAfter), restores, sim, notes, totalMs: Date.now() - started };
    // a run of another shape than the default gets its own name, so it never replaces the reference run's file
    const shape = NIGHTS === 100 && DISK_BYTES === 256 * MiB && PAGE_SIZE === MiB ? '' : `-n${NIGHTS}-${DISK_BYTES / MiB}m-${PAGE_SIZE / 1024}k`;
    const base = path.join(RESULTS, `prune-${new Date().toISOString().slice(0, 10)}${shape}`);
    writeFileSync(`${base}.json`, JSON.stringify(out, null, 2));
    writeFileSync(`${base}.md`, render(out, prunes, floorBefore, floorAfter));
    log(`wrote ${path.relative(process.cwd(), base)}.md and .json`);
  } finally {
    await azurite?.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(buildDir, { recursive: true, force: true });
  }
}

function summary(run: ChildRun) {
  const o = run.output;
  return { wallMs: o.wallMs, peakRssBytes: run.peakRssBytes, baselineRssBytes: o.baselineRssBytes, userCpuMs: o.userCpuMs, systemCpuMs: o.systemCpuMs, requests: o.requests, stepStartsMs: o.stepStartsMs, result: o.op === 'trailers' ? o.result : undefined };
}

/** The protocol's simulation at `runs` runs (test/prune.simulation.test.ts), timed. */
function simulation(runs: number): { runs: number; ms: number; passed: boolean; tail: string } | undefined {
  if (!existsSync(path.resolve(__dirname, '..', 'test', 'prune.simulation.test.ts'))) {
    log('simulation: test/prune.simulation.test.ts is not in this revision; skipped');
    return undefined;
  }
  log(`simulation: PAGEWISE_SIM_RUNS=${runs} npx jest test/prune.simulation.test.ts ...`);
  const t = performance.now();
  const r = spawnSync('npx', ['jest', '--runInBand', 'test/prune.simulation.test.ts'], { cwd: path.resolve(__dirname, '..'), env: { ...process.env, PAGEWISE_SIM_RUNS: String(runs) }, encoding: 'utf8', maxBuffer: 64 * MiB });
  const ms = performance.now() - t;
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => /Tests:|✓|✕|passed|failed/.test(l)).slice(-12).join('\n');
  log(`simulation: ${r.status === 0 ? 'passed' : 'FAILED'} in ${(ms / 1000).toFixed(0)} s`);
  if (r.status !== 0) process.exitCode = 1;
  return { runs, ms, passed: r.status === 0, tail };
}

const mib = (b: number) => (b / MiB).toFixed(1);

function phases(stepStartsMs: Record<string, number> | undefined, wallMs: number): string {
  const steps = Object.entries(stepStartsMs ?? {}).sort((a, b) => a[1] - b[1]);
  if (steps.length === 0) return `all ${(wallMs / 1000).toFixed(2)} s (no progress reported)`;
  const parts = [`gather ${(steps[0][1] / 1000).toFixed(2)}`];
  steps.forEach(([step, at], k) => parts.push(`${step} ${(((steps[k + 1]?.[1] ?? wallMs) - at) / 1000).toFixed(2)}`));
  return parts.join(' · ');
}

function render(out: { revision: string; machine: string; date: string; command: string; nights: Night[]; restores: string[]; sim?: { runs: number; ms: number; passed: boolean; tail: string }; notes: string[] }, prunes: PruneRun[], floorBefore: ChildRun, floorAfter: ChildRun): string {
  const n = out.nights;
  const incr = n.slice(1);
  const lines = [
    `# Prune bench — ${out.date.slice(0, 10)}`,
    '',
    `- command: \`${out.command}\``,
    `- revision: ${out.revision}`,
    `- machine: ${out.machine} (the workplace's \`node\` kind: 2 cores, 24 GiB; shared by other sessions while this ran)`,
    `- date: ${out.date}`,
    '',
    '## The vault',
    '',
    `${n.length} nightly backups of one ${formatBytes(DISK_BYTES)} page blob at ${PAGE_SIZE / 1024} KiB pages (Azurite): a full (${mib(n[0].bytesNew)} MiB new), then ${incr.length} incrementals (median ${mib(median(incr.map((x) => x.bytesNew)))} MiB new each; a night rewrites ${PATTERN.hotPages} hot pages and ${PATTERN.rewrites} others in part, fills ${PATTERN.added} holes, clears ${PATTERN.zeroed}). Simulated nights one day apart (clock injected into backup, forget and prune); each night forgets by 7 daily / 4 weekly / 12 monthly (restic's rule over the backups not yet forgotten), grace 14 days. Backups in-process: median ${(median(n.map((x) => x.backupMs)) / 1000).toFixed(1)} s.`,
    '',
    '## Prune (child process, bare node)',
    '',
    '| run | clock | time s | steps (s; gather = start → first step) | peak RSS MiB | requests | reclaimed MiB | deleted (manifests/tables/packs/deltas/staging/marks) | repacked (packs → new, MiB copied) | pending | unused after MiB | pack bytes after MiB |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const p of prunes) {
    const r = p.report;
    const req = p.run.output.requests;
    const total = Object.values(req).reduce((s, x) => s + x, 0);
    lines.push(`| ${p.label} | +${((p.nowMs - Date.parse(n[n.length - 1].time)) / DAY).toFixed(1)} d | ${(p.run.output.wallMs / 1000).toFixed(2)} | ${phases(p.run.output.stepStartsMs, p.run.output.wallMs)} | ${mib(p.run.peakRssBytes)} | ${total} (${Object.entries(req).map(([k, v]) => `${k} ${v}`).join(', ')}) | ${mib(r.bytesReclaimed)} | ${r.deleted.manifests.length}/${r.deleted.tables}/${r.deleted.packs}/${r.deleted.deltas}/${r.deleted.stagingBlobs}/${r.deleted.marks} | ${r.repacked.packs} → ${r.repacked.newPacks}, ${mib(r.repacked.bytesCopied)} | ${r.pending.packs} packs, ${r.pending.tables} tables, ${r.pending.staging} staging, ${mib(r.pending.bytes)} MiB | ${mib(r.bytesUnused)} of ${mib(r.bytesTotal)} | ${mib(p.after.byPrefix['packs/'].bytes)} |`);
  }
  lines.push('', '## Vault bytes against the kept backups\' unique data', '', '"unique" = the stored block bytes of every content ID the kept backups\' tables name, each once (testkit/vault-accounting.ts, read without the prune\'s code); "referenced" = the packs that are the holder of one of them (newest pack holding it), "unreferenced" = all other packs.', '');
  lines.push('| after run | kept backups | unique MiB | packs | pack bytes MiB | referenced MiB | unreferenced MiB | pack ÷ unique | vault total MiB (before → after) | by kind after (MiB) |', '|---|---|---|---|---|---|---|---|---|---|');
  for (const p of prunes) {
    const k = p.kept;
    const by = Object.entries(p.after.byPrefix).map(([pre, v]) => `${pre} ${mib(v.bytes)} (${v.blobs})`).join(', ');
    lines.push(`| ${p.label} | ${k.manifests} | ${mib(k.uniqueStoredBytes)} | ${k.packs} | ${mib(p.after.byPrefix['packs/'].bytes)} | ${mib(k.referencedPackBytes)} | ${mib(k.unreferencedPackBytes)} | ${(p.after.byPrefix['packs/'].bytes / k.uniqueStoredBytes).toFixed(3)} | ${mib(p.before.total)} → ${mib(p.after.total)} | ${by} |`);
    if (k.missing > 0) lines.push(`| **${k.missing} content IDs of kept backups in no pack** | | | | | | | | | |`);
  }
  const floor = (r: ChildRun) => {
    const res = r.output.result as { packs: number; entries: number; packBytes: number };
    return `${(r.output.wallMs / 1000).toFixed(2)} s for ${res.packs} packs (${mib(res.packBytes)} MiB, ${res.entries} entries), ${Object.values(r.output.requests).reduce((s, x) => s + x, 0)} requests, peak RSS ${mib(r.peakRssBytes)} MiB`;
  };
  lines.push('', '## Floor: list every pack and read its trailer (child process)', '', `- before the prunes: ${floor(floorBefore)}`, `- after: ${floor(floorAfter)}`);
  const ratio = prunes.map((p) => `${p.label.split(' ')[0]}: ${(p.run.output.wallMs / floorBefore.output.wallMs).toFixed(1)}×`).join(', ');
  lines.push(`- prune time ÷ floor (before): ${ratio}`);
  if (out.restores.length) lines.push('', '## Restores after the last prune', '', ...out.restores.map((r) => `- ${r}`));
  if (out.sim) lines.push('', '## Simulation', '', `\`PAGEWISE_SIM_RUNS=${out.sim.runs} npx jest --runInBand test/prune.simulation.test.ts\`: ${out.sim.passed ? 'passed' : 'FAILED'} in ${(out.sim.ms / 1000).toFixed(0)} s (wall, jest start included).`, '', '```', out.sim.tail, '```');
  lines.push('', '## Notes', '', ...out.notes.map((x) => `- ${x}`), '');
  return lines.join('\n');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
}


main().catch((err) => {
  console.error('bench:prune failed:', err);
  process.exit(1);
});
