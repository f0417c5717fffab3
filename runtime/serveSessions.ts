/**
 * Sign-in for `pagewise serve`, as App Service authentication gives it in Azure: role tokens (four
 * reusable ones in the 0600 keys file, one single-use admin token printed at start) are exchanged at
 * POST /.auth/login for an HttpOnly session cookie; serve then injects that session's principal. Tokens
 * are compared in constant time, every one of them each time; failed sign-ins cost a delay and are
 * counted, and past a limit sign-in is refused for the rest of the window. Sessions live in memory (8 h).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Role, ROLES } from '../functions/auth/roles';
import { LoginTokens, newKey, sameSecret } from './serveKeys';

export const SESSION_COOKIE = 'pagewise_session';
export const SESSION_TTL_MS = 8 * 3600 * 1000;
/** Sessions held at once; the oldest goes first past this (each sign-in makes one). */
const MAX_SESSIONS = 1024;

export interface LoginThrottle {
  /** Failed sign-ins accepted per window before every sign-in is refused until the window ends. */
  maxFailures: number;
  windowMs: number;
  /** Added to every failed sign-in's answer. */
  failureDelayMs: number;
}

export const DEFAULT_LOGIN_THROTTLE: LoginThrottle = { maxFailures: 10, windowMs: 60_000, failureDelayMs: 500 };

export interface Session {
  role: Role;
  expiresAt: number;
}

export type LoginResult =
  | { ok: true; cookieValue: string; session: Session; oneTime: boolean }
  | { ok: false; throttled: boolean; retryAfterSeconds?: number };

export class SessionStore {
  /** Keyed by the SHA-256 of the cookie value: the values themselves are not kept. */
  private readonly sessions = new Map<string, Session>();
  private oneTimeAdmin: string | undefined = newKey();
  private failures: number[] = [];

  constructor(
    readonly tokens: LoginTokens,
    private readonly throttle: LoginThrottle = DEFAULT_LOGIN_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {}

  /** The single-use admin token, for the URL printed at start (undefined once used). */
  get oneTimeToken(): string | undefined {
    return this.oneTimeAdmin;
  }

  /** Exchanges a token for a session. Every token is compared, no early exit; the one-time token works once. */
  async login(presented: string): Promise<LoginResult> {
    const now = this.now();
    this.failures = this.failures.filter((t) => now - t < this.throttle.windowMs);
    if (this.failures.length >= this.throttle.maxFailures) {
      return { ok: false, throttled: true, retryAfterSeconds: Math.max(1, Math.ceil((this.failures[0] + this.throttle.windowMs - now) / 1000)) };
    }
    let role: Role | undefined;
    for (const r of ROLES) if (sameSecret(presented, this.tokens[r]) && presented !== '') role = role ?? r;
    const oneTime = this.oneTimeAdmin !== undefined && sameSecret(presented, this.oneTimeAdmin) && presented !== '';
    if (oneTime) {
      this.oneTimeAdmin = undefined;
      role = 'admin';
    }
    if (!role) {
      this.failures.push(now);
      await new Promise((resolve) => setTimeout(resolve, this.throttle.failureDelayMs));
      return { ok: false, throttled: false };
    }
    const cookieValue = randomBytes(32).toString('base64url');
    const session: Session = { role, expiresAt: now + SESSION_TTL_MS };
    this.sessions.set(digest(cookieValue), session);
    while (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string);
    return { ok: true, cookieValue, session, oneTime };
  }

  /** The live session of a cookie value; an expired one is dropped. */
  find(cookieValue: string | undefined): Session | undefined {
    if (!cookieValue) return undefined;
    const key = digest(cookieValue);
    const session = this.sessions.get(key);
    if (!session) return undefined;
    if (session.expiresAt <= this.now()) {
      this.sessions.delete(key);
      return undefined;
    }
    return session;
  }

  logout(cookieValue: string | undefined): boolean {
    return cookieValue ? this.sessions.delete(digest(cookieValue)) : false;
  }
}

function digest(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64');
}

/** The session cookie's value from a Cookie header (the first of that name). */
export function sessionCookieOf(cookieHeader: string | undefined): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

export function sessionCookie(value: string): string {
  return `${SESSION_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_TTL_MS / 1000}`;
}

export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
}
