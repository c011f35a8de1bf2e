import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { localRateLimitFactory, type LocalRateLimitConfig } from '../../../src/filters/http/local_ratelimit/config.js';
import { compileRateLimits, descriptorKey, entryKey, maskedAddress, NO_ROUTE, RATE_LIMITS_KEY } from '../../../src/filters/http/local_ratelimit/descriptors.js';
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

describe('masked_remote_address and query_parameter_value_match', () => {
  const from = (address: string, family: string, path = '/'): HttpFilterRequest => ({ ...req({}), path, downstream: { remote: { address, family, port: 1 } } as unknown as HttpFilterRequest['downstream'] });

  it('masks the address to the family prefix length and writes it as Envoy does', () => {
    expect(maskedAddress('10.1.2.3', 16, 128)).toBe('10.1.0.0/16');
    expect(maskedAddress('10.255.255.255', 9, 128)).toBe('10.128.0.0/9');
    expect(maskedAddress('10.1.2.3', 0, 128)).toBe('0.0.0.0/0');
    expect(maskedAddress('2001:db8:1:2:3:4:5:6', 32, 64)).toBe('2001:db8:1:2::/64');
    expect(maskedAddress('2001:db8:1:2:3:4:5:6', 32, 36)).toBe('2001:db8::/36');
    // A v4-mapped address is IPv6 (as Envoy sees it) and is written as inet_ntop writes it.
    expect(maskedAddress('::ffff:10.1.2.3', 8, 120)).toBe('::ffff:10.1.2.0/120');
    expect(maskedAddress('not-an-ip', 32, 128)).toBeNull();
  });

  it('gives each client network its own entry; the defaults keep the whole address', () => {
    const errors: FieldError[] = [];
    const [net24, whole] = compileRateLimits([{ actions: [{ masked_remote_address: { v4_prefix_mask_len: { value: 24 }, v6_prefix_mask_len: 64 } }] }, { actions: [{ masked_remote_address: {} }] }], 'r', errors)!;
    expect(errors).toEqual([]);
    expect(descriptorKey(net24!, from('192.168.7.9', 'IPv4'))).toBe(entryKey('masked_remote_address', '192.168.7.0/24'));
    expect(descriptorKey(net24!, from('2001:db8:a:b:c::1', 'IPv6'))).toBe(entryKey('masked_remote_address', '2001:db8:a:b::/64'));
    expect(descriptorKey(whole!, from('192.168.7.9', 'IPv4'))).toBe(entryKey('masked_remote_address', '192.168.7.9/32'));
    // A unix-socket client has no address: the descriptor is dropped.
    expect(descriptorKey(whole!, from('/tmp/s', 'unix'))).toBeNull();
  });

  it('matches query parameters as decoded values, all of them, by expect_match', () => {
    const errors: FieldError[] = [];
    const [on, off] = compileRateLimits(
      [
        { actions: [{ query_parameter_value_match: { descriptor_value: 'dbg', query_parameters: [{ name: 'debug', string_match: { exact: 'on now' } }, { name: 'trace' }] } }] },
        { actions: [{ query_parameter_value_match: { descriptor_key: 'plain', descriptor_value: 'p', expect_match: false, query_parameters: [{ name: 'debug', present_match: true }] } }] },
      ],
      'r',
      errors,
    )!;
    expect(errors).toEqual([]);
    expect(descriptorKey(on!, from('1.2.3.4', 'IPv4', '/a?trace&debug=on%20now'))).toBe(entryKey('query_match', 'dbg'));
    expect(descriptorKey(on!, from('1.2.3.4', 'IPv4', '/a?debug=on%20now'))).toBeNull();
    expect(descriptorKey(on!, from('1.2.3.4', 'IPv4', '/a'))).toBeNull();
    expect(descriptorKey(off!, from('1.2.3.4', 'IPv4', '/a?x=1'))).toBe(entryKey('plain', 'p'));
    expect(descriptorKey(off!, from('1.2.3.4', 'IPv4', '/a?debug'))).toBeNull();
  });

  it('refuses bad mask lengths and a match without parameters or value, by field path', () => {
    const errors: FieldError[] = [];
    compileRateLimits(
      [
        { actions: [{ masked_remote_address: { v4_prefix_mask_len: 33, v6_prefix_mask_len: { value: 129 } } }] },
        { actions: [{ query_parameter_value_match: { query_parameters: [] } }] },
        { actions: [{ query_parameter_value_match: { descriptor_value: 'v', query_parameters: [{ name: 'q', string_match: { safe_regex: { regex: '(' } } }] } }] },
      ],
      'r',
      errors,
    );
    const paths = errors.map((e) => e.path);
    expect(paths).toContain('r[0].actions[0].masked_remote_address.v4_prefix_mask_len');
    expect(paths).toContain('r[0].actions[0].masked_remote_address.v6_prefix_mask_len');
    expect(paths).toContain('r[1].actions[0].query_parameter_value_match.descriptor_value');
    expect(paths).toContain('r[1].actions[0].query_parameter_value_match.query_parameters');
    expect(paths.some((p) => p.startsWith('r[2].actions[0].query_parameter_value_match.query_parameters[0].string_match'))).toBe(true);
  });
});

describe('metadata and dynamic_metadata', () => {
  const NS = 'envoy.filters.http.ext_authz';
  const withMeta = (entries: Array<[string, unknown]>): HttpFilterRequest => ({ ...req({}), dynamicMetadata: new Map([[NS, new Map(entries)]]) as HttpFilterRequest['dynamicMetadata'] });
  const meta = (path: string[], extra: Obj = {}) => ({ descriptor_key: 'tenant', metadata_key: { key: NS, path: path.map((key) => ({ key })) }, ...extra });

  it("reads a string from the filters' dynamic metadata, nested struct keys included", () => {
    const errors: FieldError[] = [];
    const [flat, nested, old] = compileRateLimits([{ actions: [{ metadata: meta(['tenant']) }] }, { actions: [{ metadata: meta(['info', 'tier'], { source: 'DYNAMIC' }) }] }, { actions: [{ dynamic_metadata: meta(['tenant']) }] }], 'r', errors)!;
    expect(errors).toEqual([]);
    const r = withMeta([['tenant', 'acme'], ['info', { tier: 'gold' }]]);
    expect(descriptorKey(flat!, r)).toBe(entryKey('tenant', 'acme'));
    expect(descriptorKey(nested!, r)).toBe(entryKey('tenant', 'gold'));
    expect(descriptorKey(old!, r)).toBe(entryKey('tenant', 'acme'));
    // Absent, or not a string: the descriptor is dropped.
    expect(descriptorKey(flat!, req({}))).toBeNull();
    expect(descriptorKey(flat!, withMeta([['tenant', 7]]))).toBeNull();
    expect(descriptorKey(nested!, withMeta([['info', 'flat']]))).toBeNull();
  });

  it('falls back to default_value, or leaves the entry out with skip_if_absent (not on dynamic_metadata)', () => {
    const errors: FieldError[] = [];
    const [dflt, skip, oldSkip] = compileRateLimits(
      [
        { actions: [{ metadata: meta(['tenant'], { default_value: 'anon' }) }] },
        { actions: [{ generic_key: { descriptor_value: 'g' } }, { metadata: meta(['tenant'], { skip_if_absent: true }) }] },
        { actions: [{ generic_key: { descriptor_value: 'g' } }, { dynamic_metadata: meta(['tenant'], { skip_if_absent: true }) }] },
      ],
      'r',
      errors,
    )!;
    expect(descriptorKey(dflt!, req({}))).toBe(entryKey('tenant', 'anon'));
    expect(descriptorKey(dflt!, withMeta([['tenant', 'acme']]))).toBe(entryKey('tenant', 'acme'));
    expect(descriptorKey(skip!, req({}))).toBe(entryKey('generic_key', 'g'));
    expect(descriptorKey(oldSkip!, req({}))).toBeNull();
  });

  it("takes ROUTE_ENTRY metadata from the route's filter_metadata when the route is compiled", () => {
    const errors: FieldError[] = [];
    const target = { cluster: 'a', clusterHeader: null, forwards: true, weighted: false, metadata: { filter_metadata: { 'acme.io': { team: 'payments', deep: { k: 'v' } } } } };
    const key = (ns: string, path: string[], extra: Obj = {}) => ({ metadata: { descriptor_key: 'team', metadata_key: { key: ns, path: path.map((k) => ({ key: k })) }, source: 'ROUTE_ENTRY', ...extra } });
    const [team, deep, missing, dflt] = compileRateLimits([{ actions: [key('acme.io', ['team'])] }, { actions: [key('acme.io', ['deep', 'k'])] }, { actions: [key('other', ['team'])] }, { actions: [key('other', ['team'], { default_value: 'none' })] }], 'r', errors, target)!;
    expect(errors).toEqual([]);
    expect(descriptorKey(team!, req({}))).toBe(entryKey('team', 'payments'));
    expect(descriptorKey(deep!, req({}))).toBe(entryKey('team', 'v'));
    expect(descriptorKey(missing!, req({}))).toBeNull();
    expect(descriptorKey(dflt!, req({}))).toBe(entryKey('team', 'none'));
  });

  it('refuses a metadata action without its key, namespace or path, a bad source, and ROUTE_ENTRY without a route', () => {
    const errors: FieldError[] = [];
    compileRateLimits(
      [
        { actions: [{ metadata: { metadata_key: { path: [] } } }] },
        { actions: [{ metadata: { ...meta(['tenant']), source: 'SOMEWHERE' } }] },
        { actions: [{ dynamic_metadata: { descriptor_key: 'k', metadata_key: { key: NS, path: [{}] } } }] },
      ],
      'r',
      errors,
    );
    compileRateLimits([{ actions: [{ metadata: { ...meta(['tenant']), source: 'ROUTE_ENTRY' } }] }], 'own', errors, NO_ROUTE);
    const paths = errors.map((e) => e.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'r[0].actions[0].metadata.descriptor_key',
        'r[0].actions[0].metadata.metadata_key.key',
        'r[0].actions[0].metadata.metadata_key.path',
        'r[1].actions[0].metadata.source',
        'r[2].actions[0].dynamic_metadata.metadata_key.path[0].key',
        'own[0].actions[0].metadata.source',
      ]),
    );
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

  it('rejects a duplicate descriptor (a wildcard too), a value that is not a string, a bad max_dynamic_descriptors and descriptors without a default bucket', () => {
    const errors: FieldError[] = [];
    const d = { entries: [{ key: 'k', value: 'v' }], token_bucket: bucket(1) };
    const w = { entries: [{ key: 'k', value: '' }], token_bucket: bucket(1) };
    localRateLimitFactory.parse({ max_dynamic_descriptors: { value: 0 }, descriptors: [d, d, w, { entries: [{ key: 'k' }], token_bucket: bucket(2) }, { entries: [{ key: 'k', value: 7 }], token_bucket: bucket(1) }] }, 'f', { errors, warnings: [] });
    expect(errors.map((e) => e.path)).toEqual(['f.descriptors[1].entries', 'f.descriptors[3].entries', 'f.descriptors[4].entries[0].value', 'f.token_bucket', 'f.max_dynamic_descriptors']);
  });

  it('adds request_headers_to_add_when_not_enforced to a limited request it lets through, and only then', () => {
    const headers = [{ header: { key: 'X-RL-Exceeded', value: 'true' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }];
    const shadow = new LocalRateLimitFilter(parse({ ...tc, token_bucket: bucket(1), filter_enforced: { default_value: { numerator: 0 } }, request_headers_to_add_when_not_enforced: headers }), new StatsStore().root, () => 0, () => 0);
    const first = req({});
    expect(shadow.onRequest(first)).toBeNull();
    expect(first.upstreamHeaders).toBeUndefined();
    const second = req({});
    expect(shadow.onRequest(second)).toBeNull();
    expect(second.upstreamHeaders?.add).toEqual([{ name: 'x-rl-exceeded', value: 'true', action: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmpty: false }]);
    // Enforced: the request is refused, nothing to add.
    const strict = new LocalRateLimitFilter(parse({ ...tc, token_bucket: bucket(0), request_headers_to_add_when_not_enforced: headers }), new StatsStore().root, () => 0, () => 0);
    const refused = req({});
    expect(strict.onRequest(refused)?.reply?.status).toBe(429);
    expect(refused.upstreamHeaders).toBeUndefined();
    const errors: FieldError[] = [];
    localRateLimitFactory.parse({ ...tc, request_headers_to_add_when_not_enforced: [{ header: { key: ':path', value: '/x' } }, { header: { key: 'x-a', value: 'a\nb' } }] }, 'f', { errors, warnings: [] });
    expect(errors.map((e) => e.path)).toEqual(['f.request_headers_to_add_when_not_enforced[0].header.key', 'f.request_headers_to_add_when_not_enforced[1].header.value']);
  });

  it('reports the deciding bucket in X-RateLimit headers with enable_x_ratelimit_headers DRAFT_VERSION_03', () => {
    let now = 0;
    const x = (r: HttpFilterRequest) => Object.fromEntries((r.responseHeaders?.add ?? []).map((h) => [h.name, h.value]));
    const f = new LocalRateLimitFilter(parse({ ...tc, token_bucket: { max_tokens: 2, tokens_per_fill: 2, fill_interval: '10s' }, enable_x_ratelimit_headers: 'DRAFT_VERSION_03' }), new StatsStore().root, () => now, () => 0);
    const a = req({});
    expect(f.onRequest(a)).toBeNull();
    expect(x(a)).toEqual({ 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '1', 'x-ratelimit-reset': '10' });
    now = 2500;
    const b = req({});
    expect(f.onRequest(b)).toBeNull();
    expect(x(b)).toEqual({ 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '8' });
    const refused = f.onRequest(req({}));
    expect(refused?.reply?.status).toBe(429);
    expect(Object.fromEntries(refused!.reply!.headers!)).toMatchObject({ 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '8' });
    // A matched descriptor's bucket is the one reported (slowest-filling first).
    const pr = rateLimits([{ actions: [{ generic_key: { descriptor_value: 'g' } }] }]);
    const d = new LocalRateLimitFilter(parse({ ...tc, enable_x_ratelimit_headers: 'DRAFT_VERSION_03', descriptors: [{ entries: [{ key: 'generic_key', value: 'g' }], token_bucket: { max_tokens: 5, tokens_per_fill: 1, fill_interval: '60s' } }] }), new StatsStore().root, () => 0, () => 0);
    const c = req({}, pr);
    expect(d.onRequest(c)).toBeNull();
    expect(x(c)).toEqual({ 'x-ratelimit-limit': '5', 'x-ratelimit-remaining': '4', 'x-ratelimit-reset': '60' });
    // Off by default; a version Strait does not know is refused.
    const off = new LocalRateLimitFilter(parse(tc), new StatsStore().root, () => 0, () => 0);
    const o = req({});
    off.onRequest(o);
    expect(o.responseHeaders).toBeUndefined();
    const errors: FieldError[] = [];
    localRateLimitFactory.parse({ ...tc, enable_x_ratelimit_headers: 'DRAFT_VERSION_99' }, 'f', { errors, warnings: [] });
    expect(errors.map((e) => e.path)).toEqual(['f.enable_x_ratelimit_headers']);
  });

  describe('wildcard descriptors (an entry without a value)', () => {
    const byUser = rateLimits([{ actions: [{ request_headers: { header_name: 'x-user', descriptor_key: 'user' } }] }]);
    const filter = (extra: Obj) => new LocalRateLimitFilter(parse({ ...tc, always_consume_default_token_bucket: false, ...extra }), new StatsStore().root, () => 0, () => 0);
    const status = (f: LocalRateLimitFilter, user: string, pr = byUser) => f.onRequest(req({ 'x-user': user }, pr))?.reply?.status ?? 200;

    it('gives each value its own bucket, exact descriptors taking precedence', () => {
      const f = filter({ descriptors: [{ entries: [{ key: 'user' }], token_bucket: bucket(1) }, { entries: [{ key: 'user', value: 'vip' }], token_bucket: bucket(3) }] });
      expect([status(f, 'a'), status(f, 'a'), status(f, 'b'), status(f, 'b')]).toEqual([200, 429, 200, 429]);
      expect([status(f, 'vip'), status(f, 'vip'), status(f, 'vip'), status(f, 'vip')]).toEqual([200, 200, 200, 429]);
    });

    it('matches only descriptors with its keys in order and its fixed values', () => {
      const pr = rateLimits([{ actions: [{ generic_key: { descriptor_value: 'g' } }, { request_headers: { header_name: 'x-user', descriptor_key: 'user' } }] }]);
      const other = rateLimits([{ actions: [{ generic_key: { descriptor_value: 'h' } }, { request_headers: { header_name: 'x-user', descriptor_key: 'user' } }] }]);
      const f = filter({ token_bucket: bucket(100), descriptors: [{ entries: [{ key: 'generic_key', value: 'g' }, { key: 'user', value: '' }], token_bucket: bucket(1) }] });
      expect([status(f, 'a', pr), status(f, 'a', pr)]).toEqual([200, 429]);
      // Another fixed value, or the entries alone, fall to the default bucket.
      for (let i = 0; i < 3; i++) expect(status(f, 'a', other)).toBe(200);
      for (let i = 0; i < 3; i++) expect(status(f, 'a')).toBe(200);
    });

    it('keeps max_dynamic_descriptors buckets, dropping the least recently used', () => {
      const f = filter({ max_dynamic_descriptors: 2, descriptors: [{ entries: [{ key: 'user' }], token_bucket: bucket(1) }] });
      expect([status(f, 'a'), status(f, 'b')]).toEqual([200, 200]);
      // a is used again (refused: its bucket is empty), so b is now the oldest and goes for c.
      expect(status(f, 'a')).toBe(429);
      expect(status(f, 'c')).toBe(200);
      expect(status(f, 'a')).toBe(429);
      // b's bucket was dropped: b starts again with a full one, and c (now the oldest) goes.
      expect(status(f, 'b')).toBe(200);
      expect(status(f, 'a')).toBe(429);
      expect(status(f, 'c')).toBe(200);
    });

    it('holds 20 buckets by default', () => {
      const f = filter({ descriptors: [{ entries: [{ key: 'user' }], token_bucket: bucket(1) }] });
      for (let i = 0; i < 20; i++) expect(status(f, `u${i}`)).toBe(200);
      expect(status(f, 'u0')).toBe(429);
      expect(status(f, 'u20')).toBe(200); // u1 goes
      expect(status(f, 'u1')).toBe(200);
    });
  });
});
