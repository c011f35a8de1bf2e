import { parseRateLimitSpec, type RateLimitSpec } from '../../../ratelimit/config.js';
import type { HttpFilterFactory, HttpFilterParseContext } from '../types.js';
import { PriorityRateLimitFilter } from './filter.js';

export const PRIORITY_RATELIMIT_TYPE = 'type.googleapis.com/strait.priority_ratelimit.v1.PriorityRateLimit';

export interface PriorityRateLimitConfig {
  /** The rpc_proxy `rate_limit` block; its keys are lower-case header names here. */
  readonly spec: RateLimitSpec;
  /** Without a usable priority header: route HIGH = level 0, DEFAULT = the lowest level. */
  readonly priorityFromRoute: boolean;
}

type Obj = Record<string, any>;

/** HTTP/2 and the HTTP/1 lookups take lower-case names; a header name has no spaces or colons. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

function parse(tc: Obj, path: string, ctx: HttpFilterParseContext): PriorityRateLimitConfig | null {
  const start = ctx.errors.length;
  const rl = tc.rate_limit as Obj | undefined;
  if (!rl) {
    ctx.errors.push({ path: `${path}.rate_limit`, message: 'is required' });
    return null;
  }
  const spec = parseRateLimitSpec(rl, `${path}.rate_limit`, ctx.errors);
  if (spec) {
    for (const [k, f] of [
      [spec.priorityKey, 'priority_key'],
      [spec.sourceAppKey, 'source_app_key'],
    ] as const) {
      if (k && !HEADER_NAME.test(k.toLowerCase())) ctx.errors.push({ path: `${path}.rate_limit.${f}`, message: `"${k}" is not an HTTP header name` });
    }
  }
  if (ctx.errors.length > start || !spec) return null;
  return Object.freeze({
    spec: Object.freeze({ ...spec, priorityKey: spec.priorityKey.toLowerCase(), sourceAppKey: spec.sourceAppKey.toLowerCase() }),
    priorityFromRoute: tc.priority_from_route === true,
  });
}

export const priorityRateLimitFactory = {
  name: 'strait.filters.http.priority_ratelimit',
  typeUrls: [PRIORITY_RATELIMIT_TYPE],
  parse,
  create: (config, scope) => new PriorityRateLimitFilter(config, scope),
} satisfies HttpFilterFactory<PriorityRateLimitConfig>;
