// Times one 256 MiB full backup (and an incremental with 3 % of pages changed) on Azurite for the tree at ROOT.
const ROOT = process.env.ROOT!;
(async () => {
  const { startAzurite } = require(`${ROOT}/testkit/azurite`);
  const { writeDisk } = require(`${ROOT}/testkit/sample-disk`);
  const core = require(`${ROOT}/core`);
  const az = await startAzurite({ accounts: ['src', 'vault'] });
  core.configureStorageEndpoints(az.storageEndpoints.split(','), 'PAGEWISE_STORAGE_ENDPOINTS');
  await az.accounts.src.service.getContainerClient('disks').create();
  await az.accounts.vault.service.getContainerClient('vault').create();
  const MiB = 1 << 20;
  const blob = az.accounts.src.service.getContainerClient('disks').getPageBlobClient('d.vhd');
  await writeDisk(blob, 256 * MiB, [
    { offset: 0, length: 96 * MiB, kind: 'text', seed: 1 },
    { offset: 96 * MiB, length: 96 * MiB, kind: 'random', seed: 2 },
    { offset: 192 * MiB, length: 32 * MiB, kind: 'repeat', seed: 3 },
    { offset: 224 * MiB, length: 32 * MiB, kind: 'text', seed: 4 },
  ]);
  const req = { source: { url: az.sasUrl('src', 'disks', 'd.vhd', { permissions: 'racwd' }) }, vault: { url: az.sasUrl('vault', 'vault') }, userKey: core.generateKey(), takeSnapshot: true, ...(process.env.CODEC ? { codec: process.env.CODEC } : {}), ...(process.env.PAGECHUNK ? { chunking: { scheme: 'page' } } : {}) };
  const t0 = Date.now();
  const full = await core.backupDisk(req);
  const t1 = Date.now();
  console.log(JSON.stringify({ root: ROOT, fullMs: t1 - t0, MiBps: (256 / ((t1 - t0) / 1000)).toFixed(1), bytesStored: full.bytesStored, storedBlocks: full.storedBlocks, threads: process.env.PAGEWISE_WORKER_THREADS ?? 'default' }));
  if (core.closeChunkPools) await core.closeChunkPools();
  await az.stop();
})().catch((e) => { console.error(e); process.exit(1); });
