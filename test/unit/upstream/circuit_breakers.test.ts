import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { StatsStore } from '../../../src/observability/stats.js';
import { CircuitBreakers, parseCircuitBreakers, parseRoutingPriority } from '../../../src/upstream/circuit_breakers.js';
import { PriorityLimiter } from '../../../src/ratelimit/priority_limiter.js';
import { parseRateLimitSpec } from '../../../src/ratelimit/config.js';

describe('circuit breakers per priority', () => {
  it('keeps DEFAULT and HIGH thresholds apart, with Envoy defaults for what is unset', () => {
    const errors: FieldError[] = [];
    const { thresholds } = parseCircuitBreakers({ thresholds: [{ max_requests: 1 }, { priority: 'HIGH', max_connections: 7, max_retries: 0 }] }, 'c', errors);
    expect(errors).toEqual([]);
    expect(thresholds[0]).toEqual({ maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1, maxRetries: 3 });
    expect(thresholds[1]).toEqual({ maxConnections: 7, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 0 });
  });

  it('reports every bad threshold with its field path', () => {
    const errors: FieldError[] = [];
    parseCircuitBreakers({ thresholds: [{ priority: 'HIGH', max_requests: -1 }, { priority: 'HIGH' }, { priority: 'URGENT' }] }, 'clusters[0].circuit_breakers', errors);
    expect(errors.map((e) => e.path)).toEqual([
      'clusters[0].circuit_breakers.thresholds[0].max_requests',
      'clusters[0].circuit_breakers.thresholds[1].priority',
      'clusters[0].circuit_breakers.thresholds[2].priority',
    ]);
    expect(parseRoutingPriority('HIGH', 'p', errors)).toBe(1);
  });

  it('publishes open gauges per priority as resources come and go', () => {
    const store = new StatsStore();
    const scope = store.root.scope('cluster').scope('b', 'envoy_cluster_name');
    const { thresholds, trackRemaining } = parseCircuitBreakers({ thresholds: [{ max_requests: 1, track_remaining: true }] }, 'c', []);
    const cb = new CircuitBreakers(thresholds, trackRemaining, scope);
    const d = cb.at(0);
    expect(d.canRequest()).toBe(true);
    d.addRequest(1);
    expect(d.canRequest()).toBe(false);
    expect(cb.at(1).canRequest()).toBe(true);
    expect(store.get('cluster.b.circuit_breakers.default.rq_open')!.value).toBe(1);
    expect(store.get('cluster.b.circuit_breakers.high.rq_open')!.value).toBe(0);
    expect(store.get('cluster.b.circuit_breakers.default.remaining_rq')!.value).toBe(0);
    expect(store.get('cluster.b.circuit_breakers.high.remaining_rq')).toBeUndefined();
    d.addRequest(-1);
    expect(store.get('cluster.b.circuit_breakers.default.rq_open')!.value).toBe(0);
    expect(store.get('cluster.b.circuit_breakers.default.remaining_rq')!.value).toBe(1);
  });
});

describe('PriorityLimiter.cancel', () => {
  it('withdraws a queued request: its callback never runs and the permit goes to the next', () => {
    const l = new PriorityLimiter({ levels: 2, maxConcurrent: 1, maxQueuePerLevel: 4, maxWaitMs: 60_000 });
    const got: string[] = [];
    l.acquireCb(1, 60_000, (ok) => got.push(`first:${ok}`));
    const gone = (ok: boolean) => got.push(`gone:${ok}`);
    l.acquireCb(1, 60_000, gone);
    l.acquireCb(1, 60_000, (ok) => got.push(`next:${ok}`));
    expect(l.queued).toBe(2);
    expect(l.cancel(gone)).toBe(true);
    expect(l.cancel(gone)).toBe(false);
    expect(l.queued).toBe(1);
    l.release();
    expect(got).toEqual(['first:true', 'next:true']);
    l.close();
  });
});

describe('rate_limit block', () => {
  it('reports each bad field with its path', () => {
    const errors: FieldError[] = [];
    expect(parseRateLimitSpec({ levels: 17, max_concurrent: -1 }, 'f.rate_limit', errors)).toBeNull();
    expect(errors.map((e) => e.path)).toEqual(['f.rate_limit.max_concurrent', 'f.rate_limit.levels']);
  });
});
