import crypto from 'node:crypto';
import type { HeaderLookup } from '../../router/header_matcher.js';

/** Where a request's trace came from; null fields mean "not given". */
export interface IncomingContext {
  /** 16 or 32 lower-case hex digits. */
  readonly traceId: string;
  /** The caller's span: our server span's parent. */
  readonly spanId: string;
  /** The caller's sampling decision; null = ours to make. */
  readonly sampled: boolean | null;
  /** Which format it came in, so the same one goes out (B3 single is only sent back when received). */
  readonly format: 'b3' | 'b3-single' | 'w3c';
}

const HEX16 = /^[0-9a-f]{16}$/;
const HEX16_32 = /^(?:[0-9a-f]{16}|[0-9a-f]{32})$/;
const ZERO = /^0+$/;

/** A random non-zero 64-bit id as 16 hex digits (Zipkin and B3 span ids; W3C parent ids). */
export function newId(): string {
  for (;;) {
    const id = crypto.randomBytes(8).toString('hex');
    if (!ZERO.test(id)) return id;
  }
}

function b3Sampled(v: string | undefined, debug: string | undefined): boolean | null {
  if (debug === '1') return true;
  if (v === undefined) return null;
  if (v === '1' || v === 'true' || v === 'd') return true;
  if (v === '0' || v === 'false') return false;
  return null;
}

function w3c(get: HeaderLookup): IncomingContext | null {
  const tp = get('traceparent');
  if (tp === undefined) return null;
  // version-traceid-parentid-flags; unknown future versions still start with these four fields.
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})/.exec(tp.trim().toLowerCase());
  if (m && m[1] !== 'ff' && !ZERO.test(m[2]!) && !ZERO.test(m[3]!)) {
    return { traceId: m[2]!, spanId: m[3]!, sampled: (parseInt(m[4]!, 16) & 1) === 1, format: 'w3c' };
  }
  return null;
}

/**
 * Reads B3 (x-b3-* headers, then the single `b3` header) and W3C `traceparent`, in that order:
 * Zipkin's own format first, as a Zipkin-configured Envoy does. Malformed values are ignored
 * (the request starts a new trace), never rejected.
 */
export function extract(get: HeaderLookup, preferW3c = false): IncomingContext | { readonly sampled: boolean | null } | null {
  // An OpenTelemetry-configured proxy reads traceparent first, as Envoy's OpenTelemetry tracer does.
  if (preferW3c) {
    const w = w3c(get);
    if (w) return w;
  }
  const tid = get('x-b3-traceid');
  const sid = get('x-b3-spanid');
  if (tid !== undefined && sid !== undefined) {
    const t = tid.toLowerCase();
    const s = sid.toLowerCase();
    if (HEX16_32.test(t) && !ZERO.test(t) && HEX16.test(s)) return { traceId: t, spanId: s, sampled: b3Sampled(get('x-b3-sampled'), get('x-b3-flags')), format: 'b3' };
  }
  const single = get('b3');
  if (single !== undefined) {
    const parts = single.toLowerCase().split('-');
    // `b3: 0` / `b3: 1` / `b3: d` carries only a decision.
    if (parts.length === 1) return { sampled: b3Sampled(parts[0], undefined) };
    const [t, s, d] = parts;
    if (t && s && HEX16_32.test(t) && !ZERO.test(t) && HEX16.test(s)) return { traceId: t, spanId: s, sampled: b3Sampled(d, undefined), format: 'b3-single' };
  }
  if (!preferW3c) {
    const w = w3c(get);
    if (w) return w;
  }
  const s = get('x-b3-sampled');
  if (s !== undefined) return { sampled: b3Sampled(s, get('x-b3-flags')) };
  return null;
}

/** Header names this module writes; their incoming values are replaced, not forwarded. */
export const TRACE_HEADERS: readonly string[] = ['x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'b3', 'traceparent'];

/**
 * The headers that carry `span` (a child of `parent`) to the next hop: B3 multi-header (what
 * Zipkin instruments read), W3C traceparent (what OpenTelemetry reads), and B3 single when the
 * request arrived with it. A 64-bit trace id is left-padded for traceparent, which needs 128.
 */
export function outgoing(traceId: string, spanId: string, parentId: string, sampled: boolean, single: boolean): Array<[string, string]> {
  const s = sampled ? '1' : '0';
  const out: Array<[string, string]> = [
    ['x-b3-traceid', traceId],
    ['x-b3-spanid', spanId],
    ['x-b3-parentspanid', parentId],
    ['x-b3-sampled', s],
    ['traceparent', `00-${traceId.padStart(32, '0')}-${spanId}-${sampled ? '01' : '00'}`],
  ];
  if (single) out.push(['b3', `${traceId}-${spanId}-${s}-${parentId}`]);
  return out;
}
