import type { StatsOf } from '../../../observability/stats.js';
import { TokenBucket } from '../../../ratelimit/token_bucket.js';
import type { ConnectionContext, NetworkFilter, RuntimeContext } from '../types.js';
import type { NetworkLocalRateLimitConfig } from './config.js';
import { NETWORK_LOCAL_RATELIMIT_STATS } from './stats.js';

/** Buckets of filters that name a share_key, one per key for the process. */
const shared = new Map<string, TokenBucket>();

/**
 * Envoy's network local rate limit: each new connection takes a token; without one it is
 * closed at once and the rest of the chain never sees it. Connections handed over by a
 * previous process (hot restart) were admitted there and pass without a token.
 */
export class NetworkLocalRateLimitFilter implements NetworkFilter {
  private readonly stats: StatsOf<typeof NETWORK_LOCAL_RATELIMIT_STATS>;
  private readonly bucket: TokenBucket;

  constructor(
    private readonly config: NetworkLocalRateLimitConfig,
    rt: RuntimeContext,
    private readonly next: NetworkFilter,
  ) {
    this.stats = rt.stats.scope('local_ratelimit').scope(config.statPrefix).table(NETWORK_LOCAL_RATELIMIT_STATS);
    const make = () => new TokenBucket(config.maxTokens, config.tokensPerFill, config.fillIntervalMs);
    if (config.shareKey) {
      let b = shared.get(config.shareKey);
      if (!b) shared.set(config.shareKey, (b = make()));
      this.bucket = b;
    } else this.bucket = make();
  }

  onNewConnection(conn: ConnectionContext): void {
    if (this.config.enabled && !conn.adopted && !this.bucket.tryTake()) {
      this.stats.rate_limited.value++;
      conn.downstream.close();
      conn.done();
      return;
    }
    this.next.onNewConnection(conn);
  }
}
