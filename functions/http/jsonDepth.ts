/**
 * The nesting a request body may have (core/json-depth.ts counts it before the body is parsed): a body
 * of 64 KiB can nest 32,000 levels, a 500 on every later recursive walk. No request nests past a handful.
 */
import { nestsTooDeep as nestsDeeperThan } from '../../core';

export const MAX_JSON_DEPTH = 64;

export const TOO_DEEP = `the request body nests deeper than ${MAX_JSON_DEPTH} levels`;

/** Whether the JSON text opens more than `limit` arrays/objects at once (brackets inside strings aside). */
export function nestsTooDeep(text: string, limit = MAX_JSON_DEPTH): boolean {
  return nestsDeeperThan(text, limit);
}
