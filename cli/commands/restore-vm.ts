/**
 * `pagewise restore-vm <vm-backup-id> --vault <url> --key-file <f> --resource-group <rg> [--subscription <guid>]
 *  [--disk <lun|os>]… [--name-prefix p] [--create-vm <name>] [--nic <id>]… [--arm-endpoint URL] [--json]`
 */
import { formatBytes, loadUserKey, PagewiseError, restoreVm, VM_BACKUP_ID_RE } from '../../core';
import { storageLocation } from '../locations';
import { parseCount } from '../options';
import { printJson, printLines } from '../output';
import { vmComputeFor } from '../vm-compute';
import { DefineCommand } from './context';

interface RestoreVmOptions {
  vault: string;
  keyFile: string;
  resourceGroup: string;
  subscription?: string;
  disk: string[];
  namePrefix?: string;
  createVm?: string;
  nic: string[];
  armEndpoint?: string;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `--disk os` or `--disk <lun>` (0–63, Azure's LUN range). */
export function parseDiskSelector(text: string): number | 'os' {
  if (text.trim().toLowerCase() === 'os') return 'os';
  const lun = /^\s*\d{1,2}\s*$/.test(text) ? parseCount(text, '--disk') : undefined;
  if (lun === undefined || lun > 63) throw new PagewiseError('BadInput', `--disk "${text.slice(0, 16)}" is neither "os" nor a LUN from 0 to 63`);
  return lun;
}

export const defineRestoreVm: DefineCommand = (program, ctx) => {
  program
    .command('restore-vm')
    .description('restore a VM backup as new managed disks in a resource group, and optionally a new VM attaching them')
    .argument('<vm-backup-id>', 'the VM backup (see pagewise list --vm)')
    .requiredOption('--vault <container-url>', 'vault container URL (SAS, or PAGEWISE_VAULT_CONNECTION_STRING)')
    .requiredOption('--key-file <file>', 'user key file the backup was made with')
    .requiredOption('--resource-group <rg>', 'resource group the new disks (and VM) are created in')
    .option('--subscription <guid>', "subscription of that group (default: the backed-up VM's)")
    .option('--disk <lun|os>', 'restore only this disk (repeatable; default every disk)', collect, [])
    .option('--name-prefix <p>', 'prefix of each new disk name, before the backed-up disk name (default "restored-")')
    .option('--create-vm <name>', 'also create a VM of this name from the backup (needs the OS disk)')
    .option('--nic <id>', 'network interface ARM ID of the new VM (repeatable; default the backed-up VM\'s)', collect, [])
    .option('--arm-endpoint <url>', 'Azure Resource Manager endpoint (default PAGEWISE_ARM_ENDPOINT or Azure\'s public cloud)')
    .option('--json', 'print the result as one JSON object')
    .action(async (id: string, opts: RestoreVmOptions) => {
      const { io } = ctx;
      if (!VM_BACKUP_ID_RE.test(id)) throw new PagewiseError('BadInput', `${JSON.stringify(id.slice(0, 80))} is not a VM backup ID (vm-<time>-<12 hex digits>; see pagewise list --vm)`);
      const vault = storageLocation(opts.vault, 'vault', io.env);
      const luns = opts.disk.map(parseDiskSelector);
      if (opts.nic.length > 0 && opts.createVm === undefined) throw new PagewiseError('BadInput', '--nic names the new VM\'s network interfaces: give it with --create-vm <name>');
      const compute = vmComputeFor(opts.armEndpoint, io.env);
      const userKey = await loadUserKey(opts.keyFile);
      const result = await restoreVm({
        compute,
        vault,
        userKey,
        vmBackupId: id,
        resourceGroup: opts.resourceGroup,
        ...(opts.subscription !== undefined ? { subscriptionId: opts.subscription } : {}),
        ...(luns.length > 0 ? { luns } : {}),
        ...(opts.namePrefix !== undefined ? { namePrefix: opts.namePrefix } : {}),
        ...(opts.createVm !== undefined ? { createVm: { name: opts.createVm, ...(opts.nic.length > 0 ? { networkInterfaceIds: opts.nic } : {}) } } : {}),
      });
      if (opts.json) {
        printJson(io, result);
        return;
      }
      printLines(io, [
        `restored ${id}: ${result.disks.length} disk(s)`,
        ...result.disks.map((d) => `  ${d.lun === null ? 'os     ' : `lun ${String(d.lun).padEnd(3)}`}  ${d.diskId}  (${formatBytes(d.bytesWritten)} written)`),
        ...(result.vmId ? [`  vm       ${result.vmId}`] : []),
      ]);
    });
};
