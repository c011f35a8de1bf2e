import type protobuf from 'protobufjs';

/**
 * Helpers shared by the JSON decoder (proto-json.ts), the binary converters (proto-binary.ts)
 * and the validator (validate.ts): field paths, and the canonical text forms of the well-known
 * types (Duration "1.500s", Timestamp "2023-06-20T10:00:00Z", int64 numbers, base64 bytes).
 */

// ---------------------------------------------------------------- paths

/** `a.b` — field paths use the proto (snake_case) names, so they are stable whatever the input spelled. */
export function joinPath(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

export function indexPath(path: string, i: number): string {
  return `${path}[${i}]`;
}

/** Map entries: `.key` for identifier-like keys, `["key"]` for anything else (dots, slashes, spaces…). */
export function keyPath(path: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? joinPath(path, key) : `${path}[${JSON.stringify(key)}]`;
}

/** How a JSON value reads in an error message: `string "abc"`, `number 1.5`, `a list`. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `.envoy.config.cluster.v3.Cluster` → `envoy.config.cluster.v3.Cluster`. */
export function fullName(t: protobuf.ReflectionObject): string {
  return t.fullName.startsWith('.') ? t.fullName.slice(1) : t.fullName;
}

/** snake_case → lowerCamel, the proto3 JSON name of a field. */
export function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

// ---------------------------------------------------------------- well-known type names

/** google.protobuf wrapper message → the scalar it wraps. */
export const WRAPPERS: Readonly<Record<string, string>> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

/** Control planes (Istio) wrap configs in these: `type_url` + a Struct `value`. */
export const TYPED_STRUCTS: ReadonlySet<string> = new Set(['udpa.type.v1.TypedStruct', 'xds.type.v3.TypedStruct']);

export const ANY = 'google.protobuf.Any';

/** `type.googleapis.com/a.b.C` (any host prefix) → `a.b.C`. */
export function typeNameOfUrl(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1);
}

// ---------------------------------------------------------------- integers

/** 64-bit integers in the normalized form: a number when exact, else the decimal string. */
export function normInt(n: bigint): number | string {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
}

// ---------------------------------------------------------------- Duration

export interface SecondsNanos {
  readonly seconds: bigint;
  readonly nanos: number;
}

/** ±10,000 years, the proto's documented range. */
const MAX_SECONDS = 315_576_000_000n;

/**
 * A Duration given as proto3 JSON ("1s", "0.25s", "-1.5s") or as the message ({seconds, nanos});
 * null when malformed or out of range.
 */
export function parseDuration(v: unknown): SecondsNanos | null {
  let d: SecondsNanos;
  if (typeof v === 'string') {
    const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(v);
    if (!m) return null;
    const sign = m[1] ? -1 : 1;
    d = { seconds: BigInt(m[2]!) * BigInt(sign), nanos: Number((m[3] ?? '').padEnd(9, '0')) * sign };
  } else if (isObject(v)) {
    for (const k of Object.keys(v)) if (k !== 'seconds' && k !== 'nanos') return null;
    const s = v.seconds ?? 0;
    const n = v.nanos ?? 0;
    if ((typeof s !== 'number' && typeof s !== 'string') || typeof n !== 'number') return null;
    if (!/^-?\d+$/.test(String(s)) || !Number.isInteger(n) || Math.abs(n) > 999_999_999) return null;
    d = { seconds: BigInt(s), nanos: n };
    // Both parts carry the sign.
    if ((d.seconds > 0n && n < 0) || (d.seconds < 0n && n > 0)) return null;
  } else {
    return null;
  }
  if (d.seconds > MAX_SECONDS || d.seconds < -MAX_SECONDS) return null;
  return d;
}

/** Nanoseconds: fractional digits in groups of 3, as proto3 JSON writes them. */
function fraction(nanos: number): string {
  if (nanos === 0) return '';
  let f = String(nanos).padStart(9, '0');
  if (f.endsWith('000000')) f = f.slice(0, 3);
  else if (f.endsWith('000')) f = f.slice(0, 6);
  return `.${f}`;
}

/** The canonical proto3 JSON text: "1s", "1.500s", "0.000001s", "-2.500s". */
export function formatDuration(d: SecondsNanos): string {
  const neg = d.seconds < 0n || d.nanos < 0;
  const s = d.seconds < 0n ? -d.seconds : d.seconds;
  return `${neg ? '-' : ''}${s}${fraction(Math.abs(d.nanos))}s`;
}

export function durationNanos(d: SecondsNanos): bigint {
  return d.seconds * 1_000_000_000n + BigInt(d.nanos);
}

// ---------------------------------------------------------------- Timestamp

const MIN_TS = -62_135_596_800n; // 0001-01-01T00:00:00Z
const MAX_TS = 253_402_300_799n; // 9999-12-31T23:59:59Z

/** An RFC 3339 timestamp ("2023-06-20T10:00:00.5+02:00") or {seconds, nanos}; null when malformed. */
export function parseTimestamp(v: unknown): SecondsNanos | null {
  if (isObject(v)) {
    const d = parseDuration(v);
    return d && d.nanos >= 0 && d.seconds >= MIN_TS && d.seconds <= MAX_TS ? d : null;
  }
  if (typeof v !== 'string') return null;
  const m = /^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))$/.exec(v);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]));
  const date = new Date(0);
  date.setUTCFullYear(y!, mo! - 1, d!);
  date.setUTCHours(h!, mi!, s!, 0);
  // Date rolls 2023-02-30 over to March: reject anything that did not stay put.
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo! - 1 || date.getUTCDate() !== d || date.getUTCHours() !== h || date.getUTCMinutes() !== mi || date.getUTCSeconds() !== s) return null;
  let seconds = BigInt(date.getTime() / 1000);
  if (!m[8]) {
    const off = (Number(m[10]) * 60 + Number(m[11])) * 60;
    seconds -= BigInt(m[9] === '-' ? -off : off);
  }
  if (seconds < MIN_TS || seconds > MAX_TS) return null;
  return { seconds, nanos: Number((m[7] ?? '').padEnd(9, '0')) };
}

/** Canonical RFC 3339 in UTC: "2023-06-20T08:00:00.500Z". */
export function formatTimestamp(t: SecondsNanos): string {
  const iso = new Date(Number(t.seconds) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  return `${iso.slice(0, 19)}${fraction(t.nanos)}Z`;
}

// ---------------------------------------------------------------- bytes

/** Standard or URL-safe base64, padded or not → standard padded base64; null if not base64. */
export function normBase64(s: string): string | null {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(s)) return null;
  const std = s.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  if (std.length % 4 === 1) return null;
  return std + '='.repeat((4 - (std.length % 4)) % 4);
}

// ---------------------------------------------------------------- float

/** The shortest decimal that reads back as the same float32 (decoded floats come widened to double). */
export function shortFloat(v: number): number {
  if (!Number.isFinite(v)) return v;
  for (let p = 1; p <= 9; p++) {
    const n = Number(v.toPrecision(p));
    if (Math.fround(n) === v) return n;
  }
  return v;
}
