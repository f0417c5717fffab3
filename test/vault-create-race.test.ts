/**
 * Making a version-2 vault on first use, raced and crashed (docs/FORMAT.md §12.1, #17): N first backups
 * into an empty container, a creator that stopped after the marker, and a hostile marker slot, on Azurite.
 */
import * as path from 'node:path';
import { backupDisk, generateKey, keyId, listBackups, openVaultKeyring, PagewiseError, restoreBackup, StorageLocation } from '../core';
import { Keyring, sealKeySlot, writeKeySlot } from '../core/repo/v2/keyring';
import { Vault } from '../core/repo/vault';
import { fileSha256, KiB, MiB, startEnv, TestEnv } from './harness/env';
import { runFleet } from './harness/fleet';

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => env?.stop());

const failureOf = (p: Promise<unknown>) => p.then(() => undefined, (err: unknown) => err as PagewiseError);

async function names(container: string): Promise<string[]> {
  const out: string[] = [];
  for await (const b of env.az.accounts.vault.service.getContainerClient(container).listBlobsFlat()) out.push(b.name);
  return out.sort();
}

const text = async (container: string, name: string) => (await env.az.accounts.vault.service.getContainerClient(container).getBlockBlobClient(name).downloadToBuffer()).toString();

/** `count` 1 MiB disks, each with its own 64 KiB random region, backed up at once into `vault`. */
async function firstBackupsAtOnce(vault: StorageLocation, prefix: string, count: number) {
  const disks = await Promise.all(Array.from({ length: count }, (_, i) => env.makeDisk(`${prefix}-${i}.vhd`, 1 * MiB, [{ offset: (i % 16) * 64 * KiB, length: 64 * KiB, kind: 'random', seed: 500 + i }])));
  const results = await Promise.all(disks.map((d) => backupDisk({ source: d.source, vault, userKey: env.userKey, pageSize: 64 * KiB, cacheBytes: 256 * KiB })));
  return disks.map((disk, i) => ({ disk, result: results[i] }));
}

async function expectRestoresIdentical(vault: StorageLocation, backups: Awaited<ReturnType<typeof firstBackupsAtOnce>>): Promise<void> {
  for (const { disk, result } of backups) {
    const file = path.join(env.tmp, `${result.backupId}.img`);
    await restoreBackup({ backupId: result.backupId, vault, userKey: env.userKey, target: { url: file } });
    expect(await fileSha256(file)).toBe(disk.sha256);
  }
}

test('8 first backups started at once into an empty container all succeed, share one marker and one slot, and restore byte-identical', async () => {
  const vault = await env.makeVault('race8');
  const backups = await firstBackupsAtOnce(vault, 'race8', 8);

  const all = await names('race8');
  expect(all.filter((n) => n.startsWith('keys/'))).toEqual([`keys/${keyId(env.userKey)}.0.json`]);
  expect(all.filter((n) => n.startsWith('pagewise-vault'))).toEqual(['pagewise-vault.json']);
  const marker = JSON.parse(await text('race8', 'pagewise-vault.json'));
  expect(marker.firstSlot).toEqual(JSON.parse(await text('race8', `keys/${keyId(env.userKey)}.0.json`)));
  expect((await openVaultKeyring(Vault.open(vault), env.userKey)).vaultId).toBe(marker.vaultId);
  expect((await listBackups(vault, { userKey: env.userKey })).map((b) => b.backupId).sort()).toEqual(backups.map((b) => b.result.backupId).sort());
  await expectRestoresIdentical(vault, backups);
});

test('a creator that stopped after its marker: the next backups open its keyring from the marker and write the slot; another key is WrongKey', async () => {
  const location = await env.makeVault('crashed');
  const vault = Vault.open(location);
  // What a creator leaves when it stops between its two writes (§12.1): the marker with its sealed slot, no keys/.
  const keyring = Keyring.create();
  const firstSlot = sealKeySlot(keyring, env.userKey);
  await vault.putNew('pagewise-vault.json', Buffer.from(JSON.stringify({ format: 'pagewise-vault', version: 2, vaultId: keyring.vaultId, createdAt: new Date().toISOString(), keyCheck: keyring.keyCheck(), firstSlot })));

  const other = generateKey();
  expect(await failureOf(openVaultKeyring(vault, other))).toMatchObject({ code: 'WrongKey', message: expect.stringContaining(`this key (key ID ${keyId(other)}) has no slot in this vault`) });
  expect(await names('crashed')).toEqual(['pagewise-vault.json']); // the refused key repaired nothing

  const backups = await firstBackupsAtOnce(location, 'crashed', 3);
  expect(await names('crashed')).toEqual(expect.arrayContaining([`keys/${keyId(env.userKey)}.0.json`, 'pagewise-vault.json']));
  expect(JSON.parse(await text('crashed', `keys/${keyId(env.userKey)}.0.json`))).toEqual(firstSlot); // the very slot, written once
  const opened = await openVaultKeyring(vault, env.userKey);
  expect(opened.slotPlaintext()).toEqual(keyring.slotPlaintext()); // the creator's keyring, not a new one
  await expectRestoresIdentical(location, backups);

  // Once keys/ holds a slot, the marker's copy no longer opens the vault: a revoked creator key stays out.
  await writeKeySlot(vault, opened, other);
  await env.az.accounts.vault.service.getContainerClient('crashed').getBlockBlobClient(`keys/${keyId(env.userKey)}.0.json`).delete();
  expect(await failureOf(openVaultKeyring(vault, env.userKey))).toMatchObject({ code: 'WrongKey' });
  expect((await openVaultKeyring(vault, other)).vaultId).toBe(keyring.vaultId);
});

test("a marker's firstSlot that is tampered or not an object is Corrupt naming it, and nothing is written", async () => {
  const keyring = Keyring.create();
  const slot = sealKeySlot(keyring, env.userKey);
  const tampered = { ...slot, ciphertext: Buffer.alloc(33, 7).toString('base64') };
  const cases: [string, unknown, RegExp][] = [
    ['slot-tampered', tampered, /the firstSlot of the vault marker in the vault .* fails authentication/],
    ['slot-array', [slot], /holds a firstSlot that is not a key slot object/],
  ];
  for (const [container, firstSlot, message] of cases) {
    const vault = Vault.open(await env.makeVault(container));
    await vault.putNew('pagewise-vault.json', Buffer.from(JSON.stringify({ format: 'pagewise-vault', version: 2, vaultId: keyring.vaultId, createdAt: new Date().toISOString(), keyCheck: keyring.keyCheck(), firstSlot })));
    expect(await failureOf(openVaultKeyring(vault, env.userKey))).toMatchObject({ code: 'Corrupt', message: expect.stringMatching(message) });
    expect(await names(container)).toEqual(['pagewise-vault.json']);
  }
});

test('through the local runtime: 8 queued first backups into an empty vault container all complete', async () => {
  const fleet = await runFleet({ disks: 8, budget: 8, emptyVault: true });
  expect(fleet.failures).toEqual([]);
  expect(fleet.completed).toBe(8);
  expect(fleet.manifests).toBe(8);
}, 600_000);
