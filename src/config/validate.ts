import protobuf from 'protobufjs';
import type { FieldError } from '../errors.js';
import { describe, durationNanos, formatDuration, fullName, indexPath, keyPath, parseDuration, WRAPPERS } from './wkt.js';

/**
 * The protoc-gen-validate rules Envoy's protos carry (`[(validate.rules).string = {min_len: 1}]`),
 * enforced generically from the field options protobufjs keeps, flattened
 * (`(validate.rules).uint32.gte`, `(validate.rules).repeated.items.string.min_len`).
 *
 * The subset Envoy's API leans on: string lengths, prefix/suffix/contains, pattern,
 * well_known_regex (HTTP header names and values); bytes lengths; numeric const/gt/gte/lt/lte;
 * bool const; enum defined_only; message/duration/any/timestamp required; duration ranges;
 * repeated min/max_items, unique and item rules; map min/max_pairs and key/value rules; and
 * `ignore_empty`. Not enforced: `in`/`not_in` (protobufjs keeps only one element of a repeated
 * option, so the list is not known) and the rarely used email/hostname/ip/uri string rules.
 */

type Rules = ReadonlyMap<string, unknown>; // "string.min_len" -> 1

const PREFIX = '(validate.rules).';
const cache = new WeakMap<protobuf.Field, Rules | null>();

function rulesOf(field: protobuf.Field): Rules | null {
  let r = cache.get(field);
  if (r !== undefined) return r;
  let m: Map<string, unknown> | null = null;
  for (const [k, v] of Object.entries(field.options ?? {})) {
    if (!k.startsWith(PREFIX)) continue;
    m ??= new Map();
    m.set(k.slice(PREFIX.length), v);
  }
  r = m;
  cache.set(field, r);
  return r;
}

/** The PGV rule group that applies to values of a type: `string`, `uint32`, `enum`, `duration`, `message`… */
interface Kind {
  readonly group: string;
  readonly enumType?: protobuf.Enum;
  /** A message type: unset means absent (no default value to check). */
  readonly message: boolean;
}

function kindOf(type: string, resolved: protobuf.ReflectionObject | null): Kind {
  if (resolved instanceof protobuf.Enum) return { group: 'enum', enumType: resolved, message: false };
  if (resolved instanceof protobuf.Type) {
    const name = fullName(resolved);
    const wrapped = WRAPPERS[name];
    if (wrapped) return { group: wrapped, message: true };
    const wkt = { 'google.protobuf.Duration': 'duration', 'google.protobuf.Timestamp': 'timestamp', 'google.protobuf.Any': 'any' }[name];
    return { group: wkt ?? 'message', message: true };
  }
  return { group: type, message: false };
}

const NUMERIC = new Set(['double', 'float', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64']);

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** proto3 default of a scalar or enum field: PGV checks unset fields as their default. */
function defaultOf(kind: Kind): unknown {
  if (kind.enumType) return 0;
  if (kind.group === 'string' || kind.group === 'bytes') return '';
  if (kind.group === 'bool') return false;
  return 0;
}

const patterns = new Map<string, RegExp | null>();

function pattern(p: string): RegExp | null {
  let re = patterns.get(p);
  if (re === undefined) {
    try {
      re = new RegExp(p, 'u'); // RE2 and JS agree on the simple patterns Envoy uses
    } catch {
      re = null;
    }
    patterns.set(p, re);
  }
  return re;
}

// RFC 7230 token (with a leading ':' for HTTP/2 pseudo-headers), and field-value without CTLs.
const HEADER_NAME_STRICT = /^:?[0-9A-Za-z!#$%&'*+\-.^_`|~]+$/;
const HEADER_VALUE_STRICT = /^[^\0-\x08\x0a-\x1f\x7f]*$/;
// `strict: false`: only NUL, CR and LF are refused.
const HEADER_LOOSE = /^[^\0\r\n]*$/;

class Checker {
  constructor(
    private readonly rules: Rules,
    private readonly prefix: string,
    private readonly errors: FieldError[],
  ) {}

  get(name: string): unknown {
    return this.rules.get(this.prefix + name);
  }

  has(group: string): boolean {
    const p = `${this.prefix}${group}.`;
    for (const k of this.rules.keys()) if (k.startsWith(p)) return true;
    return false;
  }

  err(path: string, message: string): void {
    this.errors.push({ path, message });
  }

  /** Checks one set (or defaulted) value against the rules of its group. */
  value(kind: Kind, v: unknown, path: string): void {
    const g = kind.group;
    if (!this.has(g)) return;
    if (g === 'string' && typeof v === 'string') this.string(v, path);
    else if (g === 'bytes' && typeof v === 'string') this.bytes(v, path);
    else if (g === 'bool') {
      const c = this.get('bool.const');
      if (c !== undefined && v !== c) this.err(path, `must be ${String(c)}`);
    } else if (g === 'enum') this.enumValue(kind.enumType!, v, path);
    else if (g === 'duration') this.duration(v, path);
    else if (NUMERIC.has(g)) this.number(g, v, path);
  }

  private string(s: string, path: string): void {
    if (this.get('string.ignore_empty') && s === '') return;
    const chars = [...s].length;
    const bytes = Buffer.byteLength(s);
    const num = (r: string) => {
      const x = this.get(`string.${r}`);
      return x === undefined ? undefined : Number(x);
    };
    const c = this.get('string.const');
    if (c !== undefined && s !== c) this.err(path, `must equal ${JSON.stringify(c)}`);
    const len = num('len');
    if (len !== undefined && chars !== len) this.err(path, `must be exactly ${plural(len, 'character')}`);
    const minLen = num('min_len');
    if (minLen !== undefined && chars < minLen) {
      this.err(path, s === '' ? `is required (must be at least ${plural(minLen, 'character')})` : `must be at least ${plural(minLen, 'character')}`);
    }
    const maxLen = num('max_len');
    if (maxLen !== undefined && chars > maxLen) this.err(path, `must be at most ${plural(maxLen, 'character')}`);
    const minBytes = num('min_bytes');
    if (minBytes !== undefined && bytes < minBytes) this.err(path, s === '' ? 'is required (must not be empty)' : `must be at least ${plural(minBytes, 'byte')}`);
    const maxBytes = num('max_bytes');
    if (maxBytes !== undefined && bytes > maxBytes) this.err(path, `must be at most ${plural(maxBytes, 'byte')}`);
    const prefix = this.get('string.prefix');
    if (typeof prefix === 'string' && !s.startsWith(prefix)) this.err(path, `must start with ${JSON.stringify(prefix)}`);
    const suffix = this.get('string.suffix');
    if (typeof suffix === 'string' && !s.endsWith(suffix)) this.err(path, `must end with ${JSON.stringify(suffix)}`);
    const contains = this.get('string.contains');
    if (typeof contains === 'string' && !s.includes(contains)) this.err(path, `must contain ${JSON.stringify(contains)}`);
    const notContains = this.get('string.not_contains');
    if (typeof notContains === 'string' && s.includes(notContains)) this.err(path, `must not contain ${JSON.stringify(notContains)}`);
    const pat = this.get('string.pattern');
    const re = typeof pat === 'string' ? pattern(pat) : null;
    if (re && !re.test(s)) this.err(path, `must match the pattern ${pat as string}`);
    const wk = this.get('string.well_known_regex');
    // Emptiness is min_len's business; a header rule on "" would only repeat it.
    if (wk !== undefined && s !== '') {
      const strict = this.get('string.strict') !== false;
      if (wk === 'HTTP_HEADER_NAME' || wk === 1) {
        if (!(strict ? HEADER_NAME_STRICT : HEADER_LOOSE).test(s)) this.err(path, `${describe(s)} is not a valid HTTP header name`);
      } else if (wk === 'HTTP_HEADER_VALUE' || wk === 2) {
        if (!(strict ? HEADER_VALUE_STRICT : HEADER_LOOSE).test(s)) this.err(path, `${describe(s)} is not a valid HTTP header value`);
      }
    }
  }

  private bytes(b64: string, path: string): void {
    const n = Buffer.from(b64, 'base64').length;
    if (this.get('bytes.ignore_empty') && n === 0) return;
    const min = this.get('bytes.min_len');
    if (min !== undefined && n < Number(min)) this.err(path, `must be at least ${plural(Number(min), 'byte')}`);
    const max = this.get('bytes.max_len');
    if (max !== undefined && n > Number(max)) this.err(path, `must be at most ${plural(Number(max), 'byte')}`);
    const len = this.get('bytes.len');
    if (len !== undefined && n !== Number(len)) this.err(path, `must be exactly ${plural(Number(len), 'byte')}`);
  }

  private enumValue(e: protobuf.Enum, v: unknown, path: string): void {
    const num = typeof v === 'number' ? v : typeof v === 'string' ? e.values[v] : undefined;
    if (this.get('enum.defined_only') && (num === undefined || e.valuesById[num] === undefined)) {
      this.err(path, `${describe(v)} is not a defined ${e.name} value; valid: ${Object.keys(e.values).join(', ')}`);
    }
    const c = this.get('enum.const');
    if (c !== undefined && num !== Number(c)) this.err(path, `must be ${e.valuesById[Number(c)] ?? String(c)}`);
  }

  /** gt/gte/lt/lte, with PGV's meaning when lower > upper: the value must lie outside. */
  private range<T extends number | bigint>(v: T, lo: { gt?: T; gte?: T }, hi: { lt?: T; lte?: T }, show: (x: T) => string, path: string, what: string): void {
    const lower = lo.gt ?? lo.gte;
    const upper = hi.lt ?? hi.lte;
    const okLower = lower === undefined || (lo.gt !== undefined ? v > lo.gt : v >= lower);
    const okUpper = upper === undefined || (hi.lt !== undefined ? v < hi.lt : v <= upper);
    const loText = lo.gt !== undefined ? `> ${show(lo.gt)}` : lo.gte !== undefined ? `>= ${show(lo.gte)}` : '';
    const hiText = hi.lt !== undefined ? `< ${show(hi.lt)}` : hi.lte !== undefined ? `<= ${show(hi.lte)}` : '';
    if (lower !== undefined && upper !== undefined && upper < lower) {
      if (!okLower && !okUpper) this.err(path, `${what} must be ${hiText} or ${loText}`);
      return;
    }
    if (!okLower) this.err(path, `${what} must be ${loText}`);
    if (!okUpper) this.err(path, `${what} must be ${hiText}`);
  }

  private number(g: string, v: unknown, path: string): void {
    const n = typeof v === 'number' ? v : Number(v); // int64 beyond 2^53 comes as a string
    if (this.get(`${g}.ignore_empty`) && n === 0) return;
    const r = (name: string) => {
      const x = this.get(`${g}.${name}`);
      return x === undefined ? undefined : Number(x);
    };
    const c = r('const');
    if (c !== undefined && n !== c) this.err(path, `value must equal ${c}`);
    this.range(n, { gt: r('gt'), gte: r('gte') }, { lt: r('lt'), lte: r('lte') }, String, path, 'value');
  }

  private duration(v: unknown, path: string): void {
    const d = parseDuration(v);
    if (!d) return;
    const bound = (name: string): bigint | undefined => {
      const s = this.get(`duration.${name}.seconds`);
      const ns = this.get(`duration.${name}.nanos`);
      if (s === undefined && ns === undefined) return undefined;
      return BigInt(Number(s ?? 0)) * 1_000_000_000n + BigInt(Number(ns ?? 0));
    };
    const show = (x: bigint) => formatDuration({ seconds: x / 1_000_000_000n, nanos: Number(x % 1_000_000_000n) });
    const n = durationNanos(d);
    const c = bound('const');
    if (c !== undefined && n !== c) this.err(path, `must be ${show(c)}`);
    this.range(n, { gt: bound('gt'), gte: bound('gte') }, { lt: bound('lt'), lte: bound('lte') }, show, path, 'duration');
  }
}

/**
 * Checks one field of a decoded message against its validate rules. `value` is the normalized
 * value, undefined when the field is unset (PGV checks unset scalars as their default value).
 */
export function checkRules(field: protobuf.Field, value: unknown, path: string, errors: FieldError[]): void {
  const rules = rulesOf(field);
  if (!rules) return;
  // A oneof member (or a proto3 `optional` field) is checked only when it is set.
  if (value === undefined && field.partOf) return;
  const c = new Checker(rules, '', errors);
  const kind = kindOf(field.type, field.resolvedType);

  if (field.map) {
    const entries = Object.entries((value ?? {}) as Record<string, unknown>);
    if (c.get('map.ignore_empty') && entries.length === 0) return;
    const min = c.get('map.min_pairs');
    if (min !== undefined && entries.length < Number(min)) c.err(path, `must have at least ${Number(min)} ${Number(min) === 1 ? 'entry' : 'entries'}`);
    const max = c.get('map.max_pairs');
    if (max !== undefined && entries.length > Number(max)) c.err(path, `must have at most ${Number(max)} ${Number(max) === 1 ? 'entry' : 'entries'}`);
    const keys = new Checker(rules, 'map.keys.', errors);
    const values = new Checker(rules, 'map.values.', errors);
    const keyKind = kindOf((field as unknown as protobuf.MapField).keyType, null);
    for (const [k, v] of entries) {
      keys.value(keyKind, keyKind.group === 'string' || keyKind.group === 'bool' ? k : Number(k), keyPath(path, k));
      values.value(kind, v, keyPath(path, k));
    }
    return;
  }

  if (field.repeated) {
    const list = (value ?? []) as unknown[];
    if (c.get('repeated.ignore_empty') && list.length === 0) return;
    const min = c.get('repeated.min_items');
    if (min !== undefined && list.length < Number(min)) c.err(path, `must have at least ${plural(Number(min), 'item')}`);
    const max = c.get('repeated.max_items');
    if (max !== undefined && list.length > Number(max)) c.err(path, `must have at most ${plural(Number(max), 'item')}`);
    if (c.get('repeated.unique')) {
      const seen = new Set<string>();
      list.forEach((v, i) => {
        const key = JSON.stringify(v);
        if (seen.has(key)) c.err(indexPath(path, i), 'duplicates an earlier item (items must be unique)');
        seen.add(key);
      });
    }
    const items = new Checker(rules, 'repeated.items.', errors);
    list.forEach((v, i) => items.value(kind, v, indexPath(path, i)));
    return;
  }

  if (value === undefined) {
    if (c.get('message.required') || c.get('duration.required') || c.get('any.required') || c.get('timestamp.required')) {
      c.err(path, 'is required');
      return;
    }
    if (kind.message) return; // an unset message has nothing else to check
    c.value(kind, defaultOf(kind), path);
    return;
  }
  c.value(kind, value, path);
}
