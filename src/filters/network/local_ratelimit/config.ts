import { durationMs } from '../../../config/values.js';
import type { FactoryContext, NetworkFilterFactory } from '../types.js';
import { NetworkLocalRateLimitFilter } from './filter.js';

export const NETWORK_LOCAL_RATELIMIT_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit';

export interface NetworkLocalRateLimitConfig {
  readonly statPrefix: string;
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
  /** `runtime_enabled.default_value` (no runtime layer): false = count nothing, limit nothing. */
  readonly enabled: boolean;
  /** Filters with the same share_key share one bucket (Envoy: across listeners of the process). */
  readonly shareKey: string;
}

type Obj = Record<string, any>;

function parse(tc: Obj, path: string, ctx: FactoryContext): NetworkLocalRateLimitConfig | null {
  const start = ctx.errors.length;
  if (!tc.stat_prefix) ctx.errors.push({ path: `${path}.stat_prefix`, message: 'is required' });
  const tb = tc.token_bucket as Obj | undefined;
  if (!tb) ctx.errors.push({ path: `${path}.token_bucket`, message: 'is required' });
  const fillIntervalMs = tb?.fill_interval === undefined ? 0 : durationMs(tb.fill_interval)!;
  // Envoy's rule for this filter: refills finer than 50 ms cost more than they help.
  if (tb && fillIntervalMs < 50) ctx.errors.push({ path: `${path}.token_bucket.fill_interval`, message: 'must be at least 50ms' });
  const maxTokens = Number(tb?.max_tokens ?? 0);
  if (tb && !(maxTokens >= 1)) ctx.errors.push({ path: `${path}.token_bucket.max_tokens`, message: 'must be at least 1' });
  if (ctx.errors.length > start) return null;
  return Object.freeze({
    statPrefix: String(tc.stat_prefix),
    maxTokens,
    tokensPerFill: tb!.tokens_per_fill === undefined || tb!.tokens_per_fill === null ? 1 : Number(tb!.tokens_per_fill),
    fillIntervalMs,
    enabled: tc.runtime_enabled?.default_value !== false,
    shareKey: String(tc.share_key ?? ''),
  });
}

export const networkLocalRateLimitFactory = {
  name: 'envoy.filters.network.local_ratelimit',
  typeUrls: [NETWORK_LOCAL_RATELIMIT_TYPE],
  terminal: false,
  parse,
  create: (config, rt, next) => {
    if (!next) throw new Error('envoy.filters.network.local_ratelimit needs a filter after it');
    return new NetworkLocalRateLimitFilter(config, rt, next);
  },
} satisfies NetworkFilterFactory<NetworkLocalRateLimitConfig>;
