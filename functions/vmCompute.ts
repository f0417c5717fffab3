/**
 * The Compute view the VM functions use: the real ArmVmCompute over the ARM context of the app
 * settings (PAGEWISE_ARM_ENDPOINT, PAGEWISE_ARM_TOKEN, else Azure's endpoint and the app's identity).
 * A local `pagewise serve` or a test pointing PAGEWISE_ARM_ENDPOINT at a stand-in uses the same code.
 */
import { ArmVmCompute, armContext } from '../core';
import type { VmCompute } from '../core';
import { appSettings } from './settings';

let given: VmCompute | undefined;
/** The one made from the settings in force, and the settings it was made from (they change between local apps). */
let made: { env: object; compute: VmCompute } | undefined;

/** The VmCompute of this app: one given with useVmCompute, else ArmVmCompute over the app settings' ARM context. */
export function vmCompute(): VmCompute {
  if (given) return given;
  const env = appSettings();
  if (made?.env !== env) made = { env, compute: new ArmVmCompute(armContext({}, env)) };
  return made.compute;
}

/** Replaces the VmCompute (undefined: back to the app settings'). */
export function useVmCompute(compute: VmCompute | undefined): void {
  given = compute;
}
