/** ArmVmCompute: the real VmCompute over an ArmContext — the capture half (arm-capture.ts) and the provisioning half (arm-provision.ts) composed. */
import type { ArmContext } from './arm-context';
import { armCapture, CompletionWait } from './arm-capture';
import { armProvisioning } from './arm-provision';
import type { NewDiskSpec, NewVmSpec, VmCaptureCompute, VmCompute, VmProvisioningCompute } from './compute';

export interface ArmVmComputeOptions {
  /** The provisioning half; default armProvisioning(ctx) (core/vm/arm-provision.ts). */
  provisioning?: VmProvisioningCompute;
  /** How long a grant waits for a capture still being copied (tests shorten it). */
  completionWait?: CompletionWait;
  /** The pollers' interval when Compute gives no Retry-After; default the context's (PAGEWISE_ARM_POLL_MS), else the SDK's. */
  pollIntervalMs?: number;
}

const notWired = (what: string): never => {
  throw new Error(`ArmVmCompute: ${what} needs the provisioning half (core/vm/arm-provision.ts), which this build was not given`);
};

export class ArmVmCompute implements VmCompute {
  private readonly capture: VmCaptureCompute;
  private readonly provisioning: VmProvisioningCompute | undefined;

  constructor(readonly ctx: ArmContext, options: ArmVmComputeOptions = {}) {
    const pollIntervalMs = options.pollIntervalMs ?? ctx.pollIntervalMs;
    this.capture = armCapture(ctx, { completionWait: options.completionWait, pollIntervalMs });
    this.provisioning = options.provisioning ?? armProvisioning(ctx, { pollIntervalMs });
  }

  getVm: VmCaptureCompute['getVm'] = (vmId) => this.capture.getVm(vmId);
  listVms: VmCaptureCompute['listVms'] = (scope) => this.capture.listVms(scope);
  vmIdsByTag: VmCaptureCompute['vmIdsByTag'] = (subs, tag) => this.capture.vmIdsByTag(subs, tag);
  createRestorePoint: VmCaptureCompute['createRestorePoint'] = (vm, c, r, k) => this.capture.createRestorePoint(vm, c, r, k);
  deleteRestorePoint: VmCaptureCompute['deleteRestorePoint'] = (id) => this.capture.deleteRestorePoint(id);
  createIncrementalSnapshot: VmCaptureCompute['createIncrementalSnapshot'] = (disk, name, tags) => this.capture.createIncrementalSnapshot(disk, name, tags);
  deleteSnapshot: VmCaptureCompute['deleteSnapshot'] = (id) => this.capture.deleteSnapshot(id);
  captureExists: VmCaptureCompute['captureExists'] = (id) => this.capture.captureExists(id);
  grantCaptureRead: VmCaptureCompute['grantCaptureRead'] = (id, s) => this.capture.grantCaptureRead(id, s);
  revokeCaptureRead: VmCaptureCompute['revokeCaptureRead'] = (id) => this.capture.revokeCaptureRead(id);
  listPagewiseCaptures: VmCaptureCompute['listPagewiseCaptures'] = (vm) => this.capture.listPagewiseCaptures(vm);

  getDisk(diskId: string) {
    return (this.provisioning ?? notWired('getDisk')).getDisk(diskId);
  }
  createUploadDisk(spec: NewDiskSpec) {
    return (this.provisioning ?? notWired('createUploadDisk')).createUploadDisk(spec);
  }
  grantDiskWrite(diskId: string, seconds: number) {
    return (this.provisioning ?? notWired('grantDiskWrite')).grantDiskWrite(diskId, seconds);
  }
  revokeDiskAccess(diskId: string) {
    return (this.provisioning ?? notWired('revokeDiskAccess')).revokeDiskAccess(diskId);
  }
  createVm(spec: NewVmSpec) {
    return (this.provisioning ?? notWired('createVm')).createVm(spec);
  }
}
