/** Holds the VM disks' backup batches until the test lets them go: a running VM backup read without depending on timing. */
import { registeredFunctions } from '../../runtime/functionsCore';

/** Wraps activity `runBackupBatch` so that batches of VM disks wait; the returned function lets them go and unwraps it. */
export function holdVmBatches(): () => void {
  const activity = registeredFunctions().get('runBackupBatch')!;
  const original = activity.handler;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  activity.handler = async (input: unknown, ...rest: unknown[]) => {
    if ((input as { vmCapture?: boolean }).vmCapture) await held;
    return original(input, ...rest);
  };
  return () => {
    release();
    activity.handler = original;
  };
}
