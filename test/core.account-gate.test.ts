/** The per-account request gate (core/storage/account-gate.ts). */
test('the per-account request gate holds requests past its limit and refuses a bad setting', async () => {
  const { accountGate, setRequestsPerAccount, DEFAULT_REQUESTS_PER_ACCOUNT, configureRequestsPerAccount } = require('../core/storage/account-gate') as typeof import('../core/storage/account-gate');
  setRequestsPerAccount(2);
  const gate = accountGate('unit.test', 'acct');
  const release: Array<() => void> = [];
  const started: number[] = [];
  const jobs = [0, 1, 2, 3].map((k) => gate.run(() => new Promise<void>((resolve) => { started.push(k); release.push(resolve); })));
  await new Promise((r) => setTimeout(r, 10));
  expect(started).toEqual([0, 1]);
  release.shift()!();
  await new Promise((r) => setTimeout(r, 10));
  expect(started).toEqual([0, 1, 2]);
  while (release.length) release.shift()!();
  await new Promise((r) => setTimeout(r, 10));
  while (release.length) release.shift()!();
  await Promise.all(jobs);
  expect(gate.highWater).toBe(2);
  setRequestsPerAccount(DEFAULT_REQUESTS_PER_ACCOUNT);
  expect(() => configureRequestsPerAccount({ PAGEWISE_REQUESTS_PER_ACCOUNT: 'lots' })).toThrow(/PAGEWISE_REQUESTS_PER_ACCOUNT "lots"/);
});
