/**
 * Who is calling: the principal App Service authentication (EasyAuth) puts in `x-ms-client-principal`
 * (base64 JSON `{auth_typ, claims: [{typ, val}], name_typ, role_typ}`) — or, locally, the one `pagewise
 * serve` injects for a session — and requireRole, the first thing every API handler calls.
 */
import type { HttpRequest } from '@azure/functions';
import { ProblemError } from '../problems';
import type { Env } from '../settings';
import { authMode } from './authMode';
import { withDenial } from './denials';
import { ENTRA_ROLE_VALUES, grants, Role, roleOfEntraValue, withImplied } from './roles';

export type { Role } from './roles';

export interface Principal {
  /** A stable identifier (Entra object ID, or `serve:<role>` for a local session); never a secret. */
  id: string;
  name: string;
  /** The roles granted, implied ones included (an admin has all four). */
  roles: Role[];
  via: 'key' | 'entra' | 'session';
}

export const PRINCIPAL_HEADER = 'x-ms-client-principal';
/** The auth_typ `pagewise serve` gives the principals of its sessions. */
export const SERVE_AUTH_TYPE = 'pagewise-serve';
/** EasyAuth's principal is a few KiB at most; anything far larger is refused unparsed. */
const MAX_PRINCIPAL_CHARS = 32 * 1024;
const MAX_CLAIMS = 500;
const ROLE_CLAIM_TYPES = ['roles', 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role'];
const NAME_CLAIM_TYPES = ['name', 'preferred_username', 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name', 'email'];
const ID_CLAIM_TYPES = ['http://schemas.microsoft.com/identity/claims/objectidentifier', 'oid', 'sub'];

/** The principal as App Service authentication sends it. */
export interface ClientPrincipal {
  auth_typ: string;
  claims: Array<{ typ: string; val: string }>;
  name_typ: string;
  role_typ: string;
}

/** The caller holding a function key in keys mode (the host checked the key before the handler ran). */
export const KEY_PRINCIPAL: Principal = Object.freeze({ id: 'function-key', name: 'function key', roles: withImplied(['admin']), via: 'key' }) as Principal;

/**
 * Whether this process is `pagewise serve`, whose sessions' principals (auth_typ pagewise-serve) serve
 * itself injects after stripping the caller's. Set by serve at start; never in Azure, where such a header
 * can only be a caller's forgery.
 */
let serveSessionsTrusted = false;
export function trustServeSessionPrincipals(): void {
  serveSessionsTrusted = true;
}

/**
 * The caller of this request. A principal header is parsed in both modes (malformed: 401, never a 500).
 * keys mode: the host's key check passed, so the caller is the key holder (every role) — but for a serve
 * session's principal under serve; any other header is the key holder's own and is ignored (it must not
 * name someone else in the audit log). entra mode: App Service authentication's principal; none means
 * nobody signed in (undefined).
 */
export function principalOf(request: HttpRequest): Principal | undefined {
  const header = request.headers.get(PRINCIPAL_HEADER);
  const keys = authMode() === 'keys';
  if (!keys) assertAuthenticationInFront();
  if (header === null || header === '') return keys ? KEY_PRINCIPAL : undefined;
  const parsed = parseClientPrincipal(header);
  const session = parsed.auth_typ === SERVE_AUTH_TYPE;
  if (session && !serveSessionsTrusted) {
    if (keys) return KEY_PRINCIPAL;
    throw new ProblemError(401, 'MalformedPrincipal', `the ${PRINCIPAL_HEADER} header names a pagewise serve session outside pagewise serve; sign in again`);
  }
  if (keys && !session) return KEY_PRINCIPAL;
  const claim = (types: string[]) => parsed.claims.find((c) => types.includes(c.typ))?.val;
  const roleTypes = new Set([parsed.role_typ, ...ROLE_CLAIM_TYPES]);
  const assigned = parsed.claims.filter((c) => roleTypes.has(c.typ)).map((c) => roleOfEntraValue(c.val)).filter((r): r is Role => r !== undefined);
  const id = request.headers.get(`${PRINCIPAL_HEADER}-id`) || claim(ID_CLAIM_TYPES) || claim([parsed.name_typ, ...NAME_CLAIM_TYPES]) || 'unknown';
  const name = claim([parsed.name_typ, ...NAME_CLAIM_TYPES]) || request.headers.get(`${PRINCIPAL_HEADER}-name`) || id;
  return { id: clip(id), name: clip(name), roles: withImplied(assigned), via: session ? 'session' : 'entra' };
}

/**
 * entra mode fails closed: the API routes are anonymous to the host, so on an App Service app WITHOUT App
 * Service authentication anyone could send a principal header naming themselves admin. The platform sets
 * WEBSITE_SITE_NAME on every App Service app and WEBSITE_AUTH_ENABLED=True when authentication is on; an
 * app that has the first and not the second refuses every call (503) instead of trusting the header.
 * Read from the process environment: the platform sets them there, never in app settings a local runtime is handed.
 */
export function assertAuthenticationInFront(env: Env = process.env): void {
  if (env.WEBSITE_SITE_NAME && env.WEBSITE_AUTH_ENABLED?.trim().toLowerCase() !== 'true') {
    throw new ProblemError(503, 'AuthenticationNotEnabled', 'PAGEWISE_AUTH is entra but App Service authentication is not enabled on this app, so no caller can be trusted: enable it (infra/README.md) or set PAGEWISE_AUTH=keys');
  }
}

/** The principal, or 401 SignInRequired. For routes any signed-in caller may use (GET /api/me). */
export function requireSignedIn(request: HttpRequest, neededRole = 'signed-in'): Principal {
  let principal: Principal | undefined;
  try {
    principal = principalOf(request);
  } catch (err) {
    // A malformed principal is a refusal too (logged as one where it is answered: functions/auth/denials.ts).
    throw err instanceof ProblemError ? withDenial(err, { status: 401, reason: err.title, neededRole }) : err;
  }
  if (!principal) throw withDenial(new ProblemError(401, 'SignInRequired', 'sign in first: this API needs a signed-in user (App Service authentication)'), { status: 401, reason: 'SignInRequired', neededRole });
  return principal;
}

/** The caller if it has `role` (or a role implying it); else 401 (nobody signed in) or 403 naming the role needed. */
export function requireRole(request: HttpRequest, role: Role): Principal {
  const principal = requireSignedIn(request, role);
  if (!grants(principal.roles, role)) {
    const has = principal.roles.length > 0 ? `you have ${principal.roles.join(', ')}` : 'you have no Pagewise role';
    const refusal = new ProblemError(403, 'Forbidden', `this needs the ${role} role (Entra app role ${ENTRA_ROLE_VALUES[role]}); ${has}`, { neededRole: role });
    throw withDenial(refusal, { status: 403, reason: 'Forbidden', neededRole: role, principal: { id: principal.id, name: principal.name, via: principal.via } });
  }
  return principal;
}

/** Decodes and checks the header's shape; anything else is a 401 saying what is wrong (not the value). */
export function parseClientPrincipal(header: string): ClientPrincipal {
  const bad = (why: string) => new ProblemError(401, 'MalformedPrincipal', `the ${PRINCIPAL_HEADER} header is not a principal App Service authentication sends (${why}); sign in again`);
  if (header.length > MAX_PRINCIPAL_CHARS) throw bad(`longer than ${MAX_PRINCIPAL_CHARS} characters`);
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(header.trim())) throw bad('not base64');
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(header.trim(), 'base64').toString('utf8')) as unknown;
  } catch {
    throw bad('not base64 JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('not a JSON object');
  const p = value as Record<string, unknown>;
  if (typeof p.auth_typ !== 'string' || p.auth_typ === '') throw bad('no auth_typ');
  if (!Array.isArray(p.claims) || p.claims.length > MAX_CLAIMS) throw bad(`claims must be an array of at most ${MAX_CLAIMS}`);
  for (const c of p.claims as unknown[]) {
    if (typeof c !== 'object' || c === null || typeof (c as { typ?: unknown }).typ !== 'string' || typeof (c as { val?: unknown }).val !== 'string') throw bad('a claim is not {typ, val} strings');
  }
  const nameTyp = typeof p.name_typ === 'string' ? p.name_typ : NAME_CLAIM_TYPES[0];
  const roleTyp = typeof p.role_typ === 'string' ? p.role_typ : ROLE_CLAIM_TYPES[0];
  return { auth_typ: p.auth_typ, claims: p.claims as ClientPrincipal['claims'], name_typ: nameTyp, role_typ: roleTyp };
}

/** The header value for a principal, in EasyAuth's shape (what serve injects for a session). */
export function encodeClientPrincipal(principal: { id: string; name: string; roles: readonly Role[] }, authType = SERVE_AUTH_TYPE): string {
  const body: ClientPrincipal = {
    auth_typ: authType,
    claims: [
      { typ: ID_CLAIM_TYPES[0], val: principal.id },
      { typ: 'name', val: principal.name },
      ...principal.roles.map((r) => ({ typ: 'roles', val: ENTRA_ROLE_VALUES[r] })),
    ],
    name_typ: 'name',
    role_typ: 'roles',
  };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64');
}

/** Names and IDs end up in responses, logs and the audit log: bounded, without control characters. */
function clip(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 256 ? `${clean.slice(0, 256)}…` : clean;
}
