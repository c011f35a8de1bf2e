import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, request } from 'undici';
import { httpUpstream, type TestUpstream } from '../helpers/http.js';
import { ENGINES, runCli, startStraitFile, tmpDir, type StraitProcess } from '../helpers/strait.js';

type Obj = Record<string, any>;

const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const ON = { default_value: { numerator: 100 } };
/** An hour-long fill interval: no refill happens during a test, whatever the machine's speed. */
const bucket = (max: number) => ({ max_tokens: max, tokens_per_fill: 1, fill_interval: '3600s' });
const descriptor = (entries: Record<string, string>, max: number) => ({ entries: Object.entries(entries).map(([key, value]) => ({ key, value })), token_bucket: bucket(max) });
const perRoute = (statPrefix: string, extra: Obj) => ({ 'envoy.filters.http.local_ratelimit': { '@type': LRL, stat_prefix: statPrefix, filter_enabled: ON, filter_enforced: ON, ...extra } });
const byUser = [{ actions: [{ request_headers: { header_name: 'x-user', descriptor_key: 'user' } }] }];

function route(prefix: string, rateLimits: Obj[] | null, perFilter?: Obj): Obj {
  return { match: { prefix }, route: { cluster: 'a', ...(rateLimits ? { rate_limits: rateLimits } : {}) }, ...(perFilter ? { typed_per_filter_config: perFilter } : {}) };
}

function hcm(name: string, filter: Obj, virtualHosts: Obj[]): Obj {
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
              http_filters: [{ name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': LRL, ...filter } }, ROUTER],
              route_config: { name: `${name}_routes`, virtual_hosts: virtualHosts },
            },
          },
        ],
      },
    ],
  };
}

/** The filter's own (large) default bucket, with a bucket of one for alice; routes add theirs. */
function listener(): Obj {
  return hcm('desc', { stat_prefix: 'filter_rl', token_bucket: bucket(1000), filter_enabled: ON, filter_enforced: ON, descriptors: [descriptor({ user: 'alice' }, 1)] }, [
    {
      name: 'vhrl',
      domains: ['vhrl.test'],
      // The route sets no rate_limits, so the virtual host's apply (vh_rate_limits OVERRIDE).
      rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'from_vh' } }] }],
      routes: [route('/', null, perRoute('vh_rl', { token_bucket: bucket(1000), descriptors: [descriptor({ generic_key: 'from_vh' }, 1)] }))],
    },
    {
      name: 'all',
      domains: ['*'],
      routes: [
        route('/users', byUser),
        route('/generic', [{ actions: [{ generic_key: { descriptor_value: 'gold' } }] }], perRoute('generic_rl', { token_bucket: bucket(1000), descriptors: [descriptor({ generic_key: 'gold' }, 1)] })),
        route(
          '/beta',
          [{ actions: [{ header_value_match: { descriptor_value: 'beta', headers: [{ name: 'x-beta', present_match: true }] } }] }],
          perRoute('beta_rl', { token_bucket: bucket(1000), descriptors: [descriptor({ header_match: 'beta' }, 1)] }),
        ),
        route(
          '/fallback',
          byUser,
          // A default bucket of two, not touched by carol's requests: they have their own.
          perRoute('fallback_rl', { token_bucket: bucket(2), always_consume_default_token_bucket: false, descriptors: [descriptor({ user: 'carol' }, 100)] }),
        ),
        route('/dest', [{ actions: [{ destination_cluster: {} }, { remote_address: {} }] }], perRoute('dest_rl', { token_bucket: bucket(1000), descriptors: [descriptor({ destination_cluster: 'a', remote_address: '127.0.0.1' }, 1)] })),
        // The config is stage 1: silver (stage 0) is never looked at, gold (stage 1) is.
        route(
          '/staged',
          [{ actions: [{ generic_key: { descriptor_value: 'silver' } }] }, { stage: 1, actions: [{ generic_key: { descriptor_value: 'gold' } }] }],
          perRoute('staged_rl', { stage: 1, token_bucket: bucket(1000), descriptors: [descriptor({ generic_key: 'silver' }, 1), descriptor({ generic_key: 'gold' }, 2)] }),
        ),
        route('/perconn', null, perRoute('perconn_rl', { token_bucket: bucket(1), local_rate_limit_per_downstream_connection: true })),
        // The route's own metadata names the team whose bucket (of one) it draws from.
        {
          ...route('/team', [{ actions: [{ metadata: { descriptor_key: 'team', metadata_key: { key: 'acme.io', path: [{ key: 'team' }] }, source: 'ROUTE_ENTRY' } }] }], perRoute('team_rl', { token_bucket: bucket(1000), descriptors: [descriptor({ team: 'payments' }, 1)] })),
          metadata: { filter_metadata: { 'acme.io': { team: 'payments' } } },
        },
        route('/xrl', null, perRoute('xrl_rl', { token_bucket: bucket(2), enable_x_ratelimit_headers: 'DRAFT_VERSION_03' })),
        // Limited requests are let through (filter_enforced 0 %), marked for the upstream.
        route('/shadow', null, perRoute('shadow_rl', { token_bucket: bucket(1), filter_enforced: { default_value: { numerator: 0 } }, request_headers_to_add_when_not_enforced: [{ header: { key: 'x-rl-exceeded', value: 'yes' } }] })),
        // A wildcard descriptor: every client address gets a bucket of one of its own.
        route('/perip', [{ actions: [{ masked_remote_address: {} }] }], perRoute('perip_rl', { token_bucket: bucket(1000), descriptors: [{ entries: [{ key: 'masked_remote_address' }], token_bucket: bucket(1) }] })),
        // The client's network (127.0.0.0/8) has a bucket of one.
        route('/masked', [{ actions: [{ masked_remote_address: { v4_prefix_mask_len: 8 } }] }], perRoute('masked_rl', { token_bucket: bucket(1000), descriptors: [descriptor({ masked_remote_address: '127.0.0.0/8' }, 1)] })),
        route(
          '/query',
          [{ actions: [{ query_parameter_value_match: { descriptor_value: 'debug', query_parameters: [{ name: 'debug', string_match: { exact: 'on' } }] } }] }],
          perRoute('query_rl', { token_bucket: bucket(1000), descriptors: [descriptor({ query_match: 'debug' }, 1)] }),
        ),
        route('/', null),
      ],
    },
  ]);
}

function config(listeners: Obj[], clusters: Obj[]): string {
  return JSON.stringify({ admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } }, static_resources: { listeners, clusters } });
}

function cluster(name: string, port: number): Obj {
  return { name, type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] } };
}

async function status(url: string, headers: Record<string, string> = {}): Promise<number> {
  const r = await request(url, { headers });
  await r.body.dump();
  return r.statusCode;
}

describe.each(ENGINES)('local rate limit descriptors on the %s engine', (engine) => {
  let a: TestUpstream;
  let strait: StraitProcess;
  let base = '';

  beforeAll(async () => {
    a = await httpUpstream('a');
    strait = await startStraitFile('strait.json', config([listener()], [cluster('a', a.port)]), { engine });
    base = `http://127.0.0.1:${await strait.port('desc')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
  });

  it("limits alice by her descriptor's bucket while bob is served from the default bucket", async () => {
    expect(await status(`${base}/users`, { 'x-user': 'alice' })).toBe(200);
    expect(await status(`${base}/users`, { 'x-user': 'alice' })).toBe(429);
    for (let i = 0; i < 4; i++) expect(await status(`${base}/users`, { 'x-user': 'bob' })).toBe(200);
    // No x-user header: the descriptor is dropped and the default bucket decides.
    for (let i = 0; i < 3; i++) expect(await status(`${base}/users`)).toBe(200);
    expect(await strait.stat('filter_rl.http_local_rate_limit.rate_limited')).toBe(1);
  });

  /** The route's descriptor bucket holds one token: one request through, the next refused and counted. */
  async function oneThenLimited(route: string, statPrefix: string): Promise<void> {
    expect(await status(`${base}${route}`)).toBe(200);
    expect(await status(`${base}${route}`)).toBe(429);
    expect(await strait.stat(`${statPrefix}.http_local_rate_limit.rate_limited`)).toBe(1);
  }

  it('matches a generic_key descriptor from the route', async () => {
    await oneThenLimited('/generic', 'generic_rl');
  });

  it('matches a header_value_match descriptor only when the headers match', async () => {
    for (let i = 0; i < 3; i++) expect(await status(`${base}/beta`)).toBe(200);
    expect(await status(`${base}/beta`, { 'x-beta': '1' })).toBe(200);
    expect(await status(`${base}/beta`, { 'x-beta': '1' })).toBe(429);
  });

  it('falls back to the default bucket when the header an action needs is absent', async () => {
    // carol has her own bucket and, with always_consume_default_token_bucket false, spares the default one.
    for (let i = 0; i < 4; i++) expect(await status(`${base}/fallback`, { 'x-user': 'carol' })).toBe(200);
    expect(await status(`${base}/fallback`)).toBe(200);
    expect(await status(`${base}/fallback`)).toBe(200);
    expect(await status(`${base}/fallback`)).toBe(429);
    expect(await strait.stat('fallback_rl.http_local_rate_limit.ok')).toBe(6);
  });

  it('builds multi-entry descriptors from destination_cluster and remote_address', async () => {
    expect(await status(`${base}/dest`)).toBe(200);
    expect(await status(`${base}/dest`)).toBe(429);
  });

  it("uses the virtual host's rate_limits for a route without its own", async () => {
    expect(await status(`${base}/x`, { host: 'vhrl.test' })).toBe(200);
    expect(await status(`${base}/x`, { host: 'vhrl.test' })).toBe(429);
  });

  it('gives each downstream connection its own buckets with local_rate_limit_per_downstream_connection', async () => {
    const one = new Client(base);
    const two = new Client(base);
    try {
      const get = async (c: Client) => {
        const r = await c.request({ path: '/perconn', method: 'GET' });
        await r.body.dump();
        return r.statusCode;
      };
      expect(await get(one)).toBe(200);
      expect(await get(one)).toBe(429);
      expect(await get(two)).toBe(200);
    } finally {
      await one.close();
      await two.close();
    }
  });

  it("limits by the route's metadata with a ROUTE_ENTRY metadata action", async () => {
    await oneThenLimited('/team', 'team_rl');
  });

  it('sends X-RateLimit headers on the answers, the 429 included, with enable_x_ratelimit_headers', async () => {
    const got: Array<[number, unknown, unknown, unknown]> = [];
    for (let i = 0; i < 3; i++) {
      const r = await request(`${base}/xrl`);
      await r.body.dump();
      got.push([r.statusCode, r.headers['x-ratelimit-limit'], r.headers['x-ratelimit-remaining'], r.headers['x-ratelimit-reset']]);
    }
    expect(got.map(([s, l, rem]) => [s, l, rem])).toEqual([
      [200, '2', '1'],
      [200, '2', '0'],
      [429, '2', '0'],
    ]);
    // An hour-long fill interval: the reset is close to 3600 s away.
    for (const [, , , reset] of got) expect(Number(reset)).toBeGreaterThan(3500);
  });

  it('marks a limited request it lets through with request_headers_to_add_when_not_enforced', async () => {
    const seen = async () => {
      const r = await request(`${base}/shadow`);
      expect(r.statusCode).toBe(200);
      return ((await r.body.json()) as { headers: Record<string, string> }).headers['x-rl-exceeded'];
    };
    expect(await seen()).toBeUndefined();
    expect(await seen()).toBe('yes');
    expect(await strait.stat('shadow_rl.http_local_rate_limit.rate_limited')).toBe(1);
    expect(await strait.stat('shadow_rl.http_local_rate_limit.enforced')).toBe(0);
  });

  it('gives each client address a bucket of its own with a wildcard descriptor', async () => {
    await oneThenLimited('/perip', 'perip_rl');
  });

  it('limits by the client network with masked_remote_address', async () => {
    await oneThenLimited('/masked', 'masked_rl');
  });

  it('limits the requests whose query matches with query_parameter_value_match, and only those', async () => {
    expect(await status(`${base}/query?debug=on`)).toBe(200);
    expect(await status(`${base}/query?x=1&debug=on`)).toBe(429);
    // Other values fall to the default bucket of 1000.
    for (let i = 0; i < 3; i++) expect(await status(`${base}/query?debug=off`)).toBe(200);
    expect(await status(`${base}/query`)).toBe(200);
  });

  it("uses only the rate_limits of the config's stage", async () => {
    expect(await status(`${base}/staged`)).toBe(200);
    expect(await status(`${base}/staged`)).toBe(200);
    expect(await status(`${base}/staged`)).toBe(429);
  });
});

describe('local rate limit descriptor validation', () => {
  it('rejects bad descriptors and rate_limits with their field paths', async () => {
    const dir = tmpDir('strait-lrl-desc-');
    const l = hcm('l', { stat_prefix: 'x', token_bucket: bucket(10), max_dynamic_descriptors: 0, descriptors: [{ entries: [{ key: 'user', value: 5 }], token_bucket: bucket(1) }, { entries: [{ key: 'k', value: 'v' }] }], vh_rate_limits: 'SOMETIMES', request_headers_to_add_when_not_enforced: [{ header: { key: 'host', value: '1' } }] }, [
      {
        name: 'all',
        domains: ['*'],
        rate_limits: [{ actions: [{ source_cluster: {} }] }],
        routes: [
          route('/a', [{ actions: [{ request_headers: { header_name: 'x-user' } }] }]),
          route('/b', [{ actions: [{ header_value_match: { headers: [] } }] }]),
          route('/c', [{ actions: [{ nothing: {} }] }]),
          route('/e', [{ actions: [{ masked_remote_address: { v4_prefix_mask_len: 40 } }, { query_parameter_value_match: { descriptor_value: 'v' } }] }]),
          { match: { prefix: '/d' }, route: { weighted_clusters: { clusters: [{ name: 'a', weight: 1 }, { name: 'b', weight: 1 }] }, rate_limits: [{ actions: [{ destination_cluster: {} }] }] } },
        ],
      },
    ]);
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, config([l], [cluster('a', 9), cluster('b', 9)]));
    const r = await runCli(['--config', file, '--mode', 'validate']);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.code).toBe(1);
    const hf = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config';
    const vh = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]';
    expect(r.stderr).toContain(`${hf}.descriptors[0].entries[0].value`);
    expect(r.stderr).toContain(`${hf}.max_dynamic_descriptors`);
    expect(r.stderr).toContain(`${hf}.descriptors[1].token_bucket`);
    expect(r.stderr).toContain(`${hf}.vh_rate_limits`);
    expect(r.stderr).toContain(`${hf}.request_headers_to_add_when_not_enforced[0].header.key`);
    expect(r.stderr).toContain(`${vh}.rate_limits[0].actions[0].source_cluster`);
    expect(r.stderr).toContain(`${vh}.routes[0].route.rate_limits[0].actions[0].request_headers.descriptor_key`);
    expect(r.stderr).toContain(`${vh}.routes[1].route.rate_limits[0].actions[0].header_value_match.headers`);
    expect(r.stderr).toContain(`${vh}.routes[2].route.rate_limits[0].actions[0]`);
    expect(r.stderr).toContain(`${vh}.routes[4].route.rate_limits[0].actions[0].destination_cluster`);
    expect(r.stderr).toContain(`${vh}.routes[3].route.rate_limits[0].actions[0].masked_remote_address.v4_prefix_mask_len`);
    expect(r.stderr).toContain(`${vh}.routes[3].route.rate_limits[0].actions[1].query_parameter_value_match.query_parameters`);
  });
});
