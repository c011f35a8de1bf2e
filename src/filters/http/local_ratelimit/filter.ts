import type { Scope, StatsOf } from '../../../observability/stats.js';
import type { FilterVerdict, HttpFilter, HttpFilterRequest } from '../types.js';
import type { LocalRateLimitConfig } from './config.js';
import { LOCAL_RATELIMIT_STATS } from './stats.js';

type Stats = StatsOf<typeof LOCAL_RATELIMIT_STATS>;

/**
 * One token bucket, refilled by `tokens_per_fill` every `fill_interval`. The refill is computed
 * when a request arrives rather than on a timer: the same tokens, no timer. The filter's own
 * bucket is shared by its connection manager's connections; a route's LocalRateLimit gets its
 * own, built with the route table and shared by every connection manager using that table, as
 * Envoy keeps per-route buckets.
 */
export class LocalRateLimiter {
  private tokens: number;
  private lastFill: number;
  /** A route's limiter learns its stats scope at its first request (the table has no scope). */
  private stats: Stats | null = null;

  constructor(
    readonly config: LocalRateLimitConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = config.maxTokens;
    this.lastFill = now();
  }

  bind(root: Scope): Stats {
    return (this.stats ??= root.scope(this.config.statPrefix).scope('http_local_rate_limit').table(LOCAL_RATELIMIT_STATS));
  }

  private refill(): void {
    const c = this.config;
    if (c.fillIntervalMs <= 0) return;
    const t = this.now();
    const n = Math.floor((t - this.lastFill) / c.fillIntervalMs);
    if (n <= 0) return;
    this.lastFill += n * c.fillIntervalMs;
    this.tokens = Math.min(c.maxTokens, this.tokens + n * c.tokensPerFill);
  }

  check(req: HttpFilterRequest, root: Scope, random: () => number): FilterVerdict | null {
    const c = this.config;
    if (c.enabled <= 0 || random() >= c.enabled) return null;
    const stats = this.stats ?? this.bind(root);
    stats.enabled.value++;
    this.refill();
    if (this.tokens >= 1) {
      this.tokens--;
      stats.ok.value++;
      return null;
    }
    stats.rate_limited.value++;
    if (c.enforced <= 0 || random() >= c.enforced) return null;
    stats.enforced.value++;
    const grpcStatus = req.grpc ? (c.resourceExhausted ? 8 : 14) : undefined;
    return { delayMs: 0, reply: { status: c.status, body: 'local_rate_limited', headers: c.responseHeaders, ...(grpcStatus !== undefined ? { grpcStatus } : {}), flag: 'RL' } };
  }
}

/**
 * Envoy's local rate limit. Without a token_bucket the filter itself limits nothing: its routes'
 * LocalRateLimit configs do (what Istio emits).
 */
export class LocalRateLimitFilter implements HttpFilter {
  private readonly limiter: LocalRateLimiter | null;

  constructor(
    config: LocalRateLimitConfig,
    private readonly root: Scope,
    now: () => number = Date.now,
    private readonly random: () => number = Math.random,
    /** Its name in the chain: where its routes' LocalRateLimit overrides are. */
    private readonly name = 'envoy.filters.http.local_ratelimit',
  ) {
    this.limiter = config.hasBucket ? new LocalRateLimiter(config, now) : null;
    // Bound at once so the filter's counters exist (at zero) before its first request.
    this.limiter?.bind(root);
  }

  onRequest(req: HttpFilterRequest): FilterVerdict | null {
    const pr = req.perRoute?.get(this.name);
    const lim = pr instanceof LocalRateLimiter ? pr : this.limiter;
    return lim ? lim.check(req, this.root, this.random) : null;
  }
}
