import protobuf from 'protobufjs';
import type { FieldError } from '../errors.js';
import { parseDuration } from './proto-json.js';

/**
 * The protoc-gen-validate rules Envoy's protos carry (`[(validate.rules).string = {min_len: 1}]`),
 * enforced generically from the field options protobufjs keeps (flattened, e.g.
 * `(validate.rules).uint32.gte`). A subset: the rules Envoy's API actually leans on.
 */

type Rules = Map<string, unknown>; // "string.min_len" -> 1

const PREFIX = '(validate.rules).';
const cache = new WeakMap<protobuf.Field, Rules | null>();

function rulesOf(field: protobuf.Field): Rules | null {
  let r = cache.get(field);
  if (r !== undefined) return r;
  r = null;
  const opts = field.options as Record<string, unknown> | undefined;
  if (opts) {
    for (const [k, v] of Object.entries(opts)) {
      if (!k.startsWith(PREFIX)) continue;
      r ??= new Map();
      r.set(k.slice(PREFIX.length), v);
    }
  }
  cache.set(field, r);
  return r;
}

const NUMERIC = ['double', 'float', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64'];

function checkNumber(kind: string, rules: Rules, n: number, path: string, errors: FieldError[]): void {
  const g = (r: string) => rules.get(`${kind}.${r}`) as number | undefined;
  const c = g('const');
  if (c !== undefined && n !== Number(c)) errors.push({ path, message: `value must equal ${c}` });
  const gt = g('gt');
  if (gt !== undefined && !(n > Number(gt))) errors.push({ path, message: `value must be > ${gt}` });
  const gte = g('gte');
  if (gte !== undefined && !(n >= Number(gte))) errors.push({ path, message: `value must be >= ${gte}` });
  const lt = g('lt');
  if (lt !== undefined && !(n < Number(lt))) errors.push({ path, message: `value must be < ${lt}` });
  const lte = g('lte');
  if (lte !== undefined && !(n <= Number(lte))) errors.push({ path, message: `value must be <= ${lte}` });
}

function checkString(rules: Rules, s: string, path: string, errors: FieldError[]): void {
  if (rules.get('string.ignore_empty') && s === '') return;
  const chars = [...s].length;
  const minLen = rules.get('string.min_len') as number | undefined;
  if (minLen !== undefined && chars < minLen) {
    errors.push({ path, message: s === '' ? `is required (must be at least ${minLen} character${minLen === 1 ? '' : 's'})` : `must be at least ${minLen} characters` });
  }
  const maxLen = rules.get('string.max_len') as number | undefined;
  if (maxLen !== undefined && chars > maxLen) errors.push({ path, message: `must be at most ${maxLen} characters` });
  const minBytes = rules.get('string.min_bytes') as number | undefined;
  if (minBytes !== undefined && Buffer.byteLength(s) < minBytes) {
    errors.push({ path, message: s === '' ? 'is required (must not be empty)' : `must be at least ${minBytes} bytes` });
  }
  const maxBytes = rules.get('string.max_bytes') as number | undefined;
  if (maxBytes !== undefined && Buffer.byteLength(s) > maxBytes) errors.push({ path, message: `must be at most ${maxBytes} bytes` });
  const prefix = rules.get('string.prefix') as string | undefined;
  if (prefix !== undefined && !s.startsWith(prefix)) errors.push({ path, message: `must start with "${prefix}"` });
}

function durationNanos(d: { seconds: bigint; nanos: number }): bigint {
  return d.seconds * 1_000_000_000n + BigInt(d.nanos);
}

function checkDuration(rules: Rules, v: unknown, path: string, errors: FieldError[]): void {
  const d = parseDuration(v);
  if (!d) return;
  const n = durationNanos(d);
  for (const [op, test, word] of [
    ['gt', (a: bigint, b: bigint) => a > b, '>'],
    ['gte', (a: bigint, b: bigint) => a >= b, '>='],
    ['lt', (a: bigint, b: bigint) => a < b, '<'],
    ['lte', (a: bigint, b: bigint) => a <= b, '<='],
  ] as const) {
    const s = rules.get(`duration.${op}.seconds`);
    const ns = rules.get(`duration.${op}.nanos`);
    if (s === undefined && ns === undefined) continue;
    const bound = BigInt(Number(s ?? 0)) * 1_000_000_000n + BigInt(Number(ns ?? 0));
    if (!test(n, bound)) errors.push({ path, message: `duration must be ${word} ${Number(bound) / 1e9}s` });
  }
}

/** Checks one field's value (undefined = unset) against its validate rules. */
export function checkRules(field: protobuf.Field, value: unknown, path: string, errors: FieldError[]): void {
  const rules = rulesOf(field);
  if (!rules) return;
  // PGV checks a oneof member only when it is the one set.
  if (field.partOf && value === undefined) return;
  const isMessage = field.resolvedType instanceof protobuf.Type;
  if (value === undefined) {
    if (rules.get('message.required') || rules.get('duration.required') || rules.get('any.required') || rules.get('timestamp.required')) {
      errors.push({ path, message: 'is required' });
      return;
    }
    if (isMessage && !field.repeated && !field.map) return; // unset message: nothing else to check
  }
  if (field.repeated) {
    const list = (value ?? []) as unknown[];
    const min = rules.get('repeated.min_items') as number | undefined;
    if (min !== undefined && list.length < min) errors.push({ path, message: `must have at least ${min} item${min === 1 ? '' : 's'}` });
    const max = rules.get('repeated.max_items') as number | undefined;
    if (max !== undefined && list.length > max) errors.push({ path, message: `must have at most ${max} item${max === 1 ? '' : 's'}` });
    // Item rules: string items are the common case in Envoy's API.
    const itemMin = rules.get('repeated.items.string.min_len') as number | undefined;
    if (itemMin !== undefined) list.forEach((s, i) => typeof s === 'string' && [...s].length < itemMin && errors.push({ path: `${path}[${i}]`, message: `must be at least ${itemMin} characters` }));
    return;
  }
  if (field.map) {
    const min = rules.get('map.min_pairs') as number | undefined;
    if (min !== undefined && Object.keys((value ?? {}) as object).length < min) errors.push({ path, message: `must have at least ${min} entries` });
    return;
  }
  const typeName = isMessage ? (field.resolvedType as protobuf.Type).fullName : field.type;
  if (typeName === '.google.protobuf.Duration') {
    checkDuration(rules, value, path, errors);
    return;
  }
  const str = value ?? (field.type === 'string' ? '' : undefined);
  if (typeof str === 'string' && (rules.has('string.min_len') || rules.has('string.min_bytes') || rules.has('string.max_len') || rules.has('string.max_bytes') || rules.has('string.prefix'))) {
    checkString(rules, str, path, errors);
    return;
  }
  for (const kind of NUMERIC) {
    if (![...rules.keys()].some((k) => k.startsWith(`${kind}.`))) continue;
    const n = value === undefined ? (isMessage ? undefined : 0) : Number(value);
    if (n !== undefined && !Number.isNaN(n)) checkNumber(kind, rules, n, path, errors);
  }
}
