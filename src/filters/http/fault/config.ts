import { durationMs } from '../../../config/values.js';
import { compileHeaderMatcher, type HeaderMatch } from '../../../router/header_matcher.js';
import { fraction, type HttpFilterFactory, type HttpFilterParseContext } from '../types.js';
import { FaultFilter } from './filter.js';

export const FAULT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

export interface FaultConfig {
  /** null = no delay configured. `fixedMs` null = delay only from the x-envoy-fault-delay-request header. */
  readonly delay: { readonly fixedMs: number | null; readonly fraction: number } | null;
  /** `status`/`grpcStatus` null = abort only from the x-envoy-fault-abort-(grpc-)request header. */
  readonly abort: { readonly status: number | null; readonly grpcStatus: number | null; readonly fraction: number } | null;
  readonly headers: readonly HeaderMatch[];
  readonly maxActiveFaults: number;
}

type Obj = Record<string, any>;

const UNSUPPORTED = ['upstream_cluster', 'downstream_nodes', 'response_rate_limit', 'filter_metadata'] as const;

function parse(tc: Obj, path: string, ctx: HttpFilterParseContext): FaultConfig | null {
  const start = ctx.errors.length;
  for (const f of UNSUPPORTED) {
    const v = tc[f];
    if (v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0)) ctx.errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  }
  let delay: FaultConfig['delay'] = null;
  if (tc.delay) {
    const d = tc.delay as Obj;
    if (d.fixed_delay === undefined && !d.header_delay) ctx.errors.push({ path: `${path}.delay`, message: 'needs fixed_delay or header_delay' });
    delay = { fixedMs: d.fixed_delay !== undefined ? durationMs(d.fixed_delay)! : null, fraction: fraction(d.percentage) };
  }
  let abort: FaultConfig['abort'] = null;
  if (tc.abort) {
    const a = tc.abort as Obj;
    const status = a.http_status !== undefined ? Number(a.http_status) : null;
    if (status !== null && (status < 200 || status >= 600)) ctx.errors.push({ path: `${path}.abort.http_status`, message: 'must be in [200, 600)' });
    const grpcStatus = a.grpc_status !== undefined ? Number(a.grpc_status) : null;
    if (status === null && grpcStatus === null && !a.header_abort) ctx.errors.push({ path: `${path}.abort`, message: 'needs http_status, grpc_status or header_abort' });
    abort = { status, grpcStatus, fraction: fraction(a.percentage) };
  }
  // An empty HTTPFault injects nothing: Istio puts one in the chain and the faults on routes.
  const headers = ((tc.headers ?? []) as Obj[]).map((h, i) => compileHeaderMatcher(h, `${path}.headers[${i}]`, ctx.errors));
  if (ctx.errors.length > start) return null;
  return Object.freeze({
    delay,
    abort,
    headers: headers as HeaderMatch[],
    maxActiveFaults: tc.max_active_faults === undefined || tc.max_active_faults === null ? Infinity : Number(tc.max_active_faults),
  });
}

export const faultFactory = {
  name: 'envoy.filters.http.fault',
  typeUrls: [FAULT_TYPE],
  parse,
  create: (config, scope, _root, name) => new FaultFilter(config, scope, Math.random, name),
  // A route's HTTPFault replaces the filter's whole config for that route, as in Envoy.
  perRoute: { typeUrls: [FAULT_TYPE], parse },
} satisfies HttpFilterFactory<FaultConfig>;
