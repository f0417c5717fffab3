/**
 * How deeply a JSON text nests, counted before it is parsed: a body of 64 KiB can nest 32,000 levels,
 * which JSON.parse takes but every later recursive walk (JSON.stringify of a stored input, a redacted
 * listing) overflows the stack on, a 500 then and after. No Pagewise document nests past a handful.
 */
export const MAX_JSON_DEPTH = 64;

export const TOO_DEEP = `the request body nests deeper than ${MAX_JSON_DEPTH} levels`;

/** Whether the JSON text opens more than `limit` arrays/objects at once (brackets inside strings aside). */
export function nestsTooDeep(text: string, limit = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
