/**
 * The app's MAC over a VM capture as the captureVm activity returned it. The activities that grant,
 * revoke, finalize or abandon act on ARM IDs from their input; an orchestration can be started with
 * any input through the durable API, so they act only on a capture this app's own captureVm sealed
 * (key derived from the user key, like the grant seal of functions/compute.ts).
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { PagewiseError } from '../core';
import type { VmCapture } from '../core';
import type { SealedCapture } from '../orchestrations/vmContracts';

function captureMacKey(userKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', userKey, Buffer.alloc(0), 'pagewise/vm-capture/v1', 32));
}

/** JSON with object keys sorted: the same text however the history stored the object. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function mac(capture: VmCapture, userKey: Buffer): string {
  return createHmac('sha256', captureMacKey(userKey)).update(canonical(capture)).digest('hex');
}

export function sealCapture(capture: VmCapture, userKey: Buffer): SealedCapture {
  // Through JSON first: what is sealed is what the history will hand back.
  const stored = JSON.parse(JSON.stringify(capture)) as VmCapture;
  return { capture: stored, seal: mac(stored, userKey) };
}

/** The capture of an activity's input, if this app sealed exactly it; else a BadInput. */
export function openCapture(input: unknown, userKey: Buffer, what: string): VmCapture {
  const { capture, seal } = (input ?? {}) as Partial<SealedCapture>;
  if (!capture || typeof capture !== 'object' || typeof seal !== 'string' || !/^[0-9a-f]{64}$/.test(seal)) {
    throw new PagewiseError('BadInput', `the ${what} activity's input holds no sealed VM capture`);
  }
  if (!timingSafeEqual(Buffer.from(seal, 'hex'), Buffer.from(mac(capture, userKey), 'hex'))) {
    throw new PagewiseError('BadInput', `the ${what} activity's input holds a VM capture this app did not take (its seal does not match)`);
  }
  return capture;
}

/** The disk of a sealed capture at this LUN (null: the OS disk). */
export function capturedDiskAt(capture: VmCapture, lun: unknown, what: string) {
  if (lun !== null && !(typeof lun === 'number' && Number.isSafeInteger(lun))) throw new PagewiseError('BadInput', `the ${what} activity's input names no disk (lun must be null or a whole number)`);
  const disk = capture.disks.find((d) => d.lun === lun);
  if (!disk) throw new PagewiseError('BadInput', `VM backup ${capture.vmBackupId} captured no disk at ${lun === null ? 'the OS disk' : `LUN ${lun}`}`);
  return disk;
}
