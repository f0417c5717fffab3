/**
 * The `/.auth/*` endpoints of `pagewise serve` (login with a role token, logout, me — EasyAuth's paths),
 * and what serve does to an API request's identity headers as App Service authentication does: the
 * caller's own `x-ms-client-principal*` (and token) headers are dropped, a session's principal injected.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { encodeClientPrincipal, PRINCIPAL_HEADER, SERVE_AUTH_TYPE } from '../functions/auth/principal';
import { ENTRA_ROLE_VALUES, Role } from '../functions/auth/roles';
import { nestsTooDeep } from '../functions/http/jsonDepth';
import { checkContentType, hasBody, JSON_TYPES, readLimitedBody, RequestRefused } from './requestGuards';
import type { ServeContext } from './serve';
import { clearedSessionCookie, Session, sessionCookie, sessionCookieOf } from './serveSessions';

export const SAFE_METHODS = new Set(['GET', 'HEAD']);
const SIGN_IN_PREFIX = '/.auth/';
/** A sign-in body is `{"token": "<43 characters>"}`. */
const MAX_LOGIN_BODY_BYTES = 1024;
/** Request headers the caller may not set: the identity App Service authentication (here: serve) vouches for. */
const IDENTITY_HEADER = /^(x-ms-client-principal|x-ms-token-)/;

export function isSignInPath(path: string): boolean {
  return path.startsWith(SIGN_IN_PREFIX);
}

/** The request's headers minus the key, the cookie, and every identity header the caller sent. */
export function withoutCallerIdentity(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === 'x-functions-key' || name === 'cookie' || IDENTITY_HEADER.test(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

/** A session's principal as App Service authentication hands it to the function. */
export function principalHeaders(session: Session): Record<string, string> {
  const who = sessionPrincipal(session.role);
  return {
    [PRINCIPAL_HEADER]: encodeClientPrincipal({ id: who.id, name: who.name, roles: [session.role] }),
    [`${PRINCIPAL_HEADER}-id`]: who.id,
    [`${PRINCIPAL_HEADER}-name`]: who.name,
    [`${PRINCIPAL_HEADER}-idp`]: SERVE_AUTH_TYPE,
  };
}

/** Sessions are per role, not per person: serve has no user directory. The ID names the role, never the token. */
function sessionPrincipal(role: Role): { id: string; name: string } {
  return { id: `serve:${role}`, name: `${role} (pagewise serve sign-in)` };
}

/** 403 unless the request names this server as its Origin (a browser sends it on every POST and DELETE). */
export function requireOwnOrigin(req: IncomingMessage, hosts: Set<string>): void {
  const origin = req.headers.origin;
  if (origin === undefined || !origin.startsWith('http://') || !hosts.has(origin.slice('http://'.length).toLowerCase())) {
    throw new RequestRefused(403, 'OriginRequired', "a request that changes something with a sign-in cookie must carry this server's Origin header (send it from the portal's page, or use the key)");
  }
}

/** POST /.auth/login {token}, POST /.auth/logout, GET /.auth/me. */
export async function answerSignIn(ctx: ServeContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const method = req.method ?? 'GET';
  const endpoint = url.pathname.slice(SIGN_IN_PREFIX.length);
  const allowed = endpoint === 'me' ? 'GET' : endpoint === 'login' || endpoint === 'logout' ? 'POST' : undefined;
  if (!allowed) throw new RequestRefused(404, 'NotFound', 'nothing is served at this path (sign in with POST /.auth/login)');
  if (method !== allowed) throw new RequestRefused(405, 'MethodNotAllowed', `use ${allowed}`, { Allow: allowed });
  if (url.search !== '') throw new RequestRefused(400, 'BadQuery', `/.auth/${endpoint} takes no query (a token in a URL ends up in logs)`);
  const cookie = sessionCookieOf(typeof req.headers.cookie === 'string' ? req.headers.cookie : undefined);
  if (endpoint === 'me') return answerMe(ctx, res, cookie);
  requireOwnOrigin(req, ctx.hosts);
  if (endpoint === 'logout') {
    if (hasBody(req)) await readLimitedBody(req, MAX_LOGIN_BODY_BYTES);
    const ended = ctx.sessions.logout(cookie);
    if (ended) ctx.log('signed out: a session ended');
    res.writeHead(204, { 'Set-Cookie': clearedSessionCookie(), 'Cache-Control': 'no-store' });
    return void res.end();
  }
  checkContentType(req, JSON_TYPES);
  const token = tokenOf(await readLimitedBody(req, MAX_LOGIN_BODY_BYTES));
  const result = await ctx.sessions.login(token);
  if (!result.ok) {
    if (result.throttled) {
      ctx.log('sign-in refused: too many failed sign-ins; refusing every sign-in for a while');
      throw new RequestRefused(429, 'TooManyFailedSignIns', 'too many failed sign-ins: try again later', { 'Retry-After': String(result.retryAfterSeconds ?? 60) });
    }
    ctx.log('sign-in refused: the token is not valid');
    throw new RequestRefused(401, 'SignInFailed', 'the token is not valid (a one-time sign-in link works once; the role tokens are in the keys file)');
  }
  ctx.log(`signed in: a ${result.session.role} session${result.oneTime ? ' (the one-time sign-in link, now used up)' : ''}`);
  res.writeHead(204, { 'Set-Cookie': sessionCookie(result.cookieValue), 'Cache-Control': 'no-store' });
  res.end();
}

function tokenOf(body: string): string {
  const bad = () => new RequestRefused(400, 'BadRequestBody', 'the body must be {"token": "<sign-in token>"}');
  if (nestsTooDeep(body)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(body) as unknown;
  } catch {
    throw bad();
  }
  const token = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as { token?: unknown }).token : undefined;
  if (typeof token !== 'string' || token.length === 0 || token.length > 256) throw bad();
  return token;
}

/** EasyAuth's /.auth/me: an array with the signed-in user's claims; 401 without a session. */
function answerMe(ctx: ServeContext, res: ServerResponse, cookie: string | undefined): void {
  const session = ctx.sessions.find(cookie);
  if (!session) throw new RequestRefused(401, 'SignInRequired', 'not signed in (POST /.auth/login with a sign-in token)');
  const who = sessionPrincipal(session.role);
  const body = [
    {
      provider_name: SERVE_AUTH_TYPE,
      user_id: who.id,
      expires_on: new Date(session.expiresAt).toISOString(),
      user_claims: [
        { typ: 'name', val: who.name },
        { typ: 'roles', val: ENTRA_ROLE_VALUES[session.role] },
      ],
    },
  ];
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}
