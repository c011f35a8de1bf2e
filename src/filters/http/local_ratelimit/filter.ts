import type { Scope, StatsOf } from '../../../observability/stats.js';
import type { FilterVerdict, HttpFilter, HttpFilterRequest } from '../types.js';
import type { LocalRateLimitConfig } from './config.js';
import { LOCAL_RATELIMIT_STATS } from './stats.js';

/**
 * Envoy's local rate limit: one token bucket per filter (shared by the connection manager's
 * connections), refilled by `tokens_per_fill` every `fill_interval`. The refill is computed
 * when a request arrives rather than on a timer: the same tokens, no timer.
 */
export class LocalRateLimitFilter implements HttpFilter {
  private readonly stats: StatsOf<typeof LOCAL_RATELIMIT_STATS>;
  private tokens: number;
  private lastFill: number;

  constructor(
    private readonly config: LocalRateLimitConfig,
    root: Scope,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.stats = root.scope(config.statPrefix).scope('http_local_rate_limit').table(LOCAL_RATELIMIT_STATS);
    this.tokens = config.maxTokens;
    this.lastFill = now();
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

  onRequest(req: HttpFilterRequest): FilterVerdict | null {
    const c = this.config;
    if (c.enabled <= 0 || this.random() >= c.enabled) return null;
    this.stats.enabled.value++;
    this.refill();
    if (this.tokens >= 1) {
      this.tokens--;
      this.stats.ok.value++;
      return null;
    }
    this.stats.rate_limited.value++;
    if (c.enforced <= 0 || this.random() >= c.enforced) return null;
    this.stats.enforced.value++;
    const grpcStatus = req.grpc ? (c.resourceExhausted ? 8 : 14) : undefined;
    return { delayMs: 0, reply: { status: c.status, body: 'local_rate_limited', headers: c.responseHeaders, ...(grpcStatus !== undefined ? { grpcStatus } : {}) } };
  }
}
