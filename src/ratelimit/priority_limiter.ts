import type { Scope, StatsOf } from '../observability/stats.js';
import { PRIORITY_LIMITER_STATS } from './stats.js';
import { TokenBucket } from './token_bucket.js';

export interface PriorityLimiterConfig {
  /** Priority levels 0..levels-1; 0 is served first. */
  readonly levels: number;
  /** Rate limit (token bucket); omit for a concurrency-only limiter. */
  readonly rate?: { readonly maxTokens: number; readonly tokensPerFill: number; readonly fillIntervalMs: number } | null;
  /** Requests in flight at once (each grant must be paired with release()); omit for rate-only. */
  readonly maxConcurrent?: number;
  /** Waiting requests per level; beyond it a request is refused at once. */
  readonly maxQueuePerLevel: number;
  /** Upper bound on any wait, whatever the caller asks for. */
  readonly maxWaitMs: number;
}

/** Called once with whether the request may go ahead. */
export type Grant = (ok: boolean) => void;

class Waiter {
  constructor(
    readonly cb: Grant,
    readonly deadline: number,
  ) {}
}

/** A FIFO of waiters that does not shift arrays (head index, compacted when half is spent). */
class Queue {
  items: Waiter[] = [];
  head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(w: Waiter): void {
    this.items.push(w);
  }
  peek(): Waiter | undefined {
    return this.items[this.head];
  }
  shift(): Waiter {
    const w = this.items[this.head++]!;
    if (this.head > 32 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return w;
  }
  /** Removes the waiter holding `cb`; false when none does. */
  remove(cb: Grant): boolean {
    const items = this.items;
    for (let i = this.head; i < items.length; i++) {
      if (items[i]!.cb === cb) {
        items.splice(i, 1);
        return true;
      }
    }
    return false;
  }
  /** Removes and returns waiters whose deadline passed. */
  expire(now: number, out: Waiter[]): void {
    let kept = 0;
    const items = this.items;
    for (let i = this.head; i < items.length; i++) {
      const w = items[i]!;
      if (w.deadline <= now) out.push(w);
      else items[this.head + kept++] = w;
    }
    items.length = this.head + kept;
  }
}

const GRANTED: Promise<boolean> = Promise.resolve(true);
const REFUSED: Promise<boolean> = Promise.resolve(false);

/**
 * A limiter for request-level filters that queues instead of refusing at once: when no permit
 * is free (rate token and/or concurrency slot), a request waits in the queue of its priority;
 * permits go to the highest priority first, FIFO within a level. Queues are bounded in length
 * and in wait time, so overload still turns into fast refusals rather than unbounded latency.
 *
 * The common case (a permit is free) allocates nothing: `tryAcquire()` is a counter check, and
 * `acquire()` answers through shared pre-resolved promises. Only a request that has to wait
 * gets a waiter object (and, with `acquire`, a promise).
 */
export class PriorityLimiter {
  readonly stats: StatsOf<typeof PRIORITY_LIMITER_STATS> | null;
  private readonly bucket: TokenBucket | null;
  private readonly maxConcurrent: number;
  private active = 0;
  private readonly queues: Queue[];
  private waiting = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;

  constructor(
    readonly config: PriorityLimiterConfig,
    scope: Scope | null = null,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(config.levels >= 1)) throw new RangeError('levels must be at least 1');
    this.bucket = config.rate ? new TokenBucket(config.rate.maxTokens, config.rate.tokensPerFill, config.rate.fillIntervalMs, now) : null;
    this.maxConcurrent = config.maxConcurrent ?? Infinity;
    this.queues = Array.from({ length: config.levels }, () => new Queue());
    this.stats = scope ? scope.scope('priority_ratelimit').table(PRIORITY_LIMITER_STATS) : null;
  }

  /** Requests waiting now, all levels. */
  get queued(): number {
    return this.waiting;
  }

  private clampPriority(p: number): number {
    return p <= 0 ? 0 : p >= this.queues.length ? this.queues.length - 1 : p | 0;
  }

  /** Whether someone of priority `p` or better is already waiting (a newcomer must not jump them). */
  private aheadOf(p: number): boolean {
    for (let i = 0; i <= p; i++) if (this.queues[i]!.length > 0) return true;
    return false;
  }

  private takePermit(): boolean {
    if (this.active >= this.maxConcurrent) return false;
    if (this.bucket && !this.bucket.tryTake()) return false;
    this.active++;
    if (this.stats) this.stats.active.value = this.active;
    return true;
  }

  /** A permit now or never: no queueing. */
  tryAcquire(priority = 0): boolean {
    if (this.aheadOf(this.clampPriority(priority)) || !this.takePermit()) {
      if (this.stats) this.stats.rejected.value++;
      return false;
    }
    if (this.stats) this.stats.granted.value++;
    return true;
  }

  /**
   * Asks for a permit at `priority`, waiting up to `timeoutMs` (capped at maxWaitMs). `cb` runs
   * synchronously when a permit is free now, later otherwise; true = go ahead (and call
   * release() when done if maxConcurrent is set), false = refused (queue full or timed out).
   */
  acquireCb(priority: number, timeoutMs: number, cb: Grant): void {
    const p = this.clampPriority(priority);
    if (!this.aheadOf(p) && this.takePermit()) {
      if (this.stats) this.stats.granted.value++;
      cb(true);
      return;
    }
    const q = this.queues[p]!;
    const wait = Math.min(timeoutMs, this.config.maxWaitMs);
    if (wait <= 0 || q.length >= this.config.maxQueuePerLevel) {
      if (this.stats) {
        this.stats.rejected.value++;
        if (wait > 0) this.stats.queue_overflow.value++;
      }
      cb(false);
      return;
    }
    q.push(new Waiter(cb, this.now() + wait));
    this.waiting++;
    if (this.stats) {
      this.stats.queued.value++;
      this.stats.waiting.value = this.waiting;
    }
    this.schedule();
  }

  /** Promise form of acquireCb; a free permit or a full queue answer with shared promises. */
  acquire(priority: number, timeoutMs: number): Promise<boolean> {
    let sync: boolean | null = null;
    let resolve: ((ok: boolean) => void) | null = null;
    this.acquireCb(priority, timeoutMs, (ok) => {
      if (resolve) resolve(ok);
      else sync = ok;
    });
    if (sync !== null) return sync ? GRANTED : REFUSED;
    return new Promise<boolean>((r) => (resolve = r));
  }

  /**
   * Withdraws a queued request (its client left): `cb` will not be called. False when it is not
   * queued (already answered). A linear scan: rare, and queues are bounded.
   */
  cancel(cb: Grant): boolean {
    for (const q of this.queues) {
      if (q.remove(cb)) {
        this.waiting--;
        if (this.stats) this.stats.waiting.value = this.waiting;
        this.schedule();
        return true;
      }
    }
    return false;
  }

  /** Gives back a concurrency slot; the best waiter gets it at once. */
  release(): void {
    if (this.active > 0) this.active--;
    if (this.stats) this.stats.active.value = this.active;
    if (this.waiting > 0) this.drain();
  }

  /** Grants permits to waiters, highest priority first, and refuses those past their deadline. */
  private drain(): void {
    const now = this.now();
    for (const q of this.queues) {
      while (q.length > 0) {
        const w = q.peek()!;
        if (w.deadline <= now) {
          q.shift();
          this.finish(w, false);
          continue;
        }
        if (!this.takePermit()) break;
        q.shift();
        if (this.stats) this.stats.granted_after_wait.value++;
        this.finish(w, true);
      }
      // Lower levels wait while a higher one could not be served.
      if (q.length > 0) break;
    }
    const expired: Waiter[] = [];
    for (const q of this.queues) q.expire(now, expired);
    for (const w of expired) this.finish(w, false);
    this.schedule();
  }

  private finish(w: Waiter, ok: boolean): void {
    this.waiting--;
    if (this.stats) {
      this.stats.waiting.value = this.waiting;
      if (!ok) this.stats.timed_out.value++;
    }
    w.cb(ok);
  }

  /** One timer for the whole limiter: the next token or the earliest deadline, whichever first. */
  private schedule(): void {
    if (this.waiting === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.timerAt = Infinity;
      return;
    }
    let at = Infinity;
    for (const q of this.queues) {
      const w = q.peek();
      if (w && w.deadline < at) at = w.deadline;
    }
    // Deadlines further back in a queue are no earlier than most heads; a full scan is not worth it.
    if (this.bucket) at = Math.min(at, this.now() + this.bucket.msUntilToken());
    if (this.timer && at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.drain();
    }, Math.max(0, at - this.now()));
    this.timer.unref?.();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const q of this.queues) while (q.length) this.finish(q.shift(), false);
  }
}

/**
 * Limits per source application (a header or an RPC field names it): one limiter per known key,
 * built on first use from that key's config or the default. At most `maxKeys` keys get their
 * own limiter; requests from further keys share the default's "others" limiter, so a client
 * inventing names cannot grow memory without bound.
 */
export class KeyedLimiter {
  private readonly byKey = new Map<string, PriorityLimiter>();
  private others: PriorityLimiter | null = null;

  constructor(
    private readonly defaults: PriorityLimiterConfig,
    private readonly perKey: ReadonlyMap<string, PriorityLimiterConfig> = new Map(),
    private readonly maxKeys = 1024,
    private readonly scope: Scope | null = null,
    private readonly now: () => number = () => performance.now(),
  ) {}

  for(key: string): PriorityLimiter {
    const l = this.byKey.get(key);
    if (l) return l;
    if (this.byKey.size >= this.maxKeys && !this.perKey.has(key)) {
      return (this.others ??= new PriorityLimiter(this.defaults, this.scope?.scope('others') ?? null, this.now));
    }
    const created = new PriorityLimiter(this.perKey.get(key) ?? this.defaults, this.scope?.scope(key) ?? null, this.now);
    this.byKey.set(key, created);
    return created;
  }

  close(): void {
    for (const l of this.byKey.values()) l.close();
    this.others?.close();
  }
}
