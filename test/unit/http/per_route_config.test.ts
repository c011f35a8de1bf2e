import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { faultFactory } from '../../../src/filters/http/fault/config.js';
import { localRateLimitFactory } from '../../../src/filters/http/local_ratelimit/config.js';
import { LocalRateLimiter } from '../../../src/filters/http/local_ratelimit/filter.js';
import { runFilterChain } from '../../../src/filters/http/chain.js';
import { PER_ROUTE_DISABLED, type HttpFilterRequest } from '../../../src/filters/http/types.js';
import { StatsStore } from '../../../src/observability/stats.js';
import { HttpRouteTable, type HttpRoute } from '../../../src/router/http_route_table.js';

type Obj = Record<string, any>;

const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const FILTER_CONFIG = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';
const abort = (s: number) => ({ '@type': FAULT, abort: { http_status: s, percentage: { numerator: 100 } } });
const bucket = { '@type': LRL, stat_prefix: 'r', token_bucket: { max_tokens: 1, fill_interval: '3600s' }, filter_enabled: { default_value: { numerator: 100 } }, filter_enforced: { default_value: { numerator: 100 } } };

function table(rc: Obj): { errors: FieldError[]; route: (path: string) => HttpRoute | null } {
  const errors: FieldError[] = [];
  const t = HttpRouteTable.compile(rc, 'rc', new Set(['a']), errors);
  return { errors, route: (path) => t.route({ host: 'h', path, method: 'GET', header: () => undefined }) };
}

const req = (route: HttpRoute | null): HttpFilterRequest => ({ method: 'GET', path: '/', header: () => undefined, grpc: false, perRoute: route?.perFilter ?? null });

describe('typed_per_filter_config compiled with the route table', () => {
  const t = table({
    typed_per_filter_config: { 'envoy.filters.http.fault': abort(500) },
    virtual_hosts: [
      {
        name: 'v',
        domains: ['*'],
        typed_per_filter_config: { 'envoy.filters.http.fault': abort(501) },
        routes: [
          { match: { prefix: '/route' }, route: { cluster: 'a' }, typed_per_filter_config: { 'envoy.filters.http.fault': abort(502), 'envoy.filters.http.local_ratelimit': bucket } },
          { match: { prefix: '/off' }, route: { cluster: 'a' }, typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FILTER_CONFIG, disabled: true } } },
          { match: { prefix: '/' }, route: { cluster: 'a' } },
        ],
      },
    ],
  });

  it('keeps the most specific level per filter: route, then virtual host, then route configuration', () => {
    expect(t.errors).toEqual([]);
    const f = faultFactory.create(faultFactory.parse({}, 'f', { errors: [], warnings: [] })!, new StatsStore().root, new StatsStore().root, 'envoy.filters.http.fault');
    expect(f.onRequest(req(t.route('/route')))?.reply?.status).toBe(502);
    expect(f.onRequest(req(t.route('/x')))?.reply?.status).toBe(501);
    // Without a route the filter's own (empty) config applies: nothing injected.
    expect(f.onRequest(req(null))).toBeNull();
  });

  it('gives a route its own token bucket, compiled once and shared by every request of the route', () => {
    const lim = t.route('/route')!.perFilter!.get('envoy.filters.http.local_ratelimit');
    expect(lim).toBeInstanceOf(LocalRateLimiter);
    expect(t.route('/route/again')!.perFilter!.get('envoy.filters.http.local_ratelimit')).toBe(lim);
    const root = new StatsStore().root;
    const f = localRateLimitFactory.create(localRateLimitFactory.parse({ stat_prefix: 'filter' }, 'f', { errors: [], warnings: [] })!, root, root, 'envoy.filters.http.local_ratelimit');
    expect(f.onRequest(req(t.route('/route')))).toBeNull();
    expect(f.onRequest(req(t.route('/route')))?.reply?.status).toBe(429);
    // The filter itself has no bucket: other routes are not limited.
    for (let i = 0; i < 3; i++) expect(f.onRequest(req(t.route('/x')))).toBeNull();
  });

  it('lets FilterConfig disabled skip the filter in the chain', () => {
    const route = t.route('/off')!;
    expect(route.perFilter!.get('envoy.filters.http.fault')).toBe(PER_ROUTE_DISABLED);
    const f = faultFactory.create(faultFactory.parse(abort(503), 'f', { errors: [], warnings: [] })!, new StatsStore().root, new StatsStore().root, 'envoy.filters.http.fault');
    expect(runFilterChain([f], req(route), 0, null, ['envoy.filters.http.fault'])).toBeNull();
    expect(runFilterChain([f], req(t.route('/x')), 0, null, ['envoy.filters.http.fault'])?.reply?.status).toBe(501);
  });

  it("skips a control plane's private per-route config (Istio's connect_authority TypedStruct) with a warning", () => {
    const errors: FieldError[] = [];
    const warnings: FieldError[] = [];
    const ts = { '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct', type_url: 'type.googleapis.com/io.istio.http.connect_authority.Config', value: { enabled: true } };
    const t = HttpRouteTable.compile({ virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a' }, typed_per_filter_config: { connect_authority: ts } }] }] }, 'rc', new Set(['a']), errors, warnings);
    expect(errors).toEqual([]);
    expect(warnings).toEqual([{ path: 'rc.virtual_hosts[0].routes[0].typed_per_filter_config["connect_authority"]', message: 'per-route config of type.googleapis.com/io.istio.http.connect_authority.Config skipped: a private or unknown extension type' }]);
    expect(t.route({ host: 'h', path: '/', method: 'GET', header: () => undefined })!.perFilter).toBeNull();
  });

  it('refuses a per-route LocalRateLimit without a bucket and a FilterConfig without config, with their paths', () => {
    const bad = table({
      virtual_hosts: [
        {
          name: 'v',
          domains: ['*'],
          routes: [
            { match: { prefix: '/' }, route: { cluster: 'a' }, typed_per_filter_config: { rl: { '@type': LRL, stat_prefix: 'x' }, w: { '@type': FILTER_CONFIG } } },
          ],
        },
      ],
    });
    expect(bad.errors.map((e) => e.path)).toEqual(['rc.virtual_hosts[0].routes[0].typed_per_filter_config["rl"].token_bucket', 'rc.virtual_hosts[0].routes[0].typed_per_filter_config["w"].config']);
  });
});
