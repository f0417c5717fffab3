/**
 * Removes secrets from text before it reaches a log, an error message, a status output or a manifest:
 * SAS signatures (and the whole SAS query of a URL), account keys, connection-string secrets, bearer tokens.
 * Each pattern takes the secret in every spelling a message can carry it: any case, %-encoded (a URL
 * inside a query parameter, `%73ig%3D`), after `#` or at the start of a SAS token, in a header line
 * (`Authorization: Bearer …`), a JSON or util.inspect dump of headers (`"authorization": "Bearer …"`).
 */

/** Field names whose string value is a secret whatever it looks like (in JSON text and in objects walked). */
export const SECRET_FIELD_NAMES = ['accountKey', 'userKey', 'key', 'dataKey', 'sasToken', 'connectionString', 'sig', 'authorization', 'x-ms-copy-source-authorization'];
export const SECRET_FIELD = new RegExp(`^(${SECRET_FIELD_NAMES.join('|')})$`, 'i');

// A name as it may be spelled in a URL: each letter plain or %-encoded (`%73ig` is `sig`).
const urlSpelled = (name: string) => [...name].map((c) => `(?:${c}|%${c.charCodeAt(0).toString(16)})`).join('');
const EQ = '(?:=|%3D|%253D)';
// What may stand before a query parameter: start, ?, &, #, ;, whitespace, a quote, or those %-encoded.
const BEFORE = `(?:^|[?&#;\\s"'(<,]|%3F|%26|%23|%253F|%2526|\\\\u0026|&amp;)`;
// A query parameter's value: up to the next parameter, plain or %-encoded (`%26`), so the rest of the URL stays readable.
const VALUE = `(?:(?!%26|%2526)[^&\\s"'<>#;])+`;
const FIELD_RE = `((?<![A-Za-z0-9_-])"?'?(?:${SECRET_FIELD_NAMES.join('|')})"?'?\\s*[:=]\\s*)(["'])(?:(?!\\2).)+\\2`;

const PATTERNS: Array<[RegExp, string]> = [
  [new RegExp(`(${BEFORE}${urlSpelled('sig')}${EQ})${VALUE}`, 'gi'), '$1REDACTED'],
  [new RegExp(`(${urlSpelled('AccountKey')}${EQ})[^;\\s"']+`, 'gi'), '$1REDACTED'],
  // Function and system keys: the `code` query parameter of Functions URLs (durable status links), and the header.
  [new RegExp(`((?:[?&]|%3F|%26|%253F|%2526)code${EQ})${VALUE}`, 'gi'), '$1REDACTED'],
  [/(x-functions-key"?'?\s*[:=]\s*"?'?)[^\s"',;]+/gi, '$1REDACTED'],
  [/(SharedAccessSignature=)[^;\s"']+/gi, '$1REDACTED'],
  [/(SharedAccessKey=)[^;\s"']+/gi, '$1REDACTED'],
  // A header line, or a JSON / inspect dump of one (`authorization: 'Bearer …'`).
  [/(Authorization"?'?\s*[:=]\s*"?'?)(Bearer|SharedKey|SharedKeyLite)\s+[^\s"']+/gi, '$1$2 REDACTED'],
  // A JSON Web Token wherever it appears (an access token quoted without its header).
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+/g, 'REDACTED-JWT'],
  [new RegExp(FIELD_RE, 'gi'), '$1$2REDACTED$2'],
];

export function redact(text: string): string {
  let out = text;
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/**
 * Text fit for a terminal or a log line: control characters (C0 but tab, DEL, C1), the bidirectional
 * overrides and the Unicode line separators are shown as `\xNN`/`\uNNNN`, so text given by someone else
 * cannot move the cursor, forge a log line, set the window title or reorder what is read (ESC[…, U+202E).
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0').toUpperCase()}` : `\\u${code.toString(16).padStart(4, '0').toUpperCase()}`;
  });
}

// The characters of a snapshot time (2024-05-02T01:00:00.0000000Z): anything else is not shown.
const SNAPSHOT_TIME_RE = /^[\dT:.Z-]{1,40}$/;

/** A URL fit for display: scheme, host and path, never the query (a SAS lives there) but a snapshot time. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    const snapshot = u.searchParams.get('snapshot');
    return redact(`${u.protocol}//${u.host}${u.pathname}${snapshot !== null && SNAPSHOT_TIME_RE.test(snapshot) ? `?snapshot=${snapshot}` : ''}`);
  } catch {
    return redact(url.split(/[?#]/)[0].replace(/^([a-z][a-z0-9+.-]*:\/*)[^/@]*@/i, '$1'));
  }
}
