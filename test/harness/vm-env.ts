/**
 * The setting of the VM suites (#16): Azurite, the loopback Compute stand-in over it, the real ArmVmCompute
 * pointed at the stand-in (LROs polled every 20 ms; capture copies waited for in ms, not minutes), a key file
 * and an initialised vault.
 */
import * as path from 'node:path';
import { armContext, ArmVmCompute, initVault, loadUserKey, StorageLocation, writeNewKeyFile } from '../../core';
import { startComputeStandIn, ComputeStandIn } from './compute-standin';
import { startEnv, TestEnv } from './env';

export interface VmTestEnv {
  env: TestEnv;
  standin: ComputeStandIn;
  compute: ArmVmCompute;
  keyFile: string;
  userKey: Buffer;
  vault: StorageLocation;
  stop(): Promise<void>;
}

export async function startVmEnv(vaultContainer: string): Promise<VmTestEnv> {
  const env = await startEnv();
  const standin = await startComputeStandIn(env.az);
  const compute = new ArmVmCompute(armContext({ endpoint: standin.endpoint, credential: standin.credential }, {}), {
    pollIntervalMs: 20,
    completionWait: { firstDelayMs: 20, maxDelayMs: 100, timeoutMs: 10_000 },
  });
  const keyFile = path.join(env.tmp, 'user.key');
  await writeNewKeyFile(keyFile);
  const userKey = await loadUserKey(keyFile);
  const vault = await env.makeVault(vaultContainer);
  await initVault(vault, { userKey });
  return {
    env,
    standin,
    compute,
    keyFile,
    userKey,
    vault,
    async stop() {
      await standin.stop();
      await env.stop();
    },
  };
}
