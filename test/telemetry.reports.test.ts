/**
 * #18 telemetry, the pure parts: what an orchestration's input and output say of its operation (trigger,
 * disk, figures, failure code), and the reportOperation activity's check of its input (task-hub input is
 * not trusted).
 */
import { failureOf, figuresOf, subjectOf, triggerOf } from '../orchestrations/operationReport';
import { operationFigures, reportInput } from '../functions/operationEvents';
import { operationEvent } from '../functions/telemetry';

test('the trigger an input names, or the one inputs written before #18 imply', () => {
  expect(triggerOf({ trigger: 'timer' })).toBe('timer');
  expect(triggerOf({ trigger: 'nonsense', settle: { attempt: 0 } })).toBe('eventgrid');
  expect(triggerOf({ startSlots: [] })).toBe('timer');
  expect(triggerOf({})).toBe('http');
  expect(triggerOf(undefined)).toBe('http');
});

test('the subject of each kind: disk without SAS (inputs hold none), backup ID, VM ID, managed-disk target', () => {
  expect(subjectOf('backup', { backupId: 'pw-1', source: { url: 'https://a.blob.core.windows.net/d/x.vhd', sealedSas: 'v1.zzz' } })).toEqual({ kind: 'backup', trigger: 'http', disk: 'https://a.blob.core.windows.net/d/x.vhd', backupId: 'pw-1' });
  expect(subjectOf('restore', { backupId: 'pw-1', target: { url: 'https://a.blob.core.windows.net/r/y.vhd' }, trigger: 'cli' })).toMatchObject({ disk: 'https://a.blob.core.windows.net/r/y.vhd', trigger: 'cli' });
  expect(subjectOf('restore', { backupId: 'pw-1', managedDisk: { resourceGroup: 'rg', name: 'disk1' } })).toMatchObject({ disk: 'managed disk rg/disk1' });
  expect(subjectOf('vm-backup', { vmBackupId: 'vm-1', vmId: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v' })).toEqual({ kind: 'vm-backup', trigger: 'http', disk: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v', backupId: 'vm-1' });
  expect(subjectOf('verify', { backupId: 'pw-2' })).toEqual({ kind: 'verify', trigger: 'http', backupId: 'pw-2' });
});

test('figures: a backup its engine result, a VM backup the sum over its disks, numbers only', () => {
  expect(figuresOf('backup', { backupId: 'pw-1', batches: { pages: 99 }, result: { bytesRead: 10, bytesStored: 4, kind: 'full', durationMs: Infinity } })).toEqual({ bytesRead: 10, bytesStored: 4 });
  expect(figuresOf('vm-backup', { disks: [{ state: 'done', bytesRead: 5, bytesStored: 2 }, { state: 'failed' }] })).toEqual({ disks: 2, disksFailed: 1, bytesRead: 5, bytesStored: 2 });
  expect(operationFigures({ pagesWritten: 8, bytesWritten: 8 * 1024 * 1024, durationMs: 2000 })).toEqual({ pages: 8, durationMs: 2000, throughputMiBps: 4 });
  expect(operationFigures({ pagesChecked: 3, bytesChecked: 0, durationMs: 0 })).toEqual({ pages: 3, durationMs: 0 });
});

test("figures: a prune's report flattened — what it deleted, repacked, left pending, its duration", () => {
  const report = {
    pruneId: 'p1', dryRun: false, startedAt: '2026-12-01T00:00:00.000Z', completedAt: '2026-12-01T00:00:02.500Z', kept: { manifests: 3, packs: 4, tables: 1 },
    deleted: { manifests: ['pw-a', 'pw-b'], tables: 1, packs: 2, deltas: 0, stagingBlobs: 5, marks: 1, generations: 0 },
    pending: { packs: 1, tables: 0, staging: 0, bytes: 4096 }, repacked: { packs: 1, newPacks: 1, bytesCopied: 1000 },
    bytesReclaimed: 9000, bytesUnused: 100, bytesTotal: 50000, locked: [], index: null, problems: ['x'],
  };
  const figures = { dryRun: 0, blocked: 0, bytesReclaimed: 9000, bytesUnused: 100, bytesTotal: 50000, manifestsDeleted: 2, packsDeleted: 2, tablesDeleted: 1, deltasDeleted: 0, generationsDeleted: 0, packsRepacked: 1, bytesCopied: 1000, packsPending: 1, bytesPending: 4096, problems: 1, durationMs: 2500 };
  expect(figuresOf('prune', report)).toEqual(figures);
  expect(figuresOf('prune', { ...report, dryRun: true, blocked: 'a backup is running', startedAt: 'never' })).toEqual({ ...figures, dryRun: 1, blocked: 1, durationMs: undefined });
  expect(figuresOf('prune', undefined)).toEqual({ blocked: 0 });
  expect(operationFigures(figuresOf('prune', report))).toEqual({ durationMs: 2500 });
  expect(subjectOf('prune', { dryRun: true })).toEqual({ kind: 'prune', trigger: 'http' });
});

test('failures: the code of a permanent failure, else what kind; long reasons cut', () => {
  expect(failureOf(new Error('BackupNotFound: backup pw-1 does not exist'))).toEqual({ reason: 'BackupNotFound: backup pw-1 does not exist', errorCode: 'BackupNotFound' });
  expect(failureOf(new Error('backup pw-1 failed verification: page 3 hash'))).toMatchObject({ errorCode: 'VerificationFailed' });
  expect(failureOf(new Error("Activity function 'runBackupBatch' failed: boom"))).toMatchObject({ errorCode: 'ActivityFailed' });
  expect(failureOf('x'.repeat(5000))).toMatchObject({ errorCode: 'OrchestrationFailed', reason: `${'x'.repeat(1000)}…` });
});

test('the activity refuses an input of the wrong shape, naming what is wrong, and keeps only sane figures', () => {
  const good = { kind: 'backup', phase: 'Completed', instanceId: 'backup-pw-1', trigger: 'http' };
  expect(reportInput({ ...good, figures: { bytesRead: 5, 'bad key': 1, x: 'nan', y: Number.NaN } })).toEqual({ ...good, figures: { bytesRead: 5 } });
  expect(() => reportInput(null)).toThrow(/reportOperation activity's input is invalid: not an object/);
  expect(() => reportInput([good])).toThrow(/not an object/);
  expect(() => reportInput({ ...good, kind: 'drop-tables' })).toThrow(/unknown kind/);
  expect(() => reportInput({ ...good, phase: 'Started' })).toThrow(/phase must be Completed or Failed/);
  expect(() => reportInput({ ...good, trigger: 'mail' })).toThrow(/unknown trigger/);
  expect(() => reportInput({ ...good, instanceId: '' })).toThrow(/instanceId must be a string/);
  expect(() => reportInput({ ...good, reason: 7 })).toThrow(/reason must be a string/);
  expect(() => reportInput({ ...good, disk: 'x'.repeat(5000) })).toThrow(/disk is longer than 4096/);
  expect(() => reportInput({ ...good, figures: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i])) })).toThrow(/too many figures/);
});

test('event properties: the disk shown without its SAS, other text redacted', () => {
  const event = operationEvent('backup', 'Failed', { instanceId: 'backup-pw-1', disk: 'https://a.blob.core.windows.net/d/x.vhd?sv=1&sig=SECRET', reason: 'GET https://a.blob.core.windows.net/d/x.vhd?sv=1&sig=SECRET2 failed', errorCode: 'SourceUnreachable' });
  expect(event).toEqual({
    name: 'PagewiseBackupFailed',
    properties: { operation: 'backup', instanceId: 'backup-pw-1', disk: 'https://a.blob.core.windows.net/d/x.vhd', reason: 'GET https://a.blob.core.windows.net/d/x.vhd?sv=1&sig=REDACTED failed', errorCode: 'SourceUnreachable' },
    measurements: {},
  });
});
