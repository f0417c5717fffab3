/** `pagewise backup-vm <vm-resource-id> --vault <container-url> --key-file <f> [...]`: a whole VM through Compute (#16). */
import { armContext, ArmVmCompute, backupVm, ConsistencyLevel, displayUrl, DiskOutcome, formatBytes, loadUserKey, PagewiseError, parseVmId, VmBackupResult } from '../../core';
import { storageLocation } from '../locations';
import { engineSettings, parseCount } from '../options';
import { printJson, printLines, seconds, table } from '../output';
import { DefineCommand } from './context';

interface BackupVmOptions {
  vault: string;
  keyFile: string;
  full?: boolean;
  consistency: string;
  mode: string;
  armEndpoint?: string;
  diskConcurrency?: string;
  pageSize?: string;
  cache?: string;
  concurrency?: string;
  scratchDir?: string;
  json?: boolean;
}

const CONSISTENCY = ['application', 'filesystem', 'crash'];
const MODES = ['auto', 'restore-point', 'snapshots'];

function oneOf<T extends string>(value: string, allowed: string[], option: string): T {
  if (!allowed.includes(value)) throw new PagewiseError('BadInput', `${option} must be one of ${allowed.join(', ')} (got ${JSON.stringify(value.slice(0, 40))})`);
  return value as T;
}

export const defineBackupVm: DefineCommand = (program, ctx) => {
  program
    .command('backup-vm')
    .description('back up every managed disk of an Azure VM at one instant (a restore point, else incremental snapshots) into the encrypted vault')
    .argument('<vm-resource-id>', 'the VM: /subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING); a version-2 vault')
    .requiredOption('--key-file <file>', 'user key file (see pagewise keygen)')
    .option('--full', 'read and store every disk whole even when an incremental backup is possible')
    .option('--consistency <level>', `the consistency asked of the restore point: ${CONSISTENCY.join(', ')} (the one obtained is recorded)`, 'application')
    .option('--mode <mode>', 'auto (a restore point, else snapshots), restore-point (fail without one) or snapshots (one incremental snapshot per disk, crash-consistent)', 'auto')
    .option('--arm-endpoint <url>', 'Azure Resource Manager endpoint (default PAGEWISE_ARM_ENDPOINT, else https://management.azure.com); credential: PAGEWISE_ARM_TOKEN, else the default Azure credential')
    .option('--disk-concurrency <n>', 'disks backed up at once', '2')
    .option('--page-size <size>', 'page size, a multiple of 512 (e.g. 4MiB)', '4MiB')
    .option('--cache <size>', 'scratch cache capacity per disk', '256MiB')
    .option('--concurrency <n>', 'pages in flight at once per disk (1-64)')
    .option('--scratch-dir <dir>', 'directory for the scratch caches (default: OS temp dir)')
    .option('--json', 'print the result as one JSON object')
    .action(async (vmId: string, opts: BackupVmOptions) => {
      const { io } = ctx;
      parseVmId(vmId, 'the VM resource ID');
      const consistency = oneOf<ConsistencyLevel>(opts.consistency, CONSISTENCY, '--consistency');
      const mode = oneOf<'auto' | 'restore-point' | 'snapshots'>(opts.mode, MODES, '--mode');
      const diskConcurrency = parseCount(opts.diskConcurrency, '--disk-concurrency') ?? 2;
      if (diskConcurrency < 1 || diskConcurrency > 16) throw new PagewiseError('BadInput', '--disk-concurrency must be 1 to 16');
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const settings = engineSettings(opts);
      const userKey = await loadUserKey(opts.keyFile);
      const compute = new ArmVmCompute(armContext({ endpoint: opts.armEndpoint }, io.env));
      // Progress per disk on stderr: one line as each disk starts reading and ends (a terminal or not; never with --json).
      const say = (line: string) => {
        if (!opts.json) io.stderr(`${line}\n`);
      };
      const started = new Set<string>();
      const result = await backupVm({
        compute, vmId, vault, userKey, full: opts.full, consistency, mode, diskConcurrency, abortSignal: io.interruptSignal?.(),
        settings: { pageSize: settings.pageSize, cacheBytes: settings.cacheBytes, concurrency: settings.concurrency, scratchDir: settings.scratchDir, chunking: settings.chunking, codec: settings.codec, vaultDedupe: settings.vaultDedupe },
        onCapture: (c) => say(`captured ${c.vm.name} by ${c.capture === 'restore-point' ? `restore point (${c.consistency}-consistent)` : 'incremental snapshots (crash-consistent)'}: ${c.disks.length} disk(s)`),
        onDiskProgress: (lun, p) => {
          const key = String(lun);
          if (!started.has(key)) {
            started.add(key);
            say(`${diskName(lun)}: reading ${formatBytes(p.bytesTotal)}`);
          }
        },
        onDiskDone: (o) => say(`${diskName(o.lun)}: ${o.ok ? `${o.result.kind}, read ${formatBytes(o.result.bytesRead)}, stored ${formatBytes(o.result.bytesStored)}` : `FAILED: ${o.error}`}`),
      });
      if (opts.json) {
        printJson(io, result);
        return;
      }
      printLines(io, summary(result, vmId, opts.vault));
    });
};

const diskName = (lun: number | null): string => (lun === null ? 'os disk' : `lun ${lun}`);

function summary(r: VmBackupResult, vmId: string, vaultUrl: string): string[] {
  const m = r.manifest;
  const disks = [...r.disks].sort((a, b) => (a.lun ?? -1) - (b.lun ?? -1));
  return [
    `VM backup ${r.vmBackupId} complete: ${m.vmName} (${vmId}) → ${displayUrl(vaultUrl)}`,
    ...table([
      ['capture', m.capture === 'restore-point' ? `restore point ${m.restorePointId}` : 'incremental snapshots'],
      ['consistency', `${m.consistency} (asked: ${m.requestedConsistency})`],
      ...(m.captureNote ? [['note', m.captureNote] as [string, string]] : []),
      ...disks.map((d) => [diskName(d.lun), diskLine(d)] as [string, string]),
      ['released', r.releaseProblem ?? (r.released.length > 0 ? `${r.released.length} older capture(s): ${r.released.join(', ')}` : 'none')],
      ['duration', seconds(r.durationMs)],
    ]),
    ...(r.notCaptured.length > 0 ? ['not captured:', ...r.notCaptured.map((n) => `  ${n.what}: ${n.reason}`)] : []),
  ];
}

function diskLine(d: DiskOutcome): string {
  if (!d.ok) return `failed: ${d.error}`;
  const why = d.result.reason ? ` (${d.result.reason})` : '';
  return `${d.result.kind}${why}, read ${formatBytes(d.result.bytesRead)}, stored ${formatBytes(d.result.bytesStored)}, backup ${d.result.backupId}`;
}
