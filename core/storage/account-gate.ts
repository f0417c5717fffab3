/**
 * Per-account request limits: every backup, restore and verify in this process shares one gate per
 * storage account, so two disks of one account backed up side by side stay within a fixed number of
 * data requests in flight to it (Azure throttles an account past its request-rate target, and a page
 * blob past ~500 requests/s). A request holds its place until its body is fully read or written.
 */
import { Limiter } from '../concurrency';
import { PagewiseError } from '../errors';
import { REQUESTS_PER_ACCOUNT, withinBounds } from '../limits';

export const DEFAULT_REQUESTS_PER_ACCOUNT = REQUESTS_PER_ACCOUNT.default;

const gates = new Map<string, Limiter>();
let limit = DEFAULT_REQUESTS_PER_ACCOUNT;

function keyOf(host: string, account: string): string {
  return `${host.toLowerCase()}/${account.toLowerCase()}`;
}

/** The gate of one account (by endpoint host and account name). */
export function accountGate(host: string, account: string): Limiter {
  const key = keyOf(host, account);
  let gate = gates.get(key);
  if (!gate) gates.set(key, (gate = new Limiter(limit)));
  return gate;
}

/** Sets the limit for every account (e.g. from PAGEWISE_REQUESTS_PER_ACCOUNT); applies to new and existing gates. */
export function setRequestsPerAccount(value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`requests per account must be a positive whole number, got ${value}`);
  limit = value;
  for (const gate of gates.values()) gate.limit = value;
}

/** The most requests that were ever in flight to an account at once (tests and benches read this). */
export function accountHighWater(host: string, account: string): number {
  return gates.get(keyOf(host, account))?.highWater ?? 0;
}

/** Applies PAGEWISE_REQUESTS_PER_ACCOUNT from an environment map, when set; bad values are refused. */
export function configureRequestsPerAccount(env: Record<string, string | undefined>): void {
  const raw = env.PAGEWISE_REQUESTS_PER_ACCOUNT?.trim();
  if (!raw) return;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !withinBounds(value, REQUESTS_PER_ACCOUNT)) {
    throw new PagewiseError('BadInput', `PAGEWISE_REQUESTS_PER_ACCOUNT "${raw.slice(0, 20)}" must be a whole number from ${REQUESTS_PER_ACCOUNT.min} to ${REQUESTS_PER_ACCOUNT.max}`);
  }
  setRequestsPerAccount(value);
}
