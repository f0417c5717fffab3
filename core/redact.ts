/**
 * Removes secrets from text before it reaches a log, an error message, a status output or a manifest:
 * SAS signatures (and the whole SAS query of a URL), account keys, connection-string secrets, bearer tokens.
 */
const PATTERNS: Array<[RegExp, string]> = [
  [/([?&]sig=)[^&\s"'<>]+/gi, '$1REDACTED'],
  [/(AccountKey=)[^;\s"']+/gi, '$1REDACTED'],
  [/(SharedAccessSignature=)[^;\s"']+/gi, '$1REDACTED'],
  [/(SharedAccessKey=)[^;\s"']+/gi, '$1REDACTED'],
  [/(Authorization:\s*)(Bearer|SharedKey)\s+[^\s"']+/gi, '$1$2 REDACTED'],
  [/("?(?:accountKey|userKey|key|dataKey|sasToken|connectionString)"?\s*[:=]\s*")[^"]+"/gi, '$1REDACTED"'],
];

export function redact(text: string): string {
  let out = text;
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/**
 * Text fit for a terminal: control characters (C0 but tab, DEL, C1) and the bidirectional overrides
 * are shown as `\xNN`/`\uNNNN`, so a path or URL given by someone else cannot move the cursor, rewrite
 * earlier lines, set the window title or reorder what the user reads (ESC[…, OSC, U+202E).
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0').toUpperCase()}` : `\\u${code.toString(16).padStart(4, '0').toUpperCase()}`;
  });
}

/** A URL fit for display: scheme, host and path, never the query (a SAS lives there). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.searchParams.has('snapshot') ? `?snapshot=${u.searchParams.get('snapshot')}` : ''}`;
  } catch {
    return redact(url.split('?')[0]);
  }
}
