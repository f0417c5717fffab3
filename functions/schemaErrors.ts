/**
 * ajv errors as specific sentences: where (a JSON pointer into the document) and what is wrong, naming
 * the unknown field, the missing one, or the allowed values. One helper for the HTTP bodies and the
 * backup policy, so both say the same thing the same way.
 */
import type { ErrorObject } from 'ajv';

/** Longest part of a caller's value echoed back (a field name can be anything the caller sent). */
const MAX_ECHO = 64;

const quote = (text: unknown) => {
  const s = String(text);
  return JSON.stringify(s.length > MAX_ECHO ? `${s.slice(0, MAX_ECHO)}…` : s);
};

export function describeSchemaErrors(errors: ErrorObject[] | null | undefined, root: string): string[] {
  return (errors ?? []).map((e) => {
    const where = e.instancePath || root;
    const p = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case 'additionalProperties':
        return `${where} has an unknown field ${quote(p.additionalProperty)} (allowed: ${allowedFields(e).join(', ')})`;
      case 'required':
        return `${where} is missing the required field ${quote(p.missingProperty)}`;
      case 'enum':
        return `${where} must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      case 'type':
        return `${where} must be ${String(p.type)}, not ${typeName(e.data)}`;
      default:
        return `${where} ${e.message ?? 'is invalid'}`;
    }
  });
}

function allowedFields(e: ErrorObject): string[] {
  const properties = (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties;
  return properties ? Object.keys(properties) : [];
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
