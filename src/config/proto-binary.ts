import protobuf from 'protobufjs';
import { fromJson, newContext, SPECIAL_JSON, type DecodeContext } from './proto-json.js';
import { lookupType, typeFromUrl } from './registry.js';
import {
  ANY,
  camel,
  formatDuration,
  formatTimestamp,
  fullName,
  isObject,
  normInt,
  parseDuration,
  parseTimestamp,
  shortFloat,
  snake,
  TYPED_STRUCTS,
  WRAPPERS,
} from './wkt.js';

/**
 * The normalized form (see proto-json.ts) to and from protobufjs messages, for xDS: resources
 * arrive as binary Any values, and a persisted snapshot or a test encodes them back.
 *
 * - toJsonValue(type, message): a decoded protobufjs message (or a `toObject` result) → the
 *   same normalized form fromJson produces from YAML, Any values expanded through the registry.
 * - toProtobufObject(type, normalized): the normalized form → an object `type.fromObject`
 *   accepts (Duration "1s" → {seconds, nanos}, wrappers → {value}, Struct → fields/Value, Any →
 *   {type_url, value: bytes}).
 *
 * An Any whose type is not in the registry has no JSON form: toJsonValue writes it as
 * `{'@type': url, '@value': base64}` (reported to `ctx` when one is given), and
 * toProtobufObject turns exactly that back into bytes.
 */

const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

function has(m: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(m, key) && (m as Record<string, unknown>)[key] != null;
}

/** A Long (protobufjs decodes 64-bit integers to long.js objects when it is installed), number or string → bigint. */
function toBigInt(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  if (typeof v === 'string') return BigInt(v);
  if (isObject(v) && typeof v.low === 'number') return BigInt((v as { toString(): string }).toString());
  return 0n;
}

function bytesToBase64(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (Array.isArray(v)) return Buffer.from(v as number[]).toString('base64');
  return '';
}

function scalarToJson(kind: string, v: unknown): unknown {
  if (INT64.has(kind)) return normInt(toBigInt(v));
  if (kind === 'double' || kind === 'float') {
    const n = Number(v);
    if (Number.isNaN(n)) return 'NaN';
    if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
    return kind === 'float' ? shortFloat(n) : n;
  }
  if (kind === 'bytes') return bytesToBase64(v);
  return v;
}

function elemToJson(field: protobuf.Field, v: unknown, ctx: DecodeContext | undefined): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Enum) {
    if (fullName(rt) === 'google.protobuf.NullValue') return null;
    return typeof v === 'number' ? (rt.valuesById[v] ?? v) : v;
  }
  if (rt instanceof protobuf.Type) return messageToJson(rt, v, ctx);
  return scalarToJson(field.type, v);
}

/** Map keys: protobufjs stores 64-bit keys as 8-character hash strings. */
function mapKeyToJson(keyType: string, k: string): string {
  if (INT64.has(keyType) && k.length === 8 && !/^-?\d+$/.test(k)) {
    return protobuf.util.longFromHash(k, keyType === 'uint64' || keyType === 'fixed64').toString();
  }
  return k;
}

/**
 * google.protobuf.Value's field names: protobufjs bundles struct.proto with lowerCamel names
 * (`numberValue`), unlike every other file loaded with keepCase. Go by whichever the type has.
 */
let valueNames: { null: string; number: string; string: string; bool: string; struct: string; list: string } | undefined;

function vn(): NonNullable<typeof valueNames> {
  if (!valueNames) {
    const fields = lookupType('google.protobuf.Value')?.fields ?? {};
    const pick = (snakeName: string) => (snakeName in fields ? snakeName : camel(snakeName));
    valueNames = { null: pick('null_value'), number: pick('number_value'), string: pick('string_value'), bool: pick('bool_value'), struct: pick('struct_value'), list: pick('list_value') };
  }
  return valueNames;
}

function structValueToJson(v: unknown): unknown {
  if (!isObject(v)) return null;
  const n = vn();
  if (has(v, n.struct)) return structToJson(v[n.struct]);
  if (has(v, n.list)) return listToJson(v[n.list]);
  if (has(v, n.string)) return v[n.string];
  if (has(v, n.number)) return scalarToJson('double', v[n.number]);
  if (has(v, n.bool)) return v[n.bool];
  return null;
}

function structToJson(v: unknown): Record<string, unknown> {
  const fields = isObject(v) && isObject(v.fields) ? v.fields : {};
  return Object.fromEntries(Object.entries(fields).map(([k, x]) => [k, structValueToJson(x)]));
}

function listToJson(v: unknown): unknown[] {
  return isObject(v) && Array.isArray(v.values) ? v.values.map(structValueToJson) : [];
}

function anyToJson(m: Record<string, unknown>, ctx: DecodeContext | undefined): unknown {
  const url = typeof m.type_url === 'string' ? m.type_url : '';
  if (!url) return {};
  const bytes = m.value instanceof Uint8Array ? m.value : typeof m.value === 'string' ? Buffer.from(m.value, 'base64') : new Uint8Array(0);
  const type = typeFromUrl(url);
  const opaque = () => {
    if (ctx?.unknownAny === 'error') ctx.errors.push({ path: '', message: `unknown type "${url}"` });
    else ctx?.warnings.push({ path: '', message: `unknown type "${url}" kept as bytes` });
    return { '@type': url, '@value': bytesToBase64(bytes) };
  };
  if (!type) return opaque();
  const name = fullName(type);
  const inner = type.decode(bytes);
  if (TYPED_STRUCTS.has(name)) {
    const ts = messageToJson(type, inner, ctx) as { type_url?: string; value?: unknown };
    const innerType = ts.type_url ? typeFromUrl(ts.type_url) : null;
    // Its JSON form is fully known (type_url + Struct): keep it readable, so the JSON decoder
    // applies its unknown-type rule to the inner type with a proper message.
    if (!innerType) return { '@type': url, ...ts };
    const local = newContext(ctx?.unknownAny ?? 'opaque');
    const decoded = fromJson(innerType, ts.value ?? {}, '', local);
    ctx?.warnings.push(...local.warnings);
    // A TypedStruct that does not decode as its type stays a TypedStruct, as the control plane sent it.
    if (local.errors.length || !isObject(decoded)) return { '@type': url, ...ts };
    return { '@type': ts.type_url, ...decoded };
  }
  const json = messageToJson(type, inner, ctx);
  return SPECIAL_JSON.has(name) ? { '@type': url, value: json } : { '@type': url, ...(json as object) };
}

function messageToJson(type: protobuf.Type, m: unknown, ctx: DecodeContext | undefined): unknown {
  const name = fullName(type);
  if (!isObject(m)) return m;
  const wrapped = WRAPPERS[name];
  if (wrapped) return scalarToJson(wrapped, m.value ?? (wrapped === 'string' ? '' : wrapped === 'bool' ? false : 0));
  switch (name) {
    case 'google.protobuf.Duration':
      return formatDuration({ seconds: toBigInt(m.seconds ?? 0), nanos: Number(m.nanos ?? 0) });
    case 'google.protobuf.Timestamp':
      return formatTimestamp({ seconds: toBigInt(m.seconds ?? 0), nanos: Number(m.nanos ?? 0) });
    case 'google.protobuf.Struct':
      return structToJson(m);
    case 'google.protobuf.Value':
      return structValueToJson(m);
    case 'google.protobuf.ListValue':
      return listToJson(m);
    case 'google.protobuf.FieldMask':
      return (Array.isArray(m.paths) ? (m.paths as string[]) : []).map(camel).join(',');
    case ANY:
      return anyToJson(m, ctx);
  }
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    if (!has(m, field.name)) continue;
    const v = m[field.name];
    if (field.map) {
      const entries = Object.entries(v as Record<string, unknown>);
      if (!entries.length) continue;
      const keyType = (field as unknown as protobuf.MapField).keyType;
      out[field.name] = Object.fromEntries(entries.map(([k, x]) => [mapKeyToJson(keyType, k), elemToJson(field, x, ctx)]));
    } else if (field.repeated) {
      const list = v as unknown[];
      if (!list.length) continue;
      out[field.name] = list.map((x) => elemToJson(field, x, ctx));
    } else {
      out[field.name] = elemToJson(field, v, ctx);
    }
  }
  return out;
}

/**
 * A protobufjs message decoded from binary (or a `toObject` result) → the normalized form.
 * Unset fields (not own properties) and empty lists/maps are left out, as in proto3 JSON.
 */
export function toJsonValue(type: protobuf.Type, message: unknown, ctx?: DecodeContext): unknown {
  return messageToJson(type, message, ctx);
}

// ---------------------------------------------------------------- normalized → fromObject input

function scalarToPb(kind: string, v: unknown): unknown {
  if ((kind === 'double' || kind === 'float') && typeof v === 'string') return Number(v); // "NaN", "Infinity"
  return v; // fromObject reads int64 strings and base64 strings itself
}

function structValueToPb(v: unknown): Record<string, unknown> {
  const n = vn();
  if (v === null || v === undefined) return { [n.null]: 0 };
  if (typeof v === 'number') return { [n.number]: v };
  if (typeof v === 'string') return { [n.string]: v };
  if (typeof v === 'boolean') return { [n.bool]: v };
  if (Array.isArray(v)) return { [n.list]: { values: v.map(structValueToPb) } };
  if (isObject(v)) return { [n.struct]: structToPb(v) };
  throw new Error(`not a JSON value: ${String(v)}`);
}

function structToPb(v: Record<string, unknown>): Record<string, unknown> {
  return { fields: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, structValueToPb(x)])) };
}

function anyToPb(v: Record<string, unknown>): Record<string, unknown> {
  const url = v['@type'];
  if (url === undefined && Object.keys(v).length === 0) return {};
  if (typeof url !== 'string') throw new Error('an Any without "@type"');
  if (typeof v['@value'] === 'string') return { type_url: url, value: Buffer.from(v['@value'], 'base64') };
  const type = typeFromUrl(url);
  if (!type) throw new Error(`cannot encode an Any of unknown type "${url}"`);
  const { ['@type']: _, ...rest } = v;
  const pb = toProtobufObject(type, SPECIAL_JSON.has(fullName(type)) ? rest.value : rest);
  return { type_url: url, value: type.encode(type.fromObject(pb as Record<string, unknown>)).finish() };
}

function elemToPb(field: protobuf.Field, v: unknown): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return toProtobufObject(rt, v);
  if (rt instanceof protobuf.Enum) return v; // fromObject takes names and numbers
  return scalarToPb(field.type, v);
}

/**
 * The normalized form → an object protobufjs's `type.fromObject` accepts, for encoding.
 * Throws on what cannot be encoded (an opaque Any of an unknown type, a field the type lacks).
 */
export function toProtobufObject(type: protobuf.Type, value: unknown): unknown {
  const name = fullName(type);
  const wrapped = WRAPPERS[name];
  if (wrapped) return { value: scalarToPb(wrapped, value) };
  switch (name) {
    case 'google.protobuf.Duration':
    case 'google.protobuf.Timestamp': {
      const d = name === 'google.protobuf.Duration' ? parseDuration(value) : parseTimestamp(value);
      if (!d) throw new Error(`not a ${name}: ${String(value)}`);
      return { seconds: normInt(d.seconds), nanos: d.nanos };
    }
    case 'google.protobuf.Struct':
      return structToPb(isObject(value) ? value : {});
    case 'google.protobuf.Value':
      return structValueToPb(value);
    case 'google.protobuf.ListValue':
      return { values: (Array.isArray(value) ? value : []).map(structValueToPb) };
    case 'google.protobuf.FieldMask':
      return { paths: typeof value === 'string' && value ? value.split(',').map(snake) : [] };
    case ANY:
      return anyToPb(isObject(value) ? value : {});
  }
  if (!isObject(value)) throw new Error(`${name}: expected an object, got ${typeof value}`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const field = type.fields[k];
    if (!field) throw new Error(`${name} has no field "${k}"`);
    if (v === null || v === undefined) continue;
    if (field.map) out[k] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([mk, mv]) => [mk, elemToPb(field, mv)]));
    else if (field.repeated) out[k] = (v as unknown[]).map((e) => elemToPb(field, e));
    else out[k] = elemToPb(field, v);
  }
  return out;
}
