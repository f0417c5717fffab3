/**
 * PAGEWISE_AUTH: `keys` (default — the host's function keys gate the API; a key holder has every role) or
 * `entra` (App Service authentication in front; the API routes are anonymous to the host because a
 * browser holds no key, and EasyAuth plus requireRole do the gating).
 */
import { PagewiseError } from '../../core';
import { appSettings, Env } from '../settings';

export type AuthMode = 'keys' | 'entra';
export const AUTH_MODES: readonly AuthMode[] = ['keys', 'entra'];

export function authMode(env: Env = appSettings()): AuthMode {
  const raw = env.PAGEWISE_AUTH?.trim().toLowerCase() || 'keys';
  if (!(AUTH_MODES as readonly string[]).includes(raw)) {
    throw new PagewiseError('BadInput', `app setting PAGEWISE_AUTH must be one of ${AUTH_MODES.join(', ')}, got "${raw.slice(0, 32)}"`);
  }
  return raw as AuthMode;
}

/** The authLevel every API route registers with: the host's key check in keys mode, none (EasyAuth's) in entra mode. */
export function apiAuthLevel(env: Env = appSettings()): 'function' | 'anonymous' {
  return authMode(env) === 'entra' ? 'anonymous' : 'function';
}
