import os from 'node:os';
import type { FieldError } from '../../errors.js';
import type { PeerAddress } from '../../io/engine.js';
import type { AccessLogEntry } from './entry.js';

type Obj = Record<string, any>;
type Value = string | number | null;
type Getter = (e: AccessLogEntry) => Value;

/** Envoy's default access log format. */
export const DEFAULT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ' +
  '%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" ' +
  '"%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n';

function addr(a: PeerAddress | null, withPort: boolean): string | null {
  if (!a) return null;
  if (a.family === 'unix') return a.address;
  if (!withPort) return a.address;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** strftime in UTC, the subset Envoy configs use: %Y %m %d %H %M %S %s %z %j %e, %Nf / %f, %E<N>S. */
function compileTime(fmt: string): (ms: number) => string {
  if (!fmt) return (ms) => new Date(ms).toISOString();
  const parts: Array<string | ((d: Date, ms: number) => string)> = [];
  const frac = (digits: number) => (_d: Date, ms: number) => String(Math.floor(ms % 1000)).padStart(3, '0').padEnd(digits, '0').slice(0, digits);
  const re = /%(?:E(\d)S|(\d)?f|([YmdHMSszje%]))/g;
  let last = 0;
  for (let m = re.exec(fmt); m; m = re.exec(fmt)) {
    if (m.index > last) parts.push(fmt.slice(last, m.index));
    last = re.lastIndex;
    if (m[1]) {
      const f = frac(Number(m[1]));
      parts.push((d, ms) => `${pad(d.getUTCSeconds())}.${f(d, ms)}`);
    } else if (m[3] === undefined) parts.push(frac(m[2] ? Number(m[2]) : 9));
    else {
      const c = m[3];
      parts.push((d, ms) => {
        switch (c) {
          case 'Y': return String(d.getUTCFullYear());
          case 'm': return pad(d.getUTCMonth() + 1);
          case 'd': return pad(d.getUTCDate());
          case 'e': return String(d.getUTCDate()).padStart(2, ' ');
          case 'H': return pad(d.getUTCHours());
          case 'M': return pad(d.getUTCMinutes());
          case 'S': return pad(d.getUTCSeconds());
          case 's': return String(Math.floor(ms / 1000));
          case 'z': return '+0000';
          case 'j': return pad(Math.floor((ms - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1, 3);
          default: return '%';
        }
      });
    }
  }
  if (last < fmt.length) parts.push(fmt.slice(last));
  return (ms) => {
    const d = new Date(ms);
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : p(d, ms);
    return out;
  };
}

function header(which: 'requestHeader' | 'responseHeader', arg: string): Getter {
  const [main, alt] = arg.split('?').map((s) => s.toLowerCase()) as [string, string | undefined];
  return (e) => {
    const h = e[which];
    if (!h) return null;
    return h(main) ?? (alt ? h(alt) : undefined) ?? null;
  };
}

/**
 * `%DYNAMIC_METADATA(NAMESPACE:KEY*)%`: the namespace as a JSON object, one key's value, or a
 * value found by a path of keys into a structured one; a string as it is, anything else as JSON;
 * absent: `-`.
 */
function dynamicMetadata(arg: string): Getter {
  const [ns, ...keys] = arg.split(':') as [string, ...string[]];
  return (e) => {
    const m = e.dynamicMetadata?.get(ns);
    if (!m) return null;
    let cur: unknown = m;
    for (const k of keys) {
      if (cur instanceof Map) cur = cur.get(k);
      else if (cur !== null && typeof cur === 'object' && !Array.isArray(cur)) cur = (cur as Record<string, unknown>)[k];
      else return null;
      if (cur === undefined) return null;
    }
    if (typeof cur === 'string' || typeof cur === 'number') return cur;
    return JSON.stringify(cur instanceof Map ? Object.fromEntries(cur) : cur);
  };
}

const HOSTNAME = os.hostname();

/**
 * The operators Strait knows. Envoy's names where Envoy has one; `RPC_*` are Strait's own, for
 * calls through rpc_proxy / dubbo_proxy.
 */
const OPERATORS: Record<string, (arg: string) => Getter> = {
  START_TIME: (arg) => {
    const f = compileTime(arg);
    return (e) => f(e.startTime);
  },
  DURATION: () => (e) => Math.round(e.durationMs),
  BYTES_RECEIVED: () => (e) => e.bytesReceived,
  BYTES_SENT: () => (e) => e.bytesSent,
  UPSTREAM_HOST: () => (e) => e.upstreamHost,
  UPSTREAM_CLUSTER: () => (e) => e.upstreamCluster,
  DOWNSTREAM_REMOTE_ADDRESS: () => (e) => addr(e.downstreamRemote, true),
  DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: () => (e) => addr(e.downstreamRemote, false),
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS: () => (e) => addr(e.downstreamRemote, true),
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT: () => (e) => addr(e.downstreamRemote, false),
  DOWNSTREAM_LOCAL_ADDRESS: () => (e) => addr(e.downstreamLocal, true),
  DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: () => (e) => addr(e.downstreamLocal, false),
  RESPONSE_FLAGS: () => (e) => e.responseFlags || null,
  RESPONSE_CODE: () => (e) => e.responseCode ?? 0,
  RESPONSE_CODE_DETAILS: () => (e) => e.responseCodeDetails,
  PROTOCOL: () => (e) => e.protocol,
  REQ: (arg) => header('requestHeader', arg),
  RESP: (arg) => header('responseHeader', arg),
  HOSTNAME: () => () => HOSTNAME,
  REQUESTED_SERVER_NAME: () => (e) => e.tls?.sni || null,
  DOWNSTREAM_TLS_VERSION: () => (e) => e.tls?.version || null,
  DOWNSTREAM_PEER_URI_SAN: () => (e) => (e.tls?.peerUriSans.length ? e.tls.peerUriSans.join(',') : null),
  DOWNSTREAM_PEER_SUBJECT: () => (e) => e.tls?.peerSubject || null,
  RPC_PROTOCOL: () => (e) => e.rpc?.protocol ?? null,
  RPC_INTERFACE: () => (e) => e.rpc?.iface || null,
  RPC_METHOD: () => (e) => e.rpc?.method || null,
  RPC_VERSION: () => (e) => e.rpc?.version || null,
  RPC_REQUEST_ID: () => (e) => e.rpc?.requestId ?? null,
  LOCAL_REPLY_BODY: () => (e) => e.localReplyBody,
  DYNAMIC_METADATA: dynamicMetadata,
};

/** Operators that take an argument, and those that require one. */
const NEEDS_ARG = new Set(['REQ', 'RESP', 'DYNAMIC_METADATA']);

export const OPERATOR_NAMES: readonly string[] = Object.keys(OPERATORS);

type Part = string | { get: Getter; max: number };

/** `%NAME%`, `%NAME(arg)%`, `%NAME(arg):max%`. Arguments may hold `%` (START_TIME), not `)`. */
const TOKEN = /%([A-Z][A-Z0-9_]*)(?:\(([^)]*)\))?(?::(\d+))?%/g;

function compileParts(fmt: string, path: string, errors: FieldError[]): Part[] {
  const parts: Part[] = [];
  let last = 0;
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(fmt); m; m = TOKEN.exec(fmt)) {
    if (m.index > last) parts.push(fmt.slice(last, m.index));
    last = TOKEN.lastIndex;
    const [, name, arg, max] = m as unknown as [string, string, string | undefined, string | undefined];
    const op = OPERATORS[name];
    if (!op) {
      errors.push({ path, message: `unknown access log operator %${name}% (supported: ${OPERATOR_NAMES.join(', ')})` });
      continue;
    }
    if (NEEDS_ARG.has(name) && !arg) {
      errors.push({ path, message: `%${name}% needs a header name: %${name}(x-header)%` });
      continue;
    }
    parts.push({ get: op(arg ?? ''), max: max ? Number(max) : 0 });
  }
  if (last < fmt.length) parts.push(fmt.slice(last));
  return parts;
}

function render(v: Value, max: number, empty: string): string {
  if (v === null || v === '') return empty;
  const s = String(v);
  return max > 0 && s.length > max ? s.slice(0, max) : s;
}

/** A compiled log format: entry in, line out (newline included for text; JSON gets one added). */
export type Formatter = (e: AccessLogEntry) => string;

export function compileTextFormat(fmt: string, path: string, errors: FieldError[], omitEmpty: boolean): Formatter {
  const parts = compileParts(fmt, path, errors);
  const empty = omitEmpty ? '' : '-';
  return (e) => {
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : render(p.get(e), p.max, empty);
    return out;
  };
}

/**
 * JSON format: each string value is a format string. A value that is exactly one operator keeps
 * its type (numbers stay numbers, a missing value is null), as Envoy's typed JSON does.
 */
export function compileJsonFormat(fmt: Obj, path: string, errors: FieldError[], omitEmpty: boolean): Formatter {
  type Node = { kind: 'const'; v: unknown } | { kind: 'typed'; get: Getter; max: number } | { kind: 'text'; parts: Part[] } | { kind: 'obj'; keys: [string, Node][] };
  const build = (v: unknown, p: string): Node => {
    if (typeof v === 'string') {
      const parts = compileParts(v, p, errors);
      if (parts.length === 1 && typeof parts[0] !== 'string') return { kind: 'typed', get: parts[0]!.get, max: parts[0]!.max };
      return { kind: 'text', parts };
    }
    if (v && typeof v === 'object' && !Array.isArray(v)) return { kind: 'obj', keys: Object.entries(v).map(([k, x]) => [k, build(x, `${p}.${k}`)]) };
    return { kind: 'const', v };
  };
  const root = build(fmt, path);
  const evaluate = (n: Node, e: AccessLogEntry): unknown => {
    switch (n.kind) {
      case 'const':
        return n.v;
      case 'typed': {
        const v = n.get(e);
        return typeof v === 'string' && n.max > 0 ? v.slice(0, n.max) : v;
      }
      case 'text': {
        let out = '';
        for (const p of n.parts) out += typeof p === 'string' ? p : render(p.get(e), p.max, omitEmpty ? '' : '-');
        return out;
      }
      case 'obj': {
        const o: Obj = {};
        for (const [k, c] of n.keys) {
          const v = evaluate(c, e);
          if (omitEmpty && (v === null || v === '')) continue;
          o[k] = v;
        }
        return o;
      }
    }
  };
  return (e) => `${JSON.stringify(evaluate(root, e))}\n`;
}
