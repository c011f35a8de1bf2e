import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { localRateLimitFactory, type LocalRateLimitConfig } from '../../../src/filters/http/local_ratelimit/config.js';
import { compileRateLimits, descriptorKey, entryKey, RATE_LIMITS_KEY } from '../../../src/filters/http/local_ratelimit/descriptors.js';
import { LocalRateLimitFilter } from '../../../src/filters/http/local_ratelimit/filter.js';
import type { HttpFilterRequest } from '../../../src/filters/http/types.js';
import { StatsStore } from '../../../src/observability/stats.js';

type Obj = Record<string, unknown>;
const ON = { default_value: { numerator: 100 } };
const bucket = (max: number) => ({ max_tokens: max, tokens_per_fill: 1, fill_interval: '3600s' });

function parse(tc: Obj): LocalRateLimitConfig {
  const errors: FieldError[] = [];
  const c = localRateLimitFactory.parse(tc, 'f', { errors, warnings: [] });
  if (!c) throw new Error(JSON.stringify(errors));
  return c;
}

function rateLimits(list: unknown[]): ReadonlyMap<string, unknown> {
  const errors: FieldError[] = [];
  const route = compileRateLimits(list, 'r', errors);
  expect(errors).toEqual([]);
  return new Map([[RATE_LIMITS_KEY, { route, vhost: null }]]);
}

const req = (headers: Record<string, string>, perRoute: ReadonlyMap<string, unknown> | null = null): HttpFilterRequest => ({ method: 'GET', path: '/', header: (n) => headers[n], grpc: false, perRoute });

describe('rate limit actions', () => {
  it('drops a descriptor whose header is absent, unless skip_if_absent leaves the entry out', () => {
    const errors: FieldError[] = [];
    const [strict, lenient] = compileRateLimits(
      [
        { actions: [{ generic_key: { descriptor_value: 'g' } }, { request_headers: { header_name: 'X-User', descriptor_key: 'user' } }] },
        { actions: [{ generic_key: { descriptor_value: 'g' } }, { request_headers: { header_name: 'x-user', descriptor_key: 'user', skip_if_absent: true } }] },
      ],
      'r',
      errors,
    )!;
    expect(errors).toEqual([]);
    expect(descriptorKey(strict!, req({ 'x-user': 'a' }))).toBe(entryKey('generic_key', 'g') + entryKey('user', 'a'));
    expect(descriptorKey(strict!, req({}))).toBeNull();
    expect(descriptorKey(lenient!, req({}))).toBe(entryKey('generic_key', 'g'));
  });

  it('produces header_value_match entries by expect_match', () => {
    const errors: FieldError[] = [];
    const [rl] = compileRateLimits([{ actions: [{ header_value_match: { descriptor_value: 'internal', expect_match: false, headers: [{ name: 'x-ext', present_match: true }] } }] }], 'r', errors)!;
    expect(descriptorKey(rl!, req({}))).toBe(entryKey('header_match', 'internal'));
    expect(descriptorKey(rl!, req({ 'x-ext': '1' }))).toBeNull();
  });
});

describe('local rate limit descriptors', () => {
  const tc = { stat_prefix: 'rl', filter_enabled: ON, filter_enforced: ON, token_bucket: bucket(100) };

  it('consumes the default bucket too unless always_consume_default_token_bucket is false', () => {
    const pr = rateLimits([{ actions: [{ request_headers: { header_name: 'x-user', descriptor_key: 'user' } }] }]);
    const both = new LocalRateLimitFilter(parse({ ...tc, token_bucket: bucket(2), descriptors: [{ entries: [{ key: 'user', value: 'a' }], token_bucket: bucket(100) }] }), new StatsStore().root, () => 0, () => 0);
    expect(both.onRequest(req({ 'x-user': 'a' }, pr))).toBeNull();
    expect(both.onRequest(req({ 'x-user': 'a' }, pr))).toBeNull();
    expect(both.onRequest(req({ 'x-user': 'a' }, pr))?.reply?.status).toBe(429);
    const own = new LocalRateLimitFilter(parse({ ...tc, token_bucket: bucket(2), always_consume_default_token_bucket: false, descriptors: [{ entries: [{ key: 'user', value: 'a' }], token_bucket: bucket(100) }] }), new StatsStore().root, () => 0, () => 0);
    for (let i = 0; i < 5; i++) expect(own.onRequest(req({ 'x-user': 'a' }, pr))).toBeNull();
  });

  it("checks the slowest-filling descriptor first, so its refusal spares the others' tokens", () => {
    const pr = rateLimits([{ actions: [{ generic_key: { descriptor_value: 'wide' } }] }, { actions: [{ generic_key: { descriptor_value: 'narrow' } }] }]);
    const cfg = parse({
      ...tc,
      always_consume_default_token_bucket: false,
      descriptors: [
        { entries: [{ key: 'generic_key', value: 'wide' }], token_bucket: { max_tokens: 3, tokens_per_fill: 10, fill_interval: '1s' } },
        { entries: [{ key: 'generic_key', value: 'narrow' }], token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: '60s' } },
      ],
    });
    const f = new LocalRateLimitFilter(cfg, new StatsStore().root, () => 0, () => 0);
    expect(f.onRequest(req({}, pr))).toBeNull();
    // narrow is empty now: the next two are refused without taking wide's remaining two tokens.
    expect(f.onRequest(req({}, pr))?.reply?.status).toBe(429);
    expect(f.onRequest(req({}, pr))?.reply?.status).toBe(429);
    const wideOnly = rateLimits([{ actions: [{ generic_key: { descriptor_value: 'wide' } }] }]);
    expect(f.onRequest(req({}, wideOnly))).toBeNull();
    expect(f.onRequest(req({}, wideOnly))).toBeNull();
    expect(f.onRequest(req({}, wideOnly))?.reply?.status).toBe(429);
  });

  it("uses the LocalRateLimit's own rate_limits instead of the route's", () => {
    const routeSays = rateLimits([{ actions: [{ generic_key: { descriptor_value: 'route' } }] }]);
    const cfg = parse({
      ...tc,
      rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'own' } }] }],
      descriptors: [
        { entries: [{ key: 'generic_key', value: 'own' }], token_bucket: bucket(1) },
        { entries: [{ key: 'generic_key', value: 'route' }], token_bucket: bucket(0) },
      ],
    });
    const f = new LocalRateLimitFilter(cfg, new StatsStore().root, () => 0, () => 0);
    expect(f.onRequest(req({}, routeSays))).toBeNull();
    expect(f.onRequest(req({}, routeSays))?.reply?.status).toBe(429);
    const errors: FieldError[] = [];
    localRateLimitFactory.parse({ ...tc, rate_limits: [{ actions: [{ destination_cluster: {} }] }] }, 'f', { errors, warnings: [] });
    expect(errors.map((e) => e.path)).toEqual(['f.rate_limits[0].actions[0].destination_cluster']);
  });

  it('rejects a duplicate descriptor, an empty value and descriptors without a default bucket', () => {
    const errors: FieldError[] = [];
    const d = { entries: [{ key: 'k', value: 'v' }], token_bucket: bucket(1) };
    localRateLimitFactory.parse({ descriptors: [d, d, { entries: [{ key: 'k', value: '' }], token_bucket: bucket(1) }] }, 'f', { errors, warnings: [] });
    expect(errors.map((e) => e.path)).toEqual(['f.descriptors[1].entries', 'f.descriptors[2].entries[0].value', 'f.token_bucket']);
  });
});
