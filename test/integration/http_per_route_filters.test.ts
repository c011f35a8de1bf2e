import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { httpUpstream, type Echo, type TestUpstream } from '../helpers/http.js';
import { ENGINES, runCli, startStraitFile, tmpDir, type StraitProcess } from '../helpers/strait.js';

type Obj = Record<string, any>;

const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const RBAC = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const RBAC_PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute';
const FILTER_CONFIG = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };

const abort = (status: number) => ({ '@type': FAULT, abort: { http_status: status, percentage: { numerator: 100 } } });
const bucketOfOne = (statPrefix: string) => ({
  '@type': LRL,
  stat_prefix: statPrefix,
  token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: '3600s' },
  filter_enabled: { default_value: { numerator: 100 } },
  filter_enforced: { default_value: { numerator: 100 } },
});
const route = (prefix: string, perFilter?: Obj): Obj => ({ match: { prefix }, route: { cluster: 'a' }, ...(perFilter ? { typed_per_filter_config: perFilter } : {}) });

function hcm(name: string, httpFilters: Obj[], virtualHosts: Obj[], rcExtra: Obj = {}): Obj {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: name,
              http_filters: [...httpFilters, ROUTER],
              route_config: { name: `${name}_routes`, virtual_hosts: virtualHosts, ...rcExtra },
            },
          },
        ],
      },
    ],
  };
}

/**
 * Istio's shape: an empty HTTPFault and a bucket-less LocalRateLimit in the chain, the real
 * settings on routes and virtual hosts.
 */
function trafficListener(): Obj {
  return hcm(
    'traffic',
    [
      { name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT } },
      { name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': LRL, stat_prefix: 'http_local_rate_limiter' } },
    ],
    [
      {
        name: 'vh',
        domains: ['vh.test'],
        typed_per_filter_config: { 'envoy.filters.http.fault': abort(418) },
        routes: [route('/own', { 'envoy.filters.http.fault': { '@type': FAULT } }), route('/')],
      },
      {
        name: 'all',
        domains: ['*'],
        routes: [
          route('/abort', { 'envoy.filters.http.fault': abort(503) }),
          route('/limited', { 'envoy.filters.http.local_ratelimit': bucketOfOne('limited_route') }),
          // An optional entry for a filter Strait does not implement is skipped, as in Envoy.
          route('/optional', { 'envoy.filters.http.jwt_authn': { '@type': FILTER_CONFIG, is_optional: true, config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig', disabled: true } } }),
          route('/'),
        ],
      },
    ],
    // The route configuration's level, for routes whose virtual host and route set nothing.
    { typed_per_filter_config: { 'envoy.filters.http.fault': { ...abort(451), headers: [{ name: 'x-rc-fault', present_match: true }] } } },
  );
}

/** RBAC that allows nothing, except where a route turns it off or replaces it. */
function guardedListener(): Obj {
  const allowAll = { rules: { action: 'ALLOW', policies: { any: { permissions: [{ any: true }], principals: [{ any: true }] } } } };
  return hcm(
    'guarded',
    [{ name: 'envoy.filters.http.rbac', typed_config: { '@type': RBAC, rules: { action: 'ALLOW', policies: {} } } }],
    [
      {
        name: 'all',
        domains: ['*'],
        routes: [
          route('/healthz', { 'envoy.filters.http.rbac': { '@type': RBAC_PER_ROUTE } }),
          route('/open', { 'envoy.filters.http.rbac': { '@type': RBAC_PER_ROUTE, rbac: allowAll } }),
          route('/off', { 'envoy.filters.http.rbac': { '@type': FILTER_CONFIG, disabled: true } }),
          route('/'),
        ],
      },
    ],
  );
}

/**
 * Envoy Gateway's shape: filters marked `disabled: true` in the chain, off everywhere except on
 * the routes that name them in typed_per_filter_config (an empty FilterConfig, or their own
 * per-route config), and still off where a route's FilterConfig disables them.
 */
function optInListener(): Obj {
  const denyAll = { rules: { action: 'ALLOW', policies: {} } };
  return hcm(
    'optin',
    [
      { name: 'envoy.filters.http.fault', disabled: true, typed_config: abort(503) },
      { name: 'envoy.filters.http.rbac', disabled: true, typed_config: { '@type': RBAC, ...denyAll } },
    ],
    [
      {
        name: 'all',
        domains: ['*'],
        routes: [
          route('/fault-on', { 'envoy.filters.http.fault': { '@type': FILTER_CONFIG, config: {} } }),
          route('/fault-own', { 'envoy.filters.http.fault': abort(418) }),
          route('/rbac-on', { 'envoy.filters.http.rbac': { '@type': FILTER_CONFIG, config: {} } }),
          route('/rbac-off', { 'envoy.filters.http.rbac': { '@type': FILTER_CONFIG, disabled: true } }),
          route('/'),
        ],
      },
    ],
  );
}

function config(listeners: Obj[], clusters: Obj[]): string {
  return JSON.stringify({ admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } }, static_resources: { listeners, clusters } });
}

function cluster(name: string, type: string, address: string, port: number, extra: Obj = {}): Obj {
  return {
    name,
    type,
    connect_timeout: '1s',
    ...extra,
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: port } } } }] }] },
  };
}

async function get(url: string, host?: string): Promise<{ status: number; body: string }> {
  const r = await request(url, host ? { headers: { host } } : {});
  return { status: r.statusCode, body: await r.body.text() };
}

describe.each(ENGINES.slice(0, 1))('per-route HTTP filter config on the %s engine', (engine) => {
  let a: TestUpstream;
  let strait: StraitProcess;
  let traffic = '';
  let guarded = '';
  let optin = '';

  beforeAll(async () => {
    a = await httpUpstream('a');
    strait = await startStraitFile('strait.json', config([trafficListener(), guardedListener(), optInListener()], [cluster('a', 'STATIC', '127.0.0.1', a.port)]), { engine });
    traffic = `http://127.0.0.1:${await strait.port('traffic')}`;
    guarded = `http://127.0.0.1:${await strait.port('guarded')}`;
    optin = `http://127.0.0.1:${await strait.port('optin')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
  });

  it('aborts the route whose HTTPFault says so while another route on the same HCM passes', async () => {
    const hit = await get(`${traffic}/abort/x`);
    expect(hit.status).toBe(503);
    expect(hit.body).toBe('fault filter abort');
    const pass = await get(`${traffic}/other`);
    expect(pass.status).toBe(200);
    expect((JSON.parse(pass.body) as Echo).tag).toBe('a');
    expect(await strait.stat('http.traffic.fault.aborts_injected')).toBe(1);
  });

  it("applies the virtual host's config to a route without one, and the route's own over it", async () => {
    expect((await get(`${traffic}/anything`, 'vh.test')).status).toBe(418);
    // The route configuration's HTTPFault reaches routes of a virtual host that sets none...
    const r = await request(`${traffic}/other`, { headers: { 'x-rc-fault': '1' } });
    expect(r.statusCode).toBe(451);
    await r.body.dump();
    // ...but not a virtual host that sets its own.
    const v = await request(`${traffic}/anything`, { headers: { host: 'vh.test', 'x-rc-fault': '1' } });
    expect(v.statusCode).toBe(418);
    await v.body.dump();
    // The route's empty HTTPFault replaces the virtual host's abort: nothing injected.
    expect((await get(`${traffic}/own`, 'vh.test')).status).toBe(200);
  });

  it("limits only the route with a LocalRateLimit, with that route's own bucket", async () => {
    expect((await get(`${traffic}/limited`)).status).toBe(200);
    const second = await get(`${traffic}/limited`);
    expect(second.status).toBe(429);
    expect(second.body).toBe('local_rate_limited');
    for (let i = 0; i < 3; i++) expect((await get(`${traffic}/free`)).status).toBe(200);
    expect(await strait.stat('limited_route.http_local_rate_limit.rate_limited')).toBe(1);
    expect(await strait.stat('limited_route.http_local_rate_limit.ok')).toBe(1);
  });

  it('skips an optional per-route entry for a filter Strait does not implement', async () => {
    expect((await get(`${traffic}/optional`)).status).toBe(200);
  });

  it('lets RBACPerRoute turn RBAC off on a health route while other routes are denied', async () => {
    const denied = await get(`${guarded}/api`);
    expect(denied.status).toBe(403);
    expect(denied.body).toBe('RBAC: access denied');
    expect((await get(`${guarded}/healthz`)).status).toBe(200);
    // A per-route policy replaces the filter's; FilterConfig disabled turns the filter off.
    expect((await get(`${guarded}/open`)).status).toBe(200);
    expect((await get(`${guarded}/off`)).status).toBe(200);
  });

  it('runs a filter the chain disables only on the routes that turn it on', async () => {
    expect((await get(`${optin}/other`)).status).toBe(200);
    expect((await get(`${optin}/rbac-off`)).status).toBe(200);
    expect((await get(`${optin}/fault-on`)).status).toBe(503);
    // The route's own HTTPFault both turns the filter on and replaces its config.
    expect((await get(`${optin}/fault-own`)).status).toBe(418);
    const denied = await get(`${optin}/rbac-on`);
    expect([denied.status, denied.body]).toEqual([403, 'RBAC: access denied']);
  });
});

describe('per-route HTTP filter config validation', () => {
  it('rejects bad per-route configs with their field paths', async () => {
    const dir = tmpDir('strait-per-route-');
    const l = hcm(
      'l',
      [{ name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT } }],
      [
        {
          name: 'all',
          domains: ['*'],
          typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': { '@type': LRL, stat_prefix: 'x' } },
          routes: [
            route('/a', { 'envoy.filters.http.fault': { '@type': FAULT, abort: { http_status: 700, percentage: { numerator: 100 } } } }),
            route('/b', { 'envoy.filters.http.jwt_authn': { '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig', disabled: true } }),
            route('/c', { 'envoy.filters.http.rbac': { '@type': RBAC_PER_ROUTE, rbac: { rules: { action: 'MAYBE' } } } }),
          ],
        },
      ],
    );
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, config([l], [cluster('a', 'STATIC', '127.0.0.1', 9)]));
    const r = await runCli(['--config', file, '--mode', 'validate']);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.code).toBe(1);
    const rc = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]';
    expect(r.stderr).toContain(`${rc}.routes[0].typed_per_filter_config["envoy.filters.http.fault"].abort.http_status`);
    expect(r.stderr).toContain(`${rc}.routes[1].typed_per_filter_config["envoy.filters.http.jwt_authn"]["@type"]`);
    expect(r.stderr).toContain(`${rc}.routes[2].typed_per_filter_config["envoy.filters.http.rbac"].rbac.rules.action`);
    expect(r.stderr).toContain(`${rc}.typed_per_filter_config["envoy.filters.http.local_ratelimit"].token_bucket`);
  });
});

describe.each(ENGINES.slice(0, 1))('LOGICAL_DNS cluster on the %s engine', (engine) => {
  let a: TestUpstream;
  let strait: StraitProcess;

  beforeAll(async () => {
    a = await httpUpstream('dns');
    const l = hcm('front', [], [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'logical' } }] }]);
    // The upstream listens on 127.0.0.1: V4_ONLY keeps `localhost` from resolving to ::1 first.
    const c = cluster('logical', 'LOGICAL_DNS', 'localhost', a.port, { dns_lookup_family: 'V4_ONLY', dns_refresh_rate: '1s' });
    strait = await startStraitFile('strait.json', config([l], [c]), { engine });
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
  });

  it('resolves its one name to a single host and serves traffic through it', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await get(`http://127.0.0.1:${await strait.port('front')}/x`);
      expect(r.status).toBe(200);
      expect((JSON.parse(r.body) as Echo).tag).toBe('dns');
    }
    expect(await strait.stat('cluster.logical.membership_total')).toBe(1);
  });
});
