/** The Compute a VM command talks to: ArmVmCompute over `--arm-endpoint` (else PAGEWISE_ARM_ENDPOINT, else Azure's), credential from the environment. */
import { armContext, ArmVmCompute } from '../core';

export function vmComputeFor(armEndpoint: string | undefined, env: Record<string, string | undefined>): ArmVmCompute {
  return new ArmVmCompute(armContext(armEndpoint !== undefined ? { endpoint: armEndpoint } : {}, env));
}
