import { durationMs } from '../../../config/values.js';
import { compileHeaderAdds } from '../../../router/header_adds.js';
import type { HeaderMutation } from '../../../router/http_route_table.js';
import { fraction, type HttpFilterFactory, type HttpFilterParseContext } from '../types.js';
import { compileRateLimits, entryKey, NO_ROUTE, type CompiledRateLimit } from './descriptors.js';
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
  /** `descriptors`, most restrictive (lowest fill rate) first, the order Envoy consumes them in. */
  readonly descriptors: readonly DescriptorBucketConfig[];
  /** false: the default bucket is consumed only when no descriptor matched. */
  readonly alwaysConsumeDefault: boolean;
  /** Only the route actions of this stage produce descriptors. */
  readonly stage: number;
  /** How the virtual host's `rate_limits` join the route's. */
  readonly vhRateLimits: VhRateLimits;
  /** The LocalRateLimit's own `rate_limits`: when set, used instead of the route's. */
  readonly rateLimits: readonly CompiledRateLimit[] | null;
  /** local_rate_limit_per_downstream_connection: buckets per connection instead of shared. */
  readonly perConnection: boolean;
  /** max_dynamic_descriptors: buckets a wildcard descriptor keeps, least recently used dropped first. */
  readonly maxDynamicDescriptors: number;
  /** request_headers_to_add_when_not_enforced: edits for a limited request let through (filter_enforced); null when none. */
  readonly notEnforcedHeaders: HeaderMutation | null;
  /** enable_x_ratelimit_headers DRAFT_VERSION_03: x-ratelimit-limit, -remaining and -reset on the responses of the requests it checked. */
  readonly xRateLimitHeaders: boolean;
}

/** OVERRIDE: the virtual host's only when the route has none; INCLUDE: both; IGNORE: the route's only. */
export type VhRateLimits = 'OVERRIDE' | 'INCLUDE' | 'IGNORE';
const VH_RATE_LIMITS: readonly VhRateLimits[] = ['OVERRIDE', 'INCLUDE', 'IGNORE'];

export interface DescriptorBucketConfig {
  /** The entries as one lookup key (see descriptors.ts); a wildcard's has its empty values. */
  readonly key: string;
  /**
   * A wildcard descriptor (an entry without a value, Envoy's dynamic descriptors): its entries,
   * null where any value goes. A request's descriptor with these keys in this order and the
   * other values equal gets a bucket of its own. null for an exact descriptor.
   */
  readonly wildcard: ReadonlyArray<readonly [string, string | null]> | null;
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
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

const UNSUPPORTED = ['local_cluster_rate_limit'] as const;

interface Bucket {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
}

function parseBucket(tb: Obj, path: string, errors: HttpFilterParseContext['errors']): Bucket | null {
  const start = errors.length;
  let fi: number | undefined;
  try {
    fi = durationMs(tb.fill_interval);
  } catch {
    fi = undefined;
  }
  if (fi === undefined || fi === null || fi < 50) errors.push({ path: `${path}.fill_interval`, message: 'is required and must be at least 50ms' });
  const max = Number(tb.max_tokens ?? 0);
  if (!Number.isInteger(max) || max < 0) errors.push({ path: `${path}.max_tokens`, message: 'must be a non-negative integer' });
  const raw = tb.tokens_per_fill;
  const perFill = raw === undefined || raw === null ? 1 : Number(typeof raw === 'object' ? raw.value : raw);
  if (!Number.isInteger(perFill) || perFill < 0) errors.push({ path: `${path}.tokens_per_fill`, message: 'must be a non-negative integer' });
  if (errors.length > start) return null;
  return { maxTokens: max, tokensPerFill: perFill, fillIntervalMs: fi! };
}

function parseDescriptors(list: unknown, path: string, errors: HttpFilterParseContext['errors']): DescriptorBucketConfig[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    errors.push({ path, message: 'must be a list' });
    return [];
  }
  const out: DescriptorBucketConfig[] = [];
  const seen = new Set<string>();
  list.forEach((d: Obj, i) => {
    const p = `${path}[${i}]`;
    const start = errors.length;
    const entries = (d?.entries ?? []) as Obj[];
    if (!Array.isArray(entries) || entries.length === 0) errors.push({ path: `${p}.entries`, message: 'needs at least one entry' });
    let key = '';
    const parts: Array<readonly [string, string | null]> = [];
    (Array.isArray(entries) ? entries : []).forEach((e, j) => {
      const k = e?.key;
      const v = e?.value;
      if (typeof k !== 'string' || !k) errors.push({ path: `${p}.entries[${j}].key`, message: 'is required' });
      else if (v !== undefined && v !== null && typeof v !== 'string') errors.push({ path: `${p}.entries[${j}].value`, message: 'must be a string' });
      else {
        // An empty value is a wildcard (Envoy's dynamic descriptors): a bucket per value seen.
        key += entryKey(k, v ?? '');
        parts.push([k, v ? v : null]);
      }
    });
    const b = d?.token_bucket ? parseBucket(d.token_bucket as Obj, `${p}.token_bucket`, errors) : null;
    if (!d?.token_bucket) errors.push({ path: `${p}.token_bucket`, message: 'is required' });
    if (errors.length > start || !b) return;
    if (seen.has(key)) {
      errors.push({ path: `${p}.entries`, message: 'duplicates an earlier descriptor' });
      return;
    }
    seen.add(key);
    out.push(Object.freeze({ key, wildcard: parts.some(([, v]) => v === null) ? Object.freeze(parts) : null, ...b }));
  });
  // Envoy consumes the matched descriptors' buckets slowest-filling first.
  const rate = (d: DescriptorBucketConfig) => d.tokensPerFill / d.fillIntervalMs;
  return out.map((d, i) => [d, i] as const).sort((a, b) => rate(a[0]) - rate(b[0]) || a[1] - b[1]).map(([d]) => d);
}

function parse(tc: Obj, path: string, ctx: HttpFilterParseContext, perRoute = false): LocalRateLimitConfig | null {
  const start = ctx.errors.length;
  for (const f of UNSUPPORTED) {
    const v = tc[f];
    if (v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0)) ctx.errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  }
  const xrl = tc.enable_x_ratelimit_headers ?? 'OFF';
  const xRateLimitHeaders = xrl === 'DRAFT_VERSION_03' || xrl === 1;
  if (!xRateLimitHeaders && xrl !== 'OFF' && xrl !== 0) ctx.errors.push({ path: `${path}.enable_x_ratelimit_headers`, message: `"${xrl}" is not OFF or DRAFT_VERSION_03` });
  const tb = tc.token_bucket as Obj | undefined;
  // Envoy's rule: the filter may leave the bucket to its routes, a route's config must have one.
  if (!tb && perRoute) ctx.errors.push({ path: `${path}.token_bucket`, message: 'is required in a per-route LocalRateLimit' });
  const bucket = tb ? parseBucket(tb, `${path}.token_bucket`, ctx.errors) : null;
  const descriptors = parseDescriptors(tc.descriptors, `${path}.descriptors`, ctx.errors);
  // Without a default bucket the filter-level limiter is off, and its descriptors would be dead.
  if (!tb && descriptors.length > 0) ctx.errors.push({ path: `${path}.token_bucket`, message: 'is required when descriptors are set' });
  const stageRaw = tc.stage;
  const stage = stageRaw === undefined || stageRaw === null ? 0 : Number(typeof stageRaw === 'object' ? stageRaw.value : stageRaw);
  if (!Number.isInteger(stage) || stage < 0 || stage > 10) ctx.errors.push({ path: `${path}.stage`, message: 'must be an integer from 0 to 10' });
  const vhRaw = tc.vh_rate_limits ?? 'OVERRIDE';
  const vhRateLimits = typeof vhRaw === 'number' ? VH_RATE_LIMITS[vhRaw] : VH_RATE_LIMITS.find((v) => v === vhRaw);
  if (!vhRateLimits) ctx.errors.push({ path: `${path}.vh_rate_limits`, message: `must be one of ${VH_RATE_LIMITS.join(', ')}` });
  const acd = tc.always_consume_default_token_bucket;
  const alwaysConsumeDefault = acd === undefined || acd === null ? true : (typeof acd === 'object' ? acd.value : acd) !== false;
  const rateLimits = compileRateLimits(tc.rate_limits, `${path}.rate_limits`, ctx.errors, NO_ROUTE);
  const mddRaw = tc.max_dynamic_descriptors;
  const mdd = mddRaw === undefined || mddRaw === null ? 20 : Number(typeof mddRaw === 'object' ? mddRaw.value : mddRaw);
  if (!Number.isInteger(mdd) || mdd < 1) ctx.errors.push({ path: `${path}.max_dynamic_descriptors`, message: 'must be an integer of at least 1' });
  let status = 429;
  if (tc.status?.code !== undefined) {
    const c = tc.status.code;
    const n = typeof c === 'number' ? c : STATUS[String(c)];
    if (!n) ctx.errors.push({ path: `${path}.status.code`, message: `${c} is not supported` });
    else status = n;
  }
  const notEnforced = compileHeaderAdds(tc.request_headers_to_add_when_not_enforced, `${path}.request_headers_to_add_when_not_enforced`, ctx.errors, true);
  const headers = ((tc.response_headers_to_add ?? []) as Obj[]).map((o) => [String(o.header?.key ?? '').toLowerCase(), String(o.header?.value ?? '')] as const);
  if (ctx.errors.length > start) return null;
  return Object.freeze({
    statPrefix: String(tc.stat_prefix ?? ''),
    hasBucket: !!tb,
    status,
    maxTokens: bucket?.maxTokens ?? 0,
    tokensPerFill: bucket?.tokensPerFill ?? 1,
    fillIntervalMs: bucket?.fillIntervalMs ?? 0,
    // Envoy's defaults: a limiter without filter_enabled/filter_enforced does nothing.
    enabled: fraction(tc.filter_enabled?.default_value),
    enforced: fraction(tc.filter_enforced?.default_value),
    responseHeaders: Object.freeze(headers),
    resourceExhausted: tc.rate_limited_as_resource_exhausted === true,
    descriptors: Object.freeze(descriptors),
    alwaysConsumeDefault,
    stage,
    vhRateLimits: vhRateLimits!,
    rateLimits,
    perConnection: tc.local_rate_limit_per_downstream_connection === true,
    maxDynamicDescriptors: mdd,
    xRateLimitHeaders,
    notEnforcedHeaders: notEnforced.length ? Object.freeze({ add: Object.freeze(notEnforced), remove: Object.freeze([] as string[]) }) : null,
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
