/**
 * The CLI's side of issue #13 end to end on Azurite: three backups, `forget` one, `list` shows it deleted,
 * `undelete` brings it back, `forget --keep-* --dry-run` shows per disk what would go and which rule keeps
 * each kept backup, `prune --dry-run --json` writes nothing, and `forget --no-grace --prune` removes them.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAzurite, AzuriteInstance } from '../testkit/azurite';
import { writeDisk } from '../testkit/sample-disk';
import { captureIO, run } from '../cli/main';
import { PruneReport, writeNewKeyFile } from '../core';
import { pruneLines } from '../cli/commands/prune';

const KiB = 1024;
const MiB = 1024 * KiB;

let az: AzuriteInstance;
let tmp: string;
let keyFile: string;
let vault: string;
const ids: string[] = [];

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = captureIO({ PAGEWISE_STORAGE_ENDPOINTS: az.storageEndpoints });
  const code = await run(args, io);
  return { code, stdout: io.stdoutText(), stderr: io.stderrText() };
}

async function blobNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const b of az.accounts.vault.service.getContainerClient('kept').listBlobsFlat()) names.push(b.name);
  return names.sort();
}

interface Listed {
  backupId: string;
  status: string;
  deleted?: { forgottenAt: string; graceEndsAt: string };
}

async function listed(): Promise<Listed[]> {
  return JSON.parse((await cli(['list', '--vault', vault, '--key-file', keyFile, '--json'])).stdout).backups as Listed[];
}

beforeAll(async () => {
  az = await startAzurite({ accounts: ['src', 'vault'] });
  await az.accounts.src.service.getContainerClient('disks').create();
  await az.accounts.vault.service.getContainerClient('kept').create();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pagewise-cli-retention-'));
  keyFile = path.join(tmp, 'user.key');
  await writeNewKeyFile(keyFile);
  vault = az.sasUrl('vault', 'kept');
  expect((await cli(['init', '--vault', vault, '--key-file', keyFile])).code).toBe(0);
  const blob = az.accounts.src.service.getContainerClient('disks').getPageBlobClient('vm.vhd');
  await writeDisk(blob, 2 * MiB, [{ offset: 0, length: 256 * KiB, kind: 'random', seed: 41 }]);
  const source = az.sasUrl('src', 'disks', 'vm.vhd', { permissions: 'r' });
  for (let n = 0; n < 3; n++) {
    if (n > 0) await blob.uploadPages(Buffer.alloc(64 * KiB, n), MiB + n * 64 * KiB, 64 * KiB);
    const made = await cli(['backup', source, '--vault', vault, '--key-file', keyFile, '--page-size', '64KiB', '--cache', '256KiB', '--json']);
    expect(made).toMatchObject({ code: 0, stderr: '' });
    ids.push(JSON.parse(made.stdout).backupId as string);
  }
}, 120_000);

afterAll(async () => {
  await az?.stop();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

test('forget one backup: list shows it deleted and until when; undelete brings it back', async () => {
  const forgotten = await cli(['forget', ids[0], '--vault', vault, '--key-file', keyFile, '--grace-days', '5']);
  expect(forgotten).toMatchObject({ code: 0, stderr: '' });
  expect(forgotten.stdout).toMatch(new RegExp(`^disk .*: forgot 1, keep 0\\n  forget  ${ids[0]}  recoverable until (\\S+)\\n`));
  const graceEndsAt = /recoverable until (\S+)/.exec(forgotten.stdout)![1];
  expect(Date.parse(graceEndsAt) - Date.now()).toBeGreaterThan(5 * 86_400_000 - 60_000);

  const json = await listed();
  expect(json.find((b) => b.backupId === ids[0])).toMatchObject({ status: 'complete', deleted: { graceEndsAt } });
  expect(json.filter((b) => b.deleted)).toHaveLength(1);
  const table = await cli(['list', '--vault', vault, '--key-file', keyFile]);
  // The VERIFIED column (#18) sits between the ID and the status: never verified.
  expect(table.stdout).toMatch(new RegExp(`${ids[0]}  never +deleted, recoverable until ${graceEndsAt.replace(/\./g, '\\.')}\\n`));
  expect(table.stdout).toMatch(/\ndeleted: forgotten, still restorable; pagewise undelete brings it back/);

  const undone = await cli(['undelete', ids[0], '--vault', vault, '--key-file', keyFile]);
  expect(undone).toEqual({ code: 0, stdout: `restored ${ids[0]}: no longer forgotten\n`, stderr: '' });
  expect((await listed()).filter((b) => b.deleted)).toEqual([]);
  const again = await cli(['undelete', ids[0], '--vault', vault, '--key-file', keyFile, '--json']);
  expect(JSON.parse(again.stdout)).toMatchObject({ restored: [], notForgotten: [ids[0]], expired: [] });
});

test('forget by rules --dry-run: per disk what would go and which rule keeps each kept backup; nothing written', async () => {
  const before = await blobNames();
  const dry = await cli(['forget', '--keep-last', '2', '--vault', vault, '--key-file', keyFile, '--dry-run']);
  expect(dry).toMatchObject({ code: 0, stderr: '' });
  const lines = dry.stdout.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^disk blob:src\/disks\/vm\.vhd: would forget 1, keep 2$/);
  expect(lines[1]).toMatch(new RegExp(`^  forget  ${ids[0]}  recoverable until `));
  expect(lines.slice(2)).toEqual([`  keep    ${ids[2]}  last #1`, `  keep    ${ids[1]}  last #2`]);
  const json = JSON.parse((await cli(['forget', '--keep-last', '2', '--vault', vault, '--key-file', keyFile, '--dry-run', '--json'])).stdout);
  expect(json.forget).toMatchObject({ dryRun: true, forgotten: [{ backupId: ids[0] }], alreadyForgotten: [] });
  expect(await blobNames()).toEqual(before);
});

test('prune --dry-run --json reports and writes nothing', async () => {
  const before = await blobNames();
  const dry = await cli(['prune', '--vault', vault, '--key-file', keyFile, '--dry-run', '--json']);
  expect(dry).toMatchObject({ code: 0, stderr: '' });
  const report = JSON.parse(dry.stdout);
  expect(report).toMatchObject({ dryRun: true, kept: { manifests: 3 }, deleted: { manifests: [], tables: 0, packs: 0, deltas: 0, stagingBlobs: 0, marks: 0 }, locked: [], wouldDelete: { manifests: [] } });
  expect(report.pruneId).toMatch(/^[0-9a-f]{16}$/);
  expect(report.bytesTotal).toBeGreaterThan(0);
  expect(await blobNames()).toEqual(before);
  const human = await cli(['prune', '--vault', vault, '--key-file', keyFile, '--dry-run']);
  expect(human.stdout).toMatch(/^prune [0-9a-f]{16} \(dry run: nothing deleted or written\)\n/);
  expect(human.stdout).toMatch(/\n {2}kept +3 backups, /);
  expect(human.stdout).toMatch(/\n {2}locked +none\n/);
});

test('forget --keep-last 1 --no-grace --prune: the manifests go at once, the rest waits for its second mark', async () => {
  const done = await cli(['forget', '--keep-last', '1', '--no-grace', '--prune', '--vault', vault, '--key-file', keyFile, '--json']);
  expect(done).toMatchObject({ code: 0, stderr: '' });
  const { forget, prune } = JSON.parse(done.stdout);
  expect(forget.forgotten.map((f: { backupId: string }) => f.backupId).sort()).toEqual([ids[0], ids[1]].sort());
  expect(prune).toMatchObject({ dryRun: false, kept: { manifests: 1 } });
  expect(prune.deleted.manifests).toHaveLength(2);
  expect(prune.bytesReclaimed).toBeGreaterThan(0);
  expect(prune.mark).toMatch(/^gc\/marks\//);
  const after = await listed();
  expect(after.filter((b) => b.status === 'complete').map((b) => b.backupId)).toEqual([ids[2]]);
  // Their staging (plan, batch records) is swept two-phase too: until then it lists as unfinished.
  expect(after.filter((b) => b.status !== 'complete').map((b) => [b.backupId, b.status]).sort()).toEqual([[ids[0], 'incomplete'], [ids[1], 'incomplete']].sort());
  // What only the forgotten backups used is marked now, deletable a deletion delay later.
  expect((await blobNames()).filter((n) => n.startsWith('gc/marks/'))).toEqual([prune.mark]);
});

test('bad command lines are refused before anything is read (exit 2, one line)', async () => {
  const base = ['--vault', vault, '--key-file', keyFile];
  const cases: Array<[string[], RegExp]> = [
    [['forget', ...base], /give the backups to forget, or --keep-\* rules/],
    [['forget', ids[2], '--keep-last', '1', ...base], /give backup IDs or --keep-\* rules, not both/],
    [['forget', '--keep-daily', 'seven', ...base], /--keep-daily "seven" must be a whole number/],
    [['forget', '--keep-last', '1', '--grace-days', '0', ...base], /--grace-days 0 .* say so with --no-grace/],
    [['forget', '--keep-last', '1', '--grace-days', '3', '--no-grace', ...base], /contradict/],
    [['forget', '--keep-last', '1', '--max-unused', '5%', ...base], /go with --prune/],
    [['forget', 'NOT_AN_ID', ...base], /backup ID/i],
    [['prune', '--max-unused', '150%', ...base], /--max-unused "150%" must be a percentage from 0% to 100%/],
    [['prune', '--max-unused', '0.1', ...base], /must be a percentage/],
    [['undelete', ...base], /give the forgotten backups to bring back, or --vm-backup IDs/],
  ];
  const before = await blobNames();
  for (const [args, message] of cases) {
    const out = await cli(args);
    expect({ args, code: out.code }).toEqual({ args, code: 2 });
    expect(out.stderr).toMatch(message);
    expect(out.stderr.trimEnd().split('\n')).toHaveLength(1);
  }
  expect(await blobNames()).toEqual(before);
});

test('the prune report as people read it: pending with the date it becomes deletable, locked blobs, blocked', () => {
  const report: PruneReport = {
    pruneId: '0123456789abcdef',
    dryRun: false,
    startedAt: '2026-12-01T00:00:00.000Z',
    completedAt: '2026-12-01T00:00:05.000Z',
    blocked: 'manifest manifests/x.pwm cannot be read',
    kept: { manifests: 4, packs: 7, tables: 9 },
    deleted: { manifests: ['manifests/a.pwm'], tables: 2, packs: 1, deltas: 1, stagingBlobs: 3, marks: 1, generations: 0 },
    pending: { packs: 2, tables: 1, staging: 0, bytes: 3 * MiB, eligibleAt: '2026-12-09T00:00:00.000Z' },
    repacked: { packs: 0, newPacks: 0, bytesCopied: 0 },
    bytesReclaimed: 5 * MiB,
    bytesUnused: 512 * KiB,
    bytesTotal: 10 * MiB,
    locked: [{ name: 'packs/ab/cd.pwp', lock: 'policy' }],
    problems: [],
    index: null,
  };
  expect(pruneLines(report)).toEqual([
    'prune 0123456789abcdef',
    '  reclaimed    5.00 MiB (1 manifest, 2 tables, 1 pack, 1 index delta, 3 staging blobs, 1 old mark)',
    '  kept         4 backups, 9 tables, 7 packs',
    '  unused left  512 KiB of 10.0 MiB pack bytes',
    '  pending      2 packs, 1 table, 0 staging items (3.00 MiB) wait for their second mark: deletable from 2026-12-09T00:00:00.000Z',
    '  locked       1 blob under an immutability policy or legal hold, skipped',
    '    packs/ab/cd.pwp (policy)',
    '  blocked: manifest manifests/x.pwm cannot be read — no table, pack or index delta was deleted this run',
  ]);
});
