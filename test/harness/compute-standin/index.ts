/**
 * TEST FIXTURE — a loopback stand-in for Azure Compute (ARM) and Resource Graph, so Pagewise's VM code is
 * tested through the real @azure/arm-compute client over HTTPS on 127.0.0.1, with every disk backed by a
 * real Azurite page blob. It is not a product and models only what Pagewise calls (see router.ts).
 *
 * Checked against the SDK's request builders (node_modules/@azure/arm-compute/dist/commonjs/api/**: paths,
 * api-version, bodies, the LRO poller's `resourceLocationConfig: "location"` and expected statuses) and
 * Microsoft's REST docs (Restore Points - Create / Get, Disk Restore Point - Grant Access, Snapshots - Create
 * Or Update, Disks - Grant Access / Create Or Update (Upload), Virtual Machines - Get, Resource Graph Resources):
 * - LROs: PUT answers with the resource (disks, snapshots 202; restore points, VMs 201; provisioningState
 *   Creating) and `Azure-AsyncOperation`; a restore point collection's PUT is synchronous (200/201); POST
 *   (beginGetAccess/endGetAccess) and DELETE answer 202 with `Azure-AsyncOperation` + `Location`; the
 *   status reads InProgress (at least one poll), then Succeeded; the grant's result `{ accessSAS }` is at
 *   `Location`. The SDK then GETs the resource (PUT) or the Location (POST). Deleting what is gone: 204.
 * - Errors: `{ error: { code, message } }`; 401 without the bearer token; 400 MissingApiVersionParameter;
 *   404 ResourceNotFound / SubscriptionNotFound; 409 OperationNotAllowed (delete under an active SAS, grant
 *   of an attached disk or of an unfinished background copy, restore points unsupported), 409
 *   PropertyChangeNotAllowed (re-creating with another source); 412 PreconditionFailed for a PUT with
 *   `If-None-Match: *` of a resource that exists; 429 + Retry-After from faults.throttle.
 * Simplifications (deliberate): no resource groups, NICs or images as resources; any api-version value is
 * accepted; a revoked SAS still reads in Azurite until it expires (the grant is recorded as ended, see
 * activeGrants()); an Upload disk's minimum size (20 MiB + 512) is not enforced; the VHD footer is checked
 * at revoke (disk.standIn.vhdFooter) and a disk without a valid one cannot be attached to a VM.
 * LROs are polled at the SDK's interval (2 s by default): callers pass `updateIntervalInMs` to go faster.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import * as https from 'node:https';
import type { TokenCredential } from '@azure/identity';
import type { PageBlobClient } from '@azure/storage-blob';
import type { AzuriteInstance } from '../../../testkit/azurite';
import { StaticTokenCredential } from '../../../core/vm/arm-context';
import { ArmError, readJson, Reply, send } from './arm-http';
import { Faults } from './faults';
import { Operations } from './lro';
import { resourceGraphQuery } from './resource-graph';
import { CONTAINER, ComputeResources, Consistency, Req } from './resources';
import { route } from './router';
import { standInCert, trustInThisProcess } from './tls';

export type StandInKind = 'snapshots' | 'restorePoints' | 'disks' | 'virtualMachines';

export interface StandInCall {
  method: string;
  path: string;
  status: number;
  op: string;
}

export interface AddVmSpec {
  resourceGroup: string;
  name: string;
  tags?: Record<string, string>;
  osDiskBytes: number;
  dataDisks?: { lun: number; bytes: number; sku?: string }[];
  location?: string;
  zone?: string;
  vmSize?: string;
  securityType?: string;
  ade?: boolean;
  diskEncryptionSetId?: string;
  /** Default true; false → restore point creation answers 409 OperationNotAllowed like a VM type without support. */
  restorePoints?: boolean;
  /** What a restore point obtains at best (default ApplicationConsistent). */
  consistency?: Consistency;
  /** OS disk SKU (default Premium_LRS). */
  osDiskSku?: string;
}

export interface ComputeStandIn {
  endpoint: string;
  token: string;
  subscriptionId: string;
  credential: TokenCredential;
  addVm(spec: AddVmSpec): Promise<{ vmId: string; disks: { lun: number | null; diskId: string; blob: PageBlobClient }[] }>;
  diskBlob(diskId: string): PageBlobClient;
  faults: {
    throttle(op: string, times: number, retryAfterSeconds?: number): void;
    fail(op: string, times: number, status?: number, code?: string): void;
  };
  calls(): StandInCall[];
  activeGrants(): string[];
  /** durationInSeconds of the latest read grant of a snapshot (by ARM ID), undefined when never granted. */
  grantSeconds(resourceId: string): number | undefined;
  /** Sets a snapshot's timeCreated (a test's way to age it past a grace). */
  backdateSnapshot(snapshotId: string, timeCreated: Date): void;
  resources(kind: StandInKind): { id: string; tags: Record<string, string>; properties: Record<string, unknown>; standIn?: Record<string, unknown> }[];
  stop(): Promise<void>;
}

/** The app settings that point an app's ARM calls at the stand-in, its long-running operations polled every 20 ms (not the SDK's 2 s). */
export function standInAppSettings(standin: Pick<ComputeStandIn, 'endpoint' | 'token'>): Record<string, string> {
  return { PAGEWISE_ARM_ENDPOINT: standin.endpoint, PAGEWISE_ARM_TOKEN: standin.token, PAGEWISE_ARM_POLL_MS: '20' };
}

export const STANDIN_SUBSCRIPTION = '00000000-0000-4000-8000-00000000c0de';

export interface StandInOptions {
  /** InProgress polls before an LRO succeeds (default 1). */
  inProgressPolls?: number;
}

export async function startComputeStandIn(az: AzuriteInstance, options: StandInOptions = {}): Promise<ComputeStandIn> {
  await az.accounts.src.service.getContainerClient(CONTAINER).createIfNotExists();
  const cert = standInCert();
  const token = randomBytes(24).toString('hex');
  const subscriptionId = STANDIN_SUBSCRIPTION;
  const log: StandInCall[] = [];
  const faults = new Faults();
  const server = https.createServer({ cert: cert.cert, key: cert.key });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const endpoint = `https://127.0.0.1:${port}`;
  const untrust = trustInThisProcess(port, cert.cert);
  const ops = new Operations(endpoint, subscriptionId, options.inProgressPolls ?? 1);
  const store = new ComputeResources(az, subscriptionId, ops);

  const handlers: Record<string, (r: Req) => Reply | Promise<Reply>> = {
    'virtualMachines.get': (r) => store.getVm(r),
    'virtualMachines.createOrUpdate': (r) => store.createVm(r),
    'virtualMachines.list': (r) => store.listVms(r),
    'virtualMachines.listAll': (r) => store.listVms(r),
    'disks.get': (r) => store.getDisk(r),
    'disks.createOrUpdate': (r) => store.createDisk(r),
    'disks.delete': (r) => store.deleteDisk(r),
    'disks.grantAccess': (r) => store.grantDisk(r),
    'disks.revokeAccess': (r) => store.revokeDisk(r),
    'snapshots.get': (r) => store.getSnapshot(r),
    'snapshots.createOrUpdate': (r) => store.createSnapshot(r),
    'snapshots.delete': (r) => store.deleteSnapshot(r),
    'snapshots.listByResourceGroup': (r) => store.listSnapshots(r),
    'snapshots.list': (r) => store.listSnapshots(r),
    'snapshots.grantAccess': (r) => store.grantSnapshot(r),
    'snapshots.revokeAccess': (r) => store.revokeSnapshot(r),
    'restorePointCollections.get': (r) => store.getCollection(r),
    'restorePointCollections.createOrUpdate': (r) => store.putCollection(r),
    'restorePointCollections.delete': (r) => store.deleteCollection(r),
    'restorePointCollections.list': (r) => store.listCollections(r),
    'restorePointCollections.listAll': (r) => store.listCollections(r),
    'restorePoints.get': (r) => store.getRestorePoint(r),
    'restorePoints.create': (r) => store.createRestorePoint(r),
    'restorePoints.delete': (r) => store.deleteRestorePoint(r),
    'diskRestorePoint.get': (r) => store.getDiskRestorePoint(r),
    'diskRestorePoint.listByRestorePoint': (r) => store.listDiskRestorePoints(r),
    'diskRestorePoint.grantAccess': (r) => store.grantDiskRestorePoint(r),
    'diskRestorePoint.revokeAccess': (r) => store.revokeDiskRestorePoint(r),
    'operations.poll': (r) => {
      const reply = ops.poll(r.params.operationId, r.query.get('monitor') === 'true');
      if (!reply) throw new ArmError(404, 'NotFound', `Operation ${r.params.operationId} was not found.`);
      return reply;
    },
    'resourceGraph.resources': (r) => resourceGraphQuery(r.body, store.vms.values()),
  };

  server.on('request', (req, res) => {
    const url = new URL(req.url ?? '/', endpoint);
    const found = route(req.method ?? 'GET', url.pathname);
    const op = found?.route.op ?? 'unknown';
    const answer = (reply: Reply) => {
      log.push({ method: req.method ?? '', path: url.pathname, status: reply.status, op });
      send(res, reply);
    };
    (async (): Promise<Reply> => {
      if (req.headers.authorization !== `Bearer ${token}`) {
        req.resume();
        return new ArmError(401, 'AuthenticationFailed', 'Authentication failed. The Authorization header is missing or its bearer token is not valid.', {
          'www-authenticate': 'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token"',
        }).reply();
      }
      const body = await readJson(req);
      if (!found) throw new ArmError(404, 'NotFound', `The stand-in has no route for ${req.method} ${url.pathname}.`);
      const apiVersion = url.searchParams.get('api-version');
      if (!apiVersion) throw new ArmError(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
      const sub = found.params.subscriptionId;
      if (sub !== undefined && sub.toLowerCase() !== subscriptionId) throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${sub}' could not be found.`);
      const fault = faults.take(op);
      if (fault) throw fault;
      if (req.method === 'PUT' && req.headers['if-none-match'] === '*' && store.exists(url.pathname)) {
        throw new ArmError(412, 'PreconditionFailed', `The resource ${url.pathname.split('/').pop()} exists and If-None-Match: * asked for a new one.`);
      }
      return handlers[op]({ method: req.method ?? '', params: found.params, query: url.searchParams, body, apiVersion });
    })()
      .catch((err: unknown) => {
        if (err instanceof ArmError) return err.reply();
        return new ArmError(500, 'InternalServerError', `stand-in: ${(err as Error)?.message ?? String(err)}`).reply();
      })
      .then(answer);
  });

  const kindOf = {
    virtualMachines: () => [...store.vms.values()].map((vm) => ({ json: store.vmJson(vm), standIn: undefined })),
    disks: () => [...store.disks.values()].map((d) => ({ json: store.diskJson(d), standIn: { blob: d.blob, vhdFooter: d.vhdFooter } })),
    snapshots: () => [...store.snapshots.values()].map((s) => ({ json: store.snapshotJson(s), standIn: { blob: s.blob, blobSnapshot: s.blobSnapshot } })),
    restorePoints: () => [...store.restorePoints.values()].map((p) => ({ json: store.restorePointJson(p), standIn: { diskRestorePoints: p.disks.map((d) => d.id) } })),
  };

  return {
    endpoint,
    token,
    subscriptionId,
    credential: new StaticTokenCredential(token),
    async addVm(spec) {
      const location = spec.location ?? 'westeurope';
      const common = {
        rg: spec.resourceGroup, location, zone: spec.zone, tags: {}, createOption: 'Empty', diskState: 'Attached',
        encryptionType: spec.diskEncryptionSetId ? 'EncryptionAtRestWithCustomerKey' : 'EncryptionAtRestWithPlatformKey',
        diskEncryptionSetId: spec.diskEncryptionSetId, ade: spec.ade === true, securityType: spec.securityType,
      };
      const vmId = store.id(spec.resourceGroup, 'virtualMachines', spec.name);
      if (store.vms.has(vmId.toLowerCase())) throw new Error(`stand-in: VM ${spec.name} exists`);
      const os = await store.newDisk({ ...common, name: `${spec.name}-osdisk`, sku: spec.osDiskSku ?? 'Premium_LRS', sizeBytes: spec.osDiskBytes, osType: 'Linux', hyperVGeneration: 'V2', createOption: 'FromImage', managedBy: vmId });
      const data = [];
      for (const dd of spec.dataDisks ?? []) {
        data.push({ lun: dd.lun, disk: await store.newDisk({ ...common, name: `${spec.name}-data${dd.lun}`, sku: dd.sku ?? 'Premium_LRS', sizeBytes: dd.bytes, managedBy: vmId }) });
      }
      store.vms.set(vmId.toLowerCase(), {
        id: vmId, name: spec.name, location, zone: spec.zone, vmSize: spec.vmSize ?? 'Standard_D2s_v5', tags: spec.tags ?? {},
        osDiskId: os.id, dataDisks: data.map((d) => ({ lun: d.lun, diskId: d.disk.id })),
        nics: [`/subscriptions/${subscriptionId}/resourceGroups/${spec.resourceGroup}/providers/Microsoft.Network/networkInterfaces/${spec.name}-nic`],
        securityType: spec.securityType, restorePoints: spec.restorePoints ?? true, consistency: spec.consistency ?? 'ApplicationConsistent',
        vmId: randomBytes(16).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5'), osType: 'Linux',
        imageReference: { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest' },
      });
      return {
        vmId,
        disks: [{ lun: null, diskId: os.id, blob: store.blobClient(os.blob) }, ...data.map((d) => ({ lun: d.lun as number | null, diskId: d.disk.id, blob: store.blobClient(d.disk.blob) }))],
      };
    },
    diskBlob(diskId) {
      return store.blobClient(store.disk(diskId).blob);
    },
    faults: {
      throttle: (op, times, retryAfterSeconds) => faults.throttle(op, times, retryAfterSeconds),
      fail: (op, times, status, code) => faults.fail(op, times, status, code),
    },
    calls: () => [...log],
    activeGrants: () => [...store.grants.values()],
    grantSeconds: (resourceId) => store.grantSeconds.get(resourceId.toLowerCase()),
    backdateSnapshot(snapshotId, timeCreated) {
      store.snapshot(snapshotId).timeCreated = timeCreated.toISOString();
    },
    resources(kind) {
      return kindOf[kind]().map(({ json, standIn }) => ({
        id: json.id as string,
        tags: (json.tags as Record<string, string> | undefined) ?? {},
        properties: json.properties as Record<string, unknown>,
        ...(standIn ? { standIn } : {}),
      }));
    },
    async stop() {
      untrust();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
