import { durationMs } from '../../../config/values.js';
import { fraction, type HttpFilterFactory, type HttpFilterParseContext } from '../types.js';
import { LocalRateLimiter, LocalRateLimitFilter } from './filter.js';

export const LOCAL_RATELIMIT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

export interface LocalRateLimitConfig {
  readonly statPrefix: string;
  /** token_bucket was given; without one the filter-level limiter does nothing. */
  readonly hasBucket: boolean;
  readonly status: number;
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
  /** Fractions of requests the limiter looks at, and of those, the ones it may reject. */
  readonly enabled: number;
  readonly enforced: number;
  readonly responseHeaders: ReadonlyArray<readonly [string, string]>;
  /** gRPC requests rejected get RESOURCE_EXHAUSTED instead of UNAVAILABLE. */
  readonly resourceExhausted: boolean;
}

type Obj = Record<string, any>;

/** The `type.v3.StatusCode` names a rate limiter plausibly answers with. */
const STATUS: Record<string, number> = {
  TooManyRequests: 429,
  ServiceUnavailable: 503,
  Forbidden: 403,
  BadRequest: 400,
  Unauthorized: 401,
  InternalServerError: 500,
};

const UNSUPPORTED = ['descriptors', 'request_headers_to_add_when_not_enforced', 'local_rate_limit_per_downstream_connection', 'local_cluster_rate_limit', 'always_consume_default_token_bucket', 'vh_rate_limits', 'rate_limits'] as const;

function parse(tc: Obj, path: string, ctx: HttpFilterParseContext, perRoute = false): LocalRateLimitConfig | null {
  const start = ctx.errors.length;
  for (const f of UNSUPPORTED) {
    const v = tc[f];
    if (v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0)) ctx.errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  }
  if (tc.enable_x_ratelimit_headers && tc.enable_x_ratelimit_headers !== 'OFF') ctx.errors.push({ path: `${path}.enable_x_ratelimit_headers`, message: 'is not supported yet' });
  const tb = tc.token_bucket as Obj | undefined;
  // Envoy's rule: the filter may leave the bucket to its routes, a route's config must have one.
  if (!tb && perRoute) ctx.errors.push({ path: `${path}.token_bucket`, message: 'is required in a per-route LocalRateLimit' });
  if (tb) {
    const fi = durationMs(tb.fill_interval);
    if (fi === undefined || fi === null || fi < 50) ctx.errors.push({ path: `${path}.token_bucket.fill_interval`, message: 'is required and must be at least 50ms' });
  }
  let status = 429;
  if (tc.status?.code !== undefined) {
    const c = tc.status.code;
    const n = typeof c === 'number' ? c : STATUS[String(c)];
    if (!n) ctx.errors.push({ path: `${path}.status.code`, message: `${c} is not supported` });
    else status = n;
  }
  const headers = ((tc.response_headers_to_add ?? []) as Obj[]).map((o) => [String(o.header?.key ?? '').toLowerCase(), String(o.header?.value ?? '')] as const);
  if (ctx.errors.length > start) return null;
  return Object.freeze({
    statPrefix: String(tc.stat_prefix ?? ''),
    hasBucket: !!tb,
    status,
    maxTokens: tb ? Number(tb.max_tokens ?? 0) : 0,
    tokensPerFill: !tb || tb.tokens_per_fill === undefined || tb.tokens_per_fill === null ? 1 : Number(typeof tb.tokens_per_fill === 'object' ? tb.tokens_per_fill.value : tb.tokens_per_fill),
    fillIntervalMs: (tb && durationMs(tb.fill_interval)) ?? 0,
    // Envoy's defaults: a limiter without filter_enabled/filter_enforced does nothing.
    enabled: fraction(tc.filter_enabled?.default_value),
    enforced: fraction(tc.filter_enforced?.default_value),
    responseHeaders: Object.freeze(headers),
    resourceExhausted: tc.rate_limited_as_resource_exhausted === true,
  });
}

export const localRateLimitFactory = {
  name: 'envoy.filters.http.local_ratelimit',
  typeUrls: [LOCAL_RATELIMIT_TYPE],
  parse: (tc, path, ctx) => parse(tc, path, ctx),
  create: (config, _scope, root, name) => new LocalRateLimitFilter(config, root, Date.now, Math.random, name),
  // A route's LocalRateLimit is compiled to its own bucket, kept for the route table's life.
  perRoute: {
    typeUrls: [LOCAL_RATELIMIT_TYPE],
    parse: (tc, path, ctx) => {
      const c = parse(tc, path, ctx, true);
      return c && new LocalRateLimiter(c);
    },
  },
} satisfies HttpFilterFactory<LocalRateLimitConfig>;
