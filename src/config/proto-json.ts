import protobuf from 'protobufjs';
import type { FieldError } from '../errors.js';
import { typeFromUrl } from './registry.js';
import { checkRules } from './validate.js';
import {
  ANY,
  camel,
  describe,
  formatDuration,
  formatTimestamp,
  fullName,
  indexPath,
  isObject,
  joinPath,
  keyPath,
  normBase64,
  normInt,
  parseDuration,
  parseTimestamp,
  snake,
  TYPED_STRUCTS,
  WRAPPERS,
} from './wkt.js';

export { joinPath, parseDuration } from './wkt.js';
export { toJsonValue, toProtobufObject } from './proto-binary.js';

/**
 * The proto3 JSON mapping, as Envoy reads YAML and JSON: snake_case and lowerCamel names,
 * enums by name in any case, durations as "1.5s", wrappers as plain values, Any with `@type`,
 * TypedStruct unwrapped for known types, Struct as free JSON. protobufjs's fromObject does none
 * of this (it rejects `connect_timeout: 1s`), so the mapping lives here, once.
 *
 * Output is the *normalized form*, itself valid proto3 JSON (so /config_dump prints it as is):
 * - keys are the proto (snake_case) field names; `null` and empty lists/maps are left out
 *   (proto3 cannot tell them from unset); explicit scalar values, zero included, are kept;
 * - enums are their declared names ("ROUND_ROBIN"); an undeclared number stays a number;
 * - int32/uint32 are numbers; int64/uint64 are numbers, or decimal strings beyond 2^53;
 * - double/float are numbers, or "NaN" / "Infinity" / "-Infinity";
 * - bytes are standard padded base64;
 * - Duration is its canonical string ("1s", "0.250s", "-1.500s"; read it with durationMs());
 *   Timestamp is RFC 3339 in UTC ("2023-06-20T08:00:00.500Z"); FieldMask is "a.b,cD" (lowerCamel);
 * - wrappers (UInt32Value, BoolValue, …) are the plain value; Struct/Value/ListValue are plain JSON;
 * - Any is `{'@type': url, ...fields}` (`{'@type': url, value}` for a well-known type with a
 *   JSON form of its own); a TypedStruct of a known type becomes the Any of that type; an unknown
 *   type kept by `unknownAny: 'opaque'` stays exactly as given.
 *
 * Every problem is pushed to `ctx.errors` with its field path; decoding never stops early.
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

// ---------------------------------------------------------------- field lookup

interface FieldIndex {
  /** proto name, lowerCamel name and json_name → field. */
  readonly byName: ReadonlyMap<string, protobuf.Field>;
}

const indexCache = new WeakMap<protobuf.Type, FieldIndex>();

function fieldIndex(type: protobuf.Type): FieldIndex {
  let idx = indexCache.get(type);
  if (!idx) {
    const byName = new Map<string, protobuf.Field>();
    for (const f of type.fieldsArray) {
      byName.set(f.name, f);
      byName.set(camel(f.name), f);
      const jsonName = f.options?.json_name as unknown;
      if (typeof jsonName === 'string') byName.set(jsonName, f);
    }
    idx = { byName };
    indexCache.set(type, idx);
  }
  return idx;
}

/** Edit distance, for "did you mean" on unknown fields. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The field a mistyped key most likely meant (compared in snake_case, case-insensitively). */
function suggest(type: protobuf.Type, key: string): string | null {
  const k = snake(key).toLowerCase();
  let best: string | null = null;
  let bestD = Math.max(2, Math.floor(k.length / 4)) + 1;
  for (const f of type.fieldsArray) {
    const d = distance(k, f.name);
    if (d < bestD) {
      best = f.name;
      bestD = d;
    }
  }
  return best;
}

// ---------------------------------------------------------------- scalars

const RANGES: Record<string, readonly [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

const FLOAT_MAX = 3.4028234663852886e38;

function decodeScalar(kind: string, v: unknown, path: string, ctx: DecodeContext): unknown {
  const bad = (what = kind) => {
    ctx.errors.push({ path, message: `expected ${what}, got ${describe(v)}` });
    return undefined;
  };
  switch (kind) {
    case 'string':
      return typeof v === 'string' ? v : bad();
    case 'bool':
      return typeof v === 'boolean' ? v : bad();
    case 'bytes': {
      const b = typeof v === 'string' ? normBase64(v) : null;
      return b ?? bad('bytes (base64)');
    }
    case 'double':
    case 'float': {
      let n: number;
      if (typeof v === 'number') n = v;
      else if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return v;
      else if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) n = Number(v);
      else return bad();
      if (kind === 'float' && Math.abs(n) > FLOAT_MAX) {
        ctx.errors.push({ path, message: `${n} is out of range for float` });
        return undefined;
      }
      return n;
    }
  }
  const range = RANGES[kind];
  if (!range) return bad(); // not a scalar type name: cannot happen with resolved protos
  // JSON numbers, or decimal strings (proto3 JSON writes 64-bit integers as strings).
  let n: bigint;
  if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v);
  else if (typeof v === 'string' && /^-?\d+$/.test(v)) n = BigInt(v);
  else return bad();
  if (n < range[0] || n > range[1]) {
    ctx.errors.push({ path, message: `${String(v)} is out of range for ${kind}` });
    return undefined;
  }
  return normInt(n);
}

function decodeEnum(e: protobuf.Enum, v: unknown, path: string, ctx: DecodeContext): string | number | undefined {
  let name: string | undefined;
  if (typeof v === 'number' && Number.isInteger(v)) {
    name = e.valuesById[v];
    if (name === undefined && v >= -(2 ** 31) && v < 2 ** 31) {
      // proto3 enums are open: an undeclared number is kept (PGV `defined_only` rejects it).
      ctx.warnings.push({ path, message: `${v} is not a declared ${e.name} value; kept as a number` });
      return v;
    }
  } else if (typeof v === 'string') {
    if (Object.prototype.hasOwnProperty.call(e.values, v)) name = v;
    else {
      const upper = v.toUpperCase();
      name = Object.keys(e.values).find((n) => n.toUpperCase() === upper);
    }
  }
  if (name === undefined) {
    ctx.errors.push({ path, message: `invalid ${e.name} value ${describe(v)}; valid: ${Object.keys(e.values).join(', ')}` });
    return undefined;
  }
  if (e.valuesOptions?.[name]?.deprecated === true) ctx.warnings.push({ path, message: `deprecated value ${name} of ${e.name}` });
  return name;
}

// ---------------------------------------------------------------- well-known types

/** Well-known types whose JSON form is not an object of their fields (inside Any they sit under "value"). */
export const SPECIAL_JSON = new Set([
  ...Object.keys(WRAPPERS),
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.FieldMask',
  ANY,
]);

const NOT_WKT = Symbol('not a well-known type');

function decodeWkt(name: string, v: unknown, path: string, ctx: DecodeContext): unknown {
  const fail = (message: string) => {
    ctx.errors.push({ path, message });
    return undefined;
  };
  const wrapped = WRAPPERS[name];
  if (wrapped) {
    // The plain value (proto3 JSON) or {value: x} (what some tools write).
    const inner = isObject(v) && Object.keys(v).length === 1 && 'value' in v ? v.value : v;
    return decodeScalar(wrapped, inner, path, ctx);
  }
  switch (name) {
    case 'google.protobuf.Duration': {
      const d = parseDuration(v);
      return d ? formatDuration(d) : fail(`invalid duration ${describe(v)}: write it like "1s", "0.25s" or "1.5s"`);
    }
    case 'google.protobuf.Timestamp': {
      const t = parseTimestamp(v);
      return t ? formatTimestamp(t) : fail(`invalid timestamp ${describe(v)}: expected RFC 3339, like "2024-01-31T12:00:00Z"`);
    }
    case 'google.protobuf.Struct':
      return isObject(v) ? v : fail(`expected an object (Struct), got ${describe(v)}`);
    case 'google.protobuf.ListValue':
      return Array.isArray(v) ? v : fail(`expected a list (ListValue), got ${describe(v)}`);
    case 'google.protobuf.Value':
      return v;
    case 'google.protobuf.FieldMask': {
      let paths: unknown[];
      if (typeof v === 'string') paths = v === '' ? [] : v.split(',');
      else if (isObject(v) && Array.isArray(v.paths)) paths = v.paths;
      else return fail(`expected a comma-separated list of field paths (FieldMask), got ${describe(v)}`);
      if (!paths.every((p) => typeof p === 'string' && /^[A-Za-z0-9_.]+$/.test(p))) return fail(`invalid field mask ${describe(v)}`);
      return (paths as string[]).map(camel).join(',');
    }
    case ANY:
      return decodeAny(v, path, ctx);
    default:
      return NOT_WKT;
  }
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
    ctx.errors.push({
      path: joinPath(path, '@type'),
      message: url === undefined ? 'is required: a type URL like "type.googleapis.com/<message>"' : `invalid type URL ${describe(url)}`,
    });
    return undefined;
  }
  const type = typeFromUrl(url);
  if (!type) return unknownType(v, url, '', path, ctx);
  const { ['@type']: _, ...rest } = v;
  const name = fullName(type);
  if (TYPED_STRUCTS.has(name)) return decodeTypedStruct(type, v, rest, path, ctx);
  if (SPECIAL_JSON.has(name)) {
    for (const k of Object.keys(rest)) if (k !== 'value') ctx.errors.push({ path: joinPath(path, k), message: `unknown field "${k}" (an Any of ${name} holds only "value")` });
    const value = fromJson(type, rest.value, joinPath(path, 'value'), ctx);
    return value === undefined ? undefined : { '@type': url, value };
  }
  const decoded = fromJson(type, rest, path, ctx);
  return isObject(decoded) ? { '@type': url, ...decoded } : undefined;
}

/** TypedStruct carries another message as a Struct: decode it as that message (Istio wraps even upstream types). */
function decodeTypedStruct(type: protobuf.Type, v: Record<string, unknown>, rest: Record<string, unknown>, path: string, ctx: DecodeContext): unknown {
  const ts = fromJson(type, rest, path, ctx) as { type_url?: string; value?: Record<string, unknown> } | undefined;
  if (!ts) return undefined;
  const innerUrl = ts.type_url;
  if (!innerUrl) {
    ctx.errors.push({ path: joinPath(path, 'type_url'), message: 'is required' });
    return undefined;
  }
  const innerType = typeFromUrl(innerUrl);
  if (!innerType) return unknownType(v, innerUrl, ` (in a ${fullName(type)})`, path, ctx);
  const decoded = fromJson(innerType, ts.value ?? {}, joinPath(path, 'value'), ctx);
  return isObject(decoded) ? { '@type': innerUrl, ...decoded } : undefined;
}

function unknownType(v: Record<string, unknown>, url: string, where: string, path: string, ctx: DecodeContext): unknown {
  if (ctx.unknownAny === 'opaque') {
    ctx.warnings.push({ path, message: `unknown type "${url}"${where} kept as is` });
    return v;
  }
  ctx.errors.push({ path, message: `unknown type "${url}"${where}` });
  return undefined;
}

// ---------------------------------------------------------------- messages

function decodeValue(field: protobuf.Field, v: unknown, path: string, ctx: DecodeContext): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Enum) {
    if (fullName(rt) === 'google.protobuf.NullValue') return null; // NullValue is JSON null
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

/**
 * Decodes one field's JSON value. `dropped`: some of it was refused (reported) and left out, so
 * its validate rules would judge a value the user did not write.
 */
function decodeField(field: protobuf.Field, raw: unknown, fpath: string, ctx: DecodeContext): { value: unknown; dropped: boolean } {
  if (field.map) {
    if (!isObject(raw)) {
      ctx.errors.push({ path: fpath, message: `expected an object (map), got ${describe(raw)}` });
      return { value: undefined, dropped: true };
    }
    const m: Record<string, unknown> = {};
    let dropped = false;
    for (const [k, mv] of Object.entries(raw)) {
      const kp = keyPath(fpath, k);
      const key = decodeMapKey((field as unknown as protobuf.MapField).keyType, k, kp, ctx);
      const val = decodeValue(field, mv, kp, ctx);
      if (key !== undefined && val !== undefined) m[key] = val;
      else dropped = true;
    }
    return { value: Object.keys(m).length ? m : undefined, dropped };
  }
  if (field.repeated) {
    let list: unknown[];
    if (Array.isArray(raw)) list = raw;
    else if (isObject(raw) && field.resolvedType instanceof protobuf.Type && !TYPE_IS_LIST_LIKE.has(fullName(field.resolvedType))) {
      // Envoy's own examples write a one-element list as a bare object; accept it, say so.
      ctx.warnings.push({ path: fpath, message: 'a single object given for a list; read as a one-element list' });
      list = [raw];
    } else {
      ctx.errors.push({ path: fpath, message: `expected a list, got ${describe(raw)}` });
      return { value: undefined, dropped: true };
    }
    const out = list.map((e, i) => decodeValue(field, e, indexPath(fpath, i), ctx)).filter((e) => e !== undefined);
    return { value: out.length ? out : undefined, dropped: out.length < list.length };
  }
  const value = decodeValue(field, raw, fpath, ctx);
  return { value, dropped: value === undefined };
}

/** Repeated Struct/Value elements: a bare object there is a value, not a one-element list. */
const TYPE_IS_LIST_LIKE = new Set(['google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.ListValue']);

function isValueField(field: protobuf.Field): boolean {
  return field.resolvedType instanceof protobuf.Type && fullName(field.resolvedType) === 'google.protobuf.Value';
}

/**
 * Decodes one message (or well-known type) from its JSON form into the normalized form,
 * pushing every problem to `ctx.errors`. Returns undefined when `v` is not usable at all.
 */
export function fromJson(type: protobuf.Type, v: unknown, path: string, ctx: DecodeContext): unknown {
  const name = fullName(type);
  if (name.startsWith('google.protobuf.')) {
    const wkt = decodeWkt(name, v, path, ctx);
    if (wkt !== NOT_WKT) return wkt;
  }
  if (!isObject(v)) {
    ctx.errors.push({ path, message: `expected an object (${type.name}), got ${describe(v)}` });
    return undefined;
  }
  const { byName } = fieldIndex(type);
  const out: Record<string, unknown> = {};
  const given = new Map<string, string>(); // field name → the key it was given as
  const oneofs = new Map<string, string>(); // oneof name → the member set
  const failed = new Set<string>(); // fields whose value was (partly) refused
  for (const [key, raw] of Object.entries(v)) {
    const field = byName.get(key);
    if (!field) {
      const near = suggest(type, key);
      ctx.errors.push({ path: joinPath(path, key), message: `unknown field "${key}" in ${type.name}${near ? ` (did you mean "${near}"?)` : ''}` });
      continue;
    }
    const fpath = joinPath(path, field.name);
    const earlier = given.get(field.name);
    if (earlier !== undefined) {
      ctx.errors.push({ path: fpath, message: `given twice, as "${earlier}" and as "${key}"` });
      continue;
    }
    given.set(field.name, key);
    if (raw === null && !isValueField(field)) continue; // null means unset
    if (field.partOf) {
      const other = oneofs.get(field.partOf.name);
      if (other) {
        ctx.errors.push({ path: fpath, message: `only one of "${other}" and "${field.name}" may be set (oneof ${field.partOf.name})` });
        continue;
      }
      oneofs.set(field.partOf.name, field.name);
    }
    if (field.options?.deprecated === true) ctx.warnings.push({ path: fpath, message: `deprecated field "${field.name}" of ${type.name}` });
    const { value, dropped } = decodeField(field, raw, fpath, ctx);
    if (value !== undefined) out[field.name] = value;
    if (dropped) failed.add(field.name);
  }
  // protoc-gen-validate rules, on set and unset fields alike (PGV checks defaults too).
  for (const field of type.fieldsArray) {
    // A value that failed to decode was reported already; its rules would judge what is left of it.
    if (failed.has(field.name)) continue;
    checkRules(field, out[field.name], joinPath(path, field.name), ctx.errors);
  }
  for (const oneof of type.oneofsArray) {
    if (oneof.options?.['(validate.required)'] === true && !oneofs.has(oneof.name)) {
      ctx.errors.push({ path, message: `one of ${oneof.oneof.map((n) => `"${n}"`).join(', ')} is required` });
    }
  }
  return out;
}
