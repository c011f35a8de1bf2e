import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { faultFactory } from '../../../src/filters/http/fault/config.js';
import { FaultFilter } from '../../../src/filters/http/fault/filter.js';
import { localRateLimitFactory } from '../../../src/filters/http/local_ratelimit/config.js';
import { LocalRateLimitFilter } from '../../../src/filters/http/local_ratelimit/filter.js';
import type { HttpFilterRequest } from '../../../src/filters/http/types.js';
import { StatsStore } from '../../../src/observability/stats.js';

function parsed<T>(f: { parse(tc: Record<string, unknown>, p: string, ctx: { errors: FieldError[]; warnings: FieldError[] }): T | null }, tc: Record<string, unknown>): T {
  const errors: FieldError[] = [];
  const c = f.parse(tc, 'f', { errors, warnings: [] });
  if (!c) throw new Error(JSON.stringify(errors));
  return c;
}

const req = (headers: Record<string, string> = {}, grpc = false): HttpFilterRequest => ({ method: 'GET', path: '/', header: (n) => headers[n], grpc });

describe('fault filter', () => {
  it('applies its percentage: a draw under the fraction faults, one over does not', () => {
    const cfg = parsed(faultFactory, { abort: { http_status: 500, percentage: { numerator: 25 } } });
    const store = new StatsStore();
    let draw = 0.2;
    const f = new FaultFilter(cfg, store.root, () => draw);
    expect(f.onRequest(req())?.reply?.status).toBe(500);
    f.onDone();
    draw = 0.3;
    expect(f.onRequest(req())).toBeNull();
    expect(store.get('fault.aborts_injected')!.value).toBe(1);
  });

  it('lets a header lower the percentage but never raise it', () => {
    const cfg = parsed(faultFactory, { delay: { header_delay: {}, percentage: { numerator: 50 } } });
    const f = new FaultFilter(cfg, new StatsStore().root, () => 0.4);
    expect(f.onRequest(req({ 'x-envoy-fault-delay-request': '100' }))?.delayMs).toBe(100);
    expect(f.onRequest(req({ 'x-envoy-fault-delay-request': '100', 'x-envoy-fault-delay-request-percentage': '10' }))).toBeNull();
    expect(f.onRequest(req({ 'x-envoy-fault-delay-request': '100', 'x-envoy-fault-delay-request-percentage': '90' }))?.delayMs).toBe(100);
  });

  it('stops injecting at max_active_faults', () => {
    const cfg = parsed(faultFactory, { abort: { http_status: 503, percentage: { numerator: 100 } }, max_active_faults: 1 });
    const store = new StatsStore();
    const f = new FaultFilter(cfg, store.root, () => 0);
    expect(f.onRequest(req())).not.toBeNull();
    expect(f.onRequest(req())).toBeNull();
    expect(store.get('fault.faults_overflow')!.value).toBe(1);
    f.onDone();
    expect(f.onRequest(req())).not.toBeNull();
  });

  it('treats an unset percentage as 0%, as Envoy does', () => {
    const cfg = parsed(faultFactory, { abort: { http_status: 503 } });
    expect(new FaultFilter(cfg, new StatsStore().root, () => 0).onRequest(req())).toBeNull();
  });
});

describe('local rate limit filter', () => {
  const tc = {
    stat_prefix: 'rl',
    token_bucket: { max_tokens: 2, tokens_per_fill: 2, fill_interval: '1s' },
    filter_enabled: { default_value: { numerator: 100 } },
    filter_enforced: { default_value: { numerator: 100 } },
  };

  it('refills tokens_per_fill per elapsed fill_interval, up to max_tokens', () => {
    let now = 0;
    const store = new StatsStore();
    const f = new LocalRateLimitFilter(parsed(localRateLimitFactory, tc), store.root, () => now, () => 0);
    expect(f.onRequest(req())).toBeNull();
    expect(f.onRequest(req())).toBeNull();
    expect(f.onRequest(req())?.reply?.status).toBe(429);
    now = 999;
    expect(f.onRequest(req())?.reply?.status).toBe(429);
    now = 5000; // many intervals: still only max_tokens
    expect(f.onRequest(req())).toBeNull();
    expect(f.onRequest(req())).toBeNull();
    expect(f.onRequest(req())).not.toBeNull();
    expect(store.get('rl.http_local_rate_limit.rate_limited')!.value).toBe(3);
  });

  it('does nothing without filter_enabled, and only counts without filter_enforced', () => {
    const off = new LocalRateLimitFilter(parsed(localRateLimitFactory, { ...tc, filter_enabled: undefined }), new StatsStore().root, () => 0, () => 0);
    for (let i = 0; i < 5; i++) expect(off.onRequest(req())).toBeNull();
    const store = new StatsStore();
    const shadow = new LocalRateLimitFilter(parsed(localRateLimitFactory, { ...tc, filter_enforced: undefined }), store.root, () => 0, () => 0);
    for (let i = 0; i < 5; i++) expect(shadow.onRequest(req())).toBeNull();
    expect(store.get('rl.http_local_rate_limit.rate_limited')!.value).toBe(3);
    expect(store.get('rl.http_local_rate_limit.enforced')!.value).toBe(0);
  });

  it('answers gRPC with UNAVAILABLE, or RESOURCE_EXHAUSTED when asked', () => {
    const one = { ...tc, token_bucket: { max_tokens: 0, fill_interval: '1s' } };
    const a = new LocalRateLimitFilter(parsed(localRateLimitFactory, one), new StatsStore().root, () => 0, () => 0);
    expect(a.onRequest(req({}, true))?.reply?.grpcStatus).toBe(14);
    const b = new LocalRateLimitFilter(parsed(localRateLimitFactory, { ...one, rate_limited_as_resource_exhausted: true }), new StatsStore().root, () => 0, () => 0);
    expect(b.onRequest(req({}, true))?.reply?.grpcStatus).toBe(8);
  });
});
