import { createHash } from 'node:crypto';
import { decodeResource, lookupType, newContext, toJsonValue, toProtobufObject, typeFromUrl } from '../config/index.js';
import type { FieldError } from '../errors.js';
import { TYPED_STRUCT_TYPE, type AnyMsg } from './proto.js';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

let anyType: ReturnType<typeof lookupType> = null;
function anyT() {
  anyType ??= lookupType('google.protobuf.Any');
  if (!anyType) throw new Error('google.protobuf.Any is missing from the registry');
  return anyType;
}

/**
 * An Any of a type this process has no descriptor for (Istio's private filters) cannot be
 * encoded field by field. A TypedStruct is the xDS way to carry exactly that — a type URL and
 * its fields as a Struct — so such values travel wrapped, and every receiver reads them the same.
 */
function wrapUnknown(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(wrapUnknown);
  if (!isObj(v)) return v;
  const url = v['@type'];
  if (typeof url === 'string' && !('@value' in v) && !typeFromUrl(url)) {
    const { ['@type']: _, ...rest } = v;
    return { '@type': TYPED_STRUCT_TYPE, type_url: url, value: rest };
  }
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) out[k] = wrapUnknown(x);
  return out;
}

/** A normalized resource (`{'@type': url, ...fields}` or plain fields) → the Any that carries it. */
export function encodeAny(typeUrl: string, value: Obj): AnyMsg {
  const { ['@type']: _, ...fields } = value;
  return toProtobufObject(anyT(), wrapUnknown({ '@type': typeUrl, ...fields })) as AnyMsg;
}

/** The bytes of an encoded resource, for versions and persistence. */
export function anyBytes(a: AnyMsg): Buffer {
  return Buffer.from(a.value.buffer, a.value.byteOffset, a.value.byteLength);
}

/** A per-resource version for delta xDS: changes exactly when the resource's bytes do. */
export function contentVersion(a: AnyMsg): string {
  return createHash('sha256').update(a.type_url).update(anyBytes(a)).digest('hex').slice(0, 16);
}

export interface DecodedResource {
  readonly value: Obj | null;
  readonly errors: FieldError[];
  readonly warnings: FieldError[];
}

/**
 * A received Any → the normalized form every config builder reads, validated like a config file
 * (protoc-gen-validate rules, field paths relative to the resource). Unknown nested types are
 * kept with a warning, so the listener and filter builders decide whether they matter.
 */
export function decodeAny(a: AnyMsg, expectedType: string): DecodedResource {
  const ctx = newContext('opaque');
  if (a.type_url !== expectedType) {
    return { value: null, errors: [{ path: '', message: `resource of type ${a.type_url} in a ${expectedType} response` }], warnings: [] };
  }
  let json: unknown;
  try {
    json = toJsonValue(anyT(), { type_url: a.type_url, value: a.value });
  } catch (err) {
    return { value: null, errors: [{ path: '', message: `cannot decode: ${(err as Error).message}` }], warnings: [] };
  }
  const value = decodeResource(expectedType, json, '', ctx);
  return { value: isObj(value) ? value : null, errors: ctx.errors, warnings: ctx.warnings };
}
