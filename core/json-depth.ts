/**
 * How deeply a JSON text nests, counted before it is parsed: JSON.parse takes 32,000 levels, but every
 * later recursive walk (JSON.stringify, canonical JSON for a MAC, a redacted listing) overflows the stack
 * on them. No Pagewise document nests past a handful; request bodies and vault documents are both checked.
 */

/** Whether the JSON text opens more than `limit` arrays/objects at once (brackets inside strings aside). */
export function nestsTooDeep(text: string, limit: number): boolean {
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
