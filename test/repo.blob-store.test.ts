/**
 * The vault's blob store and its wrappers (core/repo/store): errors come out named, and every request —
 * commitBlockList included — passes the account's request gate and the retry wrapper.
 */
import { configureStorageEndpoints, isPagewiseError } from '../core';
import { BlobAlreadyExistsError, BlobNotFoundError, ContainerNotFoundError } from '../core/repo/store/blob-store';
import { Vault } from '../core/repo/vault';
import { accountHighWater } from '../core/storage/account-gate';
import { vaultContainerClient } from '../core/storage/clients';
import { FaultProxy, startFaultProxy } from './harness/fault-proxy';
import { startEnv, TestEnv } from './harness/env';

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.stop();
});

const failureOf = (p: Promise<unknown>) => p.then(() => undefined, (err: unknown) => err);

test('a missing blob, a missing container and a blob that exists already fail with named errors', async () => {
  const vault = Vault.open(env.vault);
  const missing = await failureOf(vault.properties('nothing/here.json'));
  expect(missing).toBeInstanceOf(BlobNotFoundError);
  expect(missing).toMatchObject({ code: 'BackupNotFound', message: `nothing/here.json in the vault ${env.vault.url.split('?')[0]} was not found (BlobNotFound)` });

  const elsewhere = Vault.open({ url: env.az.sasUrl('vault', 'no-such-container') });
  const noContainer = await failureOf(elsewhere.getBytes('x.json'));
  expect(noContainer).toBeInstanceOf(ContainerNotFoundError);
  expect(isPagewiseError(noContainer, 'VaultNotFound')).toBe(true);
  expect(await elsewhere.probe()).toBe('missing');

  await vault.store.putBytes('store-test/once.json', Buffer.from('{}'), { ifNotExists: true });
  const again = await failureOf(vault.store.putBytes('store-test/once.json', Buffer.from('{"x":1}'), { ifNotExists: true }));
  expect(again).toBeInstanceOf(BlobAlreadyExistsError);
  expect((await vault.getBytes('store-test/once.json')).toString()).toBe('{}'); // never written over
});

test('delete tells deleted from already gone; a detailed listing gives each blob its size and creation time', async () => {
  const vault = Vault.open(env.vault);
  const before = Date.now() - 60_000; // Azurite's clock is this machine's; a minute of slack
  await vault.putNew('store-test/del/a.bin', Buffer.alloc(1234, 1));
  await vault.putNew('store-test/del/b.bin', Buffer.alloc(10, 2));
  const listed = [];
  for await (const b of vault.listDetailed('store-test/del/')) listed.push(b);
  expect(listed.map((b) => [b.name, b.contentLength])).toEqual([['store-test/del/a.bin', 1234], ['store-test/del/b.bin', 10]]);
  for (const b of listed) {
    expect(b.createdOn.getTime()).toBeGreaterThan(before);
    expect(b.lastModified.getTime()).toBeGreaterThanOrEqual(b.createdOn.getTime() - 1000);
  }
  expect(await vault.delete('store-test/del/a.bin')).toBe('deleted');
  expect(await vault.delete('store-test/del/a.bin')).toBe('missing'); // a rerun finds its own work done
  expect(await vault.exists('store-test/del/a.bin')).toBe(false);
  expect(await vault.exists('store-test/del/b.bin')).toBe(true);
});

describe('through a proxy that answers 503 ServerBusy', () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    // Seed 131 at rate 0.5: the first six requests are throttled — all the tries of the SDK's own
    // retry policy (maxTries 6) — and the seventh goes through: only the repository's retry gets there.
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: env.az.port }, seed: 131, rate: 0.5, kinds: ['throttle'] });
    const direct = env.az.storageEndpoints.split(',');
    configureStorageEndpoints([...direct, ...direct.map((e) => proxy.via(e))], 'PAGEWISE_STORAGE_ENDPOINTS');
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  test('a commitBlockList past the SDK retries is retried by the wrapper, through the gate, and succeeds', async () => {
    const blob = 'store-test/committed.seg';
    const direct = Vault.open(env.vault);
    await direct.stageBlock(blob, Buffer.from('block-a').toString('base64'), Buffer.from('AAAA'));
    await direct.stageBlock(blob, Buffer.from('block-b').toString('base64'), Buffer.from('BBBB'));

    const viaProxy = Vault.open({ url: proxy.via(env.vault.url) });
    await viaProxy.commitBlocks(blob, [Buffer.from('block-a').toString('base64'), Buffer.from('block-b').toString('base64')]);

    expect(proxy.stats.faults.throttle).toBe(6);
    expect(proxy.stats.requests).toBe(7);
    // Requests the SDK re-sent keep their client request ID; the wrapper's new try has a new one.
    expect(proxy.stats.requests - proxy.stats.retries).toBe(2);
    expect(accountHighWater(new URL(proxy.via(env.vault.url)).host, 'vault')).toBe(1);
    const content = await vaultContainerClient(env.vault).client.getBlobClient(blob).downloadToBuffer();
    expect(content.toString()).toBe('AAAABBBB');
  }, 60_000);
});
