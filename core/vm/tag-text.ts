/** The one rule for tag text that reaches a Resource Graph query: a policy's tag selector and vmIdsByTag check it alike. */
import { PagewiseError } from '../errors';

/** Azure's limit for a tag name (512 for values; a selector needs no more than 256 of either). */
export const MAX_TAG_TEXT = 256;

/**
 * Tag text goes into a Resource Graph (KQL) string literal: a quote or backslash could end it and
 * widen the query, so they are refused, not escaped — the policy author gets a clear error at parse
 * time instead of a query that means something else. Also refused: line breaks and control
 * characters, `< > % & ? /` (Azure forbids them in tag names), empty text.
 */
export function checkTagText(text: unknown, part: 'name' | 'value', where: string): string {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_TAG_TEXT) {
    throw new PagewiseError('BadInput', `${where} tag ${part} must be 1 to ${MAX_TAG_TEXT} characters`);
  }
  // eslint-disable-next-line no-control-regex
  const bad = /['"\\<>%&?/\u0000-\u001f\u007f]/.exec(text);
  if (bad) {
    throw new PagewiseError('BadInput', `${where} tag ${part} ${JSON.stringify(text.slice(0, 64))} holds ${JSON.stringify(bad[0])}, which a tag selector does not accept (quotes, backslashes, control characters, < > % & ? /)`);
  }
  return text;
}
