import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StatsStore } from '../../../src/observability/stats.js';
import { KeyedLimiter, PriorityLimiter, type PriorityLimiterConfig } from '../../../src/ratelimit/priority_limiter.js';
import { TokenBucket } from '../../../src/ratelimit/token_bucket.js';

// Fake timers fake Date too, so the limiter's clock and its timers move together.
const now = () => Date.now();

describe('TokenBucket', () => {
  it('starts full, refills tokens_per_fill per interval, never above max', () => {
    const clock = { t: 0 };
    const b = new TokenBucket(3, 2, 100, () => clock.t);
    expect([b.tryTake(), b.tryTake(), b.tryTake(), b.tryTake()]).toEqual([true, true, true, false]);
    expect(b.msUntilToken()).toBe(100);
    clock.t = 99;
    expect(b.tryTake()).toBe(false);
    clock.t = 100;
    expect(b.available()).toBe(2);
    clock.t = 1000;
    expect(b.available()).toBe(3);
  });
});

describe('PriorityLimiter', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const rate = (extra: Partial<PriorityLimiterConfig> = {}): PriorityLimiterConfig => ({
    levels: 3,
    rate: { maxTokens: 2, tokensPerFill: 1, fillIntervalMs: 100 },
    maxQueuePerLevel: 10,
    maxWaitMs: 10_000,
    ...extra,
  });

  it('grants at once while tokens last, with no allocation of a promise per grant', async () => {
    const l = new PriorityLimiter(rate(), null, now);
    const a = l.acquire(0, 1000);
    const b = l.acquire(2, 1000);
    expect(a).toBe(b); // the shared resolved promise
    expect(await a).toBe(true);
    expect(l.tryAcquire(0)).toBe(false);
  });

  it('serves waiters highest priority first, FIFO within a level, as tokens come', () => {
    const l = new PriorityLimiter(rate(), null, now);
    l.tryAcquire();
    l.tryAcquire();
    const order: string[] = [];
    l.acquireCb(2, 5000, (ok) => order.push(`low1:${ok}`));
    l.acquireCb(1, 5000, (ok) => order.push(`mid:${ok}`));
    l.acquireCb(2, 5000, (ok) => order.push(`low2:${ok}`));
    l.acquireCb(0, 5000, (ok) => order.push(`high:${ok}`));
    expect(order).toEqual([]);
    expect(l.queued).toBe(4);
    vi.advanceTimersByTime(100);
    expect(order).toEqual(['high:true']);
    vi.advanceTimersByTime(100);
    vi.advanceTimersByTime(100);
    vi.advanceTimersByTime(100);
    expect(order).toEqual(['high:true', 'mid:true', 'low1:true', 'low2:true']);
    expect(l.queued).toBe(0);
  });

  it('a newcomer does not jump waiters of its own or higher priority, but may pass lower ones', () => {
    const l = new PriorityLimiter(rate(), null, now);
    l.tryAcquire();
    l.tryAcquire();
    const got: string[] = [];
    l.acquireCb(1, 5000, () => got.push('waiting-mid'));
    vi.advanceTimersByTime(50);
    // A token arrives at 100 ms; before that a high-priority newcomer queues ahead of mid.
    l.acquireCb(0, 5000, () => got.push('high'));
    vi.advanceTimersByTime(50);
    expect(got).toEqual(['high']);
    expect(l.tryAcquire(2)).toBe(false); // mid is waiting: a low one cannot take the next token
  });

  it('refuses at once when the level’s queue is full, and times out waiters (bounded wait)', () => {
    const store = new StatsStore();
    const l = new PriorityLimiter(rate({ maxQueuePerLevel: 1, maxWaitMs: 150, rate: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 } }), store.root.scope('rl'), now);
    l.tryAcquire();
    const got: Array<[string, boolean]> = [];
    l.acquireCb(0, 10_000, (ok) => got.push(['a', ok])); // waits at most maxWaitMs
    l.acquireCb(0, 10_000, (ok) => got.push(['b', ok])); // level 0 is full
    l.acquireCb(1, 50, (ok) => got.push(['c', ok]));
    expect(got).toEqual([['b', false]]);
    vi.advanceTimersByTime(50);
    expect(got).toEqual([['b', false], ['c', false]]);
    vi.advanceTimersByTime(100);
    expect(got).toEqual([['b', false], ['c', false], ['a', false]]);
    const s = (n: string) => store.get(`rl.priority_ratelimit.${n}`)!.value;
    expect(s('queue_overflow')).toBe(1);
    expect(s('timed_out')).toBe(2);
    expect(s('waiting')).toBe(0);
  });

  it('concurrency mode: release() hands the slot to the best waiter at once', async () => {
    const l = new PriorityLimiter({ levels: 2, maxConcurrent: 1, maxQueuePerLevel: 5, maxWaitMs: 1000 }, null, now);
    expect(await l.acquire(0, 100)).toBe(true);
    const low = l.acquire(1, 1000);
    const high = l.acquire(0, 1000);
    l.release();
    expect(await high).toBe(true);
    l.release();
    expect(await low).toBe(true);
  });

  it('per source application: each key its own limiter, unknown keys beyond maxKeys share one', () => {
    const k = new KeyedLimiter(rate({ rate: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 } }), new Map([['vip', rate({ rate: { maxTokens: 5, tokensPerFill: 1, fillIntervalMs: 1000 } })]]), 2, null, now);
    expect(k.for('app1').tryAcquire()).toBe(true);
    expect(k.for('app1').tryAcquire()).toBe(false);
    expect(k.for('app2').tryAcquire()).toBe(true); // its own bucket
    expect(k.for('app3')).toBe(k.for('app4')); // past maxKeys: the shared "others"
    let vip = 0;
    for (let i = 0; i < 10; i++) if (k.for('vip').tryAcquire()) vip++;
    expect(vip).toBe(5);
  });
});
