/**
 * Removes secrets from text before it reaches a log, an error message, a status output or a manifest:
 * SAS signatures (and the whole SAS query of a URL), account keys, connection-string secrets, bearer tokens.
 */
const PATTERNS: Array<[RegExp, string]> = [
  [/([?&]sig=)[^&\s"'<>]+/gi, '$1REDACTED'],
  // A SAS inside a percent-encoded URL (a URL in another URL's query, an echoed request path).
  [/((?:%3F|%26)sig%3D)(?:(?!%26)[^&\s"'<>])+/gi, '$1REDACTED'],
  // Function and system keys: the `code` query parameter of Functions URLs (durable status links), and the header.
  [/([?&]code=)[^&\s"'<>]+/gi, '$1REDACTED'],
  [/(x-functions-key"?\s*[:=]\s*"?)[^\s"',;]+/gi, '$1REDACTED'],
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

/** A URL fit for display: scheme, host and path, never the query (a SAS lives there). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.searchParams.has('snapshot') ? `?snapshot=${u.searchParams.get('snapshot')}` : ''}`;
  } catch {
    return redact(url.split('?')[0]);
  }
}
