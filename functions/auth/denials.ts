/**
 * Refused access (a 401/403 from requireSignedIn/requireRole): the refusal carries who was refused and
 * what was needed, and is logged once — with the function and invocation — and sent as the custom event
 * PagewiseAccessDenied where it becomes a response (problemFromError). Never a token, cookie, key or SAS:
 * only the principal's id, name and via, which principalOf already bounded.
 */
import type { InvocationContext } from '@azure/functions';
import { redact } from '../../core';
import { trackEvent, TelemetryEvent } from '../telemetry';

export const ACCESS_DENIED_EVENT = 'PagewiseAccessDenied';

export interface Denial {
  status: 401 | 403;
  /** The problem's title: SignInRequired, MalformedPrincipal or Forbidden. */
  reason: string;
  /** The role needed; `signed-in` where any signed-in caller would do. */
  neededRole: string;
  /** Who was refused; absent when nobody (or no readable principal) signed in. */
  principal?: { id: string; name: string; via: string };
}

const DENIAL = Symbol('pagewise.denial');

/** Marks a refusal as an access denial (once: the first, innermost tag wins). */
export function withDenial<E>(err: E, denial: Denial): E {
  if (typeof err === 'object' && err !== null && !(DENIAL in err)) (err as Record<symbol, unknown>)[DENIAL] = denial;
  return err;
}

export function denialOf(err: unknown): Denial | undefined {
  const tagged = typeof err === 'object' && err !== null ? (err as Record<symbol, unknown>)[DENIAL] : undefined;
  return tagged as Denial | undefined;
}

/** The log line of a denial: function, invocation, who (id, name, via) and the role needed. */
export function denialLine(denial: Denial, context: Pick<InvocationContext, 'functionName' | 'invocationId'>): string {
  const who = denial.principal ? `${JSON.stringify(denial.principal.name)} (id ${denial.principal.id}, via ${denial.principal.via})` : 'a caller with no readable principal';
  return redact(`access denied: ${context.functionName} (invocation ${context.invocationId}) refused ${who}: ${denial.status} ${denial.reason}, needs ${denial.neededRole}`);
}

export function accessDeniedEvent(denial: Denial, context: Pick<InvocationContext, 'functionName' | 'invocationId'>): TelemetryEvent {
  const properties: Record<string, string> = {
    functionName: context.functionName,
    invocationId: context.invocationId,
    status: String(denial.status),
    reason: denial.reason,
    neededRole: denial.neededRole,
    ...(denial.principal ? { whoId: denial.principal.id, whoName: denial.principal.name, via: denial.principal.via } : {}),
  };
  return { name: ACCESS_DENIED_EVENT, properties: Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, redact(v)])), measurements: {} };
}

/** Logs (warning) and sends the denial an error carries, if any; true when it was one. */
export function reportDenial(err: unknown, context: InvocationContext): boolean {
  const denial = denialOf(err);
  if (!denial) return false;
  context.warn(denialLine(denial, context));
  trackEvent(accessDeniedEvent(denial, context));
  return true;
}
