import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { RpcRouteTable, type RpcRequestView } from '../../../src/router/rpc_route_table.js';

/** A request view that records which lazy fields the router asked for. */
function req(f: { iface: string; version?: string; group?: string; method?: string; headers?: Record<string, string> }) {
  const asked = new Set<string>();
  const view: RpcRequestView = {
    iface: () => f.iface,
    version: () => f.version ?? '',
    group: () => (asked.add('group'), f.group ?? ''),
    method: () => (asked.add('method'), f.method ?? ''),
    header: (n) => f.headers?.[n],
  };
  return { view, asked };
}

const CLUSTERS = new Set(['user_v1', 'user_v2', 'canary', 'fallback']);

function table(config: unknown[]) {
  const errors: FieldError[] = [];
  const t = RpcRouteTable.compile(config as Record<string, unknown>[], 'route_config', CLUSTERS, errors);
  return { t, errors };
}

describe('RPC route table', () => {
  const { t, errors } = table([
    {
      interface: 'com.example.UserService',
      version: '1.0',
      routes: [
        { match: { method: { name: { exact: 'hello' } } }, route: { cluster: 'user_v1', timeout: '0.5s' } },
        { match: { headers: [{ name: 'x-canary', string_match: { exact: 'yes' } }] }, route: { cluster: 'canary' } },
        { match: {}, route: { cluster: 'user_v2' } },
      ],
    },
    { interface: 'com.example.*', group: 'blue', routes: [{ match: {}, route: { cluster: 'canary' } }] },
    { interface: '*', routes: [{ match: {}, route: { cluster: 'fallback' } }] },
  ]);

  it('compiles without errors', () => expect(errors).toEqual([]));

  it('routes by interface, version and method, first match wins', () => {
    expect(t.route(req({ iface: 'com.example.UserService', version: '1.0', method: 'hello' }).view)?.clusters.pick()).toBe('user_v1');
    expect(t.route(req({ iface: 'com.example.UserService', version: '1.0', method: 'hello' }).view)?.timeoutMs).toBe(500);
    expect(t.route(req({ iface: 'com.example.UserService', version: '1.0', method: 'bye' }).view)?.clusters.pick()).toBe('user_v2');
    expect(t.route(req({ iface: 'com.example.UserService', version: '1.0', method: 'bye', headers: { 'x-canary': 'yes' } }).view)?.clusters.pick()).toBe('canary');
    expect(t.route(req({ iface: 'com.example.UserService', version: '2.0' }).view)?.clusters.pick()).toBe('fallback');
  });

  it('matches interface wildcards and groups', () => {
    expect(t.route(req({ iface: 'com.example.Orders', group: 'blue' }).view)?.clusters.pick()).toBe('canary');
    expect(t.route(req({ iface: 'com.example.Orders', group: 'green' }).view)?.clusters.pick()).toBe('fallback');
  });

  it('decodes lazy fields only when a route needs them', () => {
    // The first service matches on interface+version and its first route asks for the method;
    // no service before it asks for the group, so the group is never decoded.
    const r = req({ iface: 'com.example.UserService', version: '1.0', method: 'hello' });
    t.route(r.view);
    expect([...r.asked]).toEqual(['method']);
    const other = req({ iface: 'org.other.Api' });
    expect(t.route(other.view)?.clusters.pick()).toBe('fallback');
    expect(other.asked.size).toBe(0);
  });

  it('splits by weight', () => {
    const w = table([{ interface: '*', routes: [{ match: {}, route: { weighted_clusters: { clusters: [{ name: 'user_v1', weight: 90 }, { name: 'user_v2', weight: 10 }] } } }] }]).t;
    const route = w.route(req({ iface: 'a.B' }).view)!;
    expect(route.clusters.pick(0.5)).toBe('user_v1');
    expect(route.clusters.pick(0.95)).toBe('user_v2');
  });

  it('reports unknown clusters and bad matchers by path', () => {
    const { errors: e } = table([
      { interface: 'x', routes: [{ match: { method: { name: { safe_regex: { regex: '(' } } } }, route: { cluster: 'nope' } }] },
    ]);
    expect(e.map((x) => x.path)).toEqual(['route_config[0].routes[0].match.method.name.safe_regex.regex', 'route_config[0].routes[0].route.cluster']);
  });

  it('returns null when nothing matches', () => {
    const only = table([{ interface: 'a.B', routes: [{ match: {}, route: { cluster: 'user_v1' } }] }]).t;
    expect(only.route(req({ iface: 'c.D' }).view)).toBeNull();
  });
});

describe('params_match (dubbo_proxy)', () => {
  const { t, errors } = table([
    {
      interface: 'com.example.UserService',
      routes: [
        { match: { method: { name: { exact: 'find' }, params_match: { 1: { range_match: { start: '-5', end: '5' } }, 0: { exact_match: 'vip' } } } }, route: { cluster: 'canary' } },
        { match: { method: { params_match: { 0: { exact_match: 'vip' } } } }, route: { cluster: 'user_v2' } },
        { match: {}, route: { cluster: 'user_v1' } },
      ],
    },
  ]);
  const call = (args: Array<string | undefined>, withParams = true) => {
    const { view } = req({ iface: 'com.example.UserService', method: 'find' });
    if (withParams) view.param = (i) => args[i];
    return t.route(view)?.clusters.names;
  };

  it('needs every entry: an exact string and an integer in [start, end)', () => {
    expect(errors).toEqual([]);
    expect(call(['vip', '-5'])).toEqual(['canary']);
    expect(call(['vip', '4'])).toEqual(['canary']);
    expect(call(['vip', '5'])).toEqual(['user_v2']);
    expect(call(['vip', '1.5'])).toEqual(['user_v2']);
    expect(call(['vip', undefined])).toEqual(['user_v2']);
    expect(call(['VIP', '1'])).toEqual(['user_v1']);
    // Empty never matches, as in Envoy; a protocol without arguments matches no params route.
    expect(call(['', '1'])).toEqual(['user_v1']);
    expect(call(['vip', '1'], false)).toEqual(['user_v1']);
  });

  it('refuses a key that is not an index and an entry without a matcher', () => {
    const bad = table([{ interface: '*', routes: [{ match: { method: { params_match: { x: { exact_match: 'a' }, 2: {} } } }, route: { cluster: 'canary' } }] }]);
    expect(bad.errors.map((e) => `${e.path}: ${e.message}`)).toEqual([
      'route_config[0].routes[0].match.method.params_match[2]: needs exact_match or range_match',
      'route_config[0].routes[0].match.method.params_match[x]: the key is an argument index (0, 1, ...)',
    ]);
  });
});
