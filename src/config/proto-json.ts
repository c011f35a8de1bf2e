import protobuf from 'protobufjs';
import type { FieldError } from '../errors.js';
import { typeFromUrl } from './registry.js';
import { checkRules } from './validate.js';

/**
 * The proto3 JSON mapping, as Envoy reads YAML and JSON: both snake_case and lowerCamel names,
 * enums by name in any case, durations as "1.5s", wrappers as plain values, Any with `@type`,
 * TypedStruct unwrapped for known types, Struct as free JSON. protobufjs's fromObject does none
 * of this (it rejects `connect_timeout: 1s`), so the mapping lives here, once.
 *
 * Output is the *normalized form*: plain JSON with snake_case keys, enum names upper-cased as
 * declared, wrappers unwrapped, int64 as numbers (decimal strings beyond 2^53), Duration as a
 * canonical string ("1.500s"), Any as `{'@type': url, ...fields}`. It is itself valid proto3
 * JSON, so /config_dump prints it as is. Every problem is pushed to `ctx.errors` with its field
 * path; decoding never stops at the first one.
 */

export interface DecodeContext {
  readonly errors: FieldError[];
  readonly warnings: FieldError[];
  /** `opaque`: an Any of an unknown type is kept as given, with a warning (xDS from Istio). */
  readonly unknownAny: 'error' | 'opaque';
}

export function newContext(unknownAny: DecodeContext['unknownAny'] = 'error'): DecodeContext {
  return { errors: [], warnings: [], unknownAny };
}

export function joinPath(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Edit distance, for "did you mean" on unknown fields. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

interface FieldIndex {
  readonly byName: Map<string, protobuf.Field>;
}

const indexCache = new WeakMap<protobuf.Type, FieldIndex>();

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function fieldIndex(type: protobuf.Type): FieldIndex {
  let idx = indexCache.get(type);
  if (!idx) {
    const byName = new Map<string, protobuf.Field>();
    for (const f of type.fieldsArray) {
      byName.set(f.name, f);
      byName.set(camel(f.name), f);
      const jsonName = (f.options as Record<string, unknown> | undefined)?.json_name;
      if (typeof jsonName === 'string') byName.set(jsonName, f);
    }
    idx = { byName };
    indexCache.set(type, idx);
  }
  return idx;
}

// ---------------------------------------------------------------- scalars

const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64']);
const UINT64 = new Set(['uint64', 'fixed64']);

function decodeScalar(kind: string, v: unknown, path: string, ctx: DecodeContext): unknown {
  const bad = () => {
    ctx.errors.push({ path, message: `expected ${kind}, got ${describe(v)}` });
    return undefined;
  };
  if (kind === 'string') return typeof v === 'string' ? v : bad();
  if (kind === 'bool') return typeof v === 'boolean' ? v : bad();
  if (kind === 'bytes') {
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) return bad();
    return v;
  }
  if (kind === 'double' || kind === 'float') {
    if (typeof v === 'number') return v;
    if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return v;
    if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
    return bad();
  }
  // Integers: JSON numbers, or decimal strings (proto3 JSON writes 64-bit ints as strings).
  let n: bigint;
  if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v);
  else if (typeof v === 'string' && /^-?\d+$/.test(v)) n = BigInt(v);
  else return bad();
  const [lo, hi] = INT32.has(kind)
    ? [-(2n ** 31n), 2n ** 31n - 1n]
    : UINT32.has(kind)
      ? [0n, 2n ** 32n - 1n]
      : INT64.has(kind)
        ? [-(2n ** 63n), 2n ** 63n - 1n]
        : UINT64.has(kind)
          ? [0n, 2n ** 64n - 1n]
          : [0n, -1n];
  if (hi < lo) return bad();
  if (n < lo || n > hi) {
    ctx.errors.push({ path, message: `${String(v)} is out of range for ${kind}` });
    return undefined;
  }
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
}

function decodeEnum(e: protobuf.Enum, v: unknown, path: string, ctx: DecodeContext): string | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) {
    const name = e.valuesById[v];
    if (name !== undefined) return name;
  } else if (typeof v === 'string') {
    if (v in e.values) return v;
    const upper = v.toUpperCase();
    for (const name of Object.keys(e.values)) if (name.toUpperCase() === upper) return name;
  }
  const names = Object.keys(e.values);
  ctx.errors.push({ path, message: `invalid value ${describe(v)} for enum ${e.name}; valid: ${names.join(', ')}` });
  return undefined;
}

// ---------------------------------------------------------------- well-known types

const MAX_DURATION_S = 315_576_000_000n;

/** Seconds and nanos of a Duration given as "1.5s" or {seconds, nanos}; null if malformed. */
export function parseDuration(v: unknown): { seconds: bigint; nanos: number } | null {
  if (typeof v === 'string') {
    const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(v);
    if (!m) return null;
    const sign = m[1] ? -1 : 1;
    const seconds = BigInt(m[2]!) * BigInt(sign);
    const nanos = Number((m[3] ?? '').padEnd(9, '0')) * sign;
    return { seconds, nanos };
  }
  if (isObject(v)) {
    const s = v.seconds ?? 0;
    const n = v.nanos ?? 0;
    if ((typeof s !== 'number' && typeof s !== 'string') || typeof n !== 'number') return null;
    if (!/^-?\d+$/.test(String(s)) || !Number.isInteger(n) || Math.abs(n) > 999_999_999) return null;
    return { seconds: BigInt(s), nanos: n };
  }
  return null;
}

function formatDuration(d: { seconds: bigint; nanos: number }): string {
  const neg = d.seconds < 0n || d.nanos < 0;
  const s = d.seconds < 0n ? -d.seconds : d.seconds;
  const n = Math.abs(d.nanos);
  if (n === 0) return `${neg ? '-' : ''}${s}s`;
  let frac = String(n).padStart(9, '0');
  // Canonical proto3 JSON: 3, 6 or 9 fractional digits.
  if (frac.endsWith('000000')) frac = frac.slice(0, 3);
  else if (frac.endsWith('000')) frac = frac.slice(0, 6);
  return `${neg ? '-' : ''}${s}.${frac}s`;
}

const WRAPPERS: Record<string, string> = {
  DoubleValue: 'double',
  FloatValue: 'float',
  Int64Value: 'int64',
  UInt64Value: 'uint64',
  Int32Value: 'int32',
  UInt32Value: 'uint32',
  BoolValue: 'bool',
  StringValue: 'string',
  BytesValue: 'bytes',
};

const TYPED_STRUCTS = new Set(['udpa.type.v1.TypedStruct', 'xds.type.v3.TypedStruct']);

function fullName(t: protobuf.Type): string {
  return t.fullName.startsWith('.') ? t.fullName.slice(1) : t.fullName;
}

/** Decodes a well-known type, or returns NOT_WKT. */
const NOT_WKT = Symbol('not a well-known type');

function decodeWkt(type: protobuf.Type, v: unknown, path: string, ctx: DecodeContext): unknown {
  const name = fullName(type);
  if (!name.startsWith('google.protobuf.')) return NOT_WKT;
  const short = name.slice('google.protobuf.'.length);
  const wrapped = WRAPPERS[short];
  if (wrapped) {
    // Accept both the plain value (proto3 JSON) and {value: x} (what some tools emit).
    const inner = isObject(v) && Object.keys(v).length === 1 && 'value' in v ? v.value : v;
    return decodeScalar(wrapped, inner, path, ctx);
  }
  switch (short) {
    case 'Duration': {
      const d = parseDuration(v);
      if (!d) {
        ctx.errors.push({ path, message: `invalid duration ${describe(v)}: write it like "1s", "0.25s" or "1.5s"` });
        return undefined;
      }
      if (d.seconds > MAX_DURATION_S || d.seconds < -MAX_DURATION_S) {
        ctx.errors.push({ path, message: 'duration out of range' });
        return undefined;
      }
      return formatDuration(d);
    }
    case 'Timestamp':
      if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(v)) return v;
      ctx.errors.push({ path, message: `invalid timestamp ${describe(v)}: expected RFC 3339` });
      return undefined;
    case 'Struct':
      if (isObject(v)) return v;
      ctx.errors.push({ path, message: `expected an object (Struct), got ${describe(v)}` });
      return undefined;
    case 'ListValue':
      if (Array.isArray(v)) return v;
      ctx.errors.push({ path, message: `expected a list (ListValue), got ${describe(v)}` });
      return undefined;
    case 'Value':
      return v;
    case 'Empty':
      if (isObject(v) && Object.keys(v).length === 0) return {};
      ctx.errors.push({ path, message: `expected {} (Empty), got ${describe(v)}` });
      return undefined;
    case 'FieldMask':
      if (typeof v === 'string') return v;
      ctx.errors.push({ path, message: `expected a comma-separated string (FieldMask), got ${describe(v)}` });
      return undefined;
    case 'Any':
      return decodeAny(v, path, ctx);
    default:
      return NOT_WKT;
  }
}

function isWkt(type: protobuf.Type): boolean {
  const n = fullName(type);
  return n.startsWith('google.protobuf.') && n !== 'google.protobuf.Any';
}

function decodeAny(v: unknown, path: string, ctx: DecodeContext): unknown {
  if (!isObject(v)) {
    ctx.errors.push({ path, message: `expected an object with "@type" (Any), got ${describe(v)}` });
    return undefined;
  }
  // `typed_config: {}` is an empty Any: Envoy then finds the extension by its name.
  if (Object.keys(v).length === 0) return {};
  const url = v['@type'];
  if (typeof url !== 'string' || !url.includes('/')) {
    ctx.errors.push({ path: joinPath(path, '@type'), message: 'is required: a type URL like "type.googleapis.com/<message>"' });
    return undefined;
  }
  const type = typeFromUrl(url);
  if (!type) return unknownType(v, url, path, ctx);
  const { ['@type']: _, ...rest } = v;
  // TypedStruct carries another message as a Struct: decode it as that message.
  if (TYPED_STRUCTS.has(fullName(type))) {
    const innerUrl = rest.type_url;
    if (typeof innerUrl !== 'string') {
      ctx.errors.push({ path: joinPath(path, 'type_url'), message: 'is required' });
      return undefined;
    }
    const innerType = typeFromUrl(innerUrl);
    if (!innerType) return unknownType(v, innerUrl, joinPath(path, 'type_url'), ctx);
    const decoded = fromJson(innerType, rest.value ?? {}, joinPath(path, 'value'), ctx);
    return isObject(decoded) ? { '@type': `type.googleapis.com/${fullName(innerType)}`, ...decoded } : undefined;
  }
  if (isWkt(type)) {
    // A well-known type inside Any keeps its JSON form under "value".
    return { '@type': url, value: fromJson(type, rest.value, joinPath(path, 'value'), ctx) };
  }
  const decoded = fromJson(type, rest, path, ctx);
  return isObject(decoded) ? { '@type': url, ...decoded } : undefined;
}

function unknownType(v: Record<string, unknown>, url: string, path: string, ctx: DecodeContext): unknown {
  if (ctx.unknownAny === 'opaque') {
    ctx.warnings.push({ path, message: `unknown type "${url}" kept as is` });
    return v;
  }
  ctx.errors.push({ path, message: `unknown type "${url}"` });
  return undefined;
}

// ---------------------------------------------------------------- messages

function decodeValue(field: protobuf.Field, v: unknown, path: string, ctx: DecodeContext): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Enum) {
    // NullValue is the JSON null.
    if (rt.fullName === '.google.protobuf.NullValue') return null;
    return decodeEnum(rt, v, path, ctx);
  }
  if (rt instanceof protobuf.Type) return fromJson(rt, v, path, ctx);
  return decodeScalar(field.type, v, path, ctx);
}

function decodeMapKey(keyType: string, k: string, path: string, ctx: DecodeContext): string | undefined {
  if (keyType === 'string') return k;
  if (keyType === 'bool') {
    if (k === 'true' || k === 'false') return k;
    ctx.errors.push({ path, message: `map key ${JSON.stringify(k)} is not a bool` });
    return undefined;
  }
  const n = decodeScalar(keyType, k, path, ctx);
  return n === undefined ? undefined : String(n);
}

function mapKeyPath(path: string, k: string): string {
  return `${path}[${JSON.stringify(k)}]`;
}

/** Decodes one message (or well-known type) from its JSON form into the normalized form. */
export function fromJson(type: protobuf.Type, v: unknown, path: string, ctx: DecodeContext): unknown {
  const wkt = decodeWkt(type, v, path, ctx);
  if (wkt !== NOT_WKT) return wkt;
  if (!isObject(v)) {
    ctx.errors.push({ path, message: `expected an object (${type.name}), got ${describe(v)}` });
    return undefined;
  }
  const { byName } = fieldIndex(type);
  const out: Record<string, unknown> = {};
  const seenOneof = new Map<string, string>();
  for (const [key, raw] of Object.entries(v)) {
    const field = byName.get(key);
    if (!field) {
      const names = type.fieldsArray.map((f) => f.name);
      const near = names.map((n) => [n, distance(key.toLowerCase(), n)] as const).sort((a, b) => a[1] - b[1])[0];
      const hint = near && near[1] <= Math.max(2, Math.floor(key.length / 4)) ? ` (did you mean "${near[0]}"?)` : '';
      ctx.errors.push({ path: joinPath(path, key), message: `unknown field "${key}" in ${type.name}${hint}` });
      continue;
    }
    const fpath = joinPath(path, field.name);
    if (field.name in out) {
      ctx.errors.push({ path: fpath, message: 'given twice (snake_case and camelCase)' });
      continue;
    }
    if (raw === null && !(field.resolvedType instanceof protobuf.Type && fullName(field.resolvedType) === 'google.protobuf.Value')) continue;
    if (field.partOf) {
      const other = seenOneof.get(field.partOf.name);
      if (other) {
        ctx.errors.push({ path: fpath, message: `only one of "${other}" and "${field.name}" may be set (oneof ${field.partOf.name})` });
        continue;
      }
      seenOneof.set(field.partOf.name, field.name);
    }
    let value: unknown;
    if (field.map) {
      if (!isObject(raw)) {
        ctx.errors.push({ path: fpath, message: `expected an object (map), got ${describe(raw)}` });
        continue;
      }
      const m: Record<string, unknown> = {};
      for (const [k, mv] of Object.entries(raw)) {
        const kp = mapKeyPath(fpath, k);
        const key = decodeMapKey((field as unknown as protobuf.MapField).keyType, k, kp, ctx);
        const val = decodeValue(field, mv, kp, ctx);
        if (key !== undefined && val !== undefined) m[key] = val;
      }
      value = m;
    } else if (field.repeated) {
      let list: unknown[];
      if (Array.isArray(raw)) list = raw;
      else if (isObject(raw) && field.resolvedType instanceof protobuf.Type) {
        // Envoy's own examples write a one-element list as a bare object; accept it, say so.
        ctx.warnings.push({ path: fpath, message: 'a single object given for a list; read as a one-element list' });
        list = [raw];
      } else {
        ctx.errors.push({ path: fpath, message: `expected a list, got ${describe(raw)}` });
        continue;
      }
      value = list.map((e, i) => decodeValue(field, e, `${fpath}[${i}]`, ctx)).filter((e) => e !== undefined);
    } else {
      value = decodeValue(field, raw, fpath, ctx);
    }
    if (value !== undefined) out[field.name] = value;
  }
  // Rules from protoc-gen-validate, on set and unset fields alike (as PGV checks defaults).
  for (const field of type.fieldsArray) checkRules(field, out[field.name], joinPath(path, field.name), ctx.errors);
  for (const oneof of type.oneofsArray) {
    if ((oneof.options as Record<string, unknown> | undefined)?.['(validate.required)'] && !seenOneof.has(oneof.name)) {
      ctx.errors.push({ path, message: `one of ${oneof.oneof.map((n) => `"${n}"`).join(', ')} is required` });
    }
  }
  return out;
}
