/**
 * The Content-Disposition of a file download, built from a name read off a backed-up disk — the VM
 * owner's bytes, maybe hostile: whatever it holds (quotes, CR/LF, NUL, separators, any Unicode, 255 bytes
 * of it) the header stays one valid header line and names one file without a directory (RFC 6266 + 8187).
 */

/** Longest ASCII fallback name; `filename*` carries the full name for every current client. */
const MAX_FALLBACK_CHARS = 150;
/** ext names are ≤ 255 bytes; anything longer (not from ext) is cut at a character boundary. */
const MAX_NAME_BYTES = 255;
const NO_NAME = 'download';

/** RFC 8187 attr-char: the only bytes `filename*` carries unencoded. */
const ATTR_CHAR = /[A-Za-z0-9!#$&+\-.^_`|~]/;

/** `attachment; filename="<ascii-safe>"; filename*=UTF-8''<pct-encoded>` for a file's name (its last path component). */
export function contentDisposition(name: string): string {
  const base = safeBaseName(name);
  return `attachment; filename="${asciiFallback(base)}"; filename*=UTF-8''${encodeAttrValue(base)}`;
}

/**
 * The last component of a path, with every character that could make a client write elsewhere or break
 * the header or the name shown replaced: '/' and '\' (separators on some client), controls (C0, DEL, C1),
 * line/paragraph separators, bidirectional overrides (`\u202e` makes "txt.exe" show as "exe.txt"), lone surrogates.
 * '.', '..' and an empty name become "download".
 */
export function safeBaseName(name: string): string {
  const last = name.slice(name.lastIndexOf('/') + 1);
  // eslint-disable-next-line no-control-regex -- controls are exactly what is removed
  let safe = last.replace(/[\\/\u0000-\u001f\u007f-\u009f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '_').replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '_');
  safe = cutToBytes(safe, MAX_NAME_BYTES);
  return safe === '' || /^\.+$/.test(safe) ? NO_NAME : safe;
}

/** Printable ASCII only, without '"', '\' and '%' (which some clients decode): the rest '_'. */
function asciiFallback(base: string): string {
  const ascii = [...base].map((c) => (/^[\x20-\x7e]$/.test(c) && !/["\\%]/.test(c) ? c : '_')).join('');
  return ascii.length > MAX_FALLBACK_CHARS ? ascii.slice(0, MAX_FALLBACK_CHARS) : ascii;
}

function encodeAttrValue(base: string): string {
  let out = '';
  for (const byte of Buffer.from(base, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && ATTR_CHAR.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function cutToBytes(text: string, max: number): string {
  if (Buffer.byteLength(text, 'utf8') <= max) return text;
  let out = '';
  let bytes = 0;
  for (const c of text) {
    const n = Buffer.byteLength(c, 'utf8');
    if (bytes + n > max) break;
    out += c;
    bytes += n;
  }
  return out;
}
