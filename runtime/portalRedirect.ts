/** `pagewise serve`: `/`, `/portal` and `/portal/` lead to the portal page, served at `/api/portal/` as in Azure (routePrefix api). */
export const PORTAL_PATH = '/api/portal/';

/** Where a GET of this path is sent (302), or undefined when the path is not one of the portal's short forms. */
export function portalRedirect(method: string, pathname: string): string | undefined {
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  // A fixed Location: nothing of the request is echoed. The browser keeps the URL's #fragment (the sign-in token) across it.
  return pathname === '/' || pathname === '/portal' || pathname === '/portal/' ? PORTAL_PATH : undefined;
}
