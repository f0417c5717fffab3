/** Redaction (core/redact.ts): SAS signatures, account keys and connection-string secrets removed. */
import { redact, displayUrl } from '../core';

test('redaction removes SAS signatures, account keys and connection-string secrets', () => {
  const text = 'GET https://a.blob.core.windows.net/c/d?sv=2024&sig=AbC%2Bdef123456789== failed; DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5c2VjcmV0a2V5;EndpointSuffix=x';
  const out = redact(text);
  expect(out).not.toContain('AbC%2Bdef');
  expect(out).not.toContain('c2VjcmV0');
  expect(out).toContain('sig=REDACTED');
  expect(out).toContain('AccountKey=REDACTED');
  expect(displayUrl('https://a.blob.core.windows.net/c/d.vhd?snapshot=2026-01-01T00:00:00Z&sig=secret')).toBe(
    'https://a.blob.core.windows.net/c/d.vhd?snapshot=2026-01-01T00:00:00Z',
  );
});
