/**
 * #18 auth, the principal alone (no storage involved): role implication, and whose principal header is
 * believed in which mode — keys mode ignores a header a key holder made up (it must not put another name
 * in the audit log), a serve session's principal counts only in the process of `pagewise serve`.
 */
import { HttpRequest } from '@azure/functions';
import { encodeClientPrincipal, KEY_PRINCIPAL, principalOf, requireRole, trustServeSessionPrincipals } from '../functions/auth/principal';
import { grants, withImplied } from '../functions/auth/roles';
import { denialLine, denialOf } from '../functions/auth/denials';
import { ProblemError } from '../functions/problems';
import { useAppSettings } from '../functions/settings';

afterAll(() => useAppSettings(undefined));

const request = (principal?: string) => new HttpRequest({ method: 'GET', url: 'http://127.0.0.1/api/me', headers: principal === undefined ? {} : { 'x-ms-client-principal': principal } });
const entra = encodeClientPrincipal({ id: 'oid-mallory', name: 'Mallory', roles: ['reader'] }, 'aad');
const session = encodeClientPrincipal({ id: 'serve:operator', name: 'operator (pagewise serve sign-in)', roles: ['operator'] });

function problemOf(fn: () => unknown): { status: number; title: string; detail: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProblemError) return { status: err.status, title: err.title, detail: err.message };
    throw err;
  }
  throw new Error('no problem raised');
}

test('role implication: admin holds all four, operator and restorer hold reader, nothing else is implied', () => {
  expect(withImplied(['admin'])).toEqual(['reader', 'operator', 'restorer', 'admin']);
  expect(withImplied(['operator'])).toEqual(['reader', 'operator']);
  expect(withImplied(['restorer', 'reader'])).toEqual(['reader', 'restorer']);
  expect(grants(['operator'], 'restorer')).toBe(false);
  expect(grants(['restorer'], 'operator')).toBe(false);
  expect(grants(['reader'], 'reader')).toBe(true);
  expect(grants([], 'reader')).toBe(false);
});

test('before serve trusts its sessions: keys mode ignores any principal a key holder sends; entra mode refuses a serve-shaped one', () => {
  useAppSettings({ PAGEWISE_AUTH: 'keys' });
  expect(principalOf(request())).toBe(KEY_PRINCIPAL);
  expect(principalOf(request(entra))).toBe(KEY_PRINCIPAL);
  expect(principalOf(request(session))).toBe(KEY_PRINCIPAL);
  expect(problemOf(() => principalOf(request('%%%'))).title).toBe('MalformedPrincipal');
  useAppSettings({ PAGEWISE_AUTH: 'entra' });
  expect(principalOf(request())).toBeUndefined();
  expect(principalOf(request(entra))).toEqual({ id: 'oid-mallory', name: 'Mallory', roles: ['reader'], via: 'entra' });
  expect(problemOf(() => principalOf(request(session)))).toEqual({ status: 401, title: 'MalformedPrincipal', detail: 'the x-ms-client-principal header names a pagewise serve session outside pagewise serve; sign in again' });
  expect(problemOf(() => requireRole(request(), 'reader'))).toMatchObject({ status: 401, title: 'SignInRequired' });
  expect(problemOf(() => requireRole(request(entra), 'operator'))).toMatchObject({ status: 403, title: 'Forbidden', detail: 'this needs the operator role (Entra app role Pagewise.Operator); you have reader' });
});

test('every refusal of requireRole carries its denial — unsigned and malformed (401) without a principal, 403 with who — and its log line names no header value', () => {
  useAppSettings({ PAGEWISE_AUTH: 'entra' });
  const denialFrom = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return denialOf(err);
    }
    throw new Error('no refusal');
  };
  expect(denialFrom(() => requireRole(request(), 'reader'))).toEqual({ status: 401, reason: 'SignInRequired', neededRole: 'reader' });
  const forged = Buffer.from(JSON.stringify({ auth_typ: 'aad', claims: 'eyJhbGciOiJIUzI1NiJ9.secret-token' }), 'utf8').toString('base64');
  expect(denialFrom(() => requireRole(request(forged), 'admin'))).toEqual({ status: 401, reason: 'MalformedPrincipal', neededRole: 'admin' });
  const refused = denialFrom(() => requireRole(request(entra), 'operator'))!;
  expect(refused).toEqual({ status: 403, reason: 'Forbidden', neededRole: 'operator', principal: { id: 'oid-mallory', name: 'Mallory', via: 'entra' } });
  expect(denialLine(refused, { functionName: 'startBackup', invocationId: 'inv-1' })).toBe('access denied: startBackup (invocation inv-1) refused "Mallory" (id oid-mallory, via entra): 403 Forbidden, needs operator');
  expect(denialLine({ status: 401, reason: 'MalformedPrincipal', neededRole: 'admin' }, { functionName: 'listAudit', invocationId: 'inv-2' })).toBe('access denied: listAudit (invocation inv-2) refused a caller with no readable principal: 401 MalformedPrincipal, needs admin');
});

test('in serve (trusted): a session principal is the caller in either mode', () => {
  trustServeSessionPrincipals();
  for (const mode of ['keys', 'entra']) {
    useAppSettings({ PAGEWISE_AUTH: mode });
    expect(principalOf(request(session))).toEqual({ id: 'serve:operator', name: 'operator (pagewise serve sign-in)', roles: ['reader', 'operator'], via: 'session' });
    expect(requireRole(request(session), 'operator').id).toBe('serve:operator');
  }
  useAppSettings({ PAGEWISE_AUTH: 'keys' });
  expect(principalOf(request(entra))).toBe(KEY_PRINCIPAL);
});
