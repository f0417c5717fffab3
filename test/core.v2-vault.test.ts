/**
 * Making, opening and upgrading a version-2 vault on Azurite (docs/FORMAT.md §12, §14): the marker race,
 * key slots, the upgrade of a version-1 vault, and the marker dispatch.
 */
import { createVaultV2, generateKey, initVault, keyId, openVaultKeyring, PagewiseError, readVaultMarker, upgradeVault } from '../core';
import { Vault } from '../core/repo/vault';
import { startEnv, TestEnv } from './harness/env';

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.stop();
});

const failureOf = (p: Promise<unknown>) => p.then(() => undefined, (err: unknown) => err as PagewiseError);

async function container(name: string, create = true): Promise<Vault> {
  if (create) await env.az.accounts.vault.service.getContainerClient(name).create();
  return Vault.open({ url: env.az.sasUrl('vault', name) });
}

async function names(name: string): Promise<string[]> {
  const out: string[] = [];
  for await (const b of env.az.accounts.vault.service.getContainerClient(name).listBlobsFlat()) out.push(b.name);
  return out.sort();
}

const blob = (containerName: string, name: string) => env.az.accounts.vault.service.getContainerClient(containerName).getBlockBlobClient(name);

test('two starts racing to make a vault with one key end with one marker, one slot and the same keyring; another key is WrongKey', async () => {
  const vault = await container('race');
  const key = generateKey();
  const [a, b] = await Promise.all([createVaultV2(vault, key), createVaultV2(vault, key)]);
  expect(a.vaultId).toBe(b.vaultId);
  expect(a.contentId(Buffer.from('x'))).toEqual(b.contentId(Buffer.from('x')));
  expect(await names('race')).toEqual([`keys/${keyId(key)}.0.json`, 'pagewise-vault.json']);
  const marker = JSON.parse((await blob('race', 'pagewise-vault.json').downloadToBuffer()).toString());
  const slot = JSON.parse((await blob('race', `keys/${keyId(key)}.0.json`).downloadToBuffer()).toString());
  // The marker carries the creator's sealed slot (§12.1); keys/ holds the same slot, byte for byte.
  expect(marker).toEqual({ format: 'pagewise-vault', version: 2, vaultId: a.vaultId, createdAt: expect.any(String), keyCheck: a.keyCheck(), firstSlot: slot });
  expect(slot).toEqual({ format: 'pagewise-key-slot', version: 2, vaultId: a.vaultId, keyId: keyId(key), epoch: 0, createdAt: expect.any(String), kdf: 'none', nonce: expect.any(String), ciphertext: expect.any(String), tag: expect.any(String) });
  expect(Buffer.from(slot.ciphertext, 'base64')).toHaveLength(33); // epoch byte + M_0

  expect((await openVaultKeyring(vault, key)).keyCheck()).toBe(a.keyCheck());
  const other = generateKey();
  expect(await failureOf(openVaultKeyring(vault, other))).toMatchObject({ code: 'WrongKey', message: `this key (key ID ${keyId(other)}) has no slot in this vault ${vault.display}; use a key that was added to it` });
  expect(await failureOf(createVaultV2(vault, other))).toMatchObject({ code: 'WrongKey' });
  expect(await names('race')).toHaveLength(2); // the refused key wrote nothing
});

test('a slot that opens to another keyring than the marker names is Corrupt', async () => {
  const vault = await container('swapped-slot');
  const key = generateKey();
  await createVaultV2(vault, key);
  const marker = JSON.parse((await blob('swapped-slot', 'pagewise-vault.json').downloadToBuffer()).toString());
  // Another vault's slot for the same key, made under this vault's ID (one holding the key and write access could): the key check catches it.
  const elsewhere = await container('swapped-source');
  await elsewhere.putNew('pagewise-vault.json', Buffer.from(JSON.stringify({ ...marker, keyCheck: '0'.repeat(32) })));
  const keys = await names('swapped-slot');
  await elsewhere.putNew(keys[0], await vault.getBytes(keys[0]));
  expect(await failureOf(openVaultKeyring(elsewhere, key))).toMatchObject({ code: 'Corrupt', message: expect.stringContaining("opens to a keyring that is not this vault's") });
});

test('init with a key makes a version-2 vault; without one it makes only the container; a version-1 vault is left alone', async () => {
  const key = generateKey();
  const bare = { url: `${env.az.accounts.vault.endpoint}/init-bare`, connectionString: env.az.accounts.vault.connectionString }; // may create containers
  expect(await initVault(bare)).toEqual({ containerCreated: true, markerWritten: false });
  expect(await names('init-bare')).toEqual([]);
  expect(await initVault(bare, { userKey: key })).toEqual({ containerCreated: false, markerWritten: true });
  expect(await initVault(bare, { userKey: key })).toEqual({ containerCreated: false, markerWritten: false });
  expect(await readVaultMarker(Vault.open(bare))).toMatchObject({ version: 2 });
  expect(await failureOf(initVault(bare, { userKey: generateKey() }))).toMatchObject({ code: 'WrongKey' });

  const v1 = await container('init-v1');
  await v1.requireForBackup(); // the version-1 writer's marker
  expect(await initVault({ url: env.az.sasUrl('vault', 'init-v1') }, { userKey: key })).toEqual({ containerCreated: false, markerWritten: false });
  expect(await names('init-v1')).toEqual(['pagewise-vault.json']);
  expect(await v1.markerVersion()).toBe(1);
});

test('upgrade writes pagewise-vault-v2.json and a slot into a version-1 vault and leaves pagewise-vault.json as it was', async () => {
  const vault = await container('upgrade');
  await vault.requireForBackup();
  const v1Marker = blob('upgrade', 'pagewise-vault.json');
  const before = await v1Marker.getProperties();
  const v1Bytes = await v1Marker.downloadToBuffer();
  const key = generateKey();
  expect(await failureOf(openVaultKeyring(vault, key))).toMatchObject({ code: 'BadInput', message: `${vault.display} is a version-1 vault (pagewise upgrade makes it version 2)` });

  expect(await upgradeVault(vault, key)).toEqual({ upgraded: true });
  expect(await names('upgrade')).toEqual([`keys/${keyId(key)}.0.json`, 'pagewise-vault-v2.json', 'pagewise-vault.json']);
  expect((await v1Marker.getProperties()).etag).toBe(before.etag);
  expect(await v1Marker.downloadToBuffer()).toEqual(v1Bytes);
  const keyring = await openVaultKeyring(vault, key);
  expect(JSON.parse((await blob('upgrade', 'pagewise-vault-v2.json').downloadToBuffer()).toString())).toEqual({ format: 'pagewise-vault', version: 2, vaultId: keyring.vaultId, createdAt: expect.any(String), keyCheck: keyring.keyCheck(), upgradedFrom: 1, firstSlot: expect.objectContaining({ keyId: keyId(key), epoch: 0 }) });
  expect(await readVaultMarker(vault)).toEqual({ version: 2, vaultId: keyring.vaultId, createdAt: expect.any(String), keyCheck: keyring.keyCheck(), upgradedFrom: 1, firstSlot: expect.any(Object) });
  expect(await vault.markerVersion()).toBe(2);

  expect(await upgradeVault(vault, key)).toEqual({ upgraded: false });
  expect(await failureOf(upgradeVault(vault, generateKey()))).toMatchObject({ code: 'WrongKey' });
  // This Pagewise writes no version-1 backup into a vault it upgraded.
  expect(await failureOf(vault.requireForBackup())).toMatchObject({ code: 'BadInput', message: `${vault.display} holds a pagewise-vault.json of format "pagewise-vault" version 2; this step writes pagewise-vault version 1` });
});

test('the marker dispatch refuses a newer version, a foreign format and a malformed version-2 marker', async () => {
  const cases: [string, string, unknown, string, string][] = [
    ['marker-v3', 'pagewise-vault.json', { format: 'pagewise-vault', version: 3 }, 'BadInput', 'holds a pagewise-vault.json of version 3: written by a newer Pagewise (this one reads vault versions 1 and 2)'],
    ['marker-v3-up', 'pagewise-vault-v2.json', { format: 'pagewise-vault', version: 3 }, 'BadInput', 'holds a pagewise-vault-v2.json of version 3: written by a newer Pagewise'],
    ['marker-foreign', 'pagewise-vault.json', { format: 'restic', version: 2 }, 'BadInput', 'is not a Pagewise vault: its pagewise-vault.json has format "restic"'],
    ['marker-v1-as-v2', 'pagewise-vault-v2.json', { format: 'pagewise-vault', version: 1 }, 'BadInput', 'holds a pagewise-vault-v2.json of version 1'],
    ['marker-bad-v2', 'pagewise-vault.json', { format: 'pagewise-vault', version: 2 }, 'Corrupt', 'the vault marker pagewise-vault.json of'],
  ];
  for (const [name, file, body, code, message] of cases) {
    const vault = await container(name);
    await vault.putNew(file, Buffer.from(JSON.stringify(body)));
    const err = await failureOf(readVaultMarker(vault));
    expect({ name, code: err?.code }).toEqual({ name, code });
    expect(err?.message).toContain(message);
    expect(await failureOf(openVaultKeyring(vault, generateKey()))).toMatchObject({ code });
  }
  expect(await failureOf((await container('marker-v3', false)).probe())).toMatchObject({ code: 'BadInput' });
  expect(await failureOf(readVaultMarker(await container('marker-none')))).toMatchObject({ code: 'VaultNotFound' });
});
