import type { Scope, StatsOf } from '../../../observability/stats.js';
import { PerConnection } from '../../../io/per_connection.js';
import type { HeaderAdd } from '../../../router/http_route_table.js';
import { addResponseHeaders, addUpstreamHeaders, type FilterVerdict, type HttpFilter, type HttpFilterRequest } from '../types.js';
import type { DescriptorBucketConfig, LocalRateLimitConfig } from './config.js';
import { descriptorKey, ENTRY, KV, RATE_LIMITS_KEY, type CompiledRateLimit, type RouteRateLimits } from './descriptors.js';
import { LOCAL_RATELIMIT_STATS } from './stats.js';

type Stats = StatsOf<typeof LOCAL_RATELIMIT_STATS>;

/**
 * One token bucket, refilled by `tokens_per_fill` every `fill_interval`. The refill is computed
 * when a request arrives rather than on a timer: the same tokens, no timer.
 */
class TokenBucket {
  private tokens: number;
  private lastFill: number;

  constructor(
    private readonly c: { readonly maxTokens: number; readonly tokensPerFill: number; readonly fillIntervalMs: number },
    private readonly now: () => number,
  ) {
    this.tokens = c.maxTokens;
    this.lastFill = now();
  }

  take(): boolean {
    const c = this.c;
    if (c.fillIntervalMs > 0) {
      const t = this.now();
      const n = Math.floor((t - this.lastFill) / c.fillIntervalMs);
      if (n > 0) {
        this.lastFill += n * c.fillIntervalMs;
        this.tokens = Math.min(c.maxTokens, this.tokens + n * c.tokensPerFill);
      }
    }
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  get maxTokens(): number {
    return this.c.maxTokens;
  }

  /** Whole tokens left (as of the last take). */
  get remaining(): number {
    return Math.floor(this.tokens);
  }

  /** Seconds until the next fill, rounded up: X-RateLimit-Reset. */
  resetSeconds(): number {
    const c = this.c;
    if (c.fillIntervalMs <= 0) return 0;
    return Math.ceil(Math.max(0, this.lastFill + c.fillIntervalMs - this.now()) / 1000);
  }
}

/** The draft-03 X-RateLimit headers of the bucket that decided a request (Envoy's local_ratelimit). */
function xRateLimitHeaders(b: TokenBucket): readonly HeaderAdd[] {
  const h = (name: string, v: number): HeaderAdd => ({ name, value: String(v), action: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmpty: false });
  return [h('x-ratelimit-limit', b.maxTokens), h('x-ratelimit-remaining', b.remaining), h('x-ratelimit-reset', b.resetSeconds())];
}

interface DescriptorBucket {
  /** Position in consumption order (slowest-filling first). */
  readonly rank: number;
  readonly bucket: TokenBucket;
}

/**
 * A wildcard descriptor's buckets, one per matching descriptor a request produced (by its key), in
 * least-recently-used order: Map keeps insertion order, so a hit moves its entry to the end and
 * the first one is the one to drop past max_dynamic_descriptors, as Envoy's LRU.
 */
interface WildcardBuckets {
  readonly rank: number;
  readonly config: DescriptorBucketConfig;
  readonly seen: Map<string, DescriptorBucket>;
}

/** The default bucket and one per exact descriptor (by entries key), and the wildcard descriptors' (null without descriptors). */
interface BucketSet {
  readonly bucket: TokenBucket;
  readonly byKey: ReadonlyMap<string, DescriptorBucket> | null;
  readonly wild: readonly WildcardBuckets[] | null;
}

function buckets(config: LocalRateLimitConfig, now: () => number): BucketSet {
  const ds = config.descriptors;
  if (!ds.length) return { bucket: new TokenBucket(config, now), byKey: null, wild: null };
  const byKey = new Map<string, DescriptorBucket>();
  const wild: WildcardBuckets[] = [];
  ds.forEach((d: DescriptorBucketConfig, rank) => {
    if (d.wildcard) wild.push({ rank, config: d, seen: new Map() });
    else byKey.set(d.key, { rank, bucket: new TokenBucket(d, now) });
  });
  return { bucket: new TokenBucket(config, now), byKey, wild: wild.length ? wild : null };
}

/** Whether the descriptor with lookup key `k` has the wildcard's keys in order and its fixed values. */
function wildcardMatches(k: string, entries: ReadonlyArray<readonly [string, string | null]>): boolean {
  let at = 0;
  for (let i = 0; i < entries.length; i++) {
    const [key, value] = entries[i]!;
    if (!k.startsWith(key, at) || k[at + key.length] !== KV) return false;
    const v = at + key.length + 1;
    const end = k.indexOf(ENTRY, v);
    if (end < 0) return false;
    if (value !== null && (end - v !== value.length || !k.startsWith(value, v))) return false;
    at = end + 1;
  }
  return at === k.length;
}

/**
 * A LocalRateLimit's buckets: the default one plus one per configured descriptor. The filter's
 * own limiter is shared by its connection manager's connections; a route's LocalRateLimit gets
 * its own, built with the route table and shared by every connection manager using that table,
 * as Envoy keeps per-route buckets.
 */
export class LocalRateLimiter {
  private readonly shared: BucketSet;
  /**
   * local_rate_limit_per_downstream_connection: each connection's buckets, dropped with it.
   * Keyed by the connection's Downstream, which the codecs keep one of per connection.
   */
  private readonly perConnection: PerConnection<BucketSet> | null;
  /** Reused per request (requests are handled one at a time): the matched descriptors' buckets. */
  private readonly matched: DescriptorBucket[] = [];
  /**
   * The bucket that decided the last request, as Envoy reports it in X-RateLimit headers: the
   * descriptor bucket that refused it, else the default bucket when it was consulted and refused,
   * else the first (slowest-filling) matched descriptor's, else the default bucket.
   */
  private decided: TokenBucket | null = null;
  /** A route's limiter learns its stats scope at its first request (the table has no scope). */
  private stats: Stats | null = null;

  constructor(
    readonly config: LocalRateLimitConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.shared = buckets(config, now);
    this.perConnection = config.perConnection ? new PerConnection('strait.localRateLimitBuckets') : null;
  }

  private bucketsFor(req: HttpFilterRequest): BucketSet {
    const pc = this.perConnection;
    const d = req.downstream;
    if (!pc || !d) return this.shared;
    let b = pc.get(d);
    if (!b) pc.set(d, (b = buckets(this.config, this.now)));
    return b;
  }

  bind(root: Scope): Stats {
    return (this.stats ??= root.scope(this.config.statPrefix).scope('http_local_rate_limit').table(LOCAL_RATELIMIT_STATS));
  }

  /** Adds the buckets of the descriptors `list` produces for `req` (this stage's only). */
  private match(list: readonly CompiledRateLimit[], req: HttpFilterRequest, byKey: ReadonlyMap<string, DescriptorBucket>, wild: readonly WildcardBuckets[] | null): void {
    const stage = this.config.stage;
    for (let i = 0; i < list.length; i++) {
      const rl = list[i]!;
      if (rl.stage !== stage) continue;
      const k = descriptorKey(rl, req);
      if (k === null) continue;
      const d = byKey.get(k) ?? (wild !== null ? this.dynamic(wild, k) : undefined);
      // Two actions producing the same descriptor take one token, as one descriptor would.
      if (d && !this.matched.includes(d)) this.matched.push(d);
    }
  }

  /** The bucket of the first wildcard descriptor `k` matches, made on first sight; undefined when none matches. */
  private dynamic(wild: readonly WildcardBuckets[], k: string): DescriptorBucket | undefined {
    for (let i = 0; i < wild.length; i++) {
      const w = wild[i]!;
      if (!wildcardMatches(k, w.config.wildcard!)) continue;
      let d = w.seen.get(k);
      if (d) {
        w.seen.delete(k);
      } else {
        d = { rank: w.rank, bucket: new TokenBucket(w.config, this.now) };
        if (w.seen.size >= this.config.maxDynamicDescriptors) w.seen.delete(w.seen.keys().next().value!);
      }
      w.seen.set(k, d);
      return d;
    }
    return undefined;
  }

  /** Takes the tokens the request needs; false when a bucket it needs is empty. */
  private admit(req: HttpFilterRequest): boolean {
    const c = this.config;
    const set = this.bucketsFor(req);
    const byKey = set.byKey;
    if (byKey) {
      const own = c.rateLimits;
      if (own) this.match(own, req, byKey, set.wild);
      else {
        const rr = req.perRoute?.get(RATE_LIMITS_KEY) as RouteRateLimits | undefined;
        if (rr) {
          if (rr.route) this.match(rr.route, req, byKey, set.wild);
          if (rr.vhost && (c.vhRateLimits === 'INCLUDE' || (c.vhRateLimits === 'OVERRIDE' && !rr.route))) this.match(rr.vhost, req, byKey, set.wild);
        }
      }
    }
    const m = this.matched;
    const n = m.length;
    if (n > 0) {
      if (n > 1) m.sort((a, b) => a.rank - b.rank);
      const first = m[0]!.bucket;
      let refused: TokenBucket | null = null;
      for (let i = 0; i < n; i++) {
        const b = m[i]!.bucket;
        if (!b.take()) {
          refused = b;
          break;
        }
      }
      m.length = 0;
      if (refused !== null) {
        this.decided = refused;
        return false;
      }
      if (!c.alwaysConsumeDefault || set.bucket.take()) {
        this.decided = first;
        return true;
      }
      this.decided = set.bucket;
      return false;
    }
    this.decided = set.bucket;
    return set.bucket.take();
  }

  check(req: HttpFilterRequest, root: Scope, random: () => number): FilterVerdict | null {
    const c = this.config;
    if (c.enabled <= 0 || random() >= c.enabled) return null;
    const stats = this.stats ?? this.bind(root);
    stats.enabled.value++;
    const allowed = this.admit(req);
    // Read now: the headers tell what the request found, whatever later requests take.
    const xrl = c.xRateLimitHeaders && this.decided !== null ? xRateLimitHeaders(this.decided) : null;
    if (allowed) {
      stats.ok.value++;
      if (xrl !== null) addResponseHeaders(req, { add: xrl, remove: [] });
      return null;
    }
    stats.rate_limited.value++;
    if (c.enforced <= 0 || random() >= c.enforced) {
      // Limited but let through: the upstream can tell (Envoy's request_headers_to_add_when_not_enforced).
      if (c.notEnforcedHeaders !== null) addUpstreamHeaders(req, c.notEnforcedHeaders);
      if (xrl !== null) addResponseHeaders(req, { add: xrl, remove: [] });
      return null;
    }
    stats.enforced.value++;
    const grpcStatus = req.grpc ? (c.resourceExhausted ? 8 : 14) : undefined;
    const headers = xrl === null ? c.responseHeaders : [...c.responseHeaders, ...xrl.map((h) => [h.name, h.value] as const)];
    return { delayMs: 0, reply: { status: c.status, body: 'local_rate_limited', headers, ...(grpcStatus !== undefined ? { grpcStatus } : {}), flag: 'RL' } };
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
