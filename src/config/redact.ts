import protobuf from 'protobufjs';
import { lookupType, typeFromUrl } from './registry.js';
import { ANY, fullName, isObject, TYPED_STRUCTS } from './wkt.js';

export const REDACTED = '[redacted]';

const SENSITIVE = '(udpa.annotations.sensitive)';

function walkAny(v: Record<string, unknown>): unknown {
  const url = v['@type'];
  const type = typeof url === 'string' ? typeFromUrl(url) : null;
  if (!type) return v; // empty, or an unknown type kept opaque: nothing to go by
  const name = fullName(type);
  if (TYPED_STRUCTS.has(name)) {
    // Not unwrapped by the decoder (its inner type is unknown) — or a raw TypedStruct.
    const inner = typeof v.type_url === 'string' ? typeFromUrl(v.type_url) : null;
    return inner && isObject(v.value) ? { ...v, value: walk(inner, v.value) } : v;
  }
  return walk(type, v);
}

function walk(type: protobuf.Type, v: unknown): unknown {
  if (!isObject(v)) return v;
  const name = fullName(type);
  if (name === ANY) return walkAny(v);
  if (name.startsWith('google.protobuf.')) return v; // Struct, wrappers…: nothing sensitive inside
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) {
    const field = type.fields[k];
    if (!field) {
      out[k] = val; // '@type' of an Any being walked
      continue;
    }
    if (field.options?.[SENSITIVE] === true) {
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
 * `(udpa.annotations.sensitive)` (private keys, passwords, tokens, HMAC secrets) replaced by
 * "[redacted]", following Any values (and TypedStructs) by their `@type`. For /config_dump.
 */
export function redact(typeName: string, normalized: unknown): unknown {
  const type = lookupType(typeName);
  if (!type) throw new Error(`unknown type ${typeName}`);
  return walk(type, structuredClone(normalized));
}
