import type { Scope, StatsOf } from '../../../observability/stats.js';
import { KeyedLimiter, PriorityLimiter, type Grant } from '../../../ratelimit/priority_limiter.js';
import type { FilterDoneHook, FilterReply, FilterResume, FilterVerdict, HttpFilter, HttpFilterRequest } from '../types.js';
import type { PriorityRateLimitConfig } from './config.js';
import { PRIORITY_RATELIMIT_STATS } from './stats.js';

const REPLY: FilterReply = Object.freeze({ status: 429, body: 'priority_rate_limited', grpcStatus: 8, flag: 'RL' });

const enum T {
  ASKING,
  WAITING,
  GRANTED,
  REFUSED,
  OVER,
}

/**
 * One request's place at the limiter: asked once, then granted, refused, or withdrawn when the
 * exchange ends first. It is the verdict's `done` hook, so a concurrency permit goes back
 * exactly once whichever way the exchange ends.
 */
class Ticket implements FilterDoneHook {
  state = T.ASKING;
  private resume: FilterResume | null = null;

  constructor(
    private readonly filter: PriorityRateLimitFilter,
    private readonly limiter: PriorityLimiter,
  ) {}

  readonly grant: Grant = (ok) => {
    if (this.state === T.OVER) {
      // Answered after the client left: hand the permit straight back.
      if (ok) this.releasePermit();
      return;
    }
    const waited = this.state === T.WAITING;
    this.state = ok ? T.GRANTED : T.REFUSED;
    if (!ok) this.filter.stats.rate_limited.value++;
    if (waited && this.resume) {
      const r = this.resume;
      this.resume = null;
      r(ok ? null : REPLY);
    }
  };

  readonly wait = (resume: FilterResume): void => {
    if (this.state === T.WAITING) this.resume = resume;
    else if (this.state === T.GRANTED) resume(null);
    else if (this.state === T.REFUSED) resume(REPLY);
  };

  onDone(): void {
    const s = this.state;
    this.state = T.OVER;
    this.resume = null;
    if (s === T.WAITING) {
      // Still queued: withdraw; if it was already granted meanwhile, grant() returns the permit.
      this.limiter.cancel(this.grant);
    } else if (s === T.GRANTED) this.releasePermit();
  }

  private releasePermit(): void {
    if (this.limiter.config.maxConcurrent) this.limiter.release();
  }
}

/**
 * `strait.filters.http.priority_ratelimit`: the rpc_proxy rate limit for HTTP. One limiter per
 * source application (header `source_app_key`), or one for all; a request over the limit waits
 * in the queue of its priority (header `priority_key`, else the route's priority) and is served
 * highest priority first, or answered 429 / RESOURCE_EXHAUSTED when its queue is full or its
 * wait exceeds max_wait.
 */
export class PriorityRateLimitFilter implements HttpFilter {
  readonly stats: StatsOf<typeof PRIORITY_RATELIMIT_STATS>;
  private readonly keyed: KeyedLimiter | null;
  private readonly single: PriorityLimiter | null;
  private readonly lowest: number;
  private readonly concurrency: boolean;

  constructor(
    private readonly config: PriorityRateLimitConfig,
    scope: Scope,
  ) {
    const spec = config.spec;
    this.stats = scope.scope('priority_ratelimit').table(PRIORITY_RATELIMIT_STATS);
    this.keyed = spec.sourceAppKey ? new KeyedLimiter(spec.limiter, new Map(), 1024, scope.scope('app')) : null;
    this.single = spec.sourceAppKey ? null : new PriorityLimiter(spec.limiter, scope);
    this.lowest = spec.limiter.levels - 1;
    this.concurrency = !!spec.limiter.maxConcurrent;
  }

  private priorityOf(req: HttpFilterRequest): number {
    const c = this.config;
    const raw = c.spec.priorityKey ? req.header(c.spec.priorityKey) : undefined;
    if (raw !== undefined) {
      const p = Number(raw);
      if (raw !== '' && Number.isInteger(p) && p >= 0) return p > this.lowest ? this.lowest : p;
    }
    return c.priorityFromRoute && req.routePriority === 1 ? 0 : this.lowest;
  }

  onRequest(req: HttpFilterRequest): FilterVerdict | null {
    const spec = this.config.spec;
    const limiter = this.keyed ? this.keyed.for(req.header(spec.sourceAppKey) ?? '') : this.single!;
    const t = new Ticket(this, limiter);
    limiter.acquireCb(this.priorityOf(req), spec.limiter.maxWaitMs, t.grant);
    if (t.state === T.GRANTED) return this.concurrency ? { delayMs: 0, reply: null, done: t } : null;
    if (t.state === T.REFUSED) return { delayMs: 0, reply: REPLY, done: t };
    t.state = T.WAITING;
    return { delayMs: 0, reply: null, done: t, wait: t.wait };
  }
}
