/**
 * The admin portal's static files (#18): a fixed list from the top-level `portal/` directory, anonymous
 * (the browser holds no function key; the API it calls does the gating), under a strict CSP. Also
 * `config.json`, which tells the page how to sign in (`PAGEWISE_AUTH`).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { app, HttpRequest, HttpResponse } from '@azure/functions';
import { authMode } from '../auth/authMode';
import { appSettings, Env } from '../settings';
import { problem } from '../problems';

/** The only files served, and their types: any other name is a 404, so no path reaches the file system. */
export const PORTAL_FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'api.js': 'text/javascript; charset=utf-8',
  'chart.js': 'text/javascript; charset=utf-8',
  'format.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

/**
 * Scripts and styles from this origin only (no inline script or style, no eval), API calls to this origin,
 * never framed, no plugins, no <base> rewriting, forms post only here.
 */
export const PORTAL_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const PORTAL_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': PORTAL_CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
  // Small files; a new version must show at once after a deployment.
  'Cache-Control': 'no-cache',
};

/** Where `portal/` is: beside functions/ in the sources (ts-node, jest) and one level up from dist/ when built. */
function portalDirCandidates(): string[] {
  return [path.resolve(__dirname, '../../portal'), path.resolve(__dirname, '../../../portal')];
}

let cache: Promise<Map<string, Buffer>> | undefined;

/** Every listed file, read once: a missing one is a deployment error, said at the first request. */
async function portalFiles(): Promise<Map<string, Buffer>> {
  cache ??= (async () => {
    for (const dir of portalDirCandidates()) {
      const found = await fs.stat(path.join(dir, 'index.html')).then(() => true, () => false);
      if (!found) continue;
      const files = new Map<string, Buffer>();
      for (const name of Object.keys(PORTAL_FILES)) files.set(name, await fs.readFile(path.join(dir, name)));
      return files;
    }
    throw new Error('the portal/ directory is not deployed beside functions (package host.json, package.json, dist/, portal/ and node_modules/)');
  })();
  cache.catch(() => (cache = undefined)); // a failed read is tried again on the next request
  return cache;
}

/** How the page signs in: a sign-in token locally (`pagewise serve`), Microsoft Entra behind App Service authentication. */
export function portalConfig(env: Env = appSettings()): { signIn: 'token' | 'entra'; entraLogin: string } {
  return { signIn: authMode(env) === 'entra' ? 'entra' : 'token', entraLogin: '/.auth/login/aad' };
}

export async function servePortal(request: HttpRequest): Promise<HttpResponse> {
  const name = request.params.path ?? '';
  if (name === '') {
    // `/api/portal` needs its slash for the page's relative links; a relative Location echoes nothing of the request.
    if (!new URL(request.url).pathname.endsWith('/')) return new HttpResponse({ status: 308, headers: { ...PORTAL_HEADERS, Location: 'portal/' } });
    return file('index.html');
  }
  if (name === 'config.json') return new HttpResponse({ status: 200, headers: { ...PORTAL_HEADERS, 'Content-Type': 'application/json' }, jsonBody: portalConfig() });
  if (!Object.hasOwn(PORTAL_FILES, name)) return withHeaders(problem(404, 'NotFound', 'the portal has no such file'));
  return file(name);
}

async function file(name: string): Promise<HttpResponse> {
  try {
    const body = (await portalFiles()).get(name)!;
    return new HttpResponse({ status: 200, headers: { ...PORTAL_HEADERS, 'Content-Type': PORTAL_FILES[name] }, body: new Uint8Array(body) });
  } catch (err) {
    return withHeaders(problem(500, 'PortalNotDeployed', err instanceof Error ? err.message : String(err)));
  }
}

function withHeaders(response: HttpResponse): HttpResponse {
  for (const [name, value] of Object.entries(PORTAL_HEADERS)) response.headers.set(name, value);
  return response;
}

app.http('portal', {
  route: 'portal/{*path}',
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: servePortal,
});
