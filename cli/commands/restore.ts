/**
 * `pagewise restore <backup-id> --vault <container-url> --key-file <f> (--to <page-blob-url | file> [--force] | --to-device <block-device>
 *  | --to-managed-disk <rg>/<name> --subscription <guid> --location <region> [--zone z] [--sku s] [--os-type t] [--hyper-v-generation g])`
 */
import { displayUrl, formatBytes, isBlobTarget, loadUserKey, PagewiseError, restoreBackup, restoreBackupToManagedDisk, StorageLocation, validateBackupId } from '../../core';
import { vmComputeFor } from '../vm-compute';
import { restoreTarget, storageLocation } from '../locations';
import { parseConcurrency } from '../options';
import { printJson, printLines, progressBar, rate, seconds } from '../output';
import { DefineCommand } from './context';

interface RestoreOptions {
  vault: string;
  keyFile: string;
  to?: string;
  toDevice?: string;
  toManagedDisk?: string;
  subscription?: string;
  location?: string;
  zone?: string;
  sku?: string;
  osType?: string;
  hyperVGeneration?: string;
  armEndpoint?: string;
  force?: boolean;
  concurrency?: string;
  json?: boolean;
}

export const defineRestore: DefineCommand = (program, ctx) => {
  program
    .command('restore')
    .description('restore a backup to a new page blob or a local sparse file')
    .argument('<backup-id>', 'the backup (see pagewise list)')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'user key file the backup was made with')
    .option('--to <page-blob-url|file>', 'target: page-blob URL (SAS, or PAGEWISE_TARGET_CONNECTION_STRING) or file path')
    .option('--to-device <block-device>', 'write a block device in place (at least the disk\'s size; never a file)')
    .option('--to-managed-disk <rg/name>', 'restore to a new managed disk <resource-group>/<name> (an Upload disk, with a VHD footer)')
    .option('--subscription <guid>', 'with --to-managed-disk: the subscription of the resource group')
    .option('--location <region>', 'with --to-managed-disk: the Azure region of the new disk')
    .option('--zone <zone>', 'with --to-managed-disk: the availability zone of the new disk')
    .option('--sku <sku>', 'with --to-managed-disk: the disk SKU (e.g. Premium_LRS; default Azure\'s)')
    .option('--os-type <Linux|Windows>', 'with --to-managed-disk: the OS type of an OS disk')
    .option('--hyper-v-generation <V1|V2>', 'with --to-managed-disk: the Hyper-V generation of an OS disk')
    .option('--arm-endpoint <url>', 'with --to-managed-disk: the Azure Resource Manager endpoint (default PAGEWISE_ARM_ENDPOINT or Azure\'s public cloud)')
    .option('--force', 'overwrite an existing page blob or regular file given with --to')
    .option('--concurrency <n>', 'pages in flight at once')
    .option('--json', 'print the result as one JSON object')
    .action(async (id: string, opts: RestoreOptions) => {
      const { io } = ctx;
      const backupId = validateBackupId(id);
      const vault = storageLocation(opts.vault, 'vault', io.env);
      if (opts.toManagedDisk !== undefined) return restoreToManagedDisk(backupId, vault, opts, ctx);
      const target = targetOf(opts, io.env);
      const concurrency = parseConcurrency(opts.concurrency);
      const userKey = await loadUserKey(opts.keyFile);
      const bar = progressBar(io, opts.json ?? false, 'restore');
      let result;
      try {
        result = await restoreBackup({
          backupId,
          vault,
          userKey,
          target,
          device: opts.toDevice !== undefined,
          overwrite: opts.force ?? false,
          keepFiles: [opts.keyFile],
          concurrency,
          abortSignal: io.interruptSignal?.(),
          onProgress: (p) => bar.show(p),
        });
      } finally {
        bar.stop();
      }
      if (opts.json) {
        printJson(io, result);
        return;
      }
      const where = opts.to && isBlobTarget(opts.to) ? displayUrl(opts.to) : result.target;
      printLines(io, [
        `restored ${result.backupId} to ${where}`,
        `  ${formatBytes(result.diskBytes)} disk, ${result.pagesWritten} pages (${formatBytes(result.bytesWritten)}) written in ${seconds(result.durationMs)} (${rate(result.bytesWritten, result.durationMs)})`,
      ]);
    });
};

const MANAGED_ONLY = ['subscription', 'location', 'zone', 'sku', 'osType', 'hyperVGeneration', 'armEndpoint'] as const;

/** `--to-managed-disk <rg>/<name>`: a new Upload managed disk through Compute (core/vm/restore-vm.ts). */
async function restoreToManagedDisk(backupId: string, vault: StorageLocation, opts: RestoreOptions, ctx: Parameters<DefineCommand>[1]): Promise<void> {
  const { io } = ctx;
  if (opts.to !== undefined || opts.toDevice !== undefined) throw new PagewiseError('BadInput', '--to-managed-disk excludes --to and --to-device; give one target');
  if (opts.force) throw new PagewiseError('BadInput', '--force does not apply to --to-managed-disk: Pagewise restores only to a new managed disk');
  const parts = opts.toManagedDisk!.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new PagewiseError('BadInput', '--to-managed-disk must be <resource-group>/<disk-name>');
  if (!opts.subscription) throw new PagewiseError('BadInput', '--to-managed-disk needs --subscription <guid>');
  if (!opts.location) throw new PagewiseError('BadInput', '--to-managed-disk needs --location <region> (the new disk\'s Azure region)');
  const userKey = await loadUserKey(opts.keyFile);
  const bar = progressBar(io, opts.json ?? false, 'restore');
  let result;
  try {
    result = await restoreBackupToManagedDisk({
      compute: vmComputeFor(opts.armEndpoint, io.env),
      vault,
      userKey,
      backupId,
      target: {
        subscriptionId: opts.subscription,
        resourceGroup: parts[0],
        name: parts[1],
        location: opts.location,
        ...(opts.zone ? { zone: opts.zone } : {}),
        ...(opts.sku ? { sku: opts.sku } : {}),
        ...(opts.osType ? { osType: opts.osType } : {}),
        ...(opts.hyperVGeneration ? { hyperVGeneration: opts.hyperVGeneration } : {}),
      },
      settings: { concurrency: parseConcurrency(opts.concurrency) },
      onProgress: (p) => bar.show(p),
    });
  } finally {
    bar.stop();
  }
  if (opts.json) {
    printJson(io, { backupId, ...result });
    return;
  }
  printLines(io, [`restored ${backupId} to the managed disk ${result.diskId}`, `  ${formatBytes(result.bytesWritten)} written in ${result.putPages} Put Page requests (the VHD footer included)`]);
}

/** Exactly one target: `--to` (page blob or file) or `--to-device` (a block device, in place). */
function targetOf(opts: RestoreOptions, env: Record<string, string | undefined>): StorageLocation {
  const stray = MANAGED_ONLY.find((k) => opts[k] !== undefined);
  if (stray) throw new PagewiseError('BadInput', `--${stray.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} applies only to --to-managed-disk`);
  if (opts.to !== undefined && opts.toDevice !== undefined) throw new PagewiseError('BadInput', '--to and --to-device exclude each other; give one target');
  if (opts.toDevice !== undefined) {
    if (opts.toDevice.trim() === '') throw new PagewiseError('BadInput', '--to-device is empty; give the path of a block device');
    return { url: opts.toDevice };
  }
  if (opts.to === undefined) throw new PagewiseError('BadInput', 'no target: give --to <page-blob-url|file> or --to-device <block-device>');
  return restoreTarget(opts.to, env);
}
