import protobuf from 'protobufjs';
import { lookupType, typeFromUrl } from './registry.js';

export const REDACTED = '[redacted]';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function walk(type: protobuf.Type, v: unknown): unknown {
  if (!isObject(v)) return v;
  if (type.fullName === '.google.protobuf.Any' || '@type' in v) {
    const inner = typeof v['@type'] === 'string' ? typeFromUrl(v['@type']) : null;
    if (inner && type.fullName === '.google.protobuf.Any') return walk(inner, v);
  }
  if (type.fullName.startsWith('.google.protobuf.') && type.fullName !== '.google.protobuf.Any') return v;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) {
    const field = type.fields[k];
    if (!field) {
      out[k] = val;
      continue;
    }
    if ((field.options as Record<string, unknown> | undefined)?.['(udpa.annotations.sensitive)']) {
      out[k] = REDACTED;
      continue;
    }
    const rt = field.resolvedType;
    if (!(rt instanceof protobuf.Type)) out[k] = val;
    else if (field.map && isObject(val)) out[k] = Object.fromEntries(Object.entries(val).map(([mk, mv]) => [mk, walk(rt, mv)]));
    else if (field.repeated && Array.isArray(val)) out[k] = val.map((e) => walk(rt, e));
    else out[k] = walk(rt, val);
  }
  return out;
}

/**
 * A deep copy of a normalized message with every field the protos mark
 * `(udpa.annotations.sensitive)` (private keys, passwords, tokens) replaced by "[redacted]",
 * following Any values by their `@type`.
 */
export function redact(typeName: string, value: unknown): unknown {
  const type = lookupType(typeName);
  if (!type) throw new Error(`unknown type ${typeName}`);
  return walk(type, value);
}
